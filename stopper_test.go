package main

import (
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
)

func testStopper(killTaskTimeout uint, draining time.Duration, withSidecar bool) *stopper {
	task := &taskRunner{deps: &taskDeps{settings: &Config{KillTaskTimeout: killTaskTimeout, SidecarDrainingDuration: draining}}}
	s := &stopper{task: task, logger: log.NewEntry(log.New())}
	if withSidecar {
		s.sidecar = &sidecarWatcher{}
	}
	return s
}

func TestStopPlanFitsTheShutdownBudget(t *testing.T) {
	cases := []struct {
		name          string
		killTimeout   uint
		draining      time.Duration
		req           stopRequest
		wantGrace     time.Duration
		wantDrainMax  time.Duration // the drain may be shorter: time passes
		wantDrainZero bool
	}{
		{name: "KILL with grace 0 does not drain", killTimeout: 5, draining: 10 * time.Second,
			req: stopRequest{cause: causeKill, grace: 0}, wantGrace: 0, wantDrainZero: true},
		{name: "KILL with the task's default drains in full", killTimeout: 5, draining: 10 * time.Second,
			req: stopRequest{cause: causeKill, grace: -1}, wantGrace: 5 * time.Second, wantDrainMax: 10 * time.Second},
		{name: "SHUTDOWN grace and drain fit before the deadline", killTimeout: 5, draining: 10 * time.Second,
			req: budgetedStop(causeShutdown, 6*time.Second, "shutdown"), wantGrace: 3 * time.Second, wantDrainMax: time.Second},
		{name: "short SHUTDOWN leaves little time to drain", killTimeout: 5, draining: 10 * time.Second,
			req: budgetedStop(causeShutdown, 3*time.Second, "shutdown"), wantGrace: time.Second, wantDrainMax: 400 * time.Millisecond},
		{name: "signal with a small kill timeout drains what is left", killTimeout: 1, draining: 10 * time.Second,
			req: budgetedStop(causeSignal, 10*time.Second, "signal"), wantGrace: time.Second, wantDrainMax: 7 * time.Second},
		{name: "lost agent is bounded like a shutdown", killTimeout: 30, draining: 10 * time.Second,
			req: budgetedStop(causeAgentLost, 5*time.Second, "lost"), wantGrace: 2 * time.Second, wantDrainZero: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testStopper(c.killTimeout, c.draining, true)
			grace := s.graceFor(c.req)
			if grace != c.wantGrace {
				t.Errorf("grace %s, want %s", grace, c.wantGrace)
			}
			if grace%time.Second != 0 && !c.req.deadline.IsZero() {
				t.Errorf("grace %s under a deadline is not whole seconds: Docker would round it up", grace)
			}
			drain := s.drainBudget(c.req, grace)
			if c.wantDrainZero && drain != 0 {
				t.Errorf("drain %s, want none", drain)
			}
			if !c.wantDrainZero && (drain <= 0 || drain > c.wantDrainMax) {
				t.Errorf("drain %s, want in (0, %s]", drain, c.wantDrainMax)
			}
			if !c.req.deadline.IsZero() {
				if end := time.Now().Add(drain + grace + afterStopReserve); end.After(c.req.deadline.Add(10 * time.Millisecond)) {
					t.Errorf("drain %s + grace %s + %s for the rest overrun the deadline by %s", drain, grace, afterStopReserve, end.Sub(c.req.deadline))
				}
			}
		})
	}
}

func TestBudgetedStopLeavesRoomForTheTerminalUpdate(t *testing.T) {
	for _, period := range []time.Duration{time.Second, 3 * time.Second, 5 * time.Second, time.Minute} {
		before := time.Now()
		req := budgetedStop(causeShutdown, period, "shutdown")
		if !req.deadline.Before(before.Add(period)) {
			t.Errorf("period %s: deadline %s after the start leaves no room for the update", period, req.deadline.Sub(before))
		}
		if req.deadline.Before(before.Add(period / 2)) {
			t.Errorf("period %s: deadline %s after the start wastes the grace period", period, req.deadline.Sub(before))
		}
	}
}
