package mesostest

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// Update is a status update as the agent received (or generated) it.
type Update struct {
	Status    mesos.TaskStatus // as the executor sent it (the agent's normalisation is not applied)
	Received  time.Time
	Via       string // "call" (UPDATE), "subscribe" (replayed by SUBSCRIBE) or "agent" (agent-generated)
	Duplicate bool   // uuid already received for the task: ignored but acknowledged again
	Dropped   string // why the agent dropped it; "" when it was accepted or is a duplicate
	Acked     bool   // its ACKNOWLEDGED event was written to a stream
}

// taskRecord is the agent's view of one task.
type taskRecord struct {
	info   mesos.TaskInfo
	state  mesos.TaskState
	queued bool // waiting for the executor to subscribe; no LAUNCH sent yet
}

// IsTerminal reports whether a task in state s is done for good: Mesos'
// protobuf::isTerminalState (§5.5). The executor's tests, mesos-local and
// the benchmark use it too, so that all agree on what "terminal" means.
func IsTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

func (a *Agent) defaultExecutorInfo() *mesos.ExecutorInfo {
	return &mesos.ExecutorInfo{
		Type:        mesos.ExecutorInfo_CUSTOM,
		ExecutorID:  mesos.ExecutorID{Value: a.cfg.ExecutorID},
		FrameworkID: &mesos.FrameworkID{Value: a.cfg.FrameworkID},
		Name:        ptr("mesostest executor"),
		Command:     &mesos.CommandInfo{Value: ptr("sidecar-executor"), Shell: ptr(false)},
	}
}

// NewTask returns a minimal valid TaskInfo for this agent's executor.
func (a *Agent) NewTask(taskID string) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name:     taskID,
		TaskID:   mesos.TaskID{Value: taskID},
		AgentID:  mesos.AgentID{Value: a.cfg.AgentID},
		Executor: a.defaultExecutorInfo(),
	}
}

// NewDockerTask returns a custom-executor task running image, shaped the
// way Singularity builds them for a Docker executor: the executor started
// as executor.sh, a DOCKER container on the host network, 0.1 cpus and
// 64 MB of memory. Callers add the command, labels and environment.
func (a *Agent) NewDockerTask(taskID, image string) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name:    taskID,
		TaskID:  mesos.TaskID{Value: taskID},
		AgentID: mesos.AgentID{Value: a.cfg.AgentID},
		Executor: &mesos.ExecutorInfo{
			ExecutorID:  mesos.ExecutorID{Value: a.cfg.ExecutorID},
			FrameworkID: &mesos.FrameworkID{Value: a.cfg.FrameworkID},
			Command:     &mesos.CommandInfo{Value: ptr("executor.sh")},
		},
		Container: &mesos.ContainerInfo{
			Type:   mesos.ContainerInfo_DOCKER.Enum(),
			Docker: &mesos.ContainerInfo_DockerInfo{Image: image, Network: mesos.ContainerInfo_DockerInfo_HOST.Enum()},
		},
		Resources: []mesos.Resource{
			{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1}},
			{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 64}},
		},
	}
}

// Launch hands a task to the executor, as the agent does for a RUN_TASK from
// the master. The task becomes STAGING and is sent as LAUNCH on the live
// stream, or queued and sent right after the next SUBSCRIBED while the
// executor is not subscribed. An empty AgentID is filled in; a missing
// Executor is filled with this agent's executor (a task naming another
// executor, or carrying a CommandInfo, would not reach this executor).
func (a *Agent) Launch(task mesos.TaskInfo) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, err := a.admitLocked("Launch", task)
	if err != nil {
		return err
	}
	a.addTaskLocked(rec)
	if a.execState == executorRunning {
		a.deliverLocked(rec)
	} else {
		rec.queued = true
		a.logf("task %s STAGING, queued until the executor subscribes", task.TaskID.Value)
	}
	a.notifyLocked()
	return nil
}

