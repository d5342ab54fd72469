package mesostest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
)

func TestSubscribeLaunchUpdateAck(t *testing.T) {
	for _, mt := range mediaTypes {
		t.Run(string(mt), func(t *testing.T) {
			a := NewAgent(t, Config{
				Checkpoint:   true,
				Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
			})
			cfg := a.Config()
			if err := a.Launch(a.NewTask("t1")); err != nil {
				t.Fatal(err)
			}
			if st, ok := a.TaskState("t1"); !ok || st != mesos.TASK_STAGING {
				t.Fatalf("TaskState(t1) = %v, %t; want TASK_STAGING", st, ok)
			}

			e := newTestExecutor(t, a, mt)
			s, err := e.subscribe(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			sub := s.expect(t, executor.Event_SUBSCRIBED).Subscribed
			if got := sub.ExecutorInfo.ExecutorID.Value; got != cfg.ExecutorID {
				t.Errorf("executor_info.executor_id = %q, want %q", got, cfg.ExecutorID)
			}
			fi := sub.FrameworkInfo
			if fi.ID == nil || fi.ID.Value != cfg.FrameworkID || !fi.GetCheckpoint() {
				t.Errorf("framework_info id/checkpoint = %v/%v", fi.ID, fi.Checkpoint)
			}
			if len(fi.Capabilities) != 1 || fi.Capabilities[0].GetType() != mesos.FrameworkInfo_Capability_TASK_KILLING_STATE {
				t.Errorf("framework_info.capabilities = %v", fi.Capabilities)
			}
			_, port, _ := net.SplitHostPort(a.Addr())
			if ai := sub.AgentInfo; ai.ID == nil || ai.ID.Value != cfg.AgentID || ai.Hostname != cfg.AgentHostname || strconv.Itoa(int(ai.GetPort())) != port {
				t.Errorf("agent_info = %v", ai)
			}
			if sub.ContainerID == nil || uuid.Validate(sub.ContainerID.Value) != nil {
				t.Errorf("container_id = %v, want a UUID", sub.ContainerID)
			}

			launch := s.expect(t, executor.Event_LAUNCH).Launch.Task
			if launch.TaskID.Value != "t1" || launch.AgentID.Value != cfg.AgentID || launch.Executor == nil {
				t.Fatalf("LAUNCH task = %v", launch)
			}

			running := e.status("t1", mesos.TASK_RUNNING)
			e.mustUpdate(running)
			s.expectAck(t, running)
			u, err := a.WaitForUpdate(waitCtx(t), func(u Update) bool { return u.Acked })
			if err != nil {
				t.Fatal(err)
			}
			if u.Via != "call" || u.Duplicate || u.Dropped != "" || u.Status.GetState() != mesos.TASK_RUNNING {
				t.Errorf("update record = %+v", u)
			}
			if st, _ := a.TaskState("t1"); st != mesos.TASK_RUNNING {
				t.Errorf("TaskState(t1) = %v, want TASK_RUNNING", st)
			}

			// A launch while subscribed is delivered at once.
			if err := a.Launch(a.NewTask("t2")); err != nil {
				t.Fatal(err)
			}
			if got := s.expect(t, executor.Event_LAUNCH).Launch.Task.TaskID.Value; got != "t2" {
				t.Errorf("LAUNCH %s, want t2", got)
			}
			grace := &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(3 * time.Second)}}
			if err := a.Kill("t1", grace); err != nil {
				t.Fatal(err)
			}
			kill := s.expect(t, executor.Event_KILL).Kill
			if kill.TaskID.Value != "t1" || kill.KillPolicy.GetGracePeriod().GetNanoseconds() != int64(3*time.Second) {
				t.Errorf("KILL = %v", kill)
			}
			if err := a.SendError("boom"); err != nil {
				t.Fatal(err)
			}
			if got := s.expect(t, executor.Event_ERROR).Error.Message; got != "boom" {
				t.Errorf("ERROR message %q", got)
			}

			if err := e.send(calls.Message([]byte("to the scheduler"))); err != nil {
				t.Fatal(err)
			}
			if err := e.send(calls.Heartbeat()); err != nil {
				t.Fatal(err)
			}
			if msgs := a.Messages(); len(msgs) != 1 || string(msgs[0]) != "to the scheduler" {
				t.Errorf("Messages() = %q", msgs)
			}

			var types []string
			for _, c := range a.Calls() {
				types = append(types, c.Type.String()+":"+strconv.Itoa(c.StatusCode))
				if c.ContentType != string(mt) {
					t.Errorf("call %v Content-Type %q, want %q", c.Type, c.ContentType, mt)
				}
			}
			if got, want := strings.Join(types, " "), "SUBSCRIBE:200 UPDATE:202 MESSAGE:202 HEARTBEAT:202"; got != want {
				t.Errorf("Calls() = %s, want %s", got, want)
			}
			if c := a.Calls()[0]; c.Subscribe == nil || !strings.HasPrefix(c.Accept, string(mt)) {
				t.Errorf("SUBSCRIBE record: subscribe %v, Accept %q", c.Subscribe, c.Accept)
			}
		})
	}
}

