package main

// executor.go owns the conversation with the agent (the Mesos v1 executor
// API): subscribing and resubscribing with what is not yet acknowledged,
// dispatching events (LAUNCH, KILL, SHUTDOWN, ACKNOWLEDGED…) and deciding
// when the process may exit. Queuing and delivering status updates is
// outbox.go's; running the task is task.go's.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	log "github.com/sirupsen/logrus"
)

const (
	agentAPIPath = "/api/v1/executor"
	// agentCallTimeout bounds connecting to the agent and waiting for its
	// response headers; the subscription body itself is unbounded.
	agentCallTimeout = 10 * time.Second
	// firstSubscribeTimeout is how long a fresh executor keeps trying to
	// reach its agent: the agent itself gives up on an executor that has not
	// subscribed within --executor_registration_timeout (1 minute by default).
	firstSubscribeTimeout = time.Minute
	// minSubscribeBackoff is the shortest pause between subscription attempts.
	minSubscribeBackoff = 50 * time.Millisecond
)

// Exit codes of the executor process.
const (
	exitOK = 0
	// exitFailure: the executor could not do its job: the task could not be
	// launched, the settings were invalid, the agent was lost or never
	// acknowledged the terminal update.
	exitFailure = 1
	// exitBadEnvironment: the MESOS_* environment is unusable, so not even a
	// subscription is possible.
	exitBadEnvironment = 2
)

// errResubscribe ends an event loop so that the driver subscribes again.
var errResubscribe = errors.New("agent sent an ERROR event; subscribing again")

// errUndecodableEvent ends an event loop on an event too large for
// mesos-go's RecordIO reader, which caps a frame at 4 MiB: in practice a
// LAUNCH whose TaskInfo carries a huge data field. Its task ID is in the
// bytes that could not be read, so the task cannot be failed by name.
var errUndecodableEvent = errors.New("could not decode an event from the agent: it exceeds the 4 MiB frame limit of the event stream (most likely a LAUNCH whose TaskInfo is too large, e.g. a huge data field)")

// taskHandle is what the driver needs from a running task.
type taskHandle interface {
	// Stop asks the task to end its container; safe to call many times.
	Stop(req stopRequest)
	// Done is closed once the task's terminal update has been queued.
	Done() <-chan struct{}
}

// launchFunc starts a task in the background and returns its handle.
type launchFunc func(task mesos.TaskInfo, env launchEnv) taskHandle

// launchEnv is what the agent told us about ourselves when we subscribed.
type launchEnv struct {
	framework mesos.FrameworkInfo
	executor  mesos.ExecutorInfo
	agent     mesos.AgentInfo
}

// killingCapable reports whether the framework understands TASK_KILLING.
func (e launchEnv) killingCapable() bool {
	for _, c := range e.framework.GetCapabilities() {
		if c.GetType() == mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
			return true
		}
	}
	return false
}

// driver speaks the Mesos v1 executor API: it subscribes, dispatches events,
// delivers status updates reliably and decides when the process may exit.
type driver struct {
	mesosCfg   config.Config
	ackTimeout time.Duration
	subscriber calls.Sender
	caller     calls.Sender
	launch     launchFunc
	logger     *log.Entry

	// outboxWake tells the sender that the outbox has updates.
	outboxWake chan struct{}

	mu sync.Mutex
	// outbox holds status updates not yet handed to the agent, in the
	// order they must reach it. It has no fixed size so that queuing never
	// blocks a task; coalescing keeps it short (see sendStatus).
	outbox []pendingUpdate
	// connected is closed while a subscription is live and replaced by an
	// open channel when it ends, so senders can wait for a connection.
	connected   chan struct{}
	isConnected bool
	env         *launchEnv
	task        taskHandle
	taskID      string
	// launching is set while the task's launch callback runs (its runner
	// may already send updates); a stop requested meanwhile waits in
	// stopOnLaunch and is handed to the task once it is known.
	launching    bool
	stopOnLaunch string
	// unackedTasks and unackedUpdates are resent in every SUBSCRIBE.
	unackedTasks   map[string]mesos.TaskInfo
	unackedUpdates map[string]unackedUpdate
	// updateSeq numbers updates as they are queued; deliveredSeq is the
	// highest number that a successful SUBSCRIBE carried to the agent.
	updateSeq    uint64
	deliveredSeq uint64
	terminalUUID string
	// terminalDelivered is closed once the agent has accepted the terminal
	// update (202 or carried by SUBSCRIBE); terminalAcked once it acknowledged it.
	terminalDelivered chan struct{}
	terminalAcked     chan struct{}
	// finished is closed when the process should exit; exitCode says how.
	finished   chan struct{}
	finishOnce sync.Once
	exitCode   int
	// failed records that the executor could not do its job, which makes
	// the exit code non-zero even when every update was acknowledged.
	failed bool
	// refusedGroup records that a task group was refused while no task
	// ran: the executor is on its way out and launches nothing more.
	refusedGroup bool
}

