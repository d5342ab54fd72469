package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
)

// fakeDocker answers the few Docker API calls of a container start on a
// unix socket and records every request, so a test can see which calls
// go-dockerclient makes and in which order.
type fakeDocker struct {
	socket string
	// pingGate, when set, holds GET /_ping until it is closed.
	pingGate chan struct{}

	mu    sync.Mutex
	calls []string
}

func startFakeDocker(t *testing.T) *fakeDocker {
	t.Helper()
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "fdock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeDocker{socket: filepath.Join(dir, "docker.sock")}
	listener, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go server.Serve(listener) //nolint:errcheck // ends with Close
	t.Cleanup(func() { server.Close() })
	return f
}

func (f *fakeDocker) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	gate := f.pingGate
	f.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/version"):
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ApiVersion":"1.41","Version":"20.10.24"}`)) //nolint:errcheck
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Write([]byte("OK")) //nolint:errcheck
	case strings.HasSuffix(r.URL.Path, "/start") && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusNoContent)
	case strings.Contains(r.URL.Path, "/images/"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"No such image: busybox:none"}`)) //nolint:errcheck
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeDocker) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func useFakeDocker(t *testing.T, f *fakeDocker, apiVersion string) {
	t.Setenv("DOCKER_HOST", "unix://"+f.socket)
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_API_VERSION", apiVersion)
}

// go-dockerclient's StartContainer asks GET /version before the first start
// of a client. The launch's start client never sends it (see pendingStart):
// the launch pings, and the start is a single POST; with DOCKER_API_VERSION
// set too, whose paths carry the version.
func TestPreparedStartNeverAsksTheVersion(t *testing.T) {
	for _, apiVersion := range []string{"", "1.41"} {
		t.Run("DOCKER_API_VERSION="+apiVersion, func(t *testing.T) {
			f := startFakeDocker(t)
			useFakeDocker(t, f, apiVersion)
			prefix := ""
			if apiVersion != "" {
				prefix = "/v" + apiVersion
			}
			runtime, err := newDockerRuntime()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			start := runtime.prepareStart(ctx)
			if err := start.wait(ctx); err != nil {
				t.Fatalf("wait: %v", err)
			}
			if got, want := f.recorded(), []string{"GET " + prefix + "/_ping"}; !slices.Equal(got, want) {
				t.Fatalf("calls before the start: %q, want %q", got, want)
			}
			if err := start.start(ctx, "0123456789abcdef"); err != nil {
				t.Fatalf("start: %v", err)
			}
			if got, want := f.recorded(), []string{"GET " + prefix + "/_ping", "POST " + prefix + "/containers/0123456789abcdef/start"}; !slices.Equal(got, want) {
				t.Fatalf("calls: %q, want %q", got, want)
			}
		})
	}
}

func TestIsVersionPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/version":                  true,
		"/v1.41/version":            true,
		"/v1.24/version":            true,
		"/containers/version/json":  false,
		"/v1.41/containers/x/start": false,
		"/vx/version":               false,
		"/v/version":                false,
		"/v1.41/version/x":          false,
		"/versions":                 false,
		"/v1.41/containers/version": false,
	} {
		if got := isVersionPath(path); got != want {
			t.Errorf("isVersionPath(%q) = %v, want %v", path, got, want)
		}
	}
}

// The other clients never ask the version, even with DOCKER_API_VERSION
// set (go-dockerclient would, before their first call): the launch makes
// two calls at once on one of them, and the lazy check is unsynchronised.
func TestOtherClientsNeverAskTheVersion(t *testing.T) {
	f := startFakeDocker(t)
	useFakeDocker(t, f, "1.41")
	runtime, err := newDockerRuntime()
	if err != nil {
		t.Fatal(err)
	}
	_, err = runtime.inspectContainer(context.Background(), "nothing")
	var missing *docker.NoSuchContainer
	if !errors.As(err, &missing) {
		t.Fatalf("inspectContainer: %v, want no such container", err)
	}
	if got, want := f.recorded(), []string{"GET /v1.41/containers/nothing/json"}; !slices.Equal(got, want) {
		t.Fatalf("calls: %q, want %q", got, want)
	}
}

func TestPreparedStartReportsAnUnreachableDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_API_VERSION", "")
	runtime, err := newDockerRuntime()
	if err != nil {
		t.Fatal(err)
	}
	err = runtime.prepareStart(context.Background()).wait(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Docker daemon at unix://") || !strings.Contains(err.Error(), "is unreachable") {
		t.Fatalf("wait = %v, want the daemon named unreachable", err)
	}
}

// A KILL during the launch cancels its context, and wait returns at once
// with its error, whatever the ping is doing.
func TestPreparedStartWaitEndsWithTheLaunch(t *testing.T) {
	f := startFakeDocker(t)
	gate := make(chan struct{})
	f.mu.Lock()
	f.pingGate = gate
	f.mu.Unlock()
	useFakeDocker(t, f, "")
	runtime, err := newDockerRuntime()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := runtime.prepareStart(ctx).(*pendingStart)
	cancel()
	if err := start.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v, want context.Canceled", err)
	}
	// Let the held request end so that the ping's goroutine finishes.
	close(gate)
	<-start.done
}