// LaunchGroup hands a task group to the executor as one LAUNCH_GROUP event,
// as the agent does for the LAUNCH_GROUP offer operation (normally meant for
// the default executor). Every task is checked as Launch checks it and
// becomes STAGING. Unlike Launch it needs a live subscription: groups are
// not queued.
func (a *Agent) LaunchGroup(tasks ...mesos.TaskInfo) error {
	if len(tasks) == 0 {
		return errors.New("mesostest: LaunchGroup: a task group needs at least one task")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.execState != executorRunning || a.liveStreamLocked() == nil {
		return errors.New("mesostest: LaunchGroup: no live subscription")
	}
	group := mesos.TaskGroupInfo{}
	var recs []*taskRecord
	seen := map[string]bool{}
	for _, task := range tasks {
		if seen[task.TaskID.Value] {
			return fmt.Errorf("mesostest: LaunchGroup %s: task ID used twice in the group", task.TaskID.Value)
		}
		seen[task.TaskID.Value] = true
		rec, err := a.admitLocked("LaunchGroup", task)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		group.Tasks = append(group.Tasks, rec.info)
	}
	for _, rec := range recs {
		a.addTaskLocked(rec)
	}
	a.everDelivered = true
	a.sendLocked(executor.Event{Type: executor.Event_LAUNCH_GROUP, LaunchGroup: &executor.Event_LaunchGroup{TaskGroup: group}})
	a.logf("LAUNCH_GROUP sent with %d tasks", len(recs))
	a.notifyLocked()
	return nil
}

// InjectEvent writes an arbitrary event on the live stream, for faults a
// healthy agent does not produce on its own: a LAUNCH repeated for a task
// already delivered, a KILL naming a task this executor never saw. The
// agent's own bookkeeping is not changed.
func (a *Agent) InjectEvent(e executor.Event) error {
	return a.writeEvent(e, "InjectEvent ", "injected")
}

// admitLocked checks a task the way Launch documents and returns its
// STAGING record without recording it; what names the caller in errors.
func (a *Agent) admitLocked(what string, task mesos.TaskInfo) (*taskRecord, error) {
	if task.TaskID.Value == "" {
		return nil, fmt.Errorf("mesostest: %s: task_id is required", what)
	}
	if task.Name == "" {
		return nil, fmt.Errorf("mesostest: %s %s: name is required", what, task.TaskID.Value)
	}
	if task.AgentID.Value == "" {
		task.AgentID.Value = a.cfg.AgentID
	} else if task.AgentID.Value != a.cfg.AgentID {
		return nil, fmt.Errorf("mesostest: %s %s: agent_id %q is not this agent (%s)", what, task.TaskID.Value, task.AgentID.Value, a.cfg.AgentID)
	}
	if task.Command != nil {
		return nil, fmt.Errorf("mesostest: %s %s: a task with a CommandInfo runs under the command executor, not a custom executor", what, task.TaskID.Value)
	}
	if a.closed {
		return nil, errClosed
	}
	if a.execState >= executorTerminating {
		return nil, fmt.Errorf("mesostest: %s %s: executor is %v", what, task.TaskID.Value, a.execState)
	}
	if _, dup := a.tasks[task.TaskID.Value]; dup {
		return nil, fmt.Errorf("mesostest: %s %s: task ID already used", what, task.TaskID.Value)
	}
	if task.Executor == nil {
		if a.executorInfo != nil {
			task.Executor = a.executorInfo
		} else {
			task.Executor = a.defaultExecutorInfo()
		}
	}
	ei := *task.Executor
	task.Executor = &ei
	if ei.ExecutorID.Value != a.cfg.ExecutorID {
		return nil, fmt.Errorf("mesostest: %s %s: executor_id %q is not this agent's executor (%s)", what, task.TaskID.Value, ei.ExecutorID.Value, a.cfg.ExecutorID)
	}
	if ei.FrameworkID == nil {
		ei.FrameworkID = &mesos.FrameworkID{Value: a.cfg.FrameworkID}
	} else if ei.FrameworkID.Value != a.cfg.FrameworkID {
		return nil, fmt.Errorf("mesostest: %s %s: executor framework_id %q is not %s", what, task.TaskID.Value, ei.FrameworkID.Value, a.cfg.FrameworkID)
	}
	if a.executorInfo != nil && !a.executorInfo.Equal(&ei) {
		return nil, fmt.Errorf("mesostest: %s %s: ExecutorInfo differs from the one the executor was started with", what, task.TaskID.Value)
	}
	return &taskRecord{info: task, state: mesos.TASK_STAGING}, nil
}

// addTaskLocked makes an admitted task known to the agent.
func (a *Agent) addTaskLocked(rec *taskRecord) {
	if a.executorInfo == nil {
		a.executorInfo = rec.info.Executor
	}
	a.tasks[rec.info.TaskID.Value] = rec
	a.taskOrder = append(a.taskOrder, rec.info.TaskID.Value)
}

func (a *Agent) deliverLocked(rec *taskRecord) {
	rec.queued = false
	a.everDelivered = true
	if a.sendLocked(executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: rec.info}}) {
		a.logf("task %s STAGING, LAUNCH sent", rec.info.TaskID.Value)
	} else {
		a.logf("task %s STAGING, LAUNCH lost: no live stream", rec.info.TaskID.Value)
	}
}

