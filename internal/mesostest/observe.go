package mesostest

import (
	"context"
	"fmt"
	"slices"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Updates returns every status update received or generated so far, in order.
func (a *Agent) Updates() []Update {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.updates)
}

// Accepted returns the updates of a task that changed or recorded its state
// (neither duplicates nor dropped), in order, agent-generated ones included.
func (a *Agent) Accepted(taskID string) []Update {
	var out []Update
	for _, u := range a.Updates() {
		if u.accepted() && u.Status.TaskID.Value == taskID {
			out = append(out, u)
		}
	}
	return out
}

func (u Update) accepted() bool { return !u.Duplicate && u.Dropped == "" }

// WaitForUpdate returns the first update, past or future, for which match is
// true. An update's Acked flag may turn true later, and match sees that. It
// fails when ctx ends first.
func (a *Agent) WaitForUpdate(ctx context.Context, match func(Update) bool) (Update, error) {
	for {
		a.mu.Lock()
		updates := slices.Clone(a.updates)
		changed := a.changed
		a.mu.Unlock()
		for _, u := range updates {
			if match(u) {
				return u, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Update{}, fmt.Errorf("mesostest: no matching update among %d: %w", len(updates), ctx.Err())
		}
	}
}

// WaitForUpdates waits until more than after updates have been received or
// generated and returns those past the first after, in order. Reading a
// stream of updates is a loop over it with after advanced by what each call
// returned. It fails when ctx ends first.
func (a *Agent) WaitForUpdates(ctx context.Context, after int) ([]Update, error) {
	if after < 0 {
		after = 0
	}
	for {
		a.mu.Lock()
		var fresh []Update
		if len(a.updates) > after {
			fresh = slices.Clone(a.updates[after:])
		}
		changed := a.changed
		a.mu.Unlock()
		if fresh != nil {
			return fresh, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("mesostest: no update after the first %d: %w", after, ctx.Err())
		}
	}
}

// WaitForState returns the first accepted update that put the task in state.
func (a *Agent) WaitForState(ctx context.Context, taskID string, state mesos.TaskState) (Update, error) {
	u, err := a.WaitForUpdate(ctx, func(u Update) bool {
		return u.accepted() && u.Status.TaskID.Value == taskID && u.Status.GetState() == state
	})
	if err != nil {
		current, known := a.TaskState(taskID)
		return u, fmt.Errorf("mesostest: task %s never reached %v (agent's view: %v, known=%t): %w", taskID, state, current, known, err)
	}
	return u, nil
}

// WaitForSubscriptions waits until n SUBSCRIBE calls have succeeded (been
// answered with SUBSCRIBED) in total.
func (a *Agent) WaitForSubscriptions(ctx context.Context, n int) error {
	return a.waitFor(ctx, func() bool { return a.subscriptions >= n },
		func() string { return fmt.Sprintf("%d subscriptions, want %d", a.subscriptions, n) })
}

// WaitForEvent returns the first event, past or future, written to a stream
// for which match is true.
func (a *Agent) WaitForEvent(ctx context.Context, match func(SentEvent) bool) (SentEvent, error) {
	var found SentEvent
	err := a.waitFor(ctx, func() bool {
		for _, e := range a.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no matching event among %d", len(a.events)) })
	return found, err
}

// waitFor waits until cond (called with a.mu held) is true.
func (a *Agent) waitFor(ctx context.Context, cond func() bool, describe func() string) error {
	for {
		a.mu.Lock()
		ok := cond()
		changed := a.changed
		var why string
		if !ok {
			why = describe()
		}
		a.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("mesostest: %s: %w", why, ctx.Err())
		}
	}
}

// Calls returns every HTTP request the agent answered, in order.
func (a *Agent) Calls() []CallRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// Violations returns a description of every request an executor should not
// have sent: those answered with a 4xx other than 401 and 403, those
// answered 501, and calls sent on a connection that carried a SUBSCRIBE.
func (a *Agent) Violations() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.violations)
}

// Events returns every event written to a subscription stream, in order.
func (a *Agent) Events() []SentEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// Messages returns the data of every MESSAGE call accepted, in order.
func (a *Agent) Messages() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.messages)
}

// TaskState is the agent's view of a task's state: STAGING from Launch until
// an update is processed. Tasks the agent never launched are unknown even if
// the executor sent updates for them.
func (a *Agent) TaskState(taskID string) (mesos.TaskState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.tasks[taskID]
	if !ok {
		return 0, false
	}
	return rec.state, true
}