func TestDuplicateAndPostTerminalUpdates(t *testing.T) {
	for _, mt := range mediaTypes {
		t.Run(string(mt), func(t *testing.T) {
			a, e, s := launchedTask(t, Config{}, mt)

			finished := e.status("t1", mesos.TASK_FINISHED)
			e.mustUpdate(finished)
			s.expectAck(t, finished)
			e.mustUpdate(finished) // same uuid: duplicate, acknowledged again
			s.expectAck(t, finished)
			late := e.status("t1", mesos.TASK_RUNNING)
			e.mustUpdate(late)
			s.expectAck(t, late) // dropped but acknowledged

			ups := a.Updates()
			if len(ups) != 3 {
				t.Fatalf("got %d updates, want 3", len(ups))
			}
			if ups[0].Duplicate || ups[0].Dropped != "" {
				t.Errorf("first update: %+v", ups[0])
			}
			if !ups[1].Duplicate || ups[1].Dropped != "" {
				t.Errorf("resent update not marked duplicate: %+v", ups[1])
			}
			if want := "Task is already terminated with state TASK_FINISHED"; ups[2].Dropped != want {
				t.Errorf("late update Dropped = %q, want %q", ups[2].Dropped, want)
			}
			if _, err := a.WaitForUpdate(waitCtx(t), func(u Update) bool { return u.Dropped != "" && u.Acked }); err != nil {
				t.Error(err)
			}
			if acc := a.Accepted("t1"); len(acc) != 1 || acc[0].Status.GetState() != mesos.TASK_FINISHED {
				t.Errorf("Accepted(t1) = %v", acc)
			}
			if st, _ := a.TaskState("t1"); st != mesos.TASK_FINISHED {
				t.Errorf("TaskState = %v", st)
			}
		})
	}
}

func TestAgentIDMismatchIsDroppedWithoutAck(t *testing.T) {
	a, e, s := launchedTask(t, Config{}, mediaTypes[0])

	wrong := e.status("t1", mesos.TASK_RUNNING)
	wrong.AgentID = &mesos.AgentID{Value: "some-other-agent"}
	e.mustUpdate(wrong)
	u, err := a.WaitForUpdate(waitCtx(t), func(u Update) bool { return u.Dropped != "" })
	if err != nil {
		t.Fatal(err)
	}
	if u.Dropped != "agent_id mismatch" {
		t.Errorf("Dropped = %q", u.Dropped)
	}
	s.barrier(t, a) // no ACKNOWLEDGED was queued before the barrier
	if st, _ := a.TaskState("t1"); st != mesos.TASK_STAGING {
		t.Errorf("TaskState = %v, want TASK_STAGING", st)
	}

	// The agent's own ID is fine.
	right := e.status("t1", mesos.TASK_RUNNING)
	right.AgentID = &mesos.AgentID{Value: a.Config().AgentID}
	e.mustUpdate(right)
	s.expectAck(t, right)
	if a.Updates()[0].Acked {
		t.Error("the mismatching update is marked Acked")
	}
}

