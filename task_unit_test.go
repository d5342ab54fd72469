package main

// A real taskRunner driven against fakeRuntime (runtime_fake_test.go): the
// launch, the stop, the exit classification and the Docker-outage timer,
// with no Docker engine at all. Each test takes milliseconds, and waits on
// channels or polls until a deadline, never on a bare sleep.

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

const unitImage = "registry.example.org/team/app:1.0"

// sentStatus is one update the runner handed to the driver.
type sentStatus struct {
	status   mesos.TaskStatus
	terminal bool
}

// statusLog stands in for driver.sendStatus.
type statusLog struct {
	mu      sync.Mutex
	updates []sentStatus
}

func (l *statusLog) send(status mesos.TaskStatus, terminal bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updates = append(l.updates, sentStatus{status: status, terminal: terminal})
}

func (l *statusLog) all() []sentStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.updates)
}

func (l *statusLog) states() []mesos.TaskState {
	var states []mesos.TaskState
	for _, u := range l.all() {
		states = append(states, u.status.GetState())
	}
	return states
}

func (l *statusLog) has(state mesos.TaskState) bool {
	return slices.Contains(l.states(), state)
}

// unitTask is a taskRunner running against a fake engine.
type unitTask struct {
	runner   *taskRunner
	engine   *fakeRuntime
	statuses *statusLog
	failed   atomic.Bool
	stdout   *syncBuffer
	logs     *syncBuffer
}

type unitConfig struct {
	info     mesos.TaskInfo
	operator map[string]string // EXECUTOR_* settings
	// dockerUnreachableLimit defaults to a minute: no test meets it by
	// accident.
	dockerUnreachableLimit time.Duration
	deps                   func(*taskDeps)
}

func unitTaskInfo(opts ...taskOption) mesos.TaskInfo {
	task := mesos.TaskInfo{
		Name:    "unit-task",
		TaskID:  mesos.TaskID{Value: "unit-task-1"},
		AgentID: mesos.AgentID{Value: "agent-1"},
		Executor: &mesos.ExecutorInfo{
			ExecutorID:  mesos.ExecutorID{Value: "executor-1"},
			FrameworkID: &mesos.FrameworkID{Value: "framework-1"},
			Command:     &mesos.CommandInfo{Value: strPtr("executor.sh")},
		},
		Container: &mesos.ContainerInfo{
			Type:   mesos.ContainerInfo_DOCKER.Enum(),
			Docker: &mesos.ContainerInfo_DockerInfo{Image: unitImage, Network: mesos.ContainerInfo_DockerInfo_HOST.Enum()},
		},
		Resources: []mesos.Resource{scalarResource("cpus", 0.1), scalarResource("mem", 64)},
	}
	// No Sidecar unless a test brings one.
	withLabel("SidecarDiscover", "false")(&task)
	for _, opt := range opts {
		opt(&task)
	}
	return task
}

// startUnitTask runs a taskRunner for cfg.info (unitTaskInfo() when
// unset) against engine. The test's cleanup makes sure it has ended.
func startUnitTask(t *testing.T, engine *fakeRuntime, cfg unitConfig) *unitTask {
	t.Helper()
	if cfg.info.TaskID.Value == "" {
		cfg.info = unitTaskInfo()
	}
	if cfg.dockerUnreachableLimit == 0 {
		cfg.dockerUnreachableLimit = time.Minute
	}
	sandbox := t.TempDir()
	u := &unitTask{engine: engine, statuses: &statusLog{}, stdout: &syncBuffer{}, logs: &syncBuffer{}}
	logger := log.New()
	logger.SetOutput(u.logs)
	logger.SetLevel(log.DebugLevel)
	env := testSettingsEnv(cfg.operator)
	deps := &taskDeps{
		settings: mustLoadConfig(t, env),
		env:      env,
		docker:   engine,
		mesos: config.Config{
			FrameworkID: "framework-1", ExecutorID: "executor-1",
			Directory: sandbox, Sandbox: sandbox,
		},
		stdout:                 u.stdout,
		stderr:                 &syncBuffer{},
		dockerUnreachableLimit: cfg.dockerUnreachableLimit,
		owner:                  containerOwner{FrameworkID: "framework-1", ExecutorID: "executor-1", AgentID: "agent-1", Instance: "instance-1"},
	}
	if cfg.deps != nil {
		cfg.deps(deps)
	}
	launch := launchEnv{
		framework: mesos.FrameworkInfo{Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}}},
		agent:     mesos.AgentInfo{Hostname: "agent-host"},
	}
	u.runner = newTaskRunner(cfg.info, launch, deps, u.statuses.send, func() { u.failed.Store(true) }, log.NewEntry(logger))
	go u.runner.run()
	t.Cleanup(func() {
		// A test that failed early leaves the task running: end it so
		// that no goroutine outlives the test.
		u.runner.Stop(stopRequest{cause: causeKill, grace: 0, message: "test over"})
		select {
		case <-u.runner.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("the task did not end after the test")
		}
		if t.Failed() {
			t.Logf("calls: %v\nexecutor log:\n%s", engine.methods(), u.logs.String())
		}
	})
	return u
}

