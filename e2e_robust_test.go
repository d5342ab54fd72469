package main

// End-to-end tests of the executor's robustness: signals, and stops that
// must fit in the agent's grace period.

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

func TestSighupToExecutorStopsTheTask(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting)})
	// executor.sh forwards SIGHUP (a closing terminal, some supervisors).
	proc.signal(t, syscall.SIGHUP)
	expectFinal(t, agent, task.TaskID.Value, 20*time.Second, mesos.TASK_KILLED, "SIGHUP")
	expectCleanExit(t, proc, task.TaskID.Value, 10*time.Second)
}

func TestShutdownWithinAShortGracePeriodWhileSidecarRefuses(t *testing.T) {
	t.Parallel()
	// Short, yet room for the Docker calls of the stop (SIGTERM, 1s, SIGKILL,
	// wait, logs, remove), which on a loaded machine took longer than the
	// 2.5s a 3s grace left them, leaving the container behind.
	const grace = 6 * time.Second
	// Sidecar's URL is a closed port (the harness default); draining is on
	// (for longer than the grace period) and the container ignores SIGTERM:
	// everything that can take time does.
	agent, task, proc := startRunningTask(t, mesostest.Config{ShutdownGracePeriod: grace}, testImage,
		[]taskOption{withShellCommand(termIgnoring)},
		"EXECUTOR_SIDECAR_DRAINING_DURATION=10s", "EXECUTOR_SIDECAR_RETRY_DELAY=1s", "EXECUTOR_SIDECAR_RETRY_COUNT=5",
		"EXECUTOR_KILL_TASK_TIMEOUT=1")
	if err := agent.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// The agent destroys the executor when the grace period is over; the
	// terminal update must be there by then (a small margin for the test).
	expectFinal(t, agent, task.TaskID.Value, grace+500*time.Millisecond, mesos.TASK_KILLED)
	expectCleanExit(t, proc, task.TaskID.Value, 10*time.Second)
}

func TestKillWithGraceZeroDoesNotDrain(t *testing.T) {
	t.Parallel()
	const draining = 5 * time.Second
	r := runWithSidecar(t, termIgnoring, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarAlive)
	}, []string{"EXECUTOR_SIDECAR_DRAINING_DURATION=" + draining.String()})
	r.kill(t, &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: 0}})
	final := waitTerminal(t, r.agent, r.task.TaskID.Value, draining-time.Second)
	if final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q, want TASK_KILLED", final.GetState(), final.GetMessage())
	}
	if drains := r.sidecar.Drains(); len(drains) != 0 {
		t.Fatalf("a KILL with grace 0 asked Sidecar to drain %d times", len(drains))
	}
	r.proc.waitExit(t, 10*time.Second)
	assertNoContainer(t, r.task.TaskID.Value)
}

func TestKillStopsDrainingAtOnceWhenSidecarRefuses(t *testing.T) {
	t.Parallel()
	const draining = 10 * time.Second
	// Sidecar's URL is a closed port (the harness default).
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage,
		[]taskOption{withShellCommand(termRespecting), withKillPolicy(time.Second)},
		"EXECUTOR_SIDECAR_DRAINING_DURATION="+draining.String(), "EXECUTOR_SIDECAR_RETRY_DELAY=1s", "EXECUTOR_SIDECAR_RETRY_COUNT=5")
	mustKill(t, agent, task.TaskID.Value, nil)
	expectFinal(t, agent, task.TaskID.Value, draining/2, mesos.TASK_KILLED)
	if !strings.Contains(proc.output(), "connection refused") {
		t.Errorf("the executor did not say Sidecar refused the drain")
	}
	proc.waitExit(t, 10*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

// An executor whose stdout and stderr are pipes nobody reads any more (the
// agent's logrotate logger died) is not killed by SIGPIPE when it logs:
// here it finds no agent to talk to, logs that, and exits with its own
// code, as it would with a reader.
func TestExecutorSurvivesABrokenStdout(t *testing.T) {
	requireExecutorBinary(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, executorBinary)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	w.Close()
	if cmd.ProcessState == nil {
		t.Fatalf("the executor did not run: %v", err)
	}
	if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		t.Fatalf("the executor was killed by %s writing to a broken stdout", status.Signal())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitBadEnvironment {
		t.Fatalf("exit code %d without an agent, want %d", code, exitBadEnvironment)
	}
}
