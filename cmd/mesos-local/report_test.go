package main

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

func TestStatusLine(t *testing.T) {
	cases := []struct {
		name    string
		elapsed time.Duration
		update  mesostest.Update
		want    string
	}{
		{"state only", 12 * time.Millisecond,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_STARTING.Enum()}},
			"  +0.012s  TASK_STARTING"},
		{"message", 404 * time.Millisecond,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_RUNNING.Enum(), Message: ptr("container 1a2b is running")}},
			`  +0.404s  TASK_RUNNING    message="container 1a2b is running"`},
		{"health report", 1404 * time.Millisecond,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_RUNNING.Enum(), Reason: mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(),
				Healthy: ptr(true), Message: ptr(`service 1a2b on Sidecar host "vm" is ALIVE`)}},
			`  +1.404s  TASK_RUNNING    reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=true  message="service 1a2b on Sidecar host \"vm\" is ALIVE"`},
		{"unhealthy, multi-line message", 95 * time.Second,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_FAILED.Enum(), Healthy: ptr(false), Message: ptr("first\nsecond")}},
			` +95.000s  TASK_FAILED     healthy=false  message="first\nsecond"`},
		{"from the agent", 2 * time.Second,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_FAILED.Enum(), Source: mesos.SOURCE_AGENT.Enum(),
				Reason: mesos.REASON_EXECUTOR_TERMINATED.Enum(), Message: ptr("Executor terminated")}},
			`  +2.000s  TASK_FAILED     reason=REASON_EXECUTOR_TERMINATED  message="Executor terminated"  (sent by the agent)`},
		{"dropped", 3 * time.Second,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_RUNNING.Enum()}, Dropped: "Task is already terminated with state TASK_KILLED"},
			"  +3.000s  TASK_RUNNING    (dropped by the agent: Task is already terminated with state TASK_KILLED)"},
		{"a long state name", time.Second,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_GONE_BY_OPERATOR.Enum(), Message: ptr("m")}},
			`  +1.000s  TASK_GONE_BY_OPERATOR message="m"`},
		{"empty message left out", time.Second,
			mesostest.Update{Status: mesos.TaskStatus{State: mesos.TASK_KILLING.Enum(), Message: ptr("")}},
			"  +1.000s  TASK_KILLING"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusLine(tc.elapsed, tc.update); got != tc.want {
				t.Errorf("\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func TestEventLine(t *testing.T) {
	got := eventLine(8001*time.Millisecond, "kill", "-timeout 8s reached: sending KILL")
	if want := "  +8.001s  kill            -timeout 8s reached: sending KILL"; got != want {
		t.Errorf("\n got: %q\nwant: %q", got, want)
	}
}

func TestExitCode(t *testing.T) {
	status := func(state mesos.TaskState) *mesos.TaskStatus { return &mesos.TaskStatus{State: state.Enum()} }
	cases := []struct {
		name string
		o    outcome
		want int
	}{
		{"finished", outcome{final: status(mesos.TASK_FINISHED)}, 0},
		{"finished although the timeout hit", outcome{final: status(mesos.TASK_FINISHED), killedByTimeout: true}, 0},
		{"failed", outcome{final: status(mesos.TASK_FAILED)}, 1},
		{"failed after the timeout", outcome{final: status(mesos.TASK_FAILED), killedByTimeout: true, timeoutOK: true, healthyAtTimeout: true}, 1},
		{"killed by Ctrl-C", outcome{final: status(mesos.TASK_KILLED), timeoutOK: true}, 3},
		{"killed by the timeout", outcome{final: status(mesos.TASK_KILLED), killedByTimeout: true}, 124},
		{"killed by the timeout, healthy, without -timeout-ok", outcome{final: status(mesos.TASK_KILLED), killedByTimeout: true, healthyAtTimeout: true}, 124},
		{"killed by the timeout, not healthy, -timeout-ok", outcome{final: status(mesos.TASK_KILLED), killedByTimeout: true, timeoutOK: true}, 124},
		{"killed by the timeout, healthy, -timeout-ok", outcome{final: status(mesos.TASK_KILLED), killedByTimeout: true, timeoutOK: true, healthyAtTimeout: true}, 0},
		{"lost", outcome{final: status(mesos.TASK_LOST)}, 4},
		{"dropped", outcome{final: status(mesos.TASK_DROPPED)}, 4},
		{"error", outcome{final: status(mesos.TASK_ERROR)}, 4},
		{"no terminal update", outcome{}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.exitCode(); got != tc.want {
				t.Errorf("exit code %d, want %d", got, tc.want)
			}
		})
	}
}