// finish waits for the task to end and checks that it sent exactly one
// terminal update, as its last; it returns that update.
func (u *unitTask) finish(t *testing.T) mesos.TaskStatus {
	t.Helper()
	select {
	case <-u.runner.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("the task did not end; updates so far: %v", u.statuses.states())
	}
	updates := u.statuses.all()
	terminals := 0
	for _, s := range updates {
		if s.terminal {
			terminals++
		}
		if s.terminal != isTerminalState(s.status.GetState()) {
			t.Errorf("%s sent with terminal=%v", s.status.GetState(), s.terminal)
		}
	}
	if terminals != 1 || !updates[len(updates)-1].terminal {
		t.Fatalf("want exactly one terminal update, last; got %v", u.statuses.states())
	}
	return updates[len(updates)-1].status
}

func (u *unitTask) waitState(t *testing.T, state mesos.TaskState) {
	t.Helper()
	eventually(t, 5*time.Second, state.String(), func() bool { return u.statuses.has(state) })
}

func (u *unitTask) kill(grace time.Duration) {
	u.runner.Stop(stopRequest{cause: causeKill, grace: grace, message: "killed by the scheduler"})
}

func assertStatus(t *testing.T, got mesos.TaskStatus, state mesos.TaskState, reason *mesos.TaskStatus_Reason, message string) {
	t.Helper()
	if got.GetState() != state {
		t.Errorf("state %s (%q), want %s", got.GetState(), got.GetMessage(), state)
	}
	if (reason == nil) != (got.Reason == nil) || reason != nil && *reason != got.GetReason() {
		t.Errorf("reason %v, want %v", got.Reason, reason)
	}
	if !strings.Contains(got.GetMessage(), message) {
		t.Errorf("message %q lacks %q", got.GetMessage(), message)
	}
}

// newUnitRuntime is a fake engine that holds unitImage.
func newUnitRuntime() *fakeRuntime {
	engine := newFakeRuntime()
	engine.addImage(unitImage)
	return engine
}

// assertCleanEnd checks that the task, which what describes, did not mark
// the executor failed and left no container behind.
func assertCleanEnd(t *testing.T, u *unitTask, engine *fakeRuntime, what string) {
	t.Helper()
	if u.failed.Load() {
		t.Errorf("%s marked the executor failed", what)
	}
	assertNoFakeContainer(t, engine)
}

func assertNoFakeContainer(t *testing.T, engine *fakeRuntime) {
	t.Helper()
	if ids := engine.containerIDs(); len(ids) != 0 {
		t.Errorf("containers left behind: %v", ids)
	}
}

// assertSubsequence checks that want occurs in got in this order.
func assertSubsequence(t *testing.T, got, want []string) {
	t.Helper()
	i := 0
	for _, m := range got {
		if i < len(want) && m == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("calls %v do not contain %v in order", got, want)
	}
}

// bridgeTaskInfo is unitTaskInfo on Docker's bridge network, where the
// started container has an IP address of its own.
func bridgeTaskInfo() mesos.TaskInfo {
	info := unitTaskInfo()
	info.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
	return info
}