func newDriver(mesosCfg config.Config, authToken string, ackTimeout time.Duration, launch launchFunc, logger *log.Entry) *driver {
	endpoint := url.URL{Scheme: "http", Host: mesosCfg.AgentEndpoint, Path: agentAPIPath}
	opts := []httpcli.Opt{
		httpcli.Endpoint(endpoint.String()),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
		httpcli.Do(httpcli.With(httpcli.Timeout(agentCallTimeout))),
	}
	if authToken != "" {
		opts = append(opts, httpcli.DefaultHeader("Authorization", "Bearer "+authToken))
	}
	client := httpcli.New(opts...)
	callOptions := executor.CallOptions{
		calls.Framework(mesosCfg.FrameworkID),
		calls.Executor(mesosCfg.ExecutorID),
	}
	return &driver{
		mesosCfg:   mesosCfg,
		ackTimeout: ackTimeout,
		// The subscription gets a connection of its own, as the API requires.
		subscriber:        calls.SenderWith(httpexec.NewSender(client.Send, httpcli.Close(true)), callOptions...),
		caller:            calls.SenderWith(httpexec.NewSender(client.Send), callOptions...),
		launch:            launch,
		logger:            logger,
		outboxWake:        make(chan struct{}, 1),
		connected:         make(chan struct{}),
		unackedTasks:      make(map[string]mesos.TaskInfo),
		unackedUpdates:    make(map[string]unackedUpdate),
		terminalDelivered: make(chan struct{}),
		terminalAcked:     make(chan struct{}),
		finished:          make(chan struct{}),
	}
}