func TestWithheldAcks(t *testing.T) {
	a, e, s := launchedTask(t, Config{}, mediaTypes[0])

	a.SetWithholdAcks(true)
	running := e.status("t1", mesos.TASK_RUNNING)
	e.mustUpdate(running)
	if _, err := a.WaitForState(waitCtx(t), "t1", mesos.TASK_RUNNING); err != nil {
		t.Fatal(err)
	}
	s.barrier(t, a)
	if a.Updates()[0].Acked {
		t.Fatal("update Acked while acks are withheld")
	}

	a.SetWithholdAcks(false)
	s.expectAck(t, running)
	if _, err := a.WaitForUpdate(waitCtx(t), func(u Update) bool { return u.Acked }); err != nil {
		t.Fatal(err)
	}
}

func TestDropConnectionThenResubscribe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		caps      []mesos.FrameworkInfo_Capability_Type
		lostState mesos.TaskState
	}{
		{"not partition-aware", nil, mesos.TASK_LOST},
		{"partition-aware", []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_PARTITION_AWARE}, mesos.TASK_DROPPED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAgent(t, Config{Checkpoint: true, Capabilities: tc.caps})
			e := newTestExecutor(t, a, mediaTypes[0])
			t1, t2 := a.NewTask("t1"), a.NewTask("t2")
			for _, task := range []mesos.TaskInfo{t1, t2} {
				if err := a.Launch(task); err != nil {
					t.Fatal(err)
				}
			}
			s := e.mustSubscribe(nil, nil)
			s.expect(t, executor.Event_LAUNCH)
			s.expect(t, executor.Event_LAUNCH)

			a.SetWithholdAcks(true)
			running := e.status("t1", mesos.TASK_RUNNING)
			e.mustUpdate(running)
			if _, err := a.WaitForState(waitCtx(t), "t1", mesos.TASK_RUNNING); err != nil {
				t.Fatal(err)
			}

			a.DropConnection()
			s.waitEnd(t)
			err := e.update(e.status("t1", mesos.TASK_RUNNING))
			if !apierrors.CodeUnsubscribed.Matches(err) || !strings.HasSuffix(err.Error(), ": Executor is not subscribed") {
				t.Fatalf("UPDATE while not subscribed: %v, want 403 Executor is not subscribed", err)
			}
			a.SetWithholdAcks(false) // no live stream: the withheld ACK is lost

			// Launched while the agent restarts: queued, delivered after SUBSCRIBED.
			if err := a.Launch(a.NewTask("t3")); err != nil {
				t.Fatal(err)
			}

			// The executor lists t1 and the unacknowledged update but forgot t2.
			s2 := e.mustSubscribe([]mesos.TaskInfo{t1}, []executor.Call_Update{{Status: running}})
			var sawAck, sawLaunch bool
			for !sawAck || !sawLaunch {
				switch ev := s2.next(t); ev.Type {
				case executor.Event_ACKNOWLEDGED:
					sawAck = string(ev.Acknowledged.UUID) == string(running.UUID)
				case executor.Event_LAUNCH:
					sawLaunch = ev.Launch.Task.TaskID.Value == "t3"
				default:
					t.Fatalf("unexpected %v", ev.Type)
				}
			}
			if err := a.WaitForSubscriptions(waitCtx(t), 2); err != nil {
				t.Fatal(err)
			}

			replayed, err := a.WaitForUpdate(waitCtx(t), func(u Update) bool { return u.Via == "subscribe" && u.Acked })
			if err != nil {
				t.Fatal(err)
			}
			if !replayed.Duplicate {
				t.Errorf("replayed update not a duplicate: %+v", replayed)
			}
			lost, err := a.WaitForState(waitCtx(t), "t2", tc.lostState)
			if err != nil {
				t.Fatal(err)
			}
			st := lost.Status
			if lost.Via != "agent" || st.GetSource() != mesos.SOURCE_AGENT || st.GetReason() != mesos.REASON_AGENT_RESTARTED || st.GetMessage() != "Task launched during agent restart" {
				t.Errorf("reconciliation update = %+v", lost)
			}
			for id, want := range map[string]mesos.TaskState{"t1": mesos.TASK_RUNNING, "t2": tc.lostState, "t3": mesos.TASK_STAGING} {
				if got, _ := a.TaskState(id); got != want {
					t.Errorf("TaskState(%s) = %v, want %v", id, got, want)
				}
			}
		})
	}
}

