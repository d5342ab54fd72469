package main

import (
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// Commands run by the test image's busybox. Both print trapSetLine once
// their trap is set: a test that stops them waits for it (waitRunning,
// startRunningTask), for until then the shell, PID 1, ignores SIGTERM.
const (
	// termRespecting exits promptly on SIGTERM.
	termRespecting = `sh -c 'trap "echo got TERM; exit 0" TERM; echo started; while true; do sleep 0.05; done'`
	// termIgnoring ignores SIGTERM, so only SIGKILL ends it.
	termIgnoring = `sh -c 'trap "echo ignoring TERM" TERM; echo started; while true; do sleep 0.05; done'`
)

func TestTaskFinishes(t *testing.T) {
	t.Parallel()
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(`sh -c 'echo hello from the task'`)})

	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	if code := proc.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("executor exit code %d, want 0", code)
	}
	want := []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED}
	if got := states(agent, task.TaskID.Value); !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	for _, u := range agent.Accepted(task.TaskID.Value) {
		s := u.Status
		if len(s.UUID) != 16 || s.GetSource() != mesos.SOURCE_EXECUTOR || s.GetExecutorID().GetValue() != agent.Config().ExecutorID || s.GetTimestamp() == 0 {
			t.Errorf("update %s lacks bookkeeping: uuid %d bytes, source %s, executor %q, timestamp %v",
				s.GetState(), len(s.UUID), s.GetSource(), s.GetExecutorID().GetValue(), s.GetTimestamp())
		}
	}
	assertNoContainer(t, task.TaskID.Value)
	// The output is streamed to the sandbox live, once, without the
	// framing of the end-of-task copy.
	if out := proc.stdout.String(); strings.Count(out, "\nhello from the task\n") != 1 || strings.Contains(out, "----- begin container") {
		t.Errorf("the container's output is not in stdout exactly once, unframed")
	}
}

func TestTaskFailsWithLogsCopied(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage,
		withShellCommand(`sh -c 'echo line-on-stdout; echo line-on-stderr >&2; exit 3'`))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)

	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED, "container exited with status 3")
	if code := proc.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("executor exit code %d, want 0: the executor did its job", code)
	}
	if !strings.Contains(proc.stdout.String(), "line-on-stdout") {
		t.Errorf("container stdout not copied to the executor's stdout")
	}
	if !strings.Contains(proc.stderr.String(), "line-on-stderr") {
		t.Errorf("container stderr not copied to the executor's stderr")
	}
	if strings.Contains(proc.stdout.String(), "line-on-stderr") {
		t.Errorf("container stderr leaked into stdout: streams not demultiplexed")
	}
	assertNoContainer(t, task.TaskID.Value)
}

func TestKillTermRespectingContainer(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}}, testImage, []taskOption{withShellCommand(termRespecting)}, "EXECUTOR_KILL_TASK_TIMEOUT=20")

	start := time.Now()
	mustKill(t, agent, task.TaskID.Value, nil)
	expectFinal(t, agent, task.TaskID.Value, 30*time.Second, mesos.TASK_KILLED)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("a container that exits on SIGTERM took %s to be killed: SIGKILL timeout used instead of SIGTERM", elapsed)
	}
	want := []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED}
	if got := states(agent, task.TaskID.Value); !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	if code := proc.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("executor exit code %d, want 0", code)
	}
	if !strings.Contains(proc.stdout.String(), "got TERM") {
		t.Errorf("the container's logs (showing it got SIGTERM) were not copied on kill")
	}
	assertNoContainer(t, task.TaskID.Value)
}

