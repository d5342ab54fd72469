package testutil

// eventually.go owns the poll-until-deadline wait the tests use instead of
// sleeping.

import (
	"testing"
	"time"
)

// eventuallyInterval is the pause between two checks of Eventually.
const eventuallyInterval = 20 * time.Millisecond

// Eventually checks cond until it holds, and fails the test if it does not
// within timeout; what names the awaited thing in the failure.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(eventuallyInterval)
	}
}
