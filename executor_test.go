package main

// In-process tests of the Mesos driver (executor.go) against the emulated
// agent, with a fake task in place of a container: no Docker, no binary.
// Each runs in well under a second.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// fakeTask stands in for taskRunner. Its goroutine owns it, as the runner's
// does: it sends STARTING and RUNNING, runs the test's script, then waits
// for a stop request or an exit and sends the terminal update.
type fakeTask struct {
	info  mesos.TaskInfo
	send  func(mesos.TaskStatus, bool)
	stops chan stopRequest
	exit  chan mesos.TaskState
	done  chan struct{}

	mu       sync.Mutex
	received []stopRequest
}

func (f *fakeTask) Stop(req stopRequest) {
	f.mu.Lock()
	f.received = append(f.received, req)
	f.mu.Unlock()
	select {
	case f.stops <- req:
	default:
	}
}

func (f *fakeTask) Done() <-chan struct{} { return f.done }

func (f *fakeTask) stopRequests() []stopRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.received)
}

func (f *fakeTask) status(state mesos.TaskState, message string) {
	f.send(newStatus(f.info.TaskID, state, nil, message), false)
}

func (f *fakeTask) run(script func(*fakeTask), quit <-chan struct{}) {
	defer close(f.done)
	f.status(mesos.TASK_STARTING, "starting")
	f.status(mesos.TASK_RUNNING, "running")
	if script != nil {
		script(f)
	}
	var final mesos.TaskStatus
	select {
	case req := <-f.stops:
		state := mesos.TASK_KILLED
		if req.cause == causeAgentLost {
			state = mesos.TASK_FAILED
		}
		final = newStatus(f.info.TaskID, state, nil, req.message)
	case state := <-f.exit:
		final = newStatus(f.info.TaskID, state, nil, "the container exited")
	case <-quit:
		return
	}
	f.send(final, true)
}

// driverRun is a driver serving one emulated agent.
type driverRun struct {
	agent    *mesostest.Agent
	d        *driver
	logs     *syncBuffer
	launched chan *fakeTask
	code     chan int
}

type driverOptions struct {
	ackTimeout time.Duration
	script     func(*fakeTask)
	// launching runs in the launch callback once the task's goroutine
	// has started, before the callback returns.
	launching func(*driverRun)
}

func startDriver(t *testing.T, cfg mesostest.Config, opts driverOptions) *driverRun {
	t.Helper()
	if cfg.SubscriptionBackoffMax == 0 {
		cfg.SubscriptionBackoffMax = 50 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	agent := mesostest.NewAgent(t, cfg)
	cfg = agent.Config()
	if opts.ackTimeout == 0 {
		opts.ackTimeout = 10 * time.Second
	}
	sandbox := t.TempDir()
	mesosCfg := config.Config{
		FrameworkID:                 cfg.FrameworkID,
		ExecutorID:                  cfg.ExecutorID,
		Directory:                   sandbox,
		Sandbox:                     sandbox,
		AgentEndpoint:               agent.Addr(),
		ExecutorShutdownGracePeriod: cfg.ShutdownGracePeriod,
		Checkpoint:                  cfg.Checkpoint,
		RecoveryTimeout:             cfg.RecoveryTimeout,
		SubscriptionBackoffMax:      cfg.SubscriptionBackoffMax,
	}
	logs := &syncBuffer{}
	logger := log.New()
	logger.SetOutput(logs)
	logger.SetLevel(log.DebugLevel)
	r := &driverRun{agent: agent, logs: logs, launched: make(chan *fakeTask, 4), code: make(chan int, 1)}
	quit := make(chan struct{})
	var tasks sync.WaitGroup
	launch := func(task mesos.TaskInfo, env launchEnv) taskHandle {
		f := &fakeTask{info: task, send: r.d.sendStatus, stops: make(chan stopRequest, 16), exit: make(chan mesos.TaskState, 1), done: make(chan struct{})}
		tasks.Add(1)
		go func() {
			defer tasks.Done()
			f.run(opts.script, quit)
		}()
		if opts.launching != nil {
			opts.launching(r)
		}
		r.launched <- f
		return f
	}
	r.d = newDriver(mesosCfg, "", opts.ackTimeout, launch, log.NewEntry(logger))
	go func() { r.code <- r.d.run(context.Background()) }()
	t.Cleanup(func() {
		// A test that failed early may leave the driver running.
		finishDriver(t, r.d, r.code)
		close(quit)
		// A fake stuck in sendStatus never ends: report it, do not hang.
		waitGroupWithin(t, &tasks, "a fake task is still blocked after the driver ended")
		if t.Failed() {
			t.Logf("driver log:\n%s", logs.String())
		}
	})
	return r
}

// finishDriver finishes d, which may still be running, and waits up to 10 s
// for its run to return; the exit code stays in code.
func finishDriver(t *testing.T, d *driver, code chan int) {
	t.Helper()
	d.finish(exitFailure)
	select {
	case c := <-code:
		code <- c
	case <-time.After(10 * time.Second):
		t.Errorf("the driver did not end after finish")
	}
}

// waitGroupWithin waits up to 10 s for wg, and reports stuck if it does not
// end by then (without hanging the test).
func waitGroupWithin(t *testing.T, wg *sync.WaitGroup, stuck string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s", stuck)
	}
}