func TestTaskUnitExitZeroFinishes(t *testing.T) {
	engine := newFakeRuntime()
	u := startUnitTask(t, engine, unitConfig{info: bridgeTaskInfo()})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	engine.exit(c.id, 0)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FINISHED, nil, "exited with status 0")

	// The image is missing: the create says so, the name is freed and the
	// image pulled before the create is tried again.
	want := []string{"ping", "createContainer", "removeStaleContainer", "pullImage", "createContainer", "startContainer",
		"inspectStarted", "waitContainer", "inspectPatiently", "removeContainer"}
	if got := engine.methods(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if pulls := engine.callsOf("pullImage"); len(pulls) != 1 || pulls[0].target != unitImage {
		t.Errorf("pulls %v, want one of %s", pulls, unitImage)
	}
	if got := u.statuses.states(); !slices.Equal(got, []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FINISHED}) {
		t.Errorf("updates %v", got)
	}
	running := u.statuses.all()[1].status
	if ips := running.GetContainerStatus().GetNetworkInfos(); len(ips) != 1 || ips[0].IPAddresses[0].GetIPAddress() != "172.17.0.9" {
		t.Errorf("TASK_RUNNING does not carry the container's IP: %v", running.GetContainerStatus())
	}
	assertCleanEnd(t, u, engine, "a finished task")
}

func TestTaskUnitNonZeroExitFailsWithTheCodeAndStreamsLogs(t *testing.T) {
	engine := newUnitRuntime()
	engine.logs = "boom: config missing\n"
	u := startUnitTask(t, engine, unitConfig{})
	c := engine.running(t)
	engine.writeOutput(c.id, fakeOutputRecord{stream: streamStdout, at: time.Now(), text: "boom: config missing\n"})
	engine.exit(c.id, 3)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, nil, "container exited with status 3")
	if slices.Contains(engine.methods(), "pullImage") {
		t.Error("pulled an image that was present")
	}
	// Streamed live, the output is not copied again at the end
	// (TestOutputUnreadableDriverFallsBackToTheCopy covers the copy).
	assertSubsequence(t, engine.methods(), []string{"inspectPatiently", "removeContainer"})
	assertNoLogCopy(t, engine)
	out := u.stdout.String()
	if strings.Count(out, "boom: config missing\n") != 1 || strings.Contains(out, "----- begin container") {
		t.Errorf("the container's output is not in stdout exactly once, unframed:\n%s", out)
	}
	assertCleanEnd(t, u, engine, "a task that failed by itself")
}

func TestTaskUnitOOMKilled(t *testing.T) {
	for _, tc := range []struct {
		name string
		// inspects that still show no verdict after the exit
		late int
	}{
		{"verdict with the exit", 0},
		{"verdict recorded after the exit", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := newUnitRuntime()
			u := startUnitTask(t, engine, unitConfig{operator: map[string]string{"EXECUTOR_FORCE_MEMORY_LIMIT": "true"}})
			c := engine.running(t)
			engine.oomKill(c.id, tc.late)
			final := u.finish(t)
			assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum(), "OOM killer (memory limit 64 MiB)")
			if !strings.Contains(final.GetMessage(), "(SIGKILL)") {
				t.Errorf("message %q does not name the signal", final.GetMessage())
			}
			lateLooks := 0
			for _, m := range engine.methods()[slices.Index(engine.methods(), "inspectPatiently"):] {
				if m == "inspectContainer" {
					lateLooks++
				}
			}
			if tc.late > 0 && lateLooks == 0 {
				t.Error("the late OOM verdict was found without inspecting again")
			}
			if tc.late == 0 && lateLooks != 0 {
				t.Errorf("inspected %d more times although the verdict came with the exit", lateLooks)
			}
			assertNoFakeContainer(t, engine)
		})
	}
}

func TestTaskUnitSIGKILLWithoutMemoryLimitIsNotAnOOM(t *testing.T) {
	// Without a memory limit no second look is taken: exit 137 is a
	// failure like any other, classified at once.
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{info: bridgeTaskInfo()})
	c := engine.running(t)
	engine.exit(c.id, 137)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, nil, "exited with status 137 (SIGKILL)")
	if n := len(engine.callsOf("inspectContainer")); n != 0 {
		t.Errorf("%d inspects besides the one after the start, want none", n)
	}
}

