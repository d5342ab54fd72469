package main

// Proportional memory of idle executors run as production runs them:
// through executor.sh, from one installed binary, so that every executor
// maps the same host-side copy and shares its pages.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/executorshtest"
)

// pssResult is K idle executors started through executor.sh.
type pssResult struct {
	K           int
	BinaryBytes int64   // size of the shared copy
	Executors   []memKB // one per executor process
	Wrappers    []memKB // the executor.sh shells waiting on them
}

// memKB is a process's smaps_rollup, in KiB.
type memKB struct {
	Rss, Pss, PssAnon, PssFile, Anonymous int64
}

// pssTotals sums one field over processes, in MB.
func pssTotals(ps []memKB, field func(memKB) int64) (total, mean, maximum float64) {
	for _, p := range ps {
		v := float64(field(p)) * 1024 / 1e6
		total += v
		maximum = max(maximum, v)
	}
	if len(ps) > 0 {
		mean = total / float64(len(ps))
	}
	return total, mean, maximum
}

// runPSS installs the executor binary in a temporary install directory,
// writes a test copy of executor.sh pointing at it and at a temporary state
// directory, starts k executors through it with an idle task each, and
// reads every executor's smaps_rollup once all run.
func (h *harness) runPSS(k int, sidecarURL string) (*pssResult, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(h.workDir, "pss")
	installed := filepath.Join(dir, "install", "sidecar-executor")
	stateDir := filepath.Join(dir, "state")
	for _, d := range []string{filepath.Dir(installed), stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := copyFile(h.binary, installed, 0o755); err != nil {
		return nil, fmt.Errorf("install the executor binary: %w", err)
	}
	wrapper, err := executorshtest.Write(filepath.Join(root, "executor.sh"), installed, stateDir, dir)
	if err != nil {
		return nil, err
	}
	wrapped := *h
	wrapped.binary = wrapper.Path
	wrapped.idPart = "pss"

	runs := make([]*execRun, 0, k)
	defer func() {
		for _, r := range runs {
			r.abortWrapped()
		}
	}()
	taskIDs := make([]string, k)
	for i := 0; i < k; i++ {
		taskIDs[i] = fmt.Sprintf("%s-%d", wrapped.prefix(), i)
		r, err := wrapped.launchIdle(taskIDs[i], sidecarURL)
		if r != nil {
			runs = append(runs, r)
		}
		if err != nil {
			return nil, err
		}
		if i == 0 {
			// The first wrapper makes the host-side copy; the others find
			// it, as on an agent where this version has run before. (Wrappers
			// that all start before any copy exists each make one, and the
			// last rename wins, so the first executors would run a file
			// that is no longer there and share nothing with the rest.)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err := r.agent.WaitForSubscriptions(ctx, 1)
			cancel()
			if err != nil {
				return nil, r.failure(fmt.Errorf("the first executor did not subscribe: %w", err))
			}
		}
	}
	if _, err := waitAllRunning(runs, taskIDs); err != nil {
		return nil, err
	}
	h.progress("pss: %d tasks running through executor.sh", k)

	copies, err := filepath.Glob(filepath.Join(stateDir, "bin", "sidecar-executor-*"))
	if err != nil {
		return nil, err
	}
	if len(copies) != 1 {
		return nil, fmt.Errorf("executor.sh made %d copies of the binary in %s, want 1: %q", len(copies), stateDir, copies)
	}
	shared, err := os.Stat(copies[0])
	if err != nil {
		return nil, err
	}
	res := &pssResult{K: k, BinaryBytes: shared.Size()}
	for i, r := range runs {
		inner, err := childOf(r.pid)
		if err != nil {
			return nil, r.failure(err)
		}
		r.inner = inner
		// Every executor must run the one shared copy, or the figures would
		// not show what production shares.
		exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", inner))
		if err != nil {
			return nil, r.failure(err)
		}
		if !os.SameFile(exe, shared) {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", inner))
			return nil, r.failure(fmt.Errorf("executor %d of task %s runs %s, not the shared copy %s", inner, taskIDs[i], link, copies[0]))
		}
	}
	// Idle: let the launch's transient allocations settle as the density
	// run does before it reads RSS.
	time.Sleep(2 * time.Second)
	for _, r := range runs {
		m, err := readMem(r.inner)
		if err != nil {
			return nil, r.failure(fmt.Errorf("smaps_rollup of executor %d: %w", r.inner, err))
		}
		res.Executors = append(res.Executors, m)
		w, err := readMem(r.pid)
		if err != nil {
			return nil, r.failure(fmt.Errorf("smaps_rollup of executor.sh %d: %w", r.pid, err))
		}
		res.Wrappers = append(res.Wrappers, w)
	}

	// End every task through its container's own exit.
	for _, r := range runs {
		if err := os.WriteFile(filepath.Join(r.sandbox, "finish"), nil, 0o644); err != nil {
			return nil, err
		}
	}
	err = eachRun(runs, func(i int, r *execRun) error {
		u, err := r.waitTerminal(taskIDs[i], mesos.TASK_FINISHED, 2*time.Minute)
		if err != nil {
			return err
		}
		if _, err := r.ackToExit(u); err != nil {
			return err
		}
		return r.finish(taskIDs[i])
	})
	if err != nil {
		return nil, fmt.Errorf("not every executor started through executor.sh ended cleanly: %w", err)
	}
	h.progress("pss: all %d tasks finished, every executor.sh exited 0", k)
	return res, nil
}

// readMem reads the smaps_rollup fields of the PSS report.
func readMem(pid int) (memKB, error) {
	fields, err := smapsRollup(pid)
	if err != nil {
		return memKB{}, err
	}
	return memKB{Rss: fields["Rss"], Pss: fields["Pss"], PssAnon: fields["Pss_Anon"], PssFile: fields["Pss_File"], Anonymous: fields["Anonymous"]}, nil
}

// childOf finds the one child process of pid (executor.sh has exactly one
// once the executor runs: it waits on it).
func childOf(pid int) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if ppid, err := parseStatPPID(data); err == nil && ppid == pid {
			children = append(children, child)
		}
	}
	if len(children) != 1 {
		return 0, fmt.Errorf("executor.sh %d has %d child processes, want 1 (the executor): %v", pid, len(children), children)
	}
	return children[0], nil
}

// parseStatPPID extracts the parent PID (field 4) of a /proc/<pid>/stat
// line, counting from the last ')' as parseStatTicks does.
func parseStatPPID(data []byte) (int, error) {
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed stat line %q", data)
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return 0, fmt.Errorf("stat line has %d fields after the command", len(fields))
	}
	return strconv.Atoi(fields[1])
}

// abortWrapped is abort for an executor started through executor.sh: the
// executor is the shell's child, and killing the shell alone would leave it
// running.
func (r *execRun) abortWrapped() {
	select {
	case <-r.exited:
	default:
		inner := r.inner
		if inner == 0 {
			inner, _ = childOf(r.pid)
		}
		if inner > 0 {
			_ = syscall.Kill(inner, syscall.SIGKILL)
		}
	}
	r.abort()
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