// waitExitCode waits up to timeout for a driver's run to return its exit
// code on code, and gives it, leaving it in code.
func waitExitCode(t *testing.T, code chan int, timeout time.Duration) int {
	t.Helper()
	select {
	case c := <-code:
		code <- c
		return c
	case <-time.After(timeout):
		t.Fatalf("the driver did not exit within %s", timeout)
		return -1
	}
}

// waitExit waits for run to return and gives its exit code.
func (r *driverRun) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	return waitExitCode(t, r.code, timeout)
}

// expectExit waits for run to return and fails unless its exit code is want.
func (r *driverRun) expectExit(t *testing.T, timeout time.Duration, want int) {
	t.Helper()
	if code := r.waitExit(t, timeout); code != want {
		t.Fatalf("exit code %d, want %d", code, want)
	}
}

// finishUntouched checks that the running task was never asked to stop,
// lets it finish, and expects the executor to exit cleanly.
func (r *driverRun) finishUntouched(t *testing.T, running *fakeTask, taskID string) {
	t.Helper()
	if stops := running.stopRequests(); len(stops) != 0 {
		t.Fatalf("the running task was asked to stop: %+v", stops)
	}
	running.exit <- mesos.TASK_FINISHED
	r.waitState(t, taskID, mesos.TASK_FINISHED)
	r.expectExit(t, 5*time.Second, exitOK)
}