func TestKillTermIgnoringContainerEscalates(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termIgnoring), withKillPolicy(time.Second)})

	start := time.Now()
	mustKill(t, agent, task.TaskID.Value, nil)
	final := waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	elapsed := time.Since(start)
	if final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q, want TASK_KILLED", final.GetState(), final.GetMessage())
	}
	if !strings.Contains(final.GetMessage(), "137") {
		t.Errorf("message %q does not show the SIGKILL exit status 137", final.GetMessage())
	}
	if elapsed < time.Second {
		t.Errorf("killed after %s, before the TaskInfo kill_policy grace of 1s", elapsed)
	}
	// No TASK_KILLING: the framework does not have the capability.
	if slices.Contains(states(agent, task.TaskID.Value), mesos.TASK_KILLING) {
		t.Errorf("TASK_KILLING sent to a framework without the TASK_KILLING_STATE capability")
	}
	proc.waitExit(t, 10*time.Second)
	if !strings.Contains(proc.stdout.String(), "ignoring TERM") {
		t.Errorf("SIGTERM was not sent before SIGKILL (container output: %q)", proc.stdout.String())
	}
	assertNoContainer(t, task.TaskID.Value)
}

func TestKillPolicyOfKillEventOverridesTask(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	// The task asks for a long grace; the KILL asks for none.
	task := newDockerTask(t, agent, testImage, withShellCommand(termIgnoring), withKillPolicy(30*time.Second))
	mustLaunch(t, agent, task)
	startExecutor(t, agent)
	waitRunning(t, agent, task, 60*time.Second)
	start := time.Now()
	mustKill(t, agent, task.TaskID.Value, &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: 0}})
	expectFinal(t, agent, task.TaskID.Value, 20*time.Second, mesos.TASK_KILLED)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("KILL with a zero grace period took %s: the task's 30s kill_policy was used", elapsed)
	}
}

// hangingRegistry accepts connections and never answers, like a registry
// that hangs mid-pull.
func hangingRegistry(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	t.Cleanup(func() {
		listener.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return listener.Addr().String()
}

func TestKillDuringPull(t *testing.T) {
	t.Parallel()
	registry := hangingRegistry(t)
	agent, task, proc := startTask(t, mesostest.Config{}, registry+"/stuck/image:1", []taskOption{})
	waitState(t, agent, task.TaskID.Value, mesos.TASK_STARTING, 30*time.Second)
	eventually(t, 30*time.Second, "the pull to start", func() bool {
		return strings.Contains(proc.output(), "pulling the image")
	})
	start := time.Now()
	mustKill(t, agent, task.TaskID.Value, nil)
	final := waitTerminal(t, agent, task.TaskID.Value, 20*time.Second)
	if final.GetState() != mesos.TASK_KILLED || final.GetReason() != mesos.REASON_TASK_KILLED_DURING_LAUNCH {
		t.Fatalf("final %s/%s %q, want TASK_KILLED/REASON_TASK_KILLED_DURING_LAUNCH", final.GetState(), final.GetReason(), final.GetMessage())
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("KILL took %s to abort a hanging pull", elapsed)
	}
	proc.waitExit(t, 10*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

func TestShutdownStopsTheTask(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting)})
	if err := agent.Shutdown(); err != nil {
		t.Fatal(err)
	}
	expectFinal(t, agent, task.TaskID.Value, 20*time.Second, mesos.TASK_KILLED)
	expectCleanExit(t, proc, task.TaskID.Value, 10*time.Second)
}

func TestSigtermToExecutorStopsTheTask(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting)})
	proc.signal(t, syscall.SIGTERM)
	final := waitTerminal(t, agent, task.TaskID.Value, 20*time.Second)
	if final.GetState() != mesos.TASK_KILLED || !strings.Contains(final.GetMessage(), "SIGTERM") && !strings.Contains(final.GetMessage(), "terminated") {
		t.Fatalf("final %s %q, want TASK_KILLED naming the signal", final.GetState(), final.GetMessage())
	}
	expectCleanExit(t, proc, task.TaskID.Value, 10*time.Second)
}

func TestSecondLaunchIsRefused(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	first := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	second := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	mustLaunch(t, agent, first)
	startExecutor(t, agent)
	waitRunning(t, agent, first, 60*time.Second)
	mustLaunch(t, agent, second)
	refused := waitTerminal(t, agent, second.TaskID.Value, 20*time.Second)
	if refused.GetState() != mesos.TASK_FAILED || !strings.Contains(refused.GetMessage(), first.TaskID.Value) {
		t.Fatalf("second task: %s %q, want TASK_FAILED naming the running task", refused.GetState(), refused.GetMessage())
	}
	if c := inspectTaskContainer(t, second.TaskID.Value); c != nil {
		t.Fatalf("a container was created for the refused task")
	}
	if c := inspectTaskContainer(t, first.TaskID.Value); c == nil || !c.State.Running {
		t.Fatalf("the first task's container is not running after the refused launch")
	}
	mustKill(t, agent, first.TaskID.Value, nil)
	waitTerminal(t, agent, first.TaskID.Value, 20*time.Second)
}