func TestTaskUnitLaunchFailuresLeaveNothingBehind(t *testing.T) {
	apiError := errFakeAPI(500, "no space left on device")
	cases := []struct {
		name    string
		failing string
		// calls that must follow the failing one, in order
		cleanup []string
	}{
		{"create fails", "createContainer", []string{"removeOwnContainerNamed"}},
		{"start fails", "startContainer", []string{"removeContainer"}},
		{"inspect after the start fails", "inspectStarted", []string{"stopContainer", "removeContainer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			engine := newUnitRuntime()
			engine.failNext(tc.failing, apiError)
			u := startUnitTask(t, engine, unitConfig{info: bridgeTaskInfo()})
			final := u.finish(t)
			assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(), "no space left on device")
			methods := engine.methods()
			at := slices.Index(methods, tc.failing)
			if at < 0 || !slices.Equal(methods[at+1:], tc.cleanup) {
				t.Errorf("calls %v: want %v right after the failing %s", methods, tc.cleanup, tc.failing)
			}
			if tc.failing == "inspectStarted" {
				if stops := engine.callsOf("stopContainer"); stops[0].grace != 0 {
					t.Errorf("stopped with grace %s, want 0", stops[0].grace)
				}
			}
			if u.statuses.has(mesos.TASK_RUNNING) {
				t.Error("TASK_RUNNING sent for a container that never ran")
			}
			if !u.failed.Load() {
				t.Error("a failed launch did not mark the executor failed")
			}
			assertNoFakeContainer(t, engine)
		})
	}
}

func TestTaskUnitFailedCreateFreesTheName(t *testing.T) {
	// The create failed from the executor's side (its request timed out),
	// yet Docker made the container: the name must be freed.
	engine := newUnitRuntime()
	engine.createDespiteCancel = true
	arrived := engine.block("createContainer")
	u := startUnitTask(t, engine, unitConfig{})
	waitClosed(t, arrived, "the create")
	u.kill(-1)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH.Enum(), "killed during launch: killed by the scheduler")
	removals := engine.callsOf("removeOwnContainerNamed")
	creates := engine.callsOf("createContainer")
	if len(removals) != 1 || removals[0].target != creates[0].target {
		t.Errorf("removals by name %v, want one of %s", removals, creates[0].target)
	}
	assertNoFakeContainer(t, engine)
}

func TestTaskUnitFailedCreateLeavesAnotherOwnersContainer(t *testing.T) {
	engine := newUnitRuntime()
	// An earlier executor of the task left its container: the first create
	// finds the name taken and the stale container is removed. Then a
	// container of the same name appears before the second create:
	// someone else's, which must survive.
	name := containerName("framework-1", "unit-task-1")
	engine.containers["stale"] = &fakeContainer{id: "stale", name: name,
		labels: map[string]string{frameworkIDLabel: "framework-1", taskIDLabel: "unit-task-1"}, exited: make(chan struct{})}
	creates := 0
	engine.beforeCall = func(method string) {
		if method == "createContainer" {
			if creates++; creates == 2 {
				engine.mu.Lock()
				engine.containers["other"] = &fakeContainer{id: "other", name: name, labels: map[string]string{frameworkIDLabel: "someone-else"}, exited: make(chan struct{})}
				engine.mu.Unlock()
			}
		}
	}
	u := startUnitTask(t, engine, unitConfig{})
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(), "already exists")
	assertSubsequence(t, engine.methods(), []string{"createContainer", "removeStaleContainer", "createContainer", "removeOwnContainerNamed"})
	if ids := engine.containerIDs(); !slices.Equal(ids, []string{"other"}) {
		t.Errorf("containers %v, want the other owner's left alone", ids)
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestTaskUnitKillDuringThePull(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause stopCause
		want  mesos.TaskState
	}{
		{"KILL", causeKill, mesos.TASK_KILLED},
		{"agent lost", causeAgentLost, mesos.TASK_FAILED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := newFakeRuntime()
			arrived := engine.block("pullImage")
			u := startUnitTask(t, engine, unitConfig{})
			waitClosed(t, arrived, "the pull")
			u.runner.Stop(stopRequest{cause: tc.cause, grace: -1, message: "stop now"})
			final := u.finish(t)
			assertStatus(t, final, tc.want, mesos.REASON_TASK_KILLED_DURING_LAUNCH.Enum(), "killed during launch: stop now")
			// The first create found the image missing; none follows the pull.
			methods := engine.methods()
			if slices.Contains(methods[slices.Index(methods, "pullImage"):], "createContainer") {
				t.Errorf("a container was created after the stop: %v", methods)
			}
			assertNoFakeContainer(t, engine)
		})
	}
}