// run subscribes and serves events until the executor's work is done, and
// returns the process exit code.
func (d *driver) run(ctx context.Context) int {
	senderCtx, stopSender := context.WithCancel(ctx)
	var senderDone sync.WaitGroup
	senderDone.Add(1)
	go func() {
		defer senderDone.Done()
		d.sendUpdates(senderCtx)
	}()
	defer func() {
		stopSender()
		senderDone.Wait()
	}()

	start := time.Now()
	var disconnectedAt time.Time
	everConnected := false
	backoff := minSubscribeBackoff
	for {
		connected, streamErr := d.serveSubscription(ctx)
		if connected {
			everConnected = true
			disconnectedAt = time.Now()
			backoff = minSubscribeBackoff
		}
		if d.isFinished() {
			return d.exitCode
		}
		resubscribe := errors.Is(streamErr, errResubscribe)
		if errors.Is(streamErr, errUndecodableEvent) {
			if !d.hasTask() {
				// Subscribing again would leave an idle executor behind:
				// the agent declares the unlisted task lost and never
				// sends another. Exiting lets the agent fail the task.
				d.logger.WithError(streamErr).Error("no task can run: exiting so that the agent reports the task failed")
				d.finish(exitFailure)
				return d.exitCode
			}
			// The running task is fine; the agent drops the unreadable
			// task when the next SUBSCRIBE does not list it.
			d.logger.WithError(streamErr).Error("ignoring an event that could not be read; the running task goes on")
			resubscribe = true
		}
		switch {
		case errors.Is(streamErr, errResubscribe):
			d.logger.Warn("subscribing again after an ERROR event from the agent")
		case resubscribe:
			// Logged above.
		case streamErr != nil && connected:
			d.logger.WithError(streamErr).Warn("subscription to the agent ended")
		case streamErr != nil:
			d.logger.WithError(streamErr).Warn("could not subscribe to the agent")
		}

		switch {
		case resubscribe:
			// The agent asked for it, or the stream was dropped on our
			// side: not a lost connection.
		case !everConnected:
			if time.Since(start) > firstSubscribeTimeout {
				d.logger.Errorf("could not subscribe to the agent at %s within %s; giving up", d.mesosCfg.AgentEndpoint, firstSubscribeTimeout)
				return d.abandon("the executor never reached its agent")
			}
		case !d.mesosCfg.Checkpoint:
			d.logger.Error("lost the connection to the agent and the framework does not checkpoint, so the agent cannot recover this executor: stopping the task")
			return d.abandon("lost the connection to the agent (framework checkpointing is off)")
		case time.Since(disconnectedAt) > d.mesosCfg.RecoveryTimeout:
			d.logger.Errorf("the agent did not come back within MESOS_RECOVERY_TIMEOUT (%s): stopping the task", d.mesosCfg.RecoveryTimeout)
			return d.abandon(fmt.Sprintf("the agent did not come back within %s", d.mesosCfg.RecoveryTimeout))
		}

		wait := d.nextBackoff(&backoff)
		d.logger.WithField("retry_in", wait.String()).Info("waiting before subscribing again")
		select {
		case <-time.After(wait):
		case <-d.finished:
			return d.exitCode
		}
	}
}

// nextBackoff returns a jittered pause that doubles on every failure, capped
// by MESOS_SUBSCRIPTION_BACKOFF_MAX so that a recovering agent sees us within
// its re-registration timeout.
func (d *driver) nextBackoff(current *time.Duration) time.Duration {
	limit := d.mesosCfg.SubscriptionBackoffMax
	if limit <= 0 {
		limit = 2 * time.Second
	}
	wait := min(*current, limit)
	// Capped so that doubling never overflows, however long the agent
	// stays away (a 15-minute recovery timeout is hundreds of attempts).
	*current = min(*current*2, limit)
	// Jitter keeps many executors of one agent from resubscribing in lockstep.
	return wait/2 + rand.N(wait/2+1)
}

// abandon is the way out when the agent is gone for good: stop the task,
// wait for it to wind down, and exit non-zero.
func (d *driver) abandon(reason string) int {
	d.mu.Lock()
	task := d.task
	d.mu.Unlock()
	if task != nil {
		// Bounded like a SHUTDOWN: the container must not outlive the
		// recovery timeout by more than the agent's grace period.
		task.Stop(budgetedStop(causeAgentLost, d.mesosCfg.ExecutorShutdownGracePeriod, reason))
		<-task.Done()
	}
	d.finish(exitFailure)
	return d.exitCode
}

// serveSubscription subscribes once and serves events until the stream ends
// or the executor is finished. connected reports whether SUBSCRIBE succeeded.
func (d *driver) serveSubscription(ctx context.Context) (connected bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	subscribe, listSeq := d.subscribeCall()
	d.logger.WithFields(log.Fields{
		"unacknowledged_tasks":   len(subscribe.Subscribe.UnacknowledgedTasks),
		"unacknowledged_updates": len(subscribe.Subscribe.UnacknowledgedUpdates),
	}).Info("subscribing to the agent")
	resp, err := d.subscriber.Send(streamCtx, calls.NonStreaming(subscribe))
	if err != nil {
		if resp != nil {
			resp.Close()
		}
		return false, err
	}
	defer resp.Close()
	d.setConnected(true, listSeq)
	defer d.setConnected(false, 0)

	streamDone := make(chan error, 1)
	go func() { streamDone <- d.eventLoop(streamCtx, resp) }()

	var ackTimeout <-chan time.Time
	delivered, acked := d.terminalDelivered, d.terminalAcked
	for {
		select {
		case err := <-streamDone:
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("the agent closed the event stream")
			}
			return true, err
		case <-delivered:
			// Every connection gets the full acknowledgement timeout: the
			// agent may have restarted since the update was first delivered.
			delivered = nil
			ackTimeout = time.After(d.ackTimeout)
		case <-acked:
			acked = nil
			d.logger.Info("the agent acknowledged the terminal update; exiting")
			d.finishAfterAck()
		case <-ackTimeout:
			d.logger.Errorf("the agent did not acknowledge the terminal update within %s; exiting anyway", d.ackTimeout)
			d.finish(exitFailure)
		case <-d.finished:
			cancel()
			<-streamDone
			return true, nil
		}
	}
}

