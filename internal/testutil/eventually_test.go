package testutil

// Tests of Eventually (eventually.go).

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	message string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.message = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	checks := 0
	Eventually(t, 10*time.Second, "the third check", func() bool {
		checks++
		return checks == 3
	})
	if checks != 3 {
		t.Fatalf("%d checks, want 3", checks)
	}
}

func TestEventuallyFailsAtTheDeadline(t *testing.T) {
	recorder := &fatalRecorder{TB: t}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		Eventually(recorder, 50*time.Millisecond, "a condition that never holds", func() bool { return false })
	}()
	<-ended
	if !strings.Contains(recorder.message, "timed out after 50ms waiting for a condition that never holds") {
		t.Fatalf("failure %q, want the timeout and what was awaited", recorder.message)
	}
}
