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
// it offers no way to replace; NewServer discards that logger's output so test
// output stays readable. Hooks and levels are left alone.
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
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

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"

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

// Server is a running registry. Its methods are safe for concurrent use.
type Server struct {
	addr   string
	app    *handlers.App
	server *http.Server
	done   <-chan struct{}

	mu         sync.Mutex
	requests   []Request
	stallBlobs bool
	stalled    int
	release    chan struct{}
}

var quietRegistryLogs sync.Once

// NewServer starts a registry that accepts the given users (name →
// password) and refuses anonymous access. It stops when the test ends.
func NewServer(t testing.TB, users map[string]string) *Server {
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
	listener, err := testutil.Listen()
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	r := &Server{
		addr:    listener.Addr().String(),
		app:     handlers.NewApp(context.Background(), cfg),
		release: make(chan struct{}),
	}
	r.server, r.done = testutil.Serve(listener, r)
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

// URL is the registry's base URL; its API is under /v2/.
func (r *Server) URL() string { return "http://" + r.addr }

// Addr is the registry's host:port, the prefix of its image names.
func (r *Server) Addr() string { return r.addr }

// Close stops the registry and releases stalled downloads. Safe to call
// more than once.
func (r *Server) Close() {
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
func (r *Server) StallBlobDownloads() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stallBlobs = true
}

// StalledDownloads is how many blob downloads were stalled so far.
func (r *Server) StalledDownloads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalled
}

// Requests returns every request received so far, oldest first.
func (r *Server) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// ManifestRequests counts the manifest requests (HEAD or GET) for one
// repository, e.g. "team/app": one per pull attempt that reached the
// registry with credentials it accepted or refused.
func (r *Server) ManifestRequests(repository string) int {
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
func (r *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
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

func (r *Server) shouldStall(req *http.Request) bool {
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