func TestRefuseUnavailable(t *testing.T) {
	a := NewAgent(t, Config{Checkpoint: true})
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)

	a.SetRefuse(RefuseUnavailable)
	s.waitEnd(t)
	for name, send := range map[string]func() error{
		"SUBSCRIBE": func() error { _, err := e.subscribe(nil, nil); return err },
		"UPDATE":    func() error { return e.update(e.status("t1", mesos.TASK_RUNNING)) },
		"HEARTBEAT": func() error { return e.send(calls.Heartbeat()) },
	} {
		err := send()
		var apiErr *apierrors.Error
		if !apierrors.CodeMesosUnavailable.Matches(err) || !errors.As(err, &apiErr) || !apiErr.Temporary() ||
			!strings.HasSuffix(err.Error(), ": Agent has not finished recovery") {
			t.Errorf("%s while unavailable: %v", name, err)
		}
	}

	a.SetRefuse(RefuseNone)
	e.mustSubscribe(nil, nil)
	if err := a.WaitForSubscriptions(waitCtx(t), 2); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseConnectionsKeepsThePort(t *testing.T) {
	a := NewAgent(t, Config{Checkpoint: true})
	endpoint := a.Addr()
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)

	a.SetRefuse(RefuseConnections)
	s.waitEnd(t)
	if _, err := net.Dial("tcp", endpoint); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v, want connection refused", err)
	}
	if _, err := e.subscribe(nil, nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("SUBSCRIBE while refusing: %v, want connection refused", err)
	}

	a.SetRefuse(RefuseNone)
	if a.Addr() != endpoint {
		t.Fatalf("endpoint moved from %s to %s", endpoint, a.Addr())
	}
	s2 := e.mustSubscribe(nil, nil)
	if err := a.Heartbeat(); err != nil {
		t.Fatal(err)
	}
	if ev := s2.nextAny(t); ev.Type != executor.Event_HEARTBEAT {
		t.Fatalf("got %v, want HEARTBEAT", ev.Type)
	}
}

func TestPeriodicHeartbeats(t *testing.T) {
	a := NewAgent(t, Config{HeartbeatInterval: 20 * time.Millisecond})
	e := newTestExecutor(t, a, mediaTypes[1])
	s := e.mustSubscribe(nil, nil)
	for range 3 {
		if ev := s.nextAny(t); ev.Type != executor.Event_HEARTBEAT {
			t.Fatalf("got %v, want HEARTBEAT", ev.Type)
		}
	}
}

func TestHeartbeatOnDemand(t *testing.T) {
	a := NewAgent(t, Config{})
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)
	if err := a.Heartbeat(); err != nil {
		t.Fatal(err)
	}
	if ev := s.nextAny(t); ev.Type != executor.Event_HEARTBEAT {
		t.Fatalf("got %v, want the HEARTBEAT sent by Heartbeat()", ev.Type)
	}
	s.barrier(t, a) // and no periodic one with the default interval
	n := 0
	for _, ev := range a.Events() {
		if ev.Event.Type == executor.Event_HEARTBEAT {
			n++
		}
	}
	if n != 1 {
		t.Errorf("Events() holds %d HEARTBEATs, want 1", n)
	}
}