// waitSubscribed waits for the driver's first subscription.
func (r *driverRun) waitSubscribed(t *testing.T) {
	t.Helper()
	if err := r.agent.WaitForSubscriptions(testContext(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}
}

// task waits for the driver to launch a task.
func (r *driverRun) task(t *testing.T) *fakeTask {
	t.Helper()
	select {
	case f := <-r.launched:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no task was launched")
		return nil
	}
}

func (r *driverRun) noFurtherLaunch(t *testing.T) {
	t.Helper()
	select {
	case f := <-r.launched:
		t.Fatalf("task %s was launched", f.info.TaskID.Value)
	default:
	}
}

func (r *driverRun) launch(t *testing.T, taskID string) mesos.TaskInfo {
	t.Helper()
	task := r.agent.NewTask(taskID)
	if err := r.agent.Launch(task); err != nil {
		t.Fatal(err)
	}
	return task
}

func (r *driverRun) inject(t *testing.T, e executor.Event) {
	t.Helper()
	if err := r.agent.InjectEvent(e); err != nil {
		t.Fatal(err)
	}
}

func (r *driverRun) waitState(t *testing.T, taskID string, state mesos.TaskState) mesos.TaskStatus {
	t.Helper()
	u, err := r.agent.WaitForState(testContext(t, 5*time.Second), taskID, state)
	if err != nil {
		t.Fatal(err)
	}
	return u.Status
}

func TestDriverRepeatedLaunchOfTheRunningTaskIsIgnored(t *testing.T) {
	r := startDriver(t, mesostest.Config{}, driverOptions{})
	task := r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)

	r.inject(t, executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: task}})
	// Events are handled in order: once the second task is refused, the
	// repeated LAUNCH has been handled too.
	r.launch(t, "task-b")
	refused := r.waitState(t, "task-b", mesos.TASK_FAILED)
	if !strings.Contains(refused.GetMessage(), "task-a") {
		t.Errorf("refusal %q does not name the running task", refused.GetMessage())
	}
	for _, u := range r.agent.Updates() {
		if u.Status.TaskID.Value == "task-a" && isTerminal(u.Status.GetState()) {
			t.Fatalf("the running task got %s %q from a repeated LAUNCH", u.Status.GetState(), u.Status.GetMessage())
		}
	}
	if stops := running.stopRequests(); len(stops) != 0 {
		t.Fatalf("the running task was asked to stop: %+v", stops)
	}
	r.noFurtherLaunch(t)
	if !strings.Contains(r.logs.String(), "repeated LAUNCH") {
		t.Errorf("the repeated LAUNCH was not logged")
	}

	if err := r.agent.Kill("task-a", nil); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, "task-a", mesos.TASK_KILLED)
	r.expectExit(t, 5*time.Second, exitOK)
}

func TestDriverLaunchGroupIsFailedAndTheExecutorExits(t *testing.T) {
	r := startDriver(t, mesostest.Config{}, driverOptions{})
	r.waitSubscribed(t)
	if err := r.agent.LaunchGroup(r.agent.NewTask("group-1"), r.agent.NewTask("group-2")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"group-1", "group-2"} {
		failed := r.waitState(t, id, mesos.TASK_FAILED)
		if failed.GetReason() != mesos.REASON_TASK_GROUP_INVALID || !strings.Contains(failed.GetMessage(), "LAUNCH_GROUP") {
			t.Errorf("%s: %s %q, want REASON_TASK_GROUP_INVALID explaining task groups are unsupported", id, failed.GetReason(), failed.GetMessage())
		}
	}
	if code := r.waitExit(t, 5*time.Second); code != exitFailure {
		t.Fatalf("exit code %d, want %d: an executor that ran nothing must not linger or claim success", code, exitFailure)
	}
	r.noFurtherLaunch(t)
}

func TestDriverLaunchGroupBesideARunningTaskLeavesItRunning(t *testing.T) {
	r := startDriver(t, mesostest.Config{}, driverOptions{})
	r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)
	if err := r.agent.LaunchGroup(r.agent.NewTask("group-1")); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, "group-1", mesos.TASK_FAILED)
	r.finishUntouched(t, running, "task-a")
}

// mesosFrameCap is mesos-go's default cap on one RecordIO frame of the
// event stream.
const mesosFrameCap = 4 << 20

func TestDriverUndecodableLaunchExitsNonZero(t *testing.T) {
	// With checkpointing the driver would otherwise subscribe again and
	// again, idle, after the agent declared the task lost.
	r := startDriver(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: time.Minute}, driverOptions{})
	task := r.agent.NewTask("huge-task")
	task.Data = bytes.Repeat([]byte("x"), mesosFrameCap+1)
	if err := r.agent.Launch(task); err != nil {
		t.Fatal(err)
	}
	r.expectExit(t, 5*time.Second, exitFailure)
	r.noFurtherLaunch(t)
	if logs := r.logs.String(); !strings.Contains(logs, "could not decode an event") || !strings.Contains(logs, "4 MiB") {
		t.Errorf("the log does not say why the executor gave up:\n%s", logs)
	}
	// The agent reports the task itself once the executor is gone.
	r.agent.ExecutorTerminated("")
	r.waitState(t, "huge-task", mesos.TASK_FAILED)
}