func TestTaskUnitFailsBeforeTouchingDocker(t *testing.T) {
	privileged := unitTaskInfo()
	privileged.Container.Docker.Privileged = new(bool)
	*privileged.Container.Docker.Privileged = true
	noContainer := unitTaskInfo()
	noContainer.Container = nil
	cases := []struct {
		name   string
		cfg    unitConfig
		reason mesos.TaskStatus_Reason
		// calls the engine may see
		calls []string
	}{
		{"invalid settings", unitConfig{deps: func(d *taskDeps) { d.settingsErr = errors.New("EXECUTOR_PULL_RETRIES: invalid") }},
			mesos.REASON_CONTAINER_LAUNCH_FAILED, nil},
		{"invalid task", unitConfig{info: noContainer}, mesos.REASON_TASK_INVALID, nil},
		{"refused by the admission policy", unitConfig{info: privileged}, mesos.REASON_TASK_UNAUTHORIZED, nil},
		{"Docker client unusable", unitConfig{deps: func(d *taskDeps) { d.docker, d.dockerErr = nil, errors.New("DOCKER_HOST: bad") }},
			mesos.REASON_CONTAINER_LAUNCH_FAILED, nil},
		// The create runs alongside the ping and fails; nothing is pulled
		// or created, and the name is looked at once, in case the create
		// went through.
		{"Docker does not answer", unitConfig{deps: func(*taskDeps) {}}, mesos.REASON_CONTAINER_LAUNCH_FAILED, []string{"createContainer", "ping", "removeOwnContainerNamed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			engine := newFakeRuntime()
			if tc.calls != nil {
				engine.setUnreachable(true)
			}
			u := startUnitTask(t, engine, tc.cfg)
			final := u.finish(t)
			assertStatus(t, final, mesos.TASK_FAILED, tc.reason.Enum(), "")
			if got := slices.Sorted(slices.Values(engine.methods())); !slices.Equal(got, tc.calls) {
				t.Errorf("calls %v, want %v", got, tc.calls)
			}
			if !u.failed.Load() {
				t.Error("the executor was not marked failed")
			}
		})
	}
}

func TestTaskUnitRemovesAStaleContainerOfTheTask(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{deps: func(d *taskDeps) {
		name := containerName(d.owner.FrameworkID, "unit-task-1")
		engine.mu.Lock()
		engine.containers["stale"] = &fakeContainer{id: "stale", name: name, exited: make(chan struct{}),
			labels: map[string]string{frameworkIDLabel: "framework-1", taskIDLabel: "unit-task-1"}}
		engine.mu.Unlock()
	}})
	c := engine.running(t)
	if c.id == "stale" {
		t.Fatal("the stale container was reused")
	}
	if ids := engine.containerIDs(); len(ids) != 1 {
		t.Errorf("containers %v, want only the new one", ids)
	}
	engine.exit(c.id, 0)
	assertStatus(t, u.finish(t), mesos.TASK_FINISHED, nil, "")
}

func TestTaskUnitKillEscalatesToSIGKILLAfterTheGrace(t *testing.T) {
	const grace = 150 * time.Millisecond
	engine := newUnitRuntime()
	engine.ignoreStopSignal = true
	u := startUnitTask(t, engine, unitConfig{})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	u.kill(grace)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "killed by the scheduler; container exited with status 137 (SIGKILL)")
	if got := u.statuses.states(); !slices.Equal(got, []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_KILLED}) {
		t.Errorf("updates %v", got)
	}
	stops := engine.callsOf("stopContainer")
	if len(stops) != 1 || stops[0].grace != grace {
		t.Fatalf("stops %v, want one with grace %s", stops, grace)
	}
	signals := engine.signalsOf(c)
	if len(signals) != 2 || signals[0].name != "SIGTERM" || signals[1].name != "SIGKILL" {
		t.Fatalf("signals %v, want SIGTERM then SIGKILL", signals)
	}
	if waited := signals[1].at.Sub(signals[0].at); waited < grace {
		t.Errorf("SIGKILL %s after the stop signal, before the grace of %s was up", waited, grace)
	}
	// The output was streamed to the sandbox: no copy at the end.
	assertSubsequence(t, engine.methods(), []string{"stopContainer", "inspectPatiently", "removeContainer"})
	assertNoLogCopy(t, engine)
	assertCleanEnd(t, u, engine, "a killed task")
}

