//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

// BenchmarkFollowFloor measures the least that reading a container's live
// output through Docker can cost this process: a container writes 10 MB/s
// of 100-byte lines (bench/logwriter) for 20 s, and the output is read
// through the executor's follow connection (docker_follow_conn.go) and
// thrown away — no parsing, no sandbox file. "logs" is the logs API the
// executor follows (timestamps on, one Docker write per line); "attach" is
// Docker's attach stream of the same output (no timestamps, the pieces the
// daemon reads from the container's pipe). It reports the process's CPU
// while it reads (%core, user and system time over the wall-clock window)
// and the rate it received (MB/s). One iteration takes the whole 20 s.
// Compare %core with the executor's own figure from `go run ./bench -only
// logs`: the difference is what the executor adds to the floor.
func BenchmarkFollowFloor(b *testing.B) {
	client := requireDocker(b)
	dir := b.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "logwriter"), "./bench/logwriter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build bench/logwriter: %v\n%s", err, out)
	}
	runtime, err := newDockerRuntime()
	if err != nil {
		b.Fatal(err)
	}
	for _, api := range []string{"logs", "attach"} {
		b.Run(api, func(b *testing.B) {
			for range b.N {
				benchFollowFloorOnce(b, client, runtime.follow, dir, api)
			}
		})
	}
}

func benchFollowFloorOnce(b *testing.B, client, follow *docker.Client, dir, api string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	container, err := client.CreateContainer(docker.CreateContainerOptions{
		Context: ctx,
		Config: &docker.Config{
			Image: testImage,
			Cmd:   []string{"/bench/logwriter", "-rate", "10000000", "-line", "100", "-seconds", "20"},
		},
		HostConfig: &docker.HostConfig{Binds: []string{dir + ":/bench:ro"}, NetworkMode: "none"},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer client.RemoveContainer(docker.RemoveContainerOptions{ID: container.ID, Force: true})
	var received atomic.Int64
	out := countingWriter{n: &received}
	// The attach stream carries only what is written once it is
	// attached: it is attached before the start.
	var attached docker.CloseWaiter
	if api == "attach" {
		attached, err = follow.AttachToContainerNonBlocking(docker.AttachToContainerOptions{
			Container: container.ID, OutputStream: out, ErrorStream: out,
			Stdout: true, Stderr: true, Stream: true, RawTerminal: true,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := client.StartContainerWithContext(container.ID, nil, ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, start := processCPU(b), time.Now()

	switch api {
	case "logs":
		err = follow.Logs(docker.LogsOptions{
			Context: ctx, Container: container.ID, OutputStream: out,
			Follow: true, Stdout: true, Stderr: true, Timestamps: true, RawTerminal: true,
		})
	case "attach":
		err = attached.Wait()
	}
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	if err != nil {
		b.Fatalf("%s: %v", api, err)
	}
	if received.Load() < 150_000_000 {
		b.Fatalf("%s: received %d bytes of the 200 MB written", api, received.Load())
	}
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "%core")
	b.ReportMetric(float64(received.Load())/1e6/elapsed.Seconds(), "MB/s")
}

type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}
