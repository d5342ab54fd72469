package mesostest_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// An end-to-end test runs the executor binary with the environment the agent
// would give it, launches a task and waits for the agent to see it finish.
func ExampleNewAgent() {
	var t *testing.T // the test's *testing.T
	agent := mesostest.NewAgent(t, mesostest.Config{Checkpoint: true})

	cmd := exec.Command("bin/sidecar-executor")
	cmd.Env = append(os.Environ(), agent.Environment(t.TempDir())...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := agent.Launch(agent.NewTask("web-1")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := agent.WaitForState(ctx, "web-1", mesos.TASK_RUNNING); err != nil {
		t.Fatal(err)
	}
	if err := agent.Kill("web-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.WaitForState(ctx, "web-1", mesos.TASK_KILLED); err != nil {
		t.Fatal(err)
	}
	// Report the exit to the agent as a real one would notice it: a task the
	// executor left non-terminal becomes TASK_FAILED.
	_ = cmd.Wait()
	agent.ExecutorTerminated("")
}
