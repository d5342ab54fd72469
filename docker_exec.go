package main

// Running a command inside the task's container through Docker's exec API
// (COMMAND health checks and checks): create, start attached, read the
// exit code; and, since Docker cannot kill an exec, the kill of an exec
// that outlived its timeout, done from the host's /proc.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	docker "github.com/fsouza/go-dockerclient"
)

// execMarkerVar is set, with a value unique to each exec, in the
// environment of every command run for a check, so that a timed-out one
// and its children can be found and killed.
const execMarkerVar = "SIDECAR_EXECUTOR_CHECK_ID"

// execClient is the exec calls' own Docker client. go-dockerclient's
// CreateExec asks the daemon for its API version on a client's first call
// and stores it unsynchronised, so creates are serialised and no other call
// shares the client.
type execClient struct {
	once     sync.Once
	client   *docker.Client
	err      error
	createMu sync.Mutex
}

func (e *execClient) get() (*docker.Client, error) {
	e.once.Do(func() {
		e.client, e.err = newDockerClient()
		if e.client != nil {
			// Bounds create and inspect; the attached start is a hijacked
			// connection, which this timeout does not reach.
			e.client.SetTimeout(dockerCallTimeout)
		}
	})
	return e.client, e.err
}

// tailWriter keeps the last limit bytes written to it.
type tailWriter struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.limit; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf)
}

// execInContainer runs cmd in the container with env added to the
// container's environment, and returns its exit code and the end of its
// output. When ctx ends first, the command and its children are killed
// from the host where they can be found (see killMarkedProcesses) and
// ctx's error is returned.
func (r *dockerRuntime) execInContainer(ctx context.Context, id string, cmd, env []string, outputLimit int) (execResult, error) {
	client, err := r.exec.get()
	if err != nil {
		return execResult{}, err
	}
	marker, err := newExecMarker()
	if err != nil {
		return execResult{}, err
	}
	r.exec.createMu.Lock()
	created, err := client.CreateExec(docker.CreateExecOptions{
		Container:    id,
		Cmd:          cmd,
		Env:          append(append([]string(nil), env...), execMarkerVar+"="+marker),
		AttachStdout: true,
		AttachStderr: true,
		Context:      ctx,
	})
	r.exec.createMu.Unlock()
	if err != nil {
		return execResult{}, fmt.Errorf("create exec in container %s: %w", shortID(id), err)
	}
	tail := &tailWriter{limit: outputLimit}
	waiter, err := client.StartExecNonBlocking(created.ID, docker.StartExecOptions{OutputStream: tail, ErrorStream: tail})
	if err != nil {
		return execResult{}, fmt.Errorf("start exec in container %s: %w", shortID(id), err)
	}
	finished := make(chan error, 1)
	go func() { finished <- waiter.Wait() }()
	select {
	case err = <-finished:
	case <-ctx.Done():
		waiter.Close()
		killMarkedProcesses("/proc", id, marker)
		return execResult{outputTail: tail.bytes()}, ctx.Err()
	}
	if err != nil {
		return execResult{outputTail: tail.bytes()}, fmt.Errorf("exec in container %s: %w", shortID(id), err)
	}
	inspected, err := client.InspectExec(created.ID)
	if err != nil {
		return execResult{outputTail: tail.bytes()}, fmt.Errorf("inspect exec in container %s: %w", shortID(id), err)
	}
	if inspected.Running {
		return execResult{outputTail: tail.bytes()}, errors.New("the command's output ended but Docker still reports it running")
	}
	return execResult{exitCode: inspected.ExitCode, outputTail: tail.bytes()}, nil
}

func newExecMarker() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make an exec marker: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// killMarkedProcesses SIGKILLs the processes, seen in procRoot, that are
// in the container's cgroup and carry the exec's marker in their
// environment: the timed-out command and the children it started (unless
// they cleared their environment). Docker's API has no call to kill an
// exec. It finds nothing when the executor does not see the container's
// processes (another PID namespace than Docker's); the command then runs
// on, as under a docker CLI whose exec was abandoned. It returns the PIDs
// it signalled.
func killMarkedProcesses(procRoot, containerID, marker string) []int {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	needle := []byte("\x00" + execMarkerVar + "=" + marker + "\x00")
	var killed []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid <= 1 {
			continue
		}
		dir := filepath.Join(procRoot, entry.Name())
		cgroup, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil || !bytes.Contains(cgroup, []byte(containerID)) {
			continue
		}
		environ, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil || !bytes.Contains(append(append([]byte{0}, environ...), 0), needle) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed
}
