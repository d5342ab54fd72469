package main

// More of the task lifecycle without Docker: Sidecar's health verdicts, a
// stop Docker refuses, and the Mesos driver running a real taskRunner
// against fakeRuntime, from LAUNCH to the executor's exit.

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

// startSidecarUnitTask starts info on engine with Sidecar on, watched
// through a fake Sidecar (host "agent-host") polled every 20ms with a 1ms
// backoff; settings add or override EXECUTOR_* settings.
func startSidecarUnitTask(t *testing.T, engine *fakeRuntime, info mesos.TaskInfo, settings map[string]string) (*unitTask, *sidecartest.Server) {
	t.Helper()
	sidecar := sidecartest.NewServer(t)
	sidecar.SetHostname("agent-host")
	info.Labels = nil // Sidecar on
	operator := map[string]string{
		"EXECUTOR_SIDECAR_URL":           sidecar.StateURL(),
		"EXECUTOR_SIDECAR_BACKOFF":       "1ms",
		"EXECUTOR_SIDECAR_POLL_INTERVAL": "20ms",
	}
	maps.Copy(operator, settings)
	return startUnitTask(t, engine, unitConfig{info: info, operator: operator}), sidecar
}

func TestTaskUnitUnhealthyContainerIsStoppedAndFailed(t *testing.T) {
	engine := newUnitRuntime()
	u, sidecar := startSidecarUnitTask(t, engine, unitTaskInfo(), map[string]string{
		"EXECUTOR_SIDECAR_MAX_FAILS":         "2",
		"EXECUTOR_SIDECAR_DRAINING_DURATION": "0s",
	})
	c := engine.running(t)
	// Healthy first, then unhealthy for good.
	sidecar.Script("agent-host", shortID(c.id), sidecartest.StatusAlive, sidecartest.StatusUnhealthy)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), "unhealthy")
	if final.Healthy == nil || *final.Healthy {
		t.Errorf("terminal update healthy=%v, want false", final.Healthy)
	}
	var verdicts []bool
	for _, s := range u.statuses.all() {
		if s.status.GetState() == mesos.TASK_RUNNING && s.status.Healthy != nil {
			verdicts = append(verdicts, *s.status.Healthy)
		}
	}
	if len(verdicts) == 0 || !verdicts[0] {
		t.Errorf("health verdicts %v, want the healthy one reported first", verdicts)
	}
	if u.statuses.has(mesos.TASK_KILLING) {
		t.Error("TASK_KILLING sent for a container stopped for its health")
	}
	if len(sidecar.Drains()) != 0 {
		t.Error("an unhealthy container was drained")
	}
	// The output was streamed to the sandbox: no copy at the end.
	assertSubsequence(t, engine.methods(), []string{"stopContainer", "inspectPatiently", "removeContainer"})
	assertNoLogCopy(t, engine)
	assertNoFakeContainer(t, engine)
}

func TestTaskUnitStopIsRetriedWhenDockerRefusesIt(t *testing.T) {
	// The stopper waits a second before retrying: the slowest test here.
	engine := newUnitRuntime()
	engine.failNext("stopContainer", errFakeAPI(500, "cannot stop container: permission denied"))
	u := startUnitTask(t, engine, unitConfig{})
	engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	u.kill(2 * time.Second)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "(SIGTERM)")
	stops := engine.callsOf("stopContainer")
	if len(stops) != 2 {
		t.Fatalf("stops %v, want the refused one and a retry", stops)
	}
	// The retry gets what is left of the grace, not a fresh one.
	if stops[1].grace >= stops[0].grace || stops[1].grace <= 0 {
		t.Errorf("retry with grace %s after %s", stops[1].grace, stops[0].grace)
	}
}

// driverWithRunner is the executor as main wires it, with fakeRuntime in
// place of Docker, serving one emulated agent.
type driverWithRunner struct {
	agent *mesostest.Agent
	d     *driver
	code  chan int
	logs  *syncBuffer
}

func startDriverWithRunner(t *testing.T, engine *fakeRuntime, cfg mesostest.Config) *driverWithRunner {
	t.Helper()
	if cfg.SubscriptionBackoffMax == 0 {
		cfg.SubscriptionBackoffMax = 50 * time.Millisecond
	}
	cfg.Logf = t.Logf
	agent := mesostest.NewAgent(t, cfg)
	cfg = agent.Config()
	sandbox := t.TempDir()
	mesosCfg := config.Config{
		FrameworkID: cfg.FrameworkID, ExecutorID: cfg.ExecutorID,
		Directory: sandbox, Sandbox: sandbox,
		AgentEndpoint:               agent.Addr(),
		ExecutorShutdownGracePeriod: cfg.ShutdownGracePeriod,
		SubscriptionBackoffMax:      cfg.SubscriptionBackoffMax,
	}
	r := &driverWithRunner{agent: agent, code: make(chan int, 1), logs: &syncBuffer{}}
	logger := log.New()
	logger.SetOutput(r.logs)
	env := testSettingsEnv(nil)
	deps := &taskDeps{
		settings: mustLoadConfig(t, env), env: env, docker: engine, mesos: mesosCfg,
		stdout: &syncBuffer{}, stderr: &syncBuffer{},
		dockerUnreachableLimit: time.Minute,
		owner:                  containerOwner{FrameworkID: cfg.FrameworkID, ExecutorID: cfg.ExecutorID, AgentID: cfg.AgentID, Instance: "instance-1"},
	}
	var runners sync.WaitGroup
	var mu sync.Mutex
	var launched []*taskRunner
	launch := func(task mesos.TaskInfo, env launchEnv) taskHandle {
		runner := newTaskRunner(task, env, deps, r.d.sendStatus, r.d.markFailed, log.NewEntry(logger))
		mu.Lock()
		launched = append(launched, runner)
		mu.Unlock()
		runners.Add(1)
		go func() {
			defer runners.Done()
			runner.run()
		}()
		return runner
	}
	r.d = newDriver(mesosCfg, "", 10*time.Second, launch, log.NewEntry(logger))
	go func() { r.code <- r.d.run(context.Background()) }()
	t.Cleanup(func() {
		mu.Lock()
		for _, runner := range launched {
			runner.Stop(stopRequest{cause: causeKill, grace: 0, message: "test over"})
		}
		mu.Unlock()
		finishDriver(t, r.d, r.code)
		waitGroupWithin(t, &runners, "a task runner did not end")
		if t.Failed() {
			t.Logf("executor log:\n%s", r.logs.String())
		}
	})
	return r
}

