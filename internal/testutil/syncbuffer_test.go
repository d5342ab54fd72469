package testutil

import (
	"strings"
	"sync"
	"testing"
)

func TestSyncBufferConcurrentWritesAndReads(t *testing.T) {
	var b SyncBuffer
	var writers sync.WaitGroup
	for range 4 {
		writers.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	writers.Wait()
	if got := b.String(); got != strings.Repeat("x", 400) {
		t.Fatalf("got %d bytes, want 400", len(got))
	}
}
