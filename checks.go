package main

// Mesos checks (TaskInfo.check): results reported in
// TaskStatus.check_status, never a kill. The check's settings and
// validation, the CheckStatusInfo built from an attempt (health_probe.go
// makes it), and the bookkeeping that puts the latest check_status on every
// status the task sends and a TASK_RUNNING update with
// REASON_TASK_CHECK_STATUS_UPDATED whenever it changes. Also the handling of
// health verdicts in the supervise loop (health.go runs the health check,
// health_docker.go watches Docker's HEALTHCHECK).

import (
	"errors"
	"fmt"
	"sync"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

// checkConfig is a validated TaskInfo.check.
type checkConfig struct {
	checkTiming
	kind  mesos.CheckInfo_Type
	probe probeSpec
}

// parseCheck validates a TaskInfo.check as Mesos does and applies its
// defaults (delay 15 s, interval 10 s, timeout 20 s, 0 = none). HTTP
// checks are plain HTTP, as in Mesos.
func parseCheck(c *mesos.CheckInfo) (*checkConfig, error) {
	cfg := &checkConfig{kind: c.Type}
	var err error
	if cfg.checkTiming, err = parseTiming("check", c.DelaySeconds, c.IntervalSeconds, c.TimeoutSeconds,
		mesos.Default_CheckInfo_DelaySeconds, mesos.Default_CheckInfo_IntervalSeconds, mesos.Default_CheckInfo_TimeoutSeconds); err != nil {
		return nil, err
	}
	switch c.Type {
	case mesos.CheckInfo_COMMAND:
		if c.Command == nil {
			return nil, errors.New("check.type is COMMAND but check.command is not set")
		}
		cfg.probe, err = commandProbeSpec("check.command.command", &c.Command.Command)
		if err != nil {
			return nil, err
		}
	case mesos.CheckInfo_HTTP:
		if c.HTTP == nil {
			return nil, errors.New("check.type is HTTP but check.http is not set")
		}
		if cfg.probe, err = httpProbeSpec("check.http", "http", c.HTTP.Path, c.HTTP.Port, false); err != nil {
			return nil, err
		}
	case mesos.CheckInfo_TCP:
		if c.TCP == nil {
			return nil, errors.New("check.type is TCP but check.tcp is not set")
		}
		if cfg.probe, err = tcpProbeSpec("check.tcp", c.TCP.Port, false); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("check.type must be COMMAND, HTTP or TCP (got %s)", c.Type)
	}
	return cfg, nil
}

// emptyCheckStatus is the check_status before the first result, and after
// an attempt that errored or timed out: the type's sub-message, empty.
func emptyCheckStatus(kind mesos.CheckInfo_Type) *mesos.CheckStatusInfo {
	status := &mesos.CheckStatusInfo{Type: kind.Enum()}
	switch kind {
	case mesos.CheckInfo_COMMAND:
		status.Command = &mesos.CheckStatusInfo_Command{}
	case mesos.CheckInfo_HTTP:
		status.HTTP = &mesos.CheckStatusInfo_Http{}
	case mesos.CheckInfo_TCP:
		status.TCP = &mesos.CheckStatusInfo_Tcp{}
	}
	return status
}

// checkStatusFrom is the check_status of one attempt: the command's exit
// code, the HTTP status code (any), or whether the TCP connection was
// established; empty when the attempt got no answer.
func checkStatusFrom(kind mesos.CheckInfo_Type, out probeOutcome) *mesos.CheckStatusInfo {
	status := emptyCheckStatus(kind)
	switch kind {
	case mesos.CheckInfo_COMMAND:
		if out.err == nil {
			code := int32(out.code)
			status.Command.ExitCode = &code
		}
	case mesos.CheckInfo_HTTP:
		if out.err == nil {
			code := uint32(out.code)
			status.HTTP.StatusCode = &code
		}
	case mesos.CheckInfo_TCP:
		if out.err == nil || out.refused {
			succeeded := out.err == nil
			status.TCP.Succeeded = &succeeded
		}
	}
	return status
}

// describeCheckStatus is a CheckStatusInfo for a status message.
func describeCheckStatus(cs *mesos.CheckStatusInfo) string {
	switch {
	case cs.Command != nil && cs.Command.ExitCode != nil:
		return fmt.Sprintf("command exit code %d", cs.Command.GetExitCode())
	case cs.HTTP != nil && cs.HTTP.StatusCode != nil:
		return fmt.Sprintf("HTTP status %d", cs.HTTP.GetStatusCode())
	case cs.TCP != nil && cs.TCP.Succeeded != nil:
		return fmt.Sprintf("TCP connection succeeded: %t", cs.TCP.GetSucceeded())
	}
	return "no result (the check errored or timed out)"
}

// checkStatusTracker keeps the task's latest check_status and its latest
// non-terminal status, so that every status carries the check's result and
// a change of result repeats the latest status (healthy and all).
type checkStatusTracker struct {
	mu      sync.Mutex
	current *mesos.CheckStatusInfo
	last    *mesos.TaskStatus
}

// attachCheckStatus makes every status the task sends from now on carry
// check_status, when the task has a valid check; an invalid one fails the
// launch (planChecks) and adds nothing.
func (t *taskRunner) attachCheckStatus() {
	if t.info.Check == nil {
		return
	}
	cfg, err := parseCheck(t.info.Check)
	if err != nil {
		return
	}
	tracker := &checkStatusTracker{current: emptyCheckStatus(cfg.kind)}
	t.checkStatus = tracker
	send := t.send
	t.send = func(status mesos.TaskStatus, terminal bool) {
		tracker.mu.Lock()
		status.CheckStatus = tracker.current
		if !terminal {
			last := status
			tracker.last = &last
		}
		tracker.mu.Unlock()
		send(status, terminal)
	}
}

// onCheckResult sends a TASK_RUNNING update with
// REASON_TASK_CHECK_STATUS_UPDATED when the check's result changed.
func (t *taskRunner) onCheckResult(result *mesos.CheckStatusInfo, logger *log.Entry) {
	tracker := t.checkStatus
	if tracker == nil {
		return
	}
	tracker.mu.Lock()
	changed := !tracker.current.Equal(result)
	var update mesos.TaskStatus
	if changed {
		tracker.current = result
		if tracker.last != nil {
			update = *tracker.last
		} else {
			update = newStatus(t.info.TaskID, mesos.TASK_RUNNING, nil, "")
		}
	}
	tracker.mu.Unlock()
	if !changed {
		return
	}
	message := "check status updated: " + describeCheckStatus(result)
	logger.WithField("check_status", describeCheckStatus(result)).Info("Mesos check result changed")
	update.State = mesos.TASK_RUNNING.Enum()
	update.Reason = mesos.REASON_TASK_CHECK_STATUS_UPDATED.Enum()
	update.Message = &message
	t.send(update, false)
}

// sendHealthUpdate reports a change of the task's health, whichever source
// (Sidecar, the Mesos health check, Docker's HEALTHCHECK) saw it: a
// TASK_RUNNING update with healthy set and the network infos of
// TASK_RUNNING, as Mesos' Docker executor sends them.
func (t *taskRunner) sendHealthUpdate(healthy bool, message string, containerStatus *mesos.ContainerStatus) {
	update := newStatus(t.info.TaskID, mesos.TASK_RUNNING, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), message)
	update.Healthy = &healthy
	update.ContainerStatus = containerStatus
	t.send(update, false)
}

// Health verdicts' kill log lines, one a source: onHealthVerdict's
// killing.
const (
	mesosHealthKilling  = "the Mesos health check failed too many times; killing the task"
	dockerHealthKilling = "the container stayed unhealthy by Docker's HEALTHCHECK; killing the task"
)

// onHealthVerdict sends the TASK_RUNNING update a health verdict asks for
// (the Mesos health check's or Docker's HEALTHCHECK's) and, when the check
// has failed often enough or the container stayed unhealthy long enough,
// logs killing (the source's line) and returns the stop request that kills
// the task (TASK_KILLED, healthy=false, the same for both sources).
func (t *taskRunner) onHealthVerdict(verdict healthVerdict, killing string, containerStatus *mesos.ContainerStatus, logger *log.Entry) *stopRequest {
	if verdict.update {
		t.sendHealthUpdate(verdict.healthy, verdict.message, containerStatus)
	}
	if !verdict.kill {
		return nil
	}
	logger.WithField("reason", verdict.message).Error(killing)
	return &stopRequest{cause: causeHealthCheckFailed, grace: -1, message: verdict.message}
}