// subscribeCall builds a SUBSCRIBE carrying everything not yet acknowledged.
func (d *driver) subscribeCall() (*executor.Call, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tasks := make([]mesos.TaskInfo, 0, len(d.unackedTasks))
	for _, t := range d.unackedTasks {
		tasks = append(tasks, t)
	}
	pending := make([]unackedUpdate, 0, len(d.unackedUpdates))
	for _, u := range d.unackedUpdates {
		pending = append(pending, u)
	}
	// Replay in the order the updates were first sent.
	sort.Slice(pending, func(i, j int) bool { return pending[i].seq < pending[j].seq })
	updates := make([]executor.Call_Update, 0, len(pending))
	for _, u := range pending {
		updates = append(updates, u.update)
	}
	return calls.Subscribe(tasks, updates), d.updateSeq
}

func (d *driver) setConnected(up bool, deliveredSeq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if up == d.isConnected {
		return
	}
	d.isConnected = up
	if !up {
		d.connected = make(chan struct{})
		return
	}
	if deliveredSeq > d.deliveredSeq {
		d.deliveredSeq = deliveredSeq
	}
	if d.terminalUUID != "" {
		if u, ok := d.unackedUpdates[d.terminalUUID]; ok && u.seq <= d.deliveredSeq {
			d.markTerminalDeliveredLocked()
		}
	}
	close(d.connected)
}