func TestExecutorTerminated(t *testing.T) {
	a := NewAgent(t, Config{})
	a.AllowViolations()
	e := newTestExecutor(t, a, mediaTypes[0])
	for _, id := range []string{"running", "finished", "staging"} {
		if err := a.Launch(a.NewTask(id)); err != nil {
			t.Fatal(err)
		}
	}
	s := e.mustSubscribe(nil, nil)
	for range 3 {
		s.expect(t, executor.Event_LAUNCH)
	}
	running, finished := e.status("running", mesos.TASK_RUNNING), e.status("finished", mesos.TASK_FINISHED)
	e.mustUpdate(running)
	s.expectAck(t, running)
	e.mustUpdate(finished)
	s.expectAck(t, finished)

	a.ExecutorTerminated("")
	s.waitEnd(t)
	for _, id := range []string{"running", "staging"} {
		acc := a.Accepted(id)
		last := acc[len(acc)-1].Status
		if last.GetState() != mesos.TASK_FAILED || last.GetSource() != mesos.SOURCE_AGENT ||
			last.GetReason() != mesos.REASON_EXECUTOR_TERMINATED || last.GetMessage() != "Executor terminated" {
			t.Errorf("%s: last update %v", id, last)
		}
	}
	if acc := a.Accepted("finished"); len(acc) != 1 {
		t.Errorf("finished task got %d accepted updates, want 1", len(acc))
	}

	err := e.update(e.status("running", mesos.TASK_FINISHED))
	if err == nil || !strings.HasSuffix(err.Error(), ": Executor cannot be found") {
		t.Errorf("UPDATE after termination: %v", err)
	}
	if v := a.Violations(); len(v) != 1 {
		t.Errorf("Violations() = %q, want the one UPDATE", v)
	}
}

// An UPDATE answered 202 is processed before a later termination, as the
// agent handles them in order.
func TestExecutorTerminatedAfterPendingUpdate(t *testing.T) {
	a, e, _ := launchedTask(t, Config{}, mediaTypes[0])
	e.mustUpdate(e.status("t1", mesos.TASK_FINISHED))
	a.ExecutorTerminated("Abnormal executor termination: exit 1")
	acc := a.Accepted("t1")
	if len(acc) != 1 || acc[0].Status.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("Accepted(t1) = %v, want only the executor's TASK_FINISHED", acc)
	}
}

