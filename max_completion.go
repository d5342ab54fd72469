package main

// max_completion.go owns TaskInfo.max_completion_time: reading it, the
// timer that starts when LAUNCH is handled, and the stop its expiry asks
// for. task.go's launch and supervise loop listen to the timer; the stop
// itself is the stopper's (the stop signal, the task's grace, SIGKILL, no
// TASK_KILLING), and exit.go turns it into TASK_FAILED with
// REASON_MAX_COMPLETION_TIME_REACHED.

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// maxCompletionTime reads TaskInfo.max_completion_time: 0 (no limit) when
// it is absent or zero. The master refuses negative values; an executor
// handed one anyway fails the task as invalid.
func maxCompletionTime(info *mesos.TaskInfo) (time.Duration, error) {
	d := info.GetMaxCompletionTime()
	if d == nil {
		return 0, nil
	}
	ns := d.GetNanoseconds()
	if ns < 0 {
		return 0, fmt.Errorf("invalid TaskInfo: max_completion_time is negative (%d ns); it must be 0 (no limit) or positive", ns)
	}
	return time.Duration(ns), nil
}

// completionTimer is one task's max_completion_time timer. Its channel C
// is nil, and never fires, when the task has no limit or an invalid one.
type completionTimer struct {
	limit time.Duration
	err   error // the TaskInfo's value is invalid; the launch fails on it
	timer *time.Timer
	C     <-chan time.Time
}

// startCompletionTimer starts the task's timer; call it when LAUNCH is
// handled, before anything else happens to the task.
func startCompletionTimer(info *mesos.TaskInfo) *completionTimer {
	limit, err := maxCompletionTime(info)
	c := &completionTimer{limit: limit, err: err}
	if err == nil && limit > 0 {
		c.timer = time.NewTimer(limit)
		c.C = c.timer.C
	}
	return c
}

// stop releases the timer; safe on a timer that never started or fired.
func (c *completionTimer) stop() {
	if c != nil && c.timer != nil {
		c.timer.Stop()
	}
}

// invalid is the TaskInfo's max_completion_time error, if any.
func (c *completionTimer) invalid() error {
	if c == nil {
		return nil
	}
	return c.err
}

// channel is C, or nil (never ready) for a runner without a timer.
func (c *completionTimer) channel() <-chan time.Time {
	if c == nil {
		return nil
	}
	return c.C
}

// expired is the stop the timer's expiry asks for: the task's own grace
// (kill_policy, else EXECUTOR_KILL_TASK_TIMEOUT) between the stop signal
// and SIGKILL.
func (c *completionTimer) expired() stopRequest {
	return stopRequest{cause: causeMaxCompletion, grace: -1,
		message: fmt.Sprintf("max_completion_time of %s reached", c.limit)}
}
