package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

// BenchmarkSidecarPoll measures one whole health poll as the watcher makes
// it from the second poll on: GET state.json over loopback HTTP (keep-alive
// connection, scanner kept from the previous poll), streaming the body
// through the lookup. The document is generated once and served from memory
// with a Content-Length, so the figure is the executor's side of a poll, not
// the server's work of rendering the document. Clusters have 20 services
// per host and our service sits on the last host, as in
// BenchmarkLookupServiceStatus.
func BenchmarkSidecarPoll(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", size), func(b *testing.B) {
			hosts := max(size/20, 1)
			doc := sidecartest.GenerateState(hosts, size).Marshal()
			lastHost := fmt.Sprintf("host-%04d", hosts-1)
			id := sidecartest.GeneratedID(hosts - 1)
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
				_, _ = w.Write(doc)
			}))
			defer server.Close()

			logger := log.New()
			logger.Out = io.Discard
			cfg := &Config{SidecarUrl: server.URL + "/state.json", HttpTimeout: 2 * time.Second, SidecarPollInterval: time.Second, SidecarMaxFails: 3}
			// The container ID's first 12 characters are the service ID.
			watcher := newSidecarWatcher(cfg, id+"0123456789abcdef", []string{lastHost}, log.NewEntry(logger))
			ctx := context.Background()
			check := func() {
				got, err := watcher.fetchLookup(ctx)
				if err != nil || !got.ServiceFound || got.HostKey != lastHost || got.Status != statusAlive {
					b.Fatalf("poll = %+v, %v", got, err)
				}
			}
			check() // the first poll allocates the scanner and the connection
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				check()
			}
		})
	}
}
