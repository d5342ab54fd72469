// Package mastertest is an emulated Mesos master for the one endpoint the
// executor reads from it: GET /slaves (alias /master/slaves), the list of
// registered agents whose host names seed Sidecar's gossip. It is modelled
// on net/http/httptest: a real HTTP server on 127.0.0.1, NewServer for one
// test, Start outside tests, URL, Addr, Port and Close.
//
// The answer has the shape a Mesos 1.x master writes: an object with
// "slaves" (one object per registered agent: id, pid, hostname, port,
// registered_time, resources, attributes, active, version, capabilities…)
// and "recovered_slaves". The server is strict: any other path is 404, any
// method but GET is 405, and either is recorded as a violation that fails
// the test at cleanup.
package mastertest

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// Agent is one registered agent as the master lists it.
type Agent struct {
	// ID is the agent ID; generated from the index when empty.
	ID string
	// Hostname is what the agent registered as (its --hostname).
	Hostname string
	// Port is the agent's HTTP port; 5051 when zero.
	Port int
	// Deactivated lists the agent with "active": false, as a master does
	// for an agent that is draining or disconnected.
	Deactivated bool
}

// Server is an emulated Mesos master. Its methods are safe for concurrent use.
type Server struct {
	addr       string
	httpServer *http.Server
	serveDone  <-chan struct{}

	mu         sync.Mutex
	agents     []Agent
	status     int    // answer this status instead of the document when non-zero
	body       string // the raw body to answer instead of the document when set
	requests   int
	violations []string
	closed     bool
}

// Start starts a master on a free port of 127.0.0.1 that lists agents.
func Start(agents ...Agent) (*Server, error) {
	listener, err := testutil.Listen()
	if err != nil {
		return nil, fmt.Errorf("mastertest: %w", err)
	}
	s := &Server{addr: listener.Addr().String(), agents: append([]Agent(nil), agents...)}
	s.httpServer, s.serveDone = testutil.Serve(listener, s) // until Close
	return s, nil
}

// NewServer starts a master for the duration of a test. At cleanup it
// closes the server and reports every request it had to refuse (wrong path
// or method) with t.Errorf.
func NewServer(t testing.TB, agents ...Agent) *Server {
	t.Helper()
	s, err := Start(agents...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.Violations() {
			t.Errorf("mastertest: %s", v)
		}
	})
	return s
}

// URL is the master's base URL, http://127.0.0.1:<port>.
func (s *Server) URL() string { return "http://" + s.addr }

// Addr is the master's host:port.
func (s *Server) Addr() string { return s.addr }

// Port is the master's port, the value for EXECUTOR_MESOS_MASTER_PORT.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.addr)
	return port
}

// Close stops the server; it is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	_ = s.httpServer.Close()
	<-s.serveDone
}

// SetStatus makes /slaves answer status with a short text body instead of
// the document (as a master with HTTP authentication answers 401, or one
// still recovering 503); 0 restores the document.
func (s *Server) SetStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// SetBody makes /slaves answer 200 with body instead of the document, for
// tests of malformed answers; "" restores the document.
func (s *Server) SetBody(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// Requests is how many GET /slaves requests the server answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Violations lists the requests the server refused.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/slaves" && r.URL.Path != "/master/slaves" {
		s.refuse(w, r, http.StatusNotFound, "")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.refuse(w, r, http.StatusMethodNotAllowed,
			fmt.Sprintf("405 Method Not Allowed. Expecting one of { 'GET' }, but received '%s'.", r.Method))
		return
	}
	s.mu.Lock()
	s.requests++
	status, body, agents := s.status, s.body, append([]Agent(nil), s.agents...)
	s.mu.Unlock()
	switch {
	case status != 0:
		http.Error(w, http.StatusText(status), status)
		return
	case body != "":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
		return
	}
	testutil.WriteJSON(w, slavesDocument(agents))
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, body string) {
	s.mu.Lock()
	s.violations = append(s.violations, fmt.Sprintf("%s %s -> %d", r.Method, r.URL.Path, status))
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// resources is an agent's resources as the master writes them.
type resources struct {
	Disk  float64 `json:"disk"`
	Mem   float64 `json:"mem"`
	GPUs  float64 `json:"gpus"`
	CPUs  float64 `json:"cpus"`
	Ports string  `json:"ports,omitempty"`
}

// slave is one entry of "slaves", with the fields a Mesos 1.x master
// writes for a registered agent.
type slave struct {
	ID                  string            `json:"id"`
	PID                 string            `json:"pid"`
	Hostname            string            `json:"hostname"`
	Port                int               `json:"port"`
	RegisteredTime      float64           `json:"registered_time"`
	Resources           resources         `json:"resources"`
	UsedResources       resources         `json:"used_resources"`
	OfferedResources    resources         `json:"offered_resources"`
	ReservedResources   map[string]any    `json:"reserved_resources"`
	UnreservedResources resources         `json:"unreserved_resources"`
	Attributes          map[string]string `json:"attributes"`
	Active              bool              `json:"active"`
	Deactivated         bool              `json:"deactivated"`
	Version             string            `json:"version"`
	Capabilities        []string          `json:"capabilities"`
}

type slavesResponse struct {
	Slaves          []slave `json:"slaves"`
	RecoveredSlaves []any   `json:"recovered_slaves"`
}

func slavesDocument(agents []Agent) slavesResponse {
	registered := float64(time.Now().Add(-time.Hour).UnixNano()) / 1e9
	response := slavesResponse{Slaves: []slave{}, RecoveredSlaves: []any{}}
	for i, agent := range agents {
		id, port := agent.ID, agent.Port
		if id == "" {
			id = fmt.Sprintf("8f3c1d52-0d4e-4b6a-9d1e-5c2a7b9e4f10-S%d", i)
		}
		if port == 0 {
			port = 5051
		}
		total := resources{Disk: 100000, Mem: 15000, CPUs: 8, Ports: "[31000-32000]"}
		response.Slaves = append(response.Slaves, slave{
			ID:                  id,
			PID:                 fmt.Sprintf("slave(1)@%s:%d", agent.Hostname, port),
			Hostname:            agent.Hostname,
			Port:                port,
			RegisteredTime:      registered,
			Resources:           total,
			UnreservedResources: total,
			ReservedResources:   map[string]any{},
			Attributes:          map[string]string{},
			Active:              !agent.Deactivated,
			Deactivated:         agent.Deactivated,
			Version:             "1.11.0",
			Capabilities:        []string{"MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT", "RESOURCE_PROVIDER", "RESIZE_VOLUME", "AGENT_OPERATION_FEEDBACK", "AGENT_DRAINING", "TASK_RESOURCE_LIMITS"},
		})
	}
	return response
}
