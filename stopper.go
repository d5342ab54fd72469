package main

// The stopper: how a running task's container is stopped (TASK_KILLING,
// draining in Sidecar, the stop signal, SIGKILL after the grace period,
// retries), driven from taskRunner.supervise's loop.

import (
	"context"
	"errors"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

// stopper drives the stop of a running container: it sends TASK_KILLING
// once, drains the service in Sidecar first when asked to, asks Docker to
// stop the container, retries when Docker fails, and shortens the grace
// period when a later request asks for less.
type stopper struct {
	task    *taskRunner
	id      string
	logger  *log.Entry
	sidecar *sidecarWatcher // nil when Sidecar is off for this task

	first *stopRequest
	grace time.Duration // grace of the stop to issue after draining
	// budgetEnd is the earliest deadline of the requests: the terminal
	// update must be on its way by then.
	budgetEnd time.Time
	deadline  time.Time // when SIGKILL is due under the current stop
	issued    bool
	retry     <-chan time.Time
	cancels   []context.CancelFunc

	// Draining: drained reports whether Sidecar accepted the drain;
	// drainOver fires when the draining time is up.
	drained    chan bool
	drainOver  <-chan time.Time
	drainUntil time.Time
}

func (s *stopper) request(req stopRequest) {
	grace := s.graceFor(req)
	if !req.deadline.IsZero() && (s.budgetEnd.IsZero() || req.deadline.Before(s.budgetEnd)) {
		s.budgetEnd = req.deadline
	}
	if s.first == nil {
		s.first = &req
		s.logger.WithFields(log.Fields{"grace": grace.String(), "reason": req.message}).Info("stopping the container")
		// TASK_KILLING announces a kill someone asked for, not the
		// executor's own decision to stop the task.
		if !req.cause.executorsOwn() && s.task.env.killingCapable() {
			s.task.status(mesos.TASK_KILLING, nil, req.message)
		}
		s.grace = grace
		if budget := s.drainBudget(req, grace); budget > 0 {
			s.startDrain(budget)
			return
		}
		s.issue(grace)
		return
	}
	if s.drained != nil || s.drainOver != nil {
		// A second request while draining (a scheduler retrying its KILL,
		// an impatient operator) ends the draining at once.
		s.logger.WithField("reason", req.message).Info("stop requested again while draining; stopping now")
		s.endDrain()
		s.issue(min(grace, s.grace))
		return
	}
	deadline := time.Now().Add(grace)
	if s.issued && !deadline.Before(s.deadline) {
		s.logger.WithField("reason", req.message).Info("already stopping the container")
		return
	}
	s.logger.WithField("grace", grace.String()).Info("a new stop request shortens the grace period")
	s.issue(grace)
}

// drainBudget is how long the service may drain before its container is
// stopped: EXECUTOR_SIDECAR_DRAINING_DURATION for stops the scheduler or
// the agent asked for, limited by whatever budget the request carries
// (SHUTDOWN must finish inside the agent's grace period); 0 means no drain.
func (s *stopper) drainBudget(req stopRequest, grace time.Duration) time.Duration {
	if s.sidecar == nil || s.task.deps.settings == nil || grace <= 0 {
		// No grace means stop now: a KILL with grace 0 is no time to drain.
		return 0
	}
	switch req.cause {
	case causeKill, causeShutdown, causeSignal, causeHealthCheckFailed:
	default:
		return 0
	}
	budget := s.task.deps.settings.SidecarDrainingDuration
	if !req.deadline.IsZero() {
		budget = min(budget, time.Until(req.deadline)-grace-afterStopReserve)
	}
	return max(budget, 0)
}

// startDrain asks Sidecar to drain the service; the container is stopped
// once the draining time is up, when Sidecar refuses, or earlier if the
// container exits by itself.
func (s *stopper) startDrain(budget time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	s.cancels = append(s.cancels, cancel)
	s.drainUntil = time.Now().Add(budget)
	drained := make(chan bool, 1)
	s.drained = drained
	s.logger.WithField("draining_for", budget.String()).Info("draining the service in Sidecar before stopping the container")
	go func() {
		err := s.sidecar.Drain(ctx)
		if err != nil && ctx.Err() == nil {
			s.logger.WithError(err).Warn("Sidecar did not drain the service; stopping the container without draining")
		}
		drained <- err == nil
	}()
}

// drainFinished continues after the drain request ended.
func (s *stopper) drainFinished(accepted bool) {
	s.drained = nil
	remaining := time.Until(s.drainUntil)
	if !accepted || remaining <= 0 {
		s.stopAfterDrain()
		return
	}
	s.logger.WithField("remaining", remaining.Round(time.Millisecond).String()).Info("service draining; the container is stopped when the draining time is up")
	s.drainOver = time.After(remaining)
}

func (s *stopper) stopAfterDrain() {
	s.endDrain()
	s.issue(s.grace)
}

func (s *stopper) endDrain() {
	s.drained = nil
	s.drainOver = nil
}

// graceFor applies the precedence: the request's own grace (a KILL's
// kill_policy), then TaskInfo.kill_policy, then EXECUTOR_KILL_TASK_TIMEOUT;
// requests with a budget (SHUTDOWN, signals) never exceed it.
func (s *stopper) graceFor(req stopRequest) time.Duration {
	grace := defaultKillTaskTimeout
	if settings := s.task.deps.settings; settings != nil {
		grace = time.Duration(settings.KillTaskTimeout) * time.Second
	}
	if p := s.task.info.GetKillPolicy(); p != nil && p.GetGracePeriod() != nil {
		grace = time.Duration(p.GetGracePeriod().GetNanoseconds())
	}
	switch req.cause {
	case causeKill:
		if req.grace >= 0 {
			grace = req.grace
		}
	case causeShutdown, causeSignal, causeAgentLost:
		if req.grace >= 0 && req.grace < grace {
			grace = req.grace
		}
	}
	if !req.deadline.IsZero() {
		// Whole seconds, rounded down: Docker rounds a fraction up, which
		// would push SIGKILL past what the deadline allows.
		grace = min(grace, time.Until(req.deadline)-afterStopReserve).Truncate(time.Second)
	}
	if grace < 0 {
		grace = 0
	}
	return grace
}

func (s *stopper) issue(grace time.Duration) {
	s.issued = true
	s.deadline = time.Now().Add(grace)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancels = append(s.cancels, cancel)
	retry := make(chan time.Time, 1)
	s.retry = retry
	go func() {
		if err := s.task.deps.docker.stopContainer(ctx, s.id, grace); err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return
			}
			s.logger.WithError(err).Warn("Docker did not stop the container; trying again")
			if sleepContext(ctx, time.Second) {
				retry <- time.Now()
			}
		}
	}()
}

// retryStop reissues the stop with whatever grace is left.
func (s *stopper) retryStop() {
	s.issue(max(time.Until(s.deadline), 0))
}

func (s *stopper) cancel() {
	for _, cancel := range s.cancels {
		cancel()
	}
}