func TestDriverUndecodableLaunchBesideARunningTaskKeepsIt(t *testing.T) {
	// Without checkpointing a lost agent stops the task; an unreadable
	// event is not a lost agent.
	r := startDriver(t, mesostest.Config{}, driverOptions{})
	r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)
	huge := r.agent.NewTask("huge-task")
	huge.Data = bytes.Repeat([]byte("x"), mesosFrameCap+1)
	if err := r.agent.Launch(huge); err != nil {
		t.Fatal(err)
	}
	if err := r.agent.WaitForSubscriptions(testContext(t, 5*time.Second), 2); err != nil {
		t.Fatalf("the driver did not subscribe again: %v", err)
	}
	// The new SUBSCRIBE did not list the unreadable task: the agent
	// reports it lost, and the running task is untouched.
	r.waitState(t, "huge-task", mesos.TASK_LOST)
	r.finishUntouched(t, running, "task-a")
}

// healthFlood sends n health verdicts, alternating, once away is closed.
func healthFlood(away <-chan struct{}, n int) func(*fakeTask) {
	return func(f *fakeTask) {
		<-away
		for i := 0; i < n; i++ {
			healthy := i%2 == 1
			update := newStatus(f.info.TaskID, mesos.TASK_RUNNING, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), fmt.Sprintf("verdict %d", i))
			update.Healthy = &healthy
			f.send(update, false)
		}
	}
}

func TestDriverAgentAwayWithManyHealthUpdatesStillExitsInTime(t *testing.T) {
	const recovery, grace = 300 * time.Millisecond, time.Second
	away := make(chan struct{})
	r := startDriver(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: recovery, ShutdownGracePeriod: grace},
		driverOptions{script: healthFlood(away, 500)})
	r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)

	r.agent.SetRefuse(mesostest.RefuseConnections)
	lostAt := time.Now()
	close(away)
	// The bound under test, plus a margin for a loaded machine.
	code := r.waitExit(t, recovery+grace+3*time.Second)
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d after losing the agent", code, exitFailure)
	}
	stops := running.stopRequests()
	if len(stops) == 0 || stops[0].cause != causeAgentLost {
		t.Fatalf("the task was not stopped for the lost agent: %+v", stops)
	}
	select {
	case <-running.Done():
	default:
		t.Fatal("the driver exited before the task had wound down")
	}
	t.Logf("exited %s after the agent went away", time.Since(lostAt).Round(time.Millisecond))
}

func TestDriverCoalescesQueuedHealthUpdates(t *testing.T) {
	away := make(chan struct{})
	r := startDriver(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: time.Minute}, driverOptions{script: healthFlood(away, 200)})
	r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)

	r.agent.SetRefuse(mesostest.RefuseUnavailable)
	close(away)
	eventually(t, 5*time.Second, "the flood of verdicts to be queued", func() bool {
		return strings.Count(r.logs.String(), "verdict ") >= 200
	})
	r.agent.SetRefuse(mesostest.RefuseNone)
	if err := r.agent.WaitForSubscriptions(testContext(t, 5*time.Second), 2); err != nil {
		t.Fatal(err)
	}
	running.exit <- mesos.TASK_FINISHED
	r.waitState(t, "task-a", mesos.TASK_FINISHED)
	r.expectExit(t, 5*time.Second, exitOK)

	var verdicts []string
	for _, u := range r.agent.Accepted("task-a") {
		if u.Status.Healthy != nil {
			verdicts = append(verdicts, u.Status.GetMessage())
		}
	}
	// One verdict may have been on its way when the agent went away; the
	// rest were superseded while queued, except the latest.
	if len(verdicts) == 0 || len(verdicts) > 2 || verdicts[len(verdicts)-1] != "verdict 199" {
		t.Fatalf("the agent got verdicts %v, want at most 2 ending with the latest (verdict 199)", verdicts)
	}
	states := []mesos.TaskState{}
	for _, u := range r.agent.Accepted("task-a") {
		states = append(states, u.Status.GetState())
	}
	if states[len(states)-1] != mesos.TASK_FINISHED {
		t.Fatalf("states %v do not end with the terminal update", states)
	}
}

