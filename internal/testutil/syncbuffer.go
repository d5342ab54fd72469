// Package testutil holds the few helpers that the test suites of several
// packages share (the root package's end-to-end tests, cmd/mesos-local's):
// things a test needs, not test servers, which live in the other internal
// packages.
package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for a writer and concurrent readers,
// e.g. a child process's output read by a test while the process runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