func (r *driverWithRunner) waitExit(t *testing.T) int {
	t.Helper()
	return waitExitCode(t, r.code, 5*time.Second)
}

func unitAgentTask(agent *mesostest.Agent, id string) mesos.TaskInfo {
	task := unitTaskInfo()
	cfg := agent.Config()
	task.TaskID = mesos.TaskID{Value: id}
	task.AgentID = mesos.AgentID{Value: cfg.AgentID}
	task.Executor.ExecutorID = mesos.ExecutorID{Value: cfg.ExecutorID}
	task.Executor.FrameworkID = &mesos.FrameworkID{Value: cfg.FrameworkID}
	return task
}

func TestExecutorUnitKillThroughTheDriver(t *testing.T) {
	engine := newUnitRuntime()
	r := startDriverWithRunner(t, engine, mesostest.Config{})
	if err := r.agent.Launch(unitAgentTask(r.agent, "task-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.agent.WaitForState(testContext(t, 5*time.Second), "task-a", mesos.TASK_RUNNING); err != nil {
		t.Fatal(err)
	}
	grace := 30 * time.Millisecond
	if err := r.agent.Kill("task-a", &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(grace)}}); err != nil {
		t.Fatal(err)
	}
	if code := r.waitExit(t); code != exitOK {
		t.Fatalf("exit code %d, want %d", code, exitOK)
	}
	if got := states(r.agent, "task-a"); !slices.Equal(got, []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLED}) {
		t.Errorf("the agent got %v", got)
	}
	if stops := engine.callsOf("stopContainer"); len(stops) != 1 || stops[0].grace != grace {
		t.Errorf("stops %v, want one with the KILL's grace %s", stops, grace)
	}
	assertNoFakeContainer(t, engine)
}

func TestExecutorUnitSignalStopsTheTaskWithinTheGracePeriod(t *testing.T) {
	const period = 3 * time.Second
	engine := newUnitRuntime()
	engine.ignoreStopSignal = true
	r := startDriverWithRunner(t, engine, mesostest.Config{ShutdownGracePeriod: period})
	if err := r.agent.Launch(unitAgentTask(r.agent, "task-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.agent.WaitForState(testContext(t, 5*time.Second), "task-a", mesos.TASK_RUNNING); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	r.d.requestStop("the executor received SIGTERM")
	if code := r.waitExit(t); code != exitOK {
		t.Fatalf("exit code %d, want %d", code, exitOK)
	}
	if took := time.Since(sent); took > period {
		t.Errorf("exited %s after the signal, past the agent's grace period of %s", took, period)
	}
	updates := r.agent.Accepted("task-a")
	last := updates[len(updates)-1].Status
	if last.GetState() != mesos.TASK_KILLED || !strings.Contains(last.GetMessage(), "SIGTERM") || !strings.Contains(last.GetMessage(), "(SIGKILL)") {
		t.Errorf("terminal update %s %q, want TASK_KILLED naming the signal and the SIGKILL", last.GetState(), last.GetMessage())
	}
	// The stop signal's grace fits the period in whole seconds (Docker's
	// unit), with room left for the update.
	stops := engine.callsOf("stopContainer")
	if len(stops) != 1 || stops[0].grace <= 0 || stops[0].grace >= period || stops[0].grace%time.Second != 0 {
		t.Errorf("stops %v, want one whole-second grace within %s", stops, period)
	}
}

func TestExecutorUnitSignalBeforeAnyTaskExitsAtOnce(t *testing.T) {
	engine := newFakeRuntime()
	r := startDriverWithRunner(t, engine, mesostest.Config{})
	if err := r.agent.WaitForSubscriptions(testContext(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	r.d.requestStop("the executor received SIGTERM")
	if code := r.waitExit(t); code != exitOK {
		t.Fatalf("exit code %d, want %d", code, exitOK)
	}
	if calls := engine.methods(); len(calls) != 0 {
		t.Errorf("Docker was called with no task: %v", calls)
	}
}
