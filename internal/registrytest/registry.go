// Package registrytest runs a real Docker registry (distribution v3, the
// code behind the registry:2 image) in-process on 127.0.0.1, with htpasswd
// authentication and in-memory storage, in the spirit of net/http/httptest.
// The Docker engine treats 127.0.0.0/8 as an insecure registry by default,
// so it pushes to and pulls from it over plain HTTP.
//
// Every request is recorded (method, path, the basic-auth user name, status;
// never the password) so tests can count what the engine asked for, and blob
// downloads can be made to stall to emulate a registry that hangs mid-pull.
//
// The registry logs every request through logrus's standard logger, which
// it offers no way to replace; New discards that logger's output so test
// output stays readable. Hooks and levels are left alone.
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// The htpasswd access controller and the in-memory storage driver
	// register themselves by name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Request is what the registry recorded about one request.
type Request struct {
	Method string
	Path   string
	// User is the basic-auth user name the request carried, "" if none.
	User   string
	Status int
	Time   time.Time
}

// Registry is a running registry. Its methods are safe for concurrent use.
type Registry struct {
	addr   string
	app    *handlers.App
	server *http.Server
	done   chan struct{}

	mu         sync.Mutex
	requests   []Request
	stallBlobs bool
	stalled    int
	release    chan struct{}
}

var quietRegistryLogs sync.Once

// New starts a registry that accepts the given users (name → password) and
// refuses anonymous access. It stops when the test ends.
func New(t testing.TB, users map[string]string) *Registry {
	t.Helper()
	quietRegistryLogs.Do(func() { logrus.SetOutput(io.Discard) })
	htpasswdPath := filepath.Join(t.TempDir(), "htpasswd")
	if err := writeHtpasswd(htpasswdPath, users); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}},
		Auth: configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "registrytest",
			"path":  htpasswdPath,
		}},
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	r := &Registry{
		addr:    listener.Addr().String(),
		app:     handlers.NewApp(context.Background(), cfg),
		done:    make(chan struct{}),
		release: make(chan struct{}),
	}
	r.server = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.server.Serve(listener)
	}()
	t.Cleanup(r.Close)
	return r
}

// writeHtpasswd writes users in the htpasswd format with bcrypt hashes, the
// only hash distribution accepts. The minimum cost keeps tests fast.
func writeHtpasswd(path string, users map[string]string) error {
	var lines []string
	for user, password := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("hash the password of %s: %w", user, err)
		}
		lines = append(lines, user+":"+string(hash))
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// Addr is the registry's host:port, the prefix of its image names.
func (r *Registry) Addr() string { return r.addr }

// Close stops the registry and releases stalled downloads. Safe to call
// more than once.
func (r *Registry) Close() {
	r.mu.Lock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
	r.mu.Unlock()
	_ = r.server.Close()
	<-r.done
	_ = r.app.Shutdown()
}

// StallBlobDownloads makes every later blob download send its headers and
// a few bytes and then hang until the client gives up or the registry is
// closed, like a registry whose storage backend stopped answering.
func (r *Registry) StallBlobDownloads() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stallBlobs = true
}

// StalledDownloads is how many blob downloads were stalled so far.
func (r *Registry) StalledDownloads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalled
}

// Requests returns every request received so far, oldest first.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// ManifestRequests counts the manifest requests (HEAD or GET) for one
// repository, e.g. "team/app": one per pull attempt that reached the
// registry with credentials it accepted or refused.
func (r *Registry) ManifestRequests(repository string) int {
	prefix := "/v2/" + repository + "/manifests/"
	count := 0
	for _, req := range r.Requests() {
		if strings.HasPrefix(req.Path, prefix) && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
			count++
		}
	}
	return count
}

// ServeHTTP records the request and hands it to the registry.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	user, _, _ := req.BasicAuth()
	recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	var writer http.ResponseWriter = recorder
	if stall := r.shouldStall(req); stall {
		writer = &stallingWriter{statusRecorder: recorder, budget: 64, release: r.release, ctx: req.Context()}
	}
	r.app.ServeHTTP(writer, req)
	r.mu.Lock()
	r.requests = append(r.requests, Request{Method: req.Method, Path: req.URL.Path, User: user, Status: recorder.status, Time: time.Now()})
	r.mu.Unlock()
}

func (r *Registry) shouldStall(req *http.Request) bool {
	if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/blobs/sha256:") {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stallBlobs {
		r.stalled++
	}
	return r.stallBlobs
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// stallingWriter passes budget bytes through, flushes them, and then blocks
// until the request ends or the registry is released.
type stallingWriter struct {
	*statusRecorder
	budget  int
	release <-chan struct{}
	ctx     context.Context
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	if s.budget > 0 {
		n := min(len(p), s.budget)
		s.budget -= n
		written, err := s.statusRecorder.Write(p[:n])
		s.Flush()
		if err != nil || n == len(p) {
			return written, err
		}
	}
	select {
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	case <-s.release:
		return 0, fmt.Errorf("registrytest: registry closed during a stalled download")
	}
}