func TestTaskUnitStopGrace(t *testing.T) {
	withPolicy := withKillPolicy(300 * time.Millisecond)
	cases := []struct {
		name      string
		info      mesos.TaskInfo
		operator  map[string]string
		killGrace time.Duration
		want      time.Duration
	}{
		{"EXECUTOR_KILL_TASK_TIMEOUT by default", unitTaskInfo(), map[string]string{"EXECUTOR_KILL_TASK_TIMEOUT": "7"}, -1, 7 * time.Second},
		{"the task's kill_policy over the default", unitTaskInfo(withPolicy), map[string]string{"EXECUTOR_KILL_TASK_TIMEOUT": "7"}, -1, 300 * time.Millisecond},
		{"the KILL's kill_policy over the task's", unitTaskInfo(withPolicy), nil, 20 * time.Millisecond, 20 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			engine := newUnitRuntime()
			u := startUnitTask(t, engine, unitConfig{info: tc.info, operator: tc.operator})
			engine.running(t)
			u.waitState(t, mesos.TASK_RUNNING)
			u.kill(tc.killGrace)
			// The container honours the stop signal: no wait for the grace.
			assertStatus(t, u.finish(t), mesos.TASK_KILLED, nil, "exited with status 143 (SIGTERM)")
			if stops := engine.callsOf("stopContainer"); len(stops) != 1 || stops[0].grace != tc.want {
				t.Errorf("stops %v, want one with grace %s", stops, tc.want)
			}
		})
	}
}

func TestTaskUnitSecondKillShortensTheGrace(t *testing.T) {
	engine := newUnitRuntime()
	engine.ignoreStopSignal = true
	u := startUnitTask(t, engine, unitConfig{})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	started := time.Now()
	u.kill(time.Minute)
	eventually(t, 5*time.Second, "the first stop", func() bool { return len(engine.callsOf("stopContainer")) == 1 })
	u.kill(10 * time.Millisecond)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "(SIGKILL)")
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("took %s: the second KILL did not shorten the grace", took)
	}
	stops := engine.callsOf("stopContainer")
	if len(stops) != 2 || stops[0].grace != time.Minute || stops[1].grace != 10*time.Millisecond {
		t.Errorf("stops %v, want a minute then 10ms", stops)
	}
	if n := strings.Count(strings.Join(stateNames(u.statuses.states()), " "), "TASK_KILLING"); n != 1 {
		t.Errorf("TASK_KILLING sent %d times", n)
	}
	if signals := engine.signalsOf(c); len(signals) < 2 || signals[len(signals)-1].name != "SIGKILL" {
		t.Errorf("signals %v", signals)
	}
}

func stateNames(states []mesos.TaskState) []string {
	var names []string
	for _, s := range states {
		names = append(names, s.String())
	}
	return names
}

func TestTaskUnitDrainsBeforeStopping(t *testing.T) {
	const draining, grace = 200 * time.Millisecond, 100 * time.Millisecond
	sidecar := sidecartest.NewServer(t)
	engine := newUnitRuntime()
	engine.ignoreStopSignal = true
	info := unitTaskInfo()
	info.Labels = nil // Sidecar on
	u := startUnitTask(t, engine, unitConfig{info: info, operator: map[string]string{
		"EXECUTOR_SIDECAR_URL":               sidecar.StateURL(),
		"EXECUTOR_SIDECAR_BACKOFF":           "1h", // no health checks: this test is about the stop
		"EXECUTOR_SIDECAR_DRAINING_DURATION": draining.String(),
		"EXECUTOR_SIDECAR_RETRY_COUNT":       "0",
	}})
	c := engine.running(t)
	sidecar.SetService(sidecar.Hostname(), shortID(c.id), sidecartest.StatusAlive)
	u.waitState(t, mesos.TASK_RUNNING)
	u.kill(grace)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "(SIGKILL)")

	drains := sidecar.Drains()
	if len(drains) != 1 || drains[0].ID != shortID(c.id) || drains[0].Status != 202 {
		t.Fatalf("drains %+v, want one accepted for %s", drains, shortID(c.id))
	}
	stops := engine.callsOf("stopContainer")
	if len(stops) != 1 || stops[0].grace != grace {
		t.Fatalf("stops %v, want one with grace %s", stops, grace)
	}
	if gap := stops[0].at.Sub(drains[0].Time); gap < draining-20*time.Millisecond {
		t.Errorf("stopped %s after the drain, before the draining time of %s was up", gap, draining)
	}
	signals := engine.signalsOf(c)
	if len(signals) != 2 || signals[1].at.Sub(signals[0].at) < grace {
		t.Errorf("signals %v, want SIGKILL %s after the stop signal", signals, grace)
	}
}