// eventLoop decodes and dispatches events until the stream ends.
func (d *driver) eventLoop(ctx context.Context, decoder encoding.Decoder) error {
	for {
		var event executor.Event
		if err := decoder.Decode(&event); err != nil {
			if errors.Is(err, bufio.ErrTooLong) || errors.Is(err, framing.ErrorOversizedFrame) {
				return fmt.Errorf("%w: %w", errUndecodableEvent, err)
			}
			return err
		}
		if err := d.handleEvent(&event); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// handleEvent must not block: long work happens in the task's goroutine.
func (d *driver) handleEvent(event *executor.Event) error {
	switch event.GetType() {
	case executor.Event_SUBSCRIBED:
		d.onSubscribed(event.GetSubscribed())
	case executor.Event_LAUNCH:
		d.onLaunch(event.GetLaunch().Task)
	case executor.Event_LAUNCH_GROUP:
		d.onLaunchGroup(event.GetLaunchGroup())
	case executor.Event_KILL:
		d.onKill(event.GetKill())
	case executor.Event_ACKNOWLEDGED:
		d.onAcknowledged(event.GetAcknowledged())
	case executor.Event_SHUTDOWN:
		d.onShutdown()
	case executor.Event_MESSAGE:
		d.logger.WithField("bytes", len(event.GetMessage().Data)).Info("framework message received; this executor does not use framework messages")
	case executor.Event_ERROR:
		d.logger.WithField("error", event.GetError().GetMessage()).Error("the agent reported an error")
		return errResubscribe
	case executor.Event_HEARTBEAT:
		d.logger.Debug("heartbeat from the agent")
	default:
		d.logger.WithField("type", event.GetType().String()).Warn("ignoring an event type this executor does not know")
	}
	return nil
}

func (d *driver) onSubscribed(s *executor.Event_Subscribed) {
	if s == nil {
		return
	}
	env := launchEnv{framework: s.FrameworkInfo, executor: s.ExecutorInfo, agent: s.AgentInfo}
	d.mu.Lock()
	d.env = &env
	d.mu.Unlock()
	d.logger.WithFields(log.Fields{
		"framework":       s.FrameworkInfo.GetName(),
		"framework_id":    s.FrameworkInfo.GetID().GetValue(),
		"agent":           s.AgentInfo.GetHostname(),
		"agent_id":        s.AgentInfo.GetID().GetValue(),
		"checkpoint":      s.FrameworkInfo.GetCheckpoint(),
		"killing_capable": env.killingCapable(),
	}).Info("subscribed to the agent")
}

func (d *driver) onLaunch(task mesos.TaskInfo) {
	taskID := task.TaskID.Value
	logger := d.logger.WithField("task_id", taskID)
	d.mu.Lock()
	running, runningID := d.task, d.taskID
	env := d.env
	refusedGroup := d.refusedGroup
	if running == nil && !refusedGroup {
		d.unackedTasks[taskID] = task
		d.launching = true
	}
	d.mu.Unlock()

	if refusedGroup {
		logger.Error("refusing a task: this executor is exiting after refusing a task group")
		d.sendStatus(newStatus(task.TaskID, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID.Enum(),
			"this executor is exiting after refusing a task group (LAUNCH_GROUP)"), false)
		return
	}

	if running != nil && runningID == taskID {
		// The same task delivered twice (an agent resending a launch it
		// thinks was lost) is not a second task: failing it would fail
		// the task that runs.
		logger.Warn("ignoring a repeated LAUNCH of the task this executor already runs")
		return
	}
	if running != nil {
		logger.Error("refusing a second task: this executor runs exactly one task")
		d.sendStatus(newStatus(task.TaskID, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID.Enum(),
			fmt.Sprintf("this executor already runs task %s and accepts only one task", runningID)), false)
		return
	}
	if env == nil {
		// The agent always sends SUBSCRIBED first; guard anyway.
		env = &launchEnv{}
	}
	logger.WithField("name", task.GetName()).Info("launching task")
	handle := d.launch(task, *env)
	d.mu.Lock()
	d.task = handle
	d.taskID = taskID
	d.launching = false
	stop := d.stopOnLaunch
	d.stopOnLaunch = ""
	d.mu.Unlock()
	if stop != "" {
		d.stopTask(handle, stop)
	}
}

// onLaunchGroup fails every task of a group. An executor with no task of
// its own then exits: the agent never shuts down an idle custom executor,
// and no other task will come to it. The last refusal counts as its
// terminal update, so it exits once the agent has acknowledged it.
func (d *driver) onLaunchGroup(group *executor.Event_LaunchGroup) {
	if group == nil || len(group.TaskGroup.Tasks) == 0 {
		return
	}
	d.mu.Lock()
	idle := d.task == nil && !d.refusedGroup
	if idle {
		d.refusedGroup = true
		d.failed = true
	}
	for _, task := range group.TaskGroup.Tasks {
		// Listed in a resubscription until acknowledged, as any launched
		// task, so that the agent takes our TASK_FAILED and not TASK_LOST.
		d.unackedTasks[task.TaskID.Value] = task
	}
	d.mu.Unlock()
	tasks := group.TaskGroup.Tasks
	for i, task := range tasks {
		d.logger.WithField("task_id", task.TaskID.Value).Error("refusing a task group: this executor runs single tasks")
		d.sendStatus(newStatus(task.TaskID, mesos.TASK_FAILED, mesos.REASON_TASK_GROUP_INVALID.Enum(),
			"task groups (LAUNCH_GROUP) are not supported by sidecar-executor; launch the tasks one by one"), idle && i == len(tasks)-1)
	}
	if idle {
		d.logger.Error("no task to run after refusing the task group: exiting once the agent acknowledges the refusals")
	}
}

// hasTask reports whether a task was launched.
func (d *driver) hasTask() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.task != nil
}

func (d *driver) onKill(kill *executor.Event_Kill) {
	if kill == nil {
		return
	}
	d.mu.Lock()
	task, taskID := d.task, d.taskID
	d.mu.Unlock()
	logger := d.logger.WithField("task_id", kill.TaskID.Value)
	if task == nil || taskID != kill.TaskID.Value {
		logger.Warn("KILL for a task this executor is not running; reporting it killed")
		d.sendStatus(newStatus(kill.TaskID, mesos.TASK_KILLED, nil, "the task was not running on this executor"), task == nil)
		return
	}
	grace := time.Duration(-1)
	if p := kill.GetKillPolicy(); p != nil && p.GetGracePeriod() != nil {
		grace = time.Duration(p.GetGracePeriod().GetNanoseconds())
	}
	logger.WithField("kill_policy_grace", grace.String()).Info("KILL received from the agent")
	task.Stop(stopRequest{cause: causeKill, grace: grace, message: "killed by the scheduler"})
}

func (d *driver) onShutdown() {
	d.mu.Lock()
	task := d.task
	d.mu.Unlock()
	d.logger.WithField("grace_period", d.mesosCfg.ExecutorShutdownGracePeriod.String()).Info("SHUTDOWN received from the agent")
	if task == nil {
		d.finish(exitOK)
		return
	}
	task.Stop(budgetedStop(causeShutdown, d.mesosCfg.ExecutorShutdownGracePeriod, "the agent shut the executor down"))
}

// budgetedStop is a stop that must be over within the agent's shutdown
// grace period (SHUTDOWN, a signal, a lost agent): past it the agent
// destroys the executor and reports the task itself. The deadline is when
// the terminal update must be on its way, a little before the period ends;
// the stopper fits the drain, the stop signal's grace and the cleanup in it.
func budgetedStop(cause stopCause, period time.Duration, message string) stopRequest {
	reserve := min(time.Second, period/5)
	return stopRequest{cause: cause, grace: shutdownGrace(period), deadline: time.Now().Add(period - reserve), message: message}
}

// shutdownGrace leaves room within the agent's shutdown grace period for the
// terminal update and its acknowledgement after the container has stopped.
func shutdownGrace(period time.Duration) time.Duration {
	grace := period - 2*time.Second
	if grace < period/2 {
		grace = period / 2
	}
	return grace
}

// requestStop handles SIGTERM, SIGINT or SIGHUP sent to the executor itself.
func (d *driver) requestStop(reason string) {
	d.mu.Lock()
	task, launching := d.task, d.launching
	if task == nil && launching {
		// The launch has begun (the task may have reported already):
		// the task is stopped as soon as the driver holds it.
		d.stopOnLaunch = reason
	}
	d.mu.Unlock()
	switch {
	case task != nil:
		d.stopTask(task, reason)
	case launching:
		d.logger.WithField("reason", reason).Info("stopping the task once its launch has handed it over")
	default:
		d.logger.WithField("reason", reason).Info("stopping before any task was launched")
		d.finish(exitOK)
	}
}

func (d *driver) stopTask(task taskHandle, reason string) {
	d.logger.WithField("reason", reason).Info("stopping the task")
	task.Stop(budgetedStop(causeSignal, d.mesosCfg.ExecutorShutdownGracePeriod, reason))
}

// markFailed makes the eventual exit code non-zero.
func (d *driver) markFailed() {
	d.mu.Lock()
	d.failed = true
	d.mu.Unlock()
}

func (d *driver) finishAfterAck() {
	d.mu.Lock()
	failed := d.failed
	d.mu.Unlock()
	if failed {
		d.finish(exitFailure)
	} else {
		d.finish(exitOK)
	}
}

func (d *driver) finish(code int) {
	d.finishOnce.Do(func() {
		d.exitCode = code
		close(d.finished)
	})
}

func (d *driver) isFinished() bool {
	select {
	case <-d.finished:
		return true
	default:
		return false
	}
}
