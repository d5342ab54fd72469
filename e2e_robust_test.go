package main

// End-to-end tests of the executor's robustness: signals, and stops that
// must fit in the agent's grace period.

import (
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
	final := waitTerminal(t, agent, task.TaskID.Value, 20*time.Second)
	if final.GetState() != mesos.TASK_KILLED || !strings.Contains(final.GetMessage(), "SIGHUP") {
		t.Fatalf("final %s %q, want TASK_KILLED naming SIGHUP", final.GetState(), final.GetMessage())
	}
	if code := proc.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("executor exit code %d, want 0", code)
	}
	assertNoContainer(t, task.TaskID.Value)
}