// Kill sends KILL for a launched task, with an optional kill policy override.
// A task still queued for delivery is killed by the agent itself
// (TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH) and never launched.
func (a *Agent) Kill(taskID string, policy *mesos.KillPolicy) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.tasks[taskID]
	switch {
	case a.closed:
		return errClosed
	case rec == nil:
		return fmt.Errorf("mesostest: Kill %s: unknown task", taskID)
	case IsTerminal(rec.state):
		return fmt.Errorf("mesostest: Kill %s: task is already %v", taskID, rec.state)
	case rec.queued:
		a.killedQueued++
		a.agentUpdateLocked(rec, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH, "Killed before delivery to the executor")
		return nil
	}
	if !a.sendLocked(executor.Event{Type: executor.Event_KILL, Kill: &executor.Event_Kill{TaskID: rec.info.TaskID, KillPolicy: policy}}) {
		return fmt.Errorf("mesostest: Kill %s: no live subscription", taskID)
	}
	a.logf("KILL sent for task %s", taskID)
	return nil
}

// Shutdown sends SHUTDOWN and marks the executor TERMINATING. Without a live
// stream the SHUTDOWN is delivered when the executor next subscribes (which is
// then refused: §3.3).
func (a *Agent) Shutdown() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errClosed
	}
	if a.execState == executorTerminated {
		return errors.New("mesostest: Shutdown: executor has terminated")
	}
	a.execState = executorTerminating
	if a.sendLocked(executor.Event{Type: executor.Event_SHUTDOWN}) {
		a.logf("SHUTDOWN sent")
	} else {
		a.logf("SHUTDOWN pending until the executor subscribes")
	}
	a.notifyLocked()
	return nil
}

// Message sends a framework MESSAGE event.
func (a *Agent) Message(data []byte) error {
	return a.sendEvent(executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: data}})
}

// Heartbeat sends a HEARTBEAT event now.
func (a *Agent) Heartbeat() error {
	return a.sendEvent(executor.Event{Type: executor.Event_HEARTBEAT})
}

// SendError sends an ERROR event.
func (a *Agent) SendError(msg string) error {
	return a.sendEvent(executor.Event{Type: executor.Event_ERROR, Error: &executor.Event_Error{Message: msg}})
}

func (a *Agent) sendEvent(e executor.Event) error {
	return a.writeEvent(e, "", "sent")
}

// writeEvent writes e on the live stream; caller prefixes the error and verb
// ends the log line.
func (a *Agent) writeEvent(e executor.Event, caller, verb string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errClosed
	}
	if !a.sendLocked(e) {
		return fmt.Errorf("mesostest: %s%v: no live subscription", caller, e.Type)
	}
	a.logf("%v %s", e.Type, verb)
	return nil
}

