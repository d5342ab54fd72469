package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
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

// BenchmarkSidecarPollRoutes compares the two ways of polling on the
// emulator: state.json and the per-service route, at 100, 1,000 and 10,000
// services (20 per host, GenerateState's 300 service names, so our service
// has 1, 4 and 34 instances cluster-wide). Each op is one whole poll as the
// watcher makes it (observe: GET, stream, verdict). Besides ns/op it
// reports
//
//	body-B/poll     response body bytes the emulator served, per poll
//	emu-µs/poll     the emulator's serving time per poll: handler entry to
//	                last byte written (rendering the answer from its state,
//	                as Sidecar does per request, plus the writes)
//	cpu-µs/poll     process CPU (user+system, getrusage) per poll: executor
//	                and emulator together, both in this process
//
// The emulator renders every answer from its records (unlike
// BenchmarkSidecarPoll's pre-rendered document), so emu-µs stands for what a
// poll costs Sidecar.
func BenchmarkSidecarPollRoutes(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		for _, route := range []string{"state.json", "service-route"} {
			b.Run(fmt.Sprintf("services=%d/%s", size, route), func(b *testing.B) {
				hosts := max(size/20, 1)
				state := sidecartest.GenerateState(hosts, size)
				lastHost := fmt.Sprintf("host-%04d", hosts-1)
				id := sidecartest.GeneratedID(hosts - 1)
				name := state.Servers[lastHost].Services[id].Name
				emulator := sidecartest.NewServer(b)
				emulator.SetState(state)

				logger := log.New()
				logger.Out = io.Discard
				cfg := &Config{SidecarUrl: emulator.StateURL(), HttpTimeout: 5 * time.Second, SidecarPollInterval: time.Second, SidecarMaxFails: 3}
				watcher := newSidecarWatcher(cfg, id+"0123456789abcdef", []string{lastHost}, log.NewEntry(logger))
				if route == "service-route" {
					watcher.useServiceRoute(map[string]string{"ServiceName": name})
				}
				ctx := context.Background()
				check := func() {
					if obs := watcher.observe(ctx); obs.verdict != verdictHealthy {
						b.Fatalf("poll = %+v", obs)
					}
				}
				check() // the first poll allocates the scanner and the connection
				emulator.ResetStats()
				before := processCPU(b)
				b.ReportAllocs()
				for b.Loop() {
					check()
				}
				cpu := processCPU(b) - before
				other := sidecartest.RouteService
				served := emulator.Stats(sidecartest.RouteState)
				if route == "service-route" {
					served, other = emulator.Stats(sidecartest.RouteService), sidecartest.RouteState
				}
				if n := emulator.Stats(other).Requests; n != 0 || served.Requests != b.N {
					b.Fatalf("%d requests on the polled route for %d polls, %d on the other", served.Requests, b.N, n)
				}
				b.ReportMetric(float64(served.Bytes)/float64(b.N), "body-B/poll")
				b.ReportMetric(float64(served.ServeTime.Microseconds())/float64(b.N), "emu-µs/poll")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/poll")
			})
		}
	}
}

// processCPU is the user and system time this process has used.
func processCPU(b *testing.B) time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		b.Fatal(err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