func TestShutdown(t *testing.T) {
	a := NewAgent(t, Config{Checkpoint: true})
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	s.expect(t, executor.Event_SHUTDOWN)

	// Subscribing while TERMINATING is answered with SHUTDOWN and no SUBSCRIBED.
	s2, err := e.subscribe(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.expect(t, executor.Event_SHUTDOWN)
	s2.waitEnd(t)
	if err := a.Launch(a.NewTask("late")); err == nil {
		t.Error("Launch to a terminating executor succeeded")
	}
	if err := a.WaitForSubscriptions(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if n := a.subscriptionCount(); n != 1 {
		t.Errorf("%d subscriptions counted, want 1", n)
	}
}

// MESOS-8411: an executor whose only task was killed before delivery is shut
// down when it subscribes.
func TestKillQueuedTask(t *testing.T) {
	a := NewAgent(t, Config{})
	if err := a.Launch(a.NewTask("t1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Kill("t1", nil); err != nil {
		t.Fatal(err)
	}
	killed, err := a.WaitForState(waitCtx(t), "t1", mesos.TASK_KILLED)
	if err != nil {
		t.Fatal(err)
	}
	if killed.Via != "agent" || killed.Status.GetReason() != mesos.REASON_TASK_KILLED_DURING_LAUNCH {
		t.Errorf("kill update = %+v", killed)
	}
	e := newTestExecutor(t, a, mediaTypes[0])
	s, err := e.subscribe(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.expect(t, executor.Event_SHUTDOWN)
	s.waitEnd(t)
}

func TestKillNeedsALiveSubscription(t *testing.T) {
	a, _, s := launchedTask(t, Config{Checkpoint: true}, mediaTypes[0])
	a.DropConnection()
	s.waitEnd(t)
	if err := a.Kill("t1", nil); err == nil {
		t.Error("Kill without a subscription succeeded")
	}
	if err := a.Kill("nope", nil); err == nil {
		t.Error("Kill of an unknown task succeeded")
	}
	for name, send := range map[string]func() error{
		"Message":   func() error { return a.Message(nil) },
		"Heartbeat": a.Heartbeat,
		"SendError": func() error { return a.SendError("x") },
	} {
		if send() == nil {
			t.Errorf("%s without a subscription succeeded", name)
		}
	}
}

func TestLaunchValidation(t *testing.T) {
	a := NewAgent(t, Config{})
	noAgent := a.NewTask("no-agent-id")
	noAgent.AgentID = mesos.AgentID{}
	if err := a.Launch(noAgent); err != nil {
		t.Errorf("Launch without agent_id: %v", err)
	}
	noExecutor := a.NewTask("no-executor")
	noExecutor.Executor = nil
	if err := a.Launch(noExecutor); err != nil {
		t.Errorf("Launch without executor: %v", err)
	}
	bad := map[string]func(*mesos.TaskInfo){
		"other agent":    func(t *mesos.TaskInfo) { t.AgentID.Value = "elsewhere" },
		"no task id":     func(t *mesos.TaskInfo) { t.TaskID.Value = "" },
		"no name":        func(t *mesos.TaskInfo) { t.Name = "" },
		"command task":   func(t *mesos.TaskInfo) { t.Command = &mesos.CommandInfo{Value: ptr("true")} },
		"other executor": func(t *mesos.TaskInfo) { t.Executor.ExecutorID.Value = "other" },
		"other framework": func(t *mesos.TaskInfo) {
			t.Executor.FrameworkID = &mesos.FrameworkID{Value: "other"}
		},
		"different executor info": func(t *mesos.TaskInfo) { t.Executor.Name = ptr("changed") },
		"duplicate id":            func(t *mesos.TaskInfo) { t.TaskID.Value = "no-executor" },
	}
	for name, mutate := range bad {
		task := a.NewTask("bad-" + strings.ReplaceAll(name, " ", "-"))
		mutate(&task)
		if err := a.Launch(task); err == nil {
			t.Errorf("Launch with %s succeeded", name)
		}
	}
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)
	for _, want := range []string{"no-agent-id", "no-executor"} {
		task := s.expect(t, executor.Event_LAUNCH).Launch.Task
		if task.TaskID.Value != want || task.AgentID.Value != a.Config().AgentID || task.Executor == nil ||
			task.Executor.ExecutorID.Value != a.Config().ExecutorID {
			t.Errorf("LAUNCH = %v", task)
		}
	}
}

func TestAuthToken(t *testing.T) {
	a := NewAgent(t, Config{AuthToken: "s3cret"})
	_, err := newTestExecutor(t, a, mediaTypes[0]).subscribe(nil, nil)
	if !apierrors.CodeNotAuthenticated.Matches(err) {
		t.Fatalf("SUBSCRIBE without token: %v, want 401", err)
	}
	_, err = newTestExecutor(t, a, mediaTypes[0], httpcli.DefaultHeader("Authorization", "Bearer wrong")).subscribe(nil, nil)
	if !apierrors.CodeNotAuthenticated.Matches(err) {
		t.Fatalf("SUBSCRIBE with a wrong token: %v, want 401", err)
	}
	e := newTestExecutor(t, a, mediaTypes[0], httpcli.DefaultHeader("Authorization", "Bearer s3cret"))
	e.mustSubscribe(nil, nil)
	if c := a.Calls()[0]; c.StatusCode != 401 || c.Decoded {
		t.Errorf("first call record = %+v", c)
	}
	if v := a.Violations(); len(v) != 0 {
		t.Errorf("401s recorded as violations: %q", v)
	}
}

// A new SUBSCRIBE replaces the current stream, which the agent ends.
func TestSecondSubscribeReplacesStream(t *testing.T) {
	a := NewAgent(t, Config{})
	e := newTestExecutor(t, a, mediaTypes[0])
	s1 := e.mustSubscribe(nil, nil)
	s2 := e.mustSubscribe(nil, nil)
	s1.waitEnd(t)
	if err := a.Message([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if ev := s2.expect(t, executor.Event_MESSAGE); string(ev.Message.Data) != "hi" {
		t.Errorf("MESSAGE data %q", ev.Message.Data)
	}
	ev, err := a.WaitForEvent(waitCtx(t), func(e SentEvent) bool { return e.Event.Type == executor.Event_MESSAGE })
	if err != nil || ev.Stream != 2 {
		t.Errorf("MESSAGE sent on stream %d (%v), want 2", ev.Stream, err)
	}
}

// An executor that closes its own stream stays RUNNING for the agent (only
// process exit counts), so calls are still accepted, but ACKs are lost.
func TestExecutorClosesItsStream(t *testing.T) {
	a, e, s := launchedTask(t, Config{}, mediaTypes[0])
	s.close()
	if err := a.waitNoLiveStream(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	running := e.status("t1", mesos.TASK_RUNNING)
	e.mustUpdate(running)
	if _, err := a.WaitForState(waitCtx(t), "t1", mesos.TASK_RUNNING); err != nil {
		t.Fatal(err)
	}
	if a.Updates()[0].Acked {
		t.Error("update Acked without a stream")
	}
	s2 := e.mustSubscribe([]mesos.TaskInfo{a.NewTask("t1")}, []executor.Call_Update{{Status: running}})
	s2.expectAck(t, running)
}

func TestWaitForUpdatesReadsTheStreamOfUpdatesInOrder(t *testing.T) {
	a, e, s := launchedTask(t, Config{}, mediaTypes[0])

	// Nothing yet: the wait ends with the context.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if got, err := a.WaitForUpdates(short, 0); err == nil || got != nil {
		t.Fatalf("WaitForUpdates with no update = %v, %v; want the context's error", got, err)
	}

	starting := e.status("t1", mesos.TASK_STARTING)
	e.mustUpdate(starting)
	s.expectAck(t, starting)
	running := e.status("t1", mesos.TASK_RUNNING)
	e.mustUpdate(running)
	s.expectAck(t, running)

	got, err := a.WaitForUpdates(waitCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Status.GetState() != mesos.TASK_STARTING || got[1].Status.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("WaitForUpdates(0) = %v, want STARTING then RUNNING", got)
	}

	// A waiter past the last update is woken by the next one only.
	next := make(chan []Update, 1)
	go func() {
		fresh, err := a.WaitForUpdates(waitCtx(t), 2)
		if err != nil {
			t.Error(err)
		}
		next <- fresh
	}()
	finished := e.status("t1", mesos.TASK_FINISHED)
	e.mustUpdate(finished)
	s.expectAck(t, finished)
	fresh := <-next
	if len(fresh) != 1 || fresh[0].Status.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("WaitForUpdates(2) = %v, want only TASK_FINISHED", fresh)
	}
}

func TestLaunchGroup(t *testing.T) {
	a := NewAgent(t, Config{})
	if err := a.LaunchGroup(a.NewTask("g1")); err == nil {
		t.Fatal("LaunchGroup without a subscription succeeded")
	}
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)
	if err := a.LaunchGroup(a.NewTask("g1"), a.NewTask("g1")); err == nil {
		t.Fatal("a group naming one task twice was accepted")
	}
	if err := a.LaunchGroup(a.NewTask("g1"), a.NewTask("g2")); err != nil {
		t.Fatal(err)
	}
	ev := s.nextAny(t)
	if ev.Type != executor.Event_LAUNCH_GROUP || len(ev.GetLaunchGroup().TaskGroup.Tasks) != 2 {
		t.Fatalf("got %v, want LAUNCH_GROUP with two tasks", ev.Type)
	}
	for _, id := range []string{"g1", "g2"} {
		if state, ok := a.TaskState(id); !ok || state != mesos.TASK_STAGING {
			t.Errorf("task %s: %v (known %t), want STAGING", id, state, ok)
		}
	}
}

func TestInjectEvent(t *testing.T) {
	a := NewAgent(t, Config{})
	kill := executor.Event{Type: executor.Event_KILL, Kill: &executor.Event_Kill{TaskID: mesos.TaskID{Value: "never-launched"}}}
	if err := a.InjectEvent(kill); err == nil {
		t.Fatal("InjectEvent without a subscription succeeded")
	}
	e := newTestExecutor(t, a, mediaTypes[0])
	s := e.mustSubscribe(nil, nil)
	if err := a.InjectEvent(kill); err != nil {
		t.Fatal(err)
	}
	if ev := s.nextAny(t); ev.Type != executor.Event_KILL || ev.GetKill().TaskID.Value != "never-launched" {
		t.Fatalf("got %v, want the injected KILL", ev.Type)
	}
	if _, known := a.TaskState("never-launched"); known {
		t.Error("an injected event changed the agent's task records")
	}
}