func TestTaskUnitDockerUnreachable(t *testing.T) {
	t.Run("longer than the limit fails the task", func(t *testing.T) {
		engine := newUnitRuntime()
		u := startUnitTask(t, engine, unitConfig{dockerUnreachableLimit: 50 * time.Millisecond})
		engine.running(t)
		u.waitState(t, mesos.TASK_RUNNING)
		engine.setUnreachable(true)
		final := u.finish(t)
		assertStatus(t, final, mesos.TASK_FAILED, nil, "was unreachable for more than 50ms (the container may still be running)")
		if !u.failed.Load() {
			t.Error("losing Docker did not mark the executor failed")
		}
		// Docker may still run the container: a stop is attempted.
		assertSubsequence(t, engine.methods(), []string{"waitContainer", "copyLogs", "stopContainer", "removeContainer"})
	})
	t.Run("a shorter outage is ridden out", func(t *testing.T) {
		engine := newUnitRuntime()
		u := startUnitTask(t, engine, unitConfig{dockerUnreachableLimit: 5 * time.Second})
		c := engine.running(t)
		u.waitState(t, mesos.TASK_RUNNING)
		engine.setUnreachable(true)
		eventually(t, 5*time.Second, "a retried wait", func() bool { return engine.attempts() >= 2 })
		engine.setUnreachable(false)
		before := engine.attempts()
		eventually(t, 5*time.Second, "the wait to resume", func() bool { return engine.attempts() > before })
		engine.exit(c.id, 0)
		assertStatus(t, u.finish(t), mesos.TASK_FINISHED, nil, "exited with status 0")
		assertCleanEnd(t, u, engine, "a ridden-out outage")
	})
}

// A container the executor could not remove must make it exit non-zero:
// that is what has executor.sh's cleanup remove it by its labels.
func TestTaskUnitUnremovedContainerMarksTheExecutorFailed(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{})
	c := engine.running(t)
	engine.failNext("removeContainer", errFakeAPI(500, "driver busy"))
	engine.exit(c.id, 0)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FINISHED, nil, "exited with status 0")
	if !u.failed.Load() {
		t.Error("the container was left behind but the executor would exit 0, so executor.sh would not clean it up")
	}
}

// The running hook (main's supervisionProcessors) is called once, after
// TASK_RUNNING is sent; a launch that fails never calls it.
func TestTaskUnitRunningHookFollowsTaskRunning(t *testing.T) {
	var calls atomic.Int32
	var sentFirst atomic.Bool
	var u *unitTask
	engine := newUnitRuntime()
	u = startUnitTask(t, engine, unitConfig{deps: func(d *taskDeps) {
		d.running = func() {
			calls.Add(1)
			sentFirst.Store(u.statuses.has(mesos.TASK_RUNNING))
		}
	}})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	engine.exit(c.id, 0)
	u.finish(t)
	if calls.Load() != 1 || !sentFirst.Load() {
		t.Errorf("running hook called %d times, after TASK_RUNNING: %v; want once, after", calls.Load(), sentFirst.Load())
	}

	calls.Store(0)
	failing := startUnitTask(t, newUnitRuntime(), unitConfig{deps: func(d *taskDeps) {
		d.docker, d.dockerErr = nil, errors.New("DOCKER_HOST: bad")
		d.running = func() { calls.Add(1) }
	}})
	failing.finish(t)
	if calls.Load() != 0 {
		t.Errorf("a failed launch called the running hook %d times", calls.Load())
	}
}