// A minute and more of failed subscriptions once doubled the backoff past
// int64 and made rand.N panic on the negative duration.
func TestNextBackoffStaysWithinTheLimit(t *testing.T) {
	d := &driver{mesosCfg: config.Config{SubscriptionBackoffMax: 2 * time.Second}}
	backoff := minSubscribeBackoff
	for attempt := 0; attempt < 1000; attempt++ {
		if wait := d.nextBackoff(&backoff); wait < 0 || wait > 2*time.Second {
			t.Fatalf("attempt %d: wait %s outside [0, 2s]", attempt, wait)
		}
		if backoff <= 0 {
			t.Fatalf("attempt %d: the next backoff overflowed to %s", attempt, backoff)
		}
	}
}

func killEvent(taskID string) executor.Event {
	return executor.Event{Type: executor.Event_KILL, Kill: &executor.Event_Kill{TaskID: mesos.TaskID{Value: taskID}}}
}

func TestDriverKillForAnUnknownTask(t *testing.T) {
	t.Run("before any launch", func(t *testing.T) {
		r := startDriver(t, mesostest.Config{}, driverOptions{})
		r.waitSubscribed(t)
		r.inject(t, killEvent("ghost"))
		r.waitState(t, "ghost", mesos.TASK_KILLED)
		// Nothing will ever run here: the executor ends with that update.
		r.expectExit(t, 5*time.Second, exitOK)
		r.noFurtherLaunch(t)
	})
	t.Run("beside the running task", func(t *testing.T) {
		r := startDriver(t, mesostest.Config{}, driverOptions{})
		r.launch(t, "task-a")
		running := r.task(t)
		r.waitState(t, "task-a", mesos.TASK_RUNNING)
		r.inject(t, killEvent("ghost"))
		r.waitState(t, "ghost", mesos.TASK_KILLED)
		r.finishUntouched(t, running, "task-a")
	})
}

func TestDriverShutdownBeforeLaunchExitsAtOnce(t *testing.T) {
	r := startDriver(t, mesostest.Config{}, driverOptions{})
	r.waitSubscribed(t)
	if err := r.agent.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.expectExit(t, 5*time.Second, exitOK)
	if updates := r.agent.Updates(); len(updates) != 0 {
		t.Fatalf("%d updates sent with no task", len(updates))
	}
}

// A signal that arrives while the launch hands the task to the driver
// (the task's runner already started, and may have reported) stops the
// task once the driver holds it: never an exit that leaves the task
// running without a terminal update.
func TestDriverSignalDuringTheLaunchStopsTheTask(t *testing.T) {
	r := startDriver(t, mesostest.Config{ShutdownGracePeriod: 3 * time.Second}, driverOptions{
		launching: func(r *driverRun) { r.d.requestStop("the executor received SIGTERM") },
	})
	r.launch(t, "task-a")
	running := r.task(t)
	final := r.waitState(t, "task-a", mesos.TASK_KILLED)
	if !strings.Contains(final.GetMessage(), "SIGTERM") {
		t.Errorf("terminal update %q, want it to name the signal", final.GetMessage())
	}
	r.expectExit(t, 5*time.Second, exitOK)
	if stops := running.stopRequests(); len(stops) != 1 || stops[0].cause != causeSignal {
		t.Fatalf("stop requests %+v, want one for the signal", stops)
	}
}

