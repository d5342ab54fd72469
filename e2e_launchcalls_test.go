package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// recordingDockerProxy forwards the executor's Docker API requests to the
// real daemon and records each one as it arrives.
type recordingDockerProxy struct {
	path  string
	mu    sync.Mutex
	calls []string
}

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+/`)

func newRecordingDockerProxy(t *testing.T) *recordingDockerProxy {
	t.Helper()
	upstream, dir := proxySockets(t, "rproxy")
	p := &recordingDockerProxy{path: filepath.Join(dir, "docker.sock")}
	forward := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		}},
		FlushInterval: -1, // waits and logs stream
	}
	listener, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.calls = append(p.calls, r.Method+" "+apiVersionPrefix.ReplaceAllString(r.URL.Path, "/"))
		p.mu.Unlock()
		forward.ServeHTTP(w, r)
	})}
	go server.Serve(listener) //nolint:errcheck // ends with Close
	t.Cleanup(func() {
		server.Close()
		os.RemoveAll(dir)
	})
	return p
}

func (p *recordingDockerProxy) recorded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// The launch asks Docker only what it needs: one ping, the create (which
// also checks that the image is present and the name free) and the start;
// then one inspect of the started container, for what TASK_RUNNING
// carries, on the host network too. Never the daemon's version, which
// go-dockerclient's start would ask (see pendingStart).
func TestLaunchMakesOnlyTheDockerCallsItNeeds(t *testing.T) {
	proxy := newRecordingDockerProxy(t)
	agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage,
		[]taskOption{withShellCommand("sleep 30")}, withOperatorFile(t, "DOCKER_HOST=unix://"+proxy.path))
	calls := proxy.recorded()

	startAt := slices.IndexFunc(calls, func(c string) bool {
		return strings.HasPrefix(c, "POST /containers/") && strings.HasSuffix(c, "/start")
	})
	if startAt < 0 {
		t.Fatalf("no start among the calls made by TASK_RUNNING: %q", calls)
	}
	kind := func(call string) string {
		method, path, _ := strings.Cut(call, " ")
		switch {
		case path == "/version", path == "/_ping", path == "/containers/create":
			return call
		case strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json"):
			return method + " /images/{name}/json"
		case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json") && path != "/containers/json":
			return method + " /containers/{id}/json"
		}
		return call
	}
	var before []string
	for _, call := range calls[:startAt] {
		before = append(before, kind(call))
	}
	slices.Sort(before)
	want := []string{"GET /_ping", "POST /containers/create"}
	if !slices.Equal(before, want) {
		t.Errorf("calls before the start: %q, want each of %q once", before, want)
	}
	if after := calls[startAt+1:]; len(after) == 0 || kind(after[0]) != "GET /containers/{id}/json" {
		t.Errorf("the call after the start is not the inspect TASK_RUNNING needs: %q", calls)
	}
	inspects := 0
	for _, call := range calls[startAt+1:] {
		if kind(call) == "GET /containers/{id}/json" {
			inspects++
		}
		if kind(call) == "GET /version" {
			t.Errorf("the launch asked the daemon's version: %q", calls)
		}
	}
	if inspects != 1 {
		t.Errorf("%d inspects after the start, want 1: %q", inspects, calls)
	}

	mustKill(t, agent, task.TaskID.Value, nil)
	if final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final state %s %q, want TASK_KILLED", final.GetState(), final.GetMessage())
	}
	assertNoContainer(t, task.TaskID.Value)
}