func TestExitsPromptlyAfterTerminalAck(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(`true`))
	mustLaunch(t, agent, task)
	// A long ack timeout: the exit must come from the acknowledgement.
	proc := startExecutor(t, agent, "EXECUTOR_ACK_TIMEOUT=5m")
	waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestWithheldAckBoundsTheExit(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(`true`)}, "EXECUTOR_ACK_TIMEOUT=2s")
	agent.SetWithholdAcks(true)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	if code := proc.waitExit(t, 20*time.Second); code == 0 {
		t.Fatalf("exit code 0 although the terminal update was never acknowledged")
	}
	if !strings.Contains(proc.output(), "did not acknowledge the terminal update") {
		t.Errorf("the executor did not say why it exited")
	}
}

func TestReconnectWithCheckpointing(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: time.Minute})
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	mustLaunch(t, agent, task)
	agent.SetWithholdAcks(true)
	proc := startExecutor(t, agent)
	waitRunning(t, agent, task, 60*time.Second)
	before := inspectTaskContainer(t, task.TaskID.Value)
	if before == nil || !before.State.Running {
		t.Fatal("container not running")
	}

	// The agent restarts: the stream drops and it refuses calls a while.
	agent.SetRefuse(mesostest.RefuseConnections)
	eventually(t, 10*time.Second, "a failed resubscription attempt", func() bool {
		return strings.Contains(proc.output(), "could not subscribe to the agent")
	})
	agent.SetWithholdAcks(false)
	agent.SetRefuse(mesostest.RefuseNone)
	if err := agent.WaitForSubscriptions(testContext(t, 30*time.Second), 2); err != nil {
		t.Fatalf("the executor did not resubscribe: %v", err)
	}

	var resubscribe *executor.Call_Subscribe
	for _, call := range agent.Calls() {
		if call.Type == executor.Call_SUBSCRIBE && call.StatusCode == 200 {
			resubscribe = call.Subscribe
		}
	}
	if resubscribe == nil {
		t.Fatal("no successful SUBSCRIBE recorded")
	}
	var replayed []mesos.TaskState
	for _, u := range resubscribe.UnacknowledgedUpdates {
		replayed = append(replayed, u.Status.GetState())
	}
	if !slices.Contains(replayed, mesos.TASK_RUNNING) {
		t.Fatalf("the resubscription did not carry the unacknowledged TASK_RUNNING (carried %v)", replayed)
	}
	if len(resubscribe.UnacknowledgedTasks) != 1 || resubscribe.UnacknowledgedTasks[0].TaskID.Value != task.TaskID.Value {
		t.Fatalf("the resubscription did not carry the unacknowledged task")
	}
	after := inspectTaskContainer(t, task.TaskID.Value)
	if after == nil || after.ID != before.ID || !after.State.Running || after.RestartCount != 0 || !after.State.StartedAt.Equal(before.State.StartedAt) {
		t.Fatal("the container did not keep running untouched across the agent restart")
	}

	mustKill(t, agent, task.TaskID.Value, nil)
	if final := waitTerminal(t, agent, task.TaskID.Value, 20*time.Second); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s, want TASK_KILLED", final.GetState())
	}
	if code := proc.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestLostAgentWithoutCheckpointingStopsTheTask(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{Checkpoint: false}, testImage, []taskOption{withShellCommand(termRespecting)})
	agent.SetRefuse(mesostest.RefuseConnections)
	if code := proc.waitExit(t, 30*time.Second); code == 0 {
		t.Fatalf("exit code 0 after losing the agent")
	}
	assertNoContainer(t, task.TaskID.Value)
	if !strings.Contains(proc.output(), "does not checkpoint") {
		t.Errorf("the executor did not explain why it stopped the task")
	}
}

