package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// startWrapper runs executor.sh the way Mesos would: from the sandbox, with
// the agent's environment and SIDECAR_EXECUTOR_PATH naming the binary.
func startWrapper(t *testing.T, agent *mesostest.Agent, binary string, settings ...string) *executorProcess {
	t.Helper()
	sandbox := t.TempDir()
	wrapper, err := filepath.Abs("executor.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := executorEnv(agent, sandbox, append([]string{"SIDECAR_EXECUTOR_PATH=" + binary,
		"SIDECAR_EXECUTOR_SITE_ENV=" + filepath.Join(sandbox, "no-site-env")}, settings...)...)
	return startExecutorIn(t, agent, sandbox, wrapper, env)
}

func TestExecutorShCopiesAndRunsTheBinary(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand("true"))
	mustLaunch(t, agent, task)
	proc := startWrapper(t, agent, executorBinary)
	if final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second); final.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("final %s %q", final.GetState(), final.GetMessage())
	}
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("executor.sh exit code %d, want the executor's 0", code)
	}
	original, err := os.ReadFile(executorBinary)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(filepath.Join(proc.sandbox, "sidecar-executor"))
	if err != nil {
		t.Fatalf("no copy of the binary in the sandbox: %v", err)
	}
	if !bytes.Equal(original, copied) {
		t.Fatal("the sandbox copy differs from the installed binary")
	}
}

func TestExecutorShMissingBinary(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	missing := filepath.Join(t.TempDir(), "not-installed")
	proc := startWrapper(t, agent, missing)
	if code := proc.waitExit(t, 10*time.Second); code != 127 {
		t.Fatalf("exit code %d, want 127", code)
	}
	if !strings.Contains(proc.stderr.String(), "no sidecar-executor binary at "+missing) {
		t.Fatalf("unclear error: %q", proc.stderr.String())
	}
}

func TestExecutorShSourcesSiteEnvironment(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand("true"))
	mustLaunch(t, agent, task)
	siteEnv := filepath.Join(t.TempDir(), "environment")
	if err := os.WriteFile(siteEnv, []byte("EXECUTOR_LOG_FORMAT=json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := startWrapper(t, agent, executorBinary, "SIDECAR_EXECUTOR_SITE_ENV="+siteEnv)
	waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	proc.waitExit(t, 20*time.Second)
	if !strings.Contains(proc.stdout.String(), `"msg":"sidecar-executor starting"`) {
		t.Fatalf("the site environment (JSON logs) was not applied:\n%s", proc.stdout.String())
	}
}

// executorChild finds the executor process that executor.sh started.
func executorChild(t *testing.T, wrapperPID int) int {
	t.Helper()
	var child int
	eventually(t, 10*time.Second, "executor.sh to start the executor", func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", wrapperPID, wrapperPID))
		if err != nil {
			return false
		}
		fields := strings.Fields(string(data))
		if len(fields) != 1 {
			return false
		}
		child, err = strconv.Atoi(fields[0])
		return err == nil
	})
	return child
}

func TestExecutorShForwardsSigterm(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	mustLaunch(t, agent, task)
	proc := startWrapper(t, agent, executorBinary)
	waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
	proc.signal(t, syscall.SIGTERM)
	if final := waitTerminal(t, agent, task.TaskID.Value, 30*time.Second); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q, want TASK_KILLED", final.GetState(), final.GetMessage())
	}
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	assertNoContainer(t, task.TaskID.Value)
}

func TestExecutorShCleansUpAfterAKilledExecutor(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	mustLaunch(t, agent, task)
	proc := startWrapper(t, agent, executorBinary)
	waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
	child := executorChild(t, proc.cmd.Process.Pid)
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := proc.waitExit(t, 30*time.Second); code == 0 {
		t.Errorf("executor.sh exited 0 although its executor was killed")
	}
	assertNoContainer(t, task.TaskID.Value)
	if !strings.Contains(proc.stderr.String(), "without cleaning up its container") {
		t.Errorf("executor.sh did not say it cleaned up:\n%s", proc.stderr.String())
	}
}
