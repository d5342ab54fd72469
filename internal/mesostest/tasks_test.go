package mesostest

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestIsTerminalMatchesMesos(t *testing.T) {
	terminal := map[mesos.TaskState]bool{
		mesos.TASK_FINISHED: true, mesos.TASK_FAILED: true, mesos.TASK_KILLED: true, mesos.TASK_ERROR: true,
		mesos.TASK_LOST: true, mesos.TASK_DROPPED: true, mesos.TASK_GONE: true, mesos.TASK_GONE_BY_OPERATOR: true,
	}
	for value := range mesos.TaskState_name {
		state := mesos.TaskState(value)
		if got := IsTerminal(state); got != terminal[state] {
			t.Errorf("IsTerminal(%s) = %v, want %v", state, got, terminal[state])
		}
	}
}