func TestRecoveryTimeoutGivesUp(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: 2 * time.Second}, testImage, []taskOption{withShellCommand(termRespecting)})
	agent.SetRefuse(mesostest.RefuseConnections)
	if code := proc.waitExit(t, 40*time.Second); code == 0 {
		t.Fatalf("exit code 0 after the agent stayed away past MESOS_RECOVERY_TIMEOUT")
	}
	assertNoContainer(t, task.TaskID.Value)
}

// The labels cleanup and stale-container removal rely on are on the
// container, with the IDs the agent gave the executor.
func TestContainerCarriesOwnerLabels(t *testing.T) {
	t.Parallel()
	agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting)})
	c := inspectTaskContainer(t, task.TaskID.Value)
	if c == nil {
		t.Fatal("no container")
	}
	cfg := agent.Config()
	want := map[string]string{taskIDLabel: task.TaskID.Value, frameworkIDLabel: cfg.FrameworkID, executorIDLabel: cfg.ExecutorID, agentIDLabel: cfg.AgentID}
	for key, value := range want {
		if c.Config.Labels[key] != value {
			t.Errorf("label %s = %q, want %q", key, c.Config.Labels[key], value)
		}
	}
	if want := "/" + containerName(cfg.FrameworkID, task.TaskID.Value); c.Name != want {
		t.Errorf("container name %q, want %q", c.Name, want)
	}
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
}

func TestOOMKilledContainerFailsWithMemoryReason(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage,
		// Holds ~200 MB in a shell variable, far beyond the 16 MiB limit.
		withShellCommand(`sh -c 'x=$(head -c 200000000 /dev/zero | tr "\000" a); echo survived'`),
		func(task *mesos.TaskInfo) {
			task.Resources = []mesos.Resource{scalarResource("cpus", 0.5), scalarResource("mem", 16)}
		})
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, "EXECUTOR_FORCE_MEMORY_LIMIT=true")
	final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_CONTAINER_LIMITATION_MEMORY {
		t.Fatalf("final %s/%s %q, want TASK_FAILED/REASON_CONTAINER_LIMITATION_MEMORY", final.GetState(), final.GetReason(), final.GetMessage())
	}
	if !strings.Contains(final.GetMessage(), "OOM") || !strings.Contains(final.GetMessage(), "16 MiB") {
		t.Errorf("message %q does not explain the OOM kill and the limit", final.GetMessage())
	}
	proc.waitExit(t, 20*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

func TestDebugDumpsTaskInfoAndContainerConfig(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand("true"),
		withEnv("DB_PASSWORD", "hunter2-never-logged"), withDockerParameter("env", "API_TOKEN=tok-never-logged"))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, "EXECUTOR_DEBUG=true")
	waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	proc.waitExit(t, 20*time.Second)
	out := proc.output()
	for _, want := range []string{"msg=TaskInfo", `msg="container configuration"`, task.TaskID.Value, "DB_PASSWORD=" + redactedValue} {
		if !strings.Contains(out, want) {
			t.Errorf("debug output lacks %q", want)
		}
	}
	for _, secret := range []string{"hunter2-never-logged", "tok-never-logged"} {
		if strings.Contains(out, secret) {
			t.Errorf("debug output shows the secret %q", secret)
		}
	}
}

func TestErrorEventMakesTheExecutorResubscribe(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting)})
	if err := agent.SendError("the agent lost track of this executor"); err != nil {
		t.Fatal(err)
	}
	if err := agent.WaitForSubscriptions(testContext(t, 20*time.Second), 2); err != nil {
		t.Fatalf("no resubscription after an ERROR event: %v", err)
	}
	if c := inspectTaskContainer(t, task.TaskID.Value); c == nil || !c.State.Running {
		t.Fatal("an ERROR event stopped the container")
	}
	mustKill(t, agent, task.TaskID.Value, nil)
	if final := waitTerminal(t, agent, task.TaskID.Value, 30*time.Second); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s", final.GetState())
	}
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