func TestDriverShutdownAfterLaunchStopsWithinTheGracePeriod(t *testing.T) {
	const grace = 3 * time.Second
	r := startDriver(t, mesostest.Config{ShutdownGracePeriod: grace}, driverOptions{})
	r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)
	sent := time.Now()
	if err := r.agent.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, "task-a", mesos.TASK_KILLED)
	r.expectExit(t, 5*time.Second, exitOK)
	stops := running.stopRequests()
	if len(stops) != 1 || stops[0].cause != causeShutdown {
		t.Fatalf("stop requests %+v, want one for the SHUTDOWN", stops)
	}
	req := stops[0]
	if req.grace < 0 || req.grace > grace {
		t.Errorf("stop grace %s, want within the agent's %s", req.grace, grace)
	}
	if req.deadline.IsZero() || req.deadline.After(sent.Add(grace)) {
		t.Errorf("stop deadline %v, want one before the grace period ends (%v)", req.deadline, sent.Add(grace))
	}
}

func TestDriverReplaysUnacknowledgedUpdatesInOrder(t *testing.T) {
	r := startDriver(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: time.Minute}, driverOptions{})
	r.agent.SetWithholdAcks(true)
	r.launch(t, "task-a")
	running := r.task(t)
	r.waitState(t, "task-a", mesos.TASK_RUNNING)

	// The agent restarts before acknowledging anything.
	r.agent.DropConnection()
	r.agent.SetWithholdAcks(false)
	if err := r.agent.WaitForSubscriptions(testContext(t, 5*time.Second), 2); err != nil {
		t.Fatal(err)
	}
	var resubscribe *executor.Call_Subscribe
	for _, call := range r.agent.Calls() {
		if call.Type == executor.Call_SUBSCRIBE && call.StatusCode == 200 {
			resubscribe = call.Subscribe
		}
	}
	var replayed []mesos.TaskState
	for _, u := range resubscribe.UnacknowledgedUpdates {
		replayed = append(replayed, u.Status.GetState())
	}
	// The acknowledgements withheld before the drop may have reached the
	// new stream (SetWithholdAcks releases them) only after the SUBSCRIBE;
	// either way what is replayed keeps the order of sending.
	want := []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING}
	if !slices.Equal(replayed, want) {
		t.Fatalf("SUBSCRIBE replayed %v, want %v", replayed, want)
	}
	if len(resubscribe.UnacknowledgedTasks) != 1 || resubscribe.UnacknowledgedTasks[0].TaskID.Value != "task-a" {
		t.Fatalf("SUBSCRIBE did not list the unacknowledged task")
	}
	for _, u := range r.agent.Updates() {
		if u.Via == "subscribe" && !u.Duplicate {
			t.Errorf("a replayed %s carried a new uuid", u.Status.GetState())
		}
	}
	running.exit <- mesos.TASK_FINISHED
	r.waitState(t, "task-a", mesos.TASK_FINISHED)
	r.expectExit(t, 5*time.Second, exitOK)
}

func TestDriverAckTimeoutBoundsTheExit(t *testing.T) {
	const ackTimeout = 300 * time.Millisecond
	r := startDriver(t, mesostest.Config{}, driverOptions{ackTimeout: ackTimeout})
	r.agent.SetWithholdAcks(true)
	r.launch(t, "task-a")
	running := r.task(t)
	running.exit <- mesos.TASK_FINISHED
	r.waitState(t, "task-a", mesos.TASK_FINISHED)
	if code := r.waitExit(t, ackTimeout+5*time.Second); code != exitFailure {
		t.Fatalf("exit code %d, want %d without an acknowledgement", code, exitFailure)
	}
	if !strings.Contains(r.logs.String(), "did not acknowledge the terminal update") {
		t.Errorf("the log does not say why the executor exited")
	}
}

func TestDriverExitCodeOfAFailedTask(t *testing.T) {
	r := startDriver(t, mesostest.Config{}, driverOptions{})
	r.launch(t, "task-a")
	running := r.task(t)
	// What taskRunner does when it could not launch the container.
	r.d.markFailed()
	running.exit <- mesos.TASK_FAILED
	r.waitState(t, "task-a", mesos.TASK_FAILED)
	if code := r.waitExit(t, 5*time.Second); code != exitFailure {
		t.Fatalf("exit code %d, want %d after a failed launch", code, exitFailure)
	}
}
