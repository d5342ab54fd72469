package main

// End to end: Sidecar seeds from an emulated Mesos master reach the
// container's environment on the real Docker engine, and a master that is
// down costs the seeds, not the task.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mastertest"
	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// runSeededTask runs a task that writes its environment to the sandbox and
// exits, with EXECUTOR_SEED_SIDECAR on and the master's port from the
// operator's file, and returns the container's environment lines.
func runSeededTask(t *testing.T, masterPort string, opts ...taskOption) ([]string, *executorProcess) {
	t.Helper()
	agent := newAgent(t, mesostest.Config{MasterHostname: "localhost"})
	task := newDockerTask(t, agent, testImage,
		append([]taskOption{withShellCommand(`sh -c 'env > $MESOS_SANDBOX/env.txt'`)}, opts...)...)
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, "EXECUTOR_SEED_SIDECAR=true",
		withOperatorFile(t, "EXECUTOR_MESOS_MASTER_PORT="+masterPort))
	expectFinal(t, agent, task.TaskID.Value, 90*time.Second, mesos.TASK_FINISHED)
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)
	if agent.StateRequests() != 1 {
		t.Errorf("the agent's /state was asked %d times, want once", agent.StateRequests())
	}
	data, err := os.ReadFile(filepath.Join(proc.sandbox, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n"), proc
}

func TestSidecarSeedsFromTheMasterOnRealDocker(t *testing.T) {
	t.Parallel()
	master := mastertest.NewServer(t,
		mastertest.Agent{Hostname: "worker-2.example"},
		mastertest.Agent{Hostname: "worker-1.example"},
		mastertest.Agent{Hostname: "worker-2.example", ID: "re-registered-S9"})
	env, proc := runSeededTask(t, master.Port(), withEnv("SIDECAR_SEEDS", "chosen-by-the-task"))
	var seeds []string
	for _, entry := range env {
		if strings.HasPrefix(entry, "SIDECAR_SEEDS=") {
			seeds = append(seeds, entry)
		}
	}
	// Once, the master's agents sorted and deduplicated, replacing the
	// task's own value.
	if want := []string{"SIDECAR_SEEDS=worker-1.example,worker-2.example"}; !slices.Equal(seeds, want) {
		t.Fatalf("container environment has %q, want %q", seeds, want)
	}
	if master.Requests() != 1 {
		t.Errorf("the master was asked %d times, want once", master.Requests())
	}
	if !strings.Contains(proc.output(), "Sidecar seeded from the Mesos master") {
		t.Errorf("the log does not say the task was seeded:\n%s", proc.output())
	}
}

func TestSidecarSeedsMasterDownOnRealDocker(t *testing.T) {
	t.Parallel()
	master := mastertest.NewServer(t)
	master.Close()
	env, proc := runSeededTask(t, master.Port())
	for _, entry := range env {
		if strings.HasPrefix(entry, "SIDECAR_SEEDS=") {
			t.Fatalf("container environment has %q after a failed lookup", entry)
		}
	}
	url := "http://localhost:" + master.Port() + "/slaves"
	out := proc.output()
	if !strings.Contains(out, "cannot seed Sidecar from the Mesos master; the task is launched without SIDECAR_SEEDS") ||
		!strings.Contains(out, url) || !strings.Contains(out, "connection refused") {
		t.Fatalf("the log does not say why the task has no seeds (want %s and connection refused):\n%s", url, out)
	}
}