// ExecutorTerminated is what the agent does when the executor process exits
// (§5.6): every task not terminal in the agent's view, queued ones included,
// gets an agent-generated TASK_FAILED with REASON_EXECUTOR_TERMINATED and
// message reason ("Executor terminated" when empty). It runs after every
// update already answered 202, and later calls find no executor (400
// "Executor cannot be found").
func (a *Agent) ExecutorTerminated(reason string) {
	if reason == "" {
		reason = "Executor terminated"
	}
	a.jobs.do(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.closed || a.execState == executorTerminated {
			return
		}
		a.execState = executorTerminated
		a.logf("executor terminated")
		for _, id := range a.taskOrder {
			if rec := a.tasks[id]; !IsTerminal(rec.state) {
				a.agentUpdateLocked(rec, mesos.TASK_FAILED, mesos.REASON_EXECUTOR_TERMINATED, reason)
			}
		}
		a.endStreamLocked("executor terminated")
		a.notifyLocked()
	})
}

// agentUpdateLocked records a status update the agent generates itself.
func (a *Agent) agentUpdateLocked(rec *taskRecord, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string) {
	id := uuid.New()
	status := mesos.TaskStatus{
		TaskID:     rec.info.TaskID,
		State:      state.Enum(),
		Message:    ptr(message),
		Source:     mesos.SOURCE_AGENT.Enum(),
		Reason:     reason.Enum(),
		AgentID:    &mesos.AgentID{Value: a.cfg.AgentID},
		ExecutorID: &mesos.ExecutorID{Value: a.cfg.ExecutorID},
		Timestamp:  ptr(float64(time.Now().UnixNano()) / 1e9),
		UUID:       id[:],
	}
	rec.state = state
	rec.queued = false
	a.markSeenLocked(status)
	a.updates = append(a.updates, Update{Status: status, Received: time.Now(), Via: "agent"})
	a.logf("task %s %v (agent-generated, %v)", rec.info.TaskID.Value, state, reason)
	a.notifyLocked()
}

func (a *Agent) markSeenLocked(status mesos.TaskStatus) {
	seen := a.seenUUIDs[status.TaskID.Value]
	if seen == nil {
		seen = make(map[string]bool)
		a.seenUUIDs[status.TaskID.Value] = seen
	}
	seen[string(status.UUID)] = true
}

// processUpdateLocked is the agent's handling of an executor's update after
// the 202 (§4.1, §5.3).
func (a *Agent) processUpdateLocked(status mesos.TaskStatus, via string) {
	taskID := status.TaskID.Value
	state := status.GetState()
	u := Update{Status: status, Received: time.Now(), Via: via}
	ack := true
	rec := a.tasks[taskID]
	switch {
	case status.AgentID != nil && status.AgentID.Value != a.cfg.AgentID:
		u.Dropped = "agent_id mismatch"
		ack = false
	case a.seenUUIDs[taskID][string(status.UUID)]:
		u.Duplicate = true
	case rec != nil && IsTerminal(rec.state):
		u.Dropped = "Task is already terminated with state " + rec.state.String()
	case rec != nil && rec.queued && !IsTerminal(state):
		u.Dropped = "Cannot send non-terminal update for queued task"
	default:
		a.markSeenLocked(status)
		if rec != nil {
			rec.state = state
			rec.queued = false
		}
	}
	idx := len(a.updates)
	a.updates = append(a.updates, u)
	switch {
	case u.Dropped != "":
		a.logf("update for task %s (%v, via %s) dropped: %s", taskID, state, via, u.Dropped)
	case u.Duplicate:
		a.logf("update for task %s (%v, via %s) is a duplicate", taskID, state, via)
	default:
		a.logf("task %s %v (via %s)", taskID, state, via)
	}
	if ack {
		if a.withholdAcks {
			a.withheld = append(a.withheld, idx)
			a.logf("ACK for task %s withheld", taskID)
		} else {
			a.sendAckLocked(idx)
		}
	}
	a.notifyLocked()
}

