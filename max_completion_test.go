package main

// Unit tests of TaskInfo.max_completion_time against the fake runtime.

import (
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func withMaxCompletion(d time.Duration) taskOption {
	return func(task *mesos.TaskInfo) {
		task.MaxCompletionTime = &mesos.DurationInfo{Nanoseconds: int64(d)}
	}
}

func TestMaxCompletionTimeRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		info    mesos.TaskInfo
		want    time.Duration
		wantErr string
	}{
		{"absent", mesos.TaskInfo{}, 0, ""},
		{"zero is no limit", unitTaskInfo(withMaxCompletion(0)), 0, ""},
		{"positive", unitTaskInfo(withMaxCompletion(1500 * time.Millisecond)), 1500 * time.Millisecond, ""},
		{"negative", unitTaskInfo(withMaxCompletion(-time.Second)), 0, "max_completion_time is negative"},
	} {
		got, err := maxCompletionTime(&tc.info)
		if tc.wantErr == "" && (err != nil || got != tc.want) {
			t.Errorf("%s: %s, %v; want %s", tc.name, got, err, tc.want)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestTaskUnitMaxCompletionTimeStopsTheContainer(t *testing.T) {
	engine := newUnitRuntime()
	// The process ignores the stop signal: SIGKILL after the task's own
	// grace (its kill_policy) ends it.
	engine.ignoreStopSignal = true
	info := unitTaskInfo(withMaxCompletion(300 * time.Millisecond))
	info.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(200 * time.Millisecond)}}
	u := startUnitTask(t, engine, unitConfig{info: info})
	c := engine.running(t)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_MAX_COMPLETION_TIME_REACHED.Enum(), "max_completion_time of 300ms reached")
	if !strings.Contains(final.GetMessage(), "(SIGKILL)") {
		t.Errorf("message %q does not say how the container ended", final.GetMessage())
	}
	stops := engine.callsOf("stopContainer")
	if len(stops) != 1 || stops[0].grace != 200*time.Millisecond {
		t.Errorf("stops %v, want one with the kill_policy's grace of 200ms", stops)
	}
	if signals := engine.signalsOf(c); len(signals) != 2 || signals[0].name != "SIGTERM" || signals[1].name != "SIGKILL" {
		t.Errorf("signals %v, want the stop signal then SIGKILL", signals)
	}
	if got := u.statuses.states(); !slices.Equal(got, []mesos.TaskState{mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_FAILED}) {
		t.Errorf("updates %v: no TASK_KILLING for a max_completion_time stop", got)
	}
	if u.failed.Load() {
		t.Error("a task that reached its max_completion_time marked the executor failed")
	}
	assertNoFakeContainer(t, engine)
}

func TestTaskUnitMaxCompletionTimeCancelledByAKill(t *testing.T) {
	engine := newUnitRuntime()
	engine.ignoreStopSignal = true
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withMaxCompletion(400 * time.Millisecond))})
	engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	// The kill's grace outlasts the deadline: the timer must not cut it
	// short nor change the outcome.
	u.kill(time.Second)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "killed by the scheduler")
	if stops := engine.callsOf("stopContainer"); len(stops) != 1 || stops[0].grace != time.Second {
		t.Errorf("stops %v, want only the kill's, with its grace of 1s", stops)
	}
}

func TestTaskUnitMaxCompletionTimeTaskFinishingFirst(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withMaxCompletion(time.Hour))})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	engine.exit(c.id, 0)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FINISHED, nil, "exited with status 0")
	if stops := engine.callsOf("stopContainer"); len(stops) != 0 {
		t.Errorf("stopped a container that exited by itself: %v", stops)
	}
}

func TestTaskUnitMaxCompletionTimeDuringThePull(t *testing.T) {
	// The image is missing and its pull hangs: the deadline aborts the
	// launch, and no container is created.
	engine := newFakeRuntime()
	pulling := engine.block("pullImage")
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withMaxCompletion(200 * time.Millisecond))})
	select {
	case <-pulling:
	case <-time.After(5 * time.Second):
		t.Fatal("the pull never started")
	}
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_MAX_COMPLETION_TIME_REACHED.Enum(), "max_completion_time of 200ms reached during the launch")
	// The first create found the image missing; none follows the pull.
	methods := engine.methods()
	if slices.Contains(methods[slices.Index(methods, "pullImage"):], "createContainer") {
		t.Errorf("created a container after the deadline: %v", methods)
	}
	if u.statuses.has(mesos.TASK_RUNNING) {
		t.Error("TASK_RUNNING sent for a launch the deadline aborted")
	}
	assertNoFakeContainer(t, engine)
}

func TestTaskUnitNegativeMaxCompletionTimeIsInvalid(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withMaxCompletion(-time.Second))})
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID.Enum(), "max_completion_time is negative")
	if calls := engine.methods(); len(calls) != 0 {
		t.Errorf("Docker was called for an invalid task: %v", calls)
	}
	if !u.failed.Load() {
		t.Error("an invalid task did not mark the executor failed")
	}
}
