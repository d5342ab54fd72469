package main

// logs.go is the log-streaming scenario (part of the full run, or -only
// logs): a container writes 10 MB/s of 100-byte lines (-log-line-bytes)
// for a while, and the executor streams them to the sandbox's stdout
// (logs.go of the executor). It measures the rate the sandbox received,
// how far behind the last line arrived, and the executor's CPU and RSS
// meanwhile. It runs -log-runs times; the report gives every run, and its
// figures table the median and the worst against the targets.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// logResult is one log-streaming run.
type logResult struct {
	Seconds     int
	LineBytes   int
	Written     int64         // bytes the container wrote
	Received    int64         // bytes of container lines kept in the sandbox files (rotation drops the oldest)
	Span        time.Duration // first line in the sandbox → end marker in the sandbox
	Lag         time.Duration // container exit → end marker in the sandbox
	CorePercent float64
	RSSMaxMB    float64
	HWMMB       float64
}

var sidecarOff = "false"

// logRate is what the scenario's container writes, in bytes per second.
const logRate = 10_000_000

// runLogStream runs the scenario for seconds of output in lines of
// lineBytes (newline included).
func (h *harness) runLogStream(seconds, lineBytes int, sidecarURL, profileDir string) (*logResult, error) {
	taskID := h.prefix() + "-logs"
	r, err := h.startExecutor(taskID, mesostest.Config{}, baseSettings(sidecarURL))
	if err != nil {
		return nil, err
	}
	defer r.abort()
	// The container runs bench/logwriter from its sandbox: numbered lines
	// at a steady 10 MB/s, written every millisecond, then an end marker.
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(r.sandbox, "logwriter"), "./bench/logwriter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build bench/logwriter: %v\n%s", err, out)
	}
	command := fmt.Sprintf("/mnt/mesos/sandbox/logwriter -rate %d -line %d -seconds %d", logRate, lineBytes, seconds)
	task := h.benchTask(r.agent, taskID, command, nil)
	task.Labels.Labels = append(task.Labels.Labels, mesos.Label{Key: "SidecarDiscover", Value: &sidecarOff})
	if _, err := r.launchAt(task); err != nil {
		return nil, r.failure(err)
	}
	if _, err := r.waitState(taskID, mesos.TASK_RUNNING, 60*time.Second); err != nil {
		return nil, r.failure(err)
	}
	stdout := filepath.Join(r.sandbox, "stdout")
	// Wait for the first block: the window starts with the output.
	var firstAt time.Time
	for deadline := time.Now().Add(30 * time.Second); firstAt.IsZero(); {
		if time.Now().After(deadline) {
			return nil, r.failure(fmt.Errorf("no container line reached the sandbox"))
		}
		if data, _ := os.ReadFile(stdout); bytes.Contains(data, []byte("\n0000 000")) {
			firstAt = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	// CPU and memory are read while the container writes: from 2 s after
	// its first block until 3 s before its last.
	time.Sleep(2 * time.Second)
	ticks0, sched0, err := cpuReading(r.pid)
	if err != nil {
		return nil, err
	}
	windowStart := time.Now()
	// With profileDir (a benchpprof build), a CPU profile of the window.
	profileDone := make(chan error, 1)
	if profileDir != "" {
		go func() {
			profileDone <- r.fetchProfile(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds-5), filepath.Join(profileDir, "logs-cpu.pprof"))
		}()
	} else {
		profileDone <- nil
	}
	var rssMax int64
	for time.Since(windowStart) < time.Duration(seconds-5)*time.Second {
		if v, err := r.rss(); err == nil {
			rssMax = max(rssMax, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
	window := time.Since(windowStart)
	ticks1, sched1, err := cpuReading(r.pid)
	if err == nil {
		err = <-profileDone
	}
	if err != nil {
		return nil, err
	}
	hwm, err := statusKB(r.pid, "VmHWM")
	if err != nil {
		return nil, err
	}
	var endAt time.Time
	for deadline := time.Now().Add(time.Duration(seconds)*time.Second + 2*time.Minute); endAt.IsZero(); {
		if time.Now().After(deadline) {
			return nil, r.failure(fmt.Errorf("the end marker did not reach the sandbox"))
		}
		if containsEndMarker(stdout) {
			endAt = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := &logResult{Seconds: seconds, LineBytes: lineBytes, Span: endAt.Sub(firstAt), Lag: -1}
	dieCtx, dieCancel := context.WithTimeout(context.Background(), 30*time.Second)
	if dieAt, err := h.dies.wait(dieCtx, r.containerName(taskID)); err == nil {
		res.Lag = max(endAt.Sub(dieAt), 0)
	}
	dieCancel()
	// The run ends as any task does; its state is not this scenario's
	// concern (another bench run's cleanup may remove the container).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	_, err = r.agent.WaitForUpdate(ctx, func(u mesostest.Update) bool {
		return u.Status.GetState() != mesos.TASK_RUNNING && u.Status.GetState() != mesos.TASK_STARTING
	})
	cancel()
	if err != nil {
		return nil, r.failure(err)
	}
	res.Written = int64(logRate)*int64(seconds)/int64(lineBytes)*int64(lineBytes) + int64(len("bench-log-end\n"))
	res.Received = receivedBytes(r.sandbox)
	cpuMs := max(float64(ticks1-ticks0)*1000/float64(h.clkTck), float64(sched1-sched0)/1e6)
	res.CorePercent = cpuMs / ms(window) * 100
	res.RSSMaxMB = float64(rssMax) * 1024 / 1e6
	res.HWMMB = float64(hwm) * 1024 / 1e6
	return res, nil
}

func containsEndMarker(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false
	}
	tail := make([]byte, min(info.Size(), 64<<10))
	if _, err := f.ReadAt(tail, info.Size()-int64(len(tail))); err != nil {
		return false
	}
	return bytes.Contains(tail, []byte("\nbench-log-end\n"))
}

// receivedBytes counts the container's bytes in the sandbox's stdout and
// its rotated copies (the executor's own log lines excluded).
func receivedBytes(sandbox string) int64 {
	var n int64
	matches, _ := filepath.Glob(filepath.Join(sandbox, "stdout*"))
	for _, path := range matches {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if line != "" && !strings.HasPrefix(line, `time="`) {
				n += int64(len(line))
			}
		}
	}
	return n
}

// rate is how fast the output reached the sandbox, MB/s.
func (res *logResult) rate() float64 {
	return float64(res.Written) / 1e6 / res.Span.Seconds()
}

func (res *logResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| Log streaming, %d s at 10 MB/s (%d-byte lines) | value |\n|---|---|\n", res.Seconds, res.LineBytes)
	fmt.Fprintf(&b, "| written by the container | %.1f MB |\n", float64(res.Written)/1e6)
	fmt.Fprintf(&b, "| kept in the sandbox (stdout and its rotated copies, default cap) | %.1f MB |\n", float64(res.Received)/1e6)
	fmt.Fprintf(&b, "| rate into the sandbox (first line → end marker) | %.1f MB/s |\n", res.rate())
	if res.Lag >= 0 {
		fmt.Fprintf(&b, "| end marker in the sandbox after the container's exit (50 ms polling) | %s |\n", res.Lag.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "| executor CPU while streaming | %.1f %% of a core |\n", res.CorePercent)
	fmt.Fprintf(&b, "| executor RSS, max sampled / VmHWM | %.1f MB / %.1f MB |\n", res.RSSMaxMB, res.HWMMB)
	return b.String()
}