func (a *Agent) sendAckLocked(idx int) {
	status := a.updates[idx].Status
	s := a.liveStreamLocked()
	if s == nil {
		a.logf("ACK for task %s lost: no live stream", status.TaskID.Value)
		return
	}
	s.push(outEvent{
		event: executor.Event{Type: executor.Event_ACKNOWLEDGED, Acknowledged: &executor.Event_Acknowledged{
			TaskID: status.TaskID,
			UUID:   status.UUID,
		}},
		ackOf: idx,
	})
}

// subscribeLocked is Slave::subscribe for an executor that passed the
// handler's checks: it replaces any previous stream and returns the new one.
func (a *Agent) subscribeLocked(call *executor.Call, s *stream) {
	a.endStreamLocked("replaced by a new SUBSCRIBE")
	a.stream = s
	sub := call.Subscribe

	refuse := ""
	switch {
	case a.execState >= executorTerminating:
		refuse = "executor is " + a.execState.String()
	case !a.everDelivered && a.killedQueued > 0 && !a.hasQueuedLocked():
		// MESOS-8411: the executor's only tasks were killed before delivery.
		refuse = "all its tasks were killed before delivery"
		a.execState = executorTerminating
	}
	if refuse != "" {
		s.push(outEvent{event: executor.Event{Type: executor.Event_SHUTDOWN}, ackOf: -1})
		s.finishing = true
		a.logf("SUBSCRIBE answered with SHUTDOWN: %s", refuse)
		a.notifyLocked()
		return
	}

	a.execState = executorRunning
	s.subscribed = true
	a.logf("executor subscribed (stream %d, %s, %d unacknowledged tasks, %d unacknowledged updates)",
		s.id, s.codec.Name, len(sub.UnacknowledgedTasks), len(sub.UnacknowledgedUpdates))
	executorInfo := a.executorInfo
	if executorInfo == nil {
		executorInfo = a.defaultExecutorInfo()
	}
	s.push(outEvent{event: executor.Event{Type: executor.Event_SUBSCRIBED, Subscribed: &executor.Event_Subscribed{
		ExecutorInfo:  *executorInfo,
		FrameworkInfo: a.frameworkInfo(),
		AgentInfo: mesos.AgentInfo{
			ID:       &mesos.AgentID{Value: a.cfg.AgentID},
			Hostname: a.cfg.AgentHostname,
			Port:     ptr(a.port),
		},
		ContainerID: &mesos.ContainerID{Value: a.containerID},
	}}, ackOf: -1})

	// §5.4: a launched task still STAGING that the executor does not list
	// never reached it.
	listed := make(map[string]bool, len(sub.UnacknowledgedTasks))
	for _, t := range sub.UnacknowledgedTasks {
		listed[t.TaskID.Value] = true
	}
	lostState := mesos.TASK_LOST
	if a.cfg.hasCapability(mesos.FrameworkInfo_Capability_PARTITION_AWARE) {
		lostState = mesos.TASK_DROPPED
	}
	for _, id := range a.taskOrder {
		rec := a.tasks[id]
		if !rec.queued && rec.state == mesos.TASK_STAGING && !listed[id] {
			a.agentUpdateLocked(rec, lostState, mesos.REASON_AGENT_RESTARTED, "Task launched during agent restart")
		}
	}
	for _, u := range sub.UnacknowledgedUpdates {
		a.processUpdateLocked(u.Status, "subscribe")
	}
	for _, id := range a.taskOrder {
		if rec := a.tasks[id]; rec.queued {
			a.deliverLocked(rec)
		}
	}
	a.notifyLocked()
}

func (a *Agent) hasQueuedLocked() bool {
	for _, rec := range a.tasks {
		if rec.queued {
			return true
		}
	}
	return false
}

func (a *Agent) frameworkInfo() mesos.FrameworkInfo {
	fi := mesos.FrameworkInfo{
		User:       "mesostest",
		Name:       "mesostest",
		ID:         &mesos.FrameworkID{Value: a.cfg.FrameworkID},
		Checkpoint: ptr(a.cfg.Checkpoint),
	}
	for _, c := range a.cfg.Capabilities {
		fi.Capabilities = append(fi.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
	}
	return fi
}

func ptr[T any](v T) *T { return &v }
