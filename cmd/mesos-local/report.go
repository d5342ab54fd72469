package main

import (
	"fmt"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// Exit codes of mesos-local; the usage text documents them.
const (
	exitFinished = 0   // TASK_FINISHED, or a healthy task stopped by -timeout with -timeout-ok
	exitFailed   = 1   // TASK_FAILED
	exitUsage    = 2   // bad flags or a bad task file: nothing was started
	exitKilled   = 3   // TASK_KILLED (Ctrl-C, SIGTERM, SHUTDOWN)
	exitOther    = 4   // another terminal state: TASK_ERROR, TASK_LOST, TASK_DROPPED, TASK_GONE…
	exitLocal    = 5   // mesos-local could not run the task (sandbox, executor, agent)
	exitTimedOut = 124 // TASK_KILLED because -timeout expired (as timeout(1))
)

// stateColumnAt is the width of the state column of the output.
const stateColumnAt = 16

// timePrefix renders the time since launch that starts every line.
func timePrefix(elapsed time.Duration) string {
	return fmt.Sprintf("%9s", fmt.Sprintf("+%.3fs", elapsed.Seconds()))
}

// eventLine is a line about something mesos-local or its Sidecar did.
func eventLine(elapsed time.Duration, event, text string) string {
	return timePrefix(elapsed) + "  " + padState(event) + text
}

// statusLine renders a status update as one line: time since launch, state,
// reason, healthy, message, and who sent it when that was not the executor.
func statusLine(elapsed time.Duration, u mesostest.Update) string {
	s := u.Status
	var fields []string
	if s.Reason != nil {
		fields = append(fields, "reason="+s.Reason.String())
	}
	if s.Healthy != nil {
		fields = append(fields, fmt.Sprintf("healthy=%t", *s.Healthy))
	}
	if s.Message != nil && *s.Message != "" {
		fields = append(fields, fmt.Sprintf("message=%q", *s.Message))
	}
	if s.GetSource() == mesos.SOURCE_AGENT {
		fields = append(fields, "(sent by the agent)")
	}
	if u.Dropped != "" {
		fields = append(fields, fmt.Sprintf("(dropped by the agent: %s)", u.Dropped))
	}
	return strings.TrimRight(timePrefix(elapsed)+"  "+padState(s.GetState().String())+strings.Join(fields, "  "), " ")
}

func padState(state string) string {
	if len(state) >= stateColumnAt {
		return state + " "
	}
	return state + strings.Repeat(" ", stateColumnAt-len(state))
}

// outcome is what mesos-local knows when the executor has gone.
type outcome struct {
	final            *mesos.TaskStatus // the task's terminal update; nil if none
	killedByTimeout  bool              // -timeout sent the KILL
	healthyAtTimeout bool              // running, and last reported healthy, when -timeout hit
	timeoutOK        bool              // -timeout-ok
}

// exitCode maps the task's end to mesos-local's exit code.
func (o outcome) exitCode() int {
	if o.final == nil {
		return exitLocal
	}
	switch o.final.GetState() {
	case mesos.TASK_FINISHED:
		return exitFinished
	case mesos.TASK_FAILED:
		return exitFailed
	case mesos.TASK_KILLED:
		switch {
		case o.killedByTimeout && o.timeoutOK && o.healthyAtTimeout:
			return exitFinished
		case o.killedByTimeout:
			return exitTimedOut
		}
		return exitKilled
	}
	return exitOther
}
