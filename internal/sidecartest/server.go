// Package sidecartest runs a Sidecar emulator on 127.0.0.1 for tests and for
// the local runner, in the manner of net/http/httptest: a real HTTP server on a
// real port, a small API to shape what it answers, and a record of every
// request it received.
//
// It serves the routes the executor uses, in Sidecar's schema and with
// Sidecar's status codes:
//
//	GET  /state.json, /api/state.json  the whole state, compact JSON
//	GET  /api/services/{name}.json     one service name's instances on every host, indented JSON
//	POST /api/services/{id}/drain      mark a service of the answering host DRAINING
//
// The per-service route follows Sidecar's sidecarhttp/http_api.go: only under
// /api, {name} matched exactly against each record's Name, a JSON 404 "no
// instances of <name> found" when nothing matches, any extension other than
// json a JSON 404 too. SetServiceRoute(false) removes the route, as on a
// Sidecar that predates it: the path then gets the router's plain-text 404.
//
// A known path with the wrong method gets 405 with an empty body; any other
// path gets 404. Faults (SetFault) reproduce the ways a real Sidecar lets its
// clients down, on both document routes. Stats counts requests, body bytes
// and serving time per route.
package sidecartest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// Fault is a misbehaviour the server applies to requests until it is cleared
// with SetFault(FaultNone).
type Fault int

const (
	// FaultNone answers normally.
	FaultNone Fault = iota
	// FaultClosed closes the port: connections are refused. Clearing the
	// fault listens on the same port again.
	FaultClosed
	// FaultHTTP500 answers every route with 500 and a JSON error.
	FaultHTTP500
	// FaultGarbage answers the documents with 200 and a body that is not
	// JSON.
	FaultGarbage
	// FaultTruncated answers the documents with 200 and the first half of
	// the real document (a complete HTTP response whose JSON stops mid-way).
	FaultTruncated
	// FaultSlow holds every answer for SetSlowDelay (default 5 s, longer
	// than any sensible client timeout) before answering normally.
	FaultSlow
	// FaultHuge answers state.json with a valid document padded with
	// generated filler hosts to about SetHugeSize bytes (default 50 MB),
	// streamed without ever holding it in memory. The real hosts come last,
	// so a client has to get through the padding to reach them. A service
	// document is padded the same way with filler instances (other IDs on
	// other hosts) in front of the real ones.
	FaultHuge
	// FaultWrongTypes answers the documents with well-formed JSON of the
	// wrong shape, alternating per request between every Status rendered as
	// a string ("ALIVE") and every Services (state.json) or instance list
	// (service document) rendered as an object instead of what Sidecar
	// writes.
	FaultWrongTypes
)

var faultNames = [...]string{"FaultNone", "FaultClosed", "FaultHTTP500", "FaultGarbage", "FaultTruncated", "FaultSlow", "FaultHuge", "FaultWrongTypes"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

const (
	defaultHostname  = "sidecartest-host"
	defaultSlowDelay = 5 * time.Second
	defaultHugeSize  = 50 << 20
)

var statusNames = [...]string{"ALIVE", "TOMBSTONE", "UNHEALTHY", "UNKNOWN", "DRAINING"}

// Poll is one request for a health document: state.json or a service's.
type Poll struct {
	Time  time.Time
	Path  string
	Route Route
	Fault Fault // the fault in effect when it arrived
}

// Route names the document routes for Stats.
type Route string

const (
	// RouteState is GET /state.json and /api/state.json.
	RouteState Route = "state.json"
	// RouteService is GET /api/services/{name}.json.
	RouteService Route = "services/{name}.json"
)

// RouteStats is what one route has served so far.
type RouteStats struct {
	// Requests counts every GET of the route's paths, including those
	// answered 404 (an unknown name, or the route removed).
	Requests int
	// Bytes counts response body bytes written (headers excluded).
	Bytes int64
	// ServeTime is the handlers' wall time from the request's arrival to
	// the last body byte handed to the connection. Held answers
	// (FaultSlow) are excluded; writes blocked by a slow reader are not.
	ServeTime time.Duration
}

// Drain is one drain request and the status code it was answered with.
type Drain struct {
	Time   time.Time
	ID     string
	Status int
}

// ServiceOption adjusts a service record created by SetService.
type ServiceOption func(*Service)

// WithName sets the service name (default "test-service").
func WithName(name string) ServiceOption { return func(s *Service) { s.Name = name } }

// WithImage sets the image (default "sidecar-executor/busybox:1.35").
func WithImage(image string) ServiceOption { return func(s *Service) { s.Image = image } }

// WithPorts sets the published ports (default none: []).
func WithPorts(ports ...Port) ServiceOption {
	return func(s *Service) { s.Ports = append([]Port{}, ports...) }
}

// WithProxyMode sets the proxy mode (default "http").
func WithProxyMode(mode string) ServiceOption { return func(s *Service) { s.ProxyMode = mode } }

// WithCreated sets the creation time (default: when SetService was called).
func WithCreated(t time.Time) ServiceOption { return func(s *Service) { s.Created = t } }

type hostRecord struct {
	services    map[string]*Service
	lastChanged time.Time
}

// Server is a Sidecar emulator listening on 127.0.0.1.
type Server struct {
	tb   testing.TB // nil when started with Start
	addr string     // host:port, kept across FaultClosed

	mu          sync.Mutex
	httpServer  *http.Server // nil while FaultClosed is in effect or after Close
	closed      bool
	done        chan struct{} // closed by Close; ends held answers
	changed     chan struct{} // closed and replaced whenever a request is recorded
	hostname    string
	clusterName string
	hosts       map[string]*hostRecord
	scripts     map[string]*script // by host+"/"+id
	lastChanged time.Time
	fault       Fault
	slowDelay   time.Duration
	hugeSize    int64
	stateServed int // documents answered, for FaultWrongTypes' alternation
	noRoute     bool
	stats       map[Route]*RouteStats
	polls       []Poll
	drains      []Drain
	drainCursor int // drains already returned by WaitForDrain
}

type script struct {
	host, id string
	statuses []int
	served   int
}

// NewServer starts an emulator for a test and closes it when the test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := start(tb)
	if err != nil {
		tb.Fatalf("sidecartest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts an emulator outside of tests; the caller must Close it.
func Start() (*Server, error) {
	return start(nil)
}

func start(tb testing.TB) (*Server, error) {
	listener, err := testutil.Listen()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	s := &Server{
		tb:          tb,
		addr:        listener.Addr().String(),
		done:        make(chan struct{}),
		changed:     make(chan struct{}),
		hostname:    defaultHostname,
		clusterName: "default",
		hosts:       make(map[string]*hostRecord),
		scripts:     make(map[string]*script),
		lastChanged: now,
		slowDelay:   defaultSlowDelay,
		hugeSize:    defaultHugeSize,
		stats:       map[Route]*RouteStats{RouteState: {}, RouteService: {}},
	}
	s.serveLocked(listener)
	return s, nil
}

// serveLocked starts an http.Server on listener; s.mu is held or s is not yet
// shared.
func (s *Server) serveLocked(listener net.Listener) {
	s.httpServer, _ = testutil.Serve(listener, http.HandlerFunc(s.route))
}

// Close stops the server and ends any answer it is holding back.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	if s.httpServer != nil {
		_ = s.httpServer.Close()
		s.httpServer = nil
	}
}

// URL is the base URL, e.g. http://127.0.0.1:40123.
func (s *Server) URL() string { return "http://" + s.addr }

// StateURL is the URL of state.json, the executor's SidecarUrl.
func (s *Server) StateURL() string { return s.URL() + "/state.json" }

// ServiceURL is the URL of the document of service name.
func (s *Server) ServiceURL(name string) string {
	return s.URL() + (&url.URL{Path: "/api/services/" + name + ".json"}).EscapedPath()
}

// SetServiceRoute enables (the default) or removes the per-service route.
func (s *Server) SetServiceRoute(enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noRoute = !enabled
}

// Stats reports what route has served so far.
func (s *Server) Stats(route Route) RouteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[route]; st != nil {
		return *st
	}
	return RouteStats{}
}

// ResetStats zeroes the counters of every route (Polls are kept).
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.stats {
		*st = RouteStats{}
	}
}

// SetState replaces every host and service with those of state (its
// Hostname and ClusterName included) and drops all scripts: a quick way to
// load a cluster-sized state, e.g. GenerateState's.
func (s *Server) SetState(state State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts = make(map[string]*hostRecord, len(state.Servers))
	s.scripts = make(map[string]*script)
	for name, h := range state.Servers {
		record := &hostRecord{services: make(map[string]*Service, len(h.Services)), lastChanged: h.LastChanged}
		for id, svc := range h.Services {
			copied := *svc
			record.services[id] = &copied
		}
		s.hosts[name] = record
	}
	if state.Hostname != "" {
		s.hostname = state.Hostname
	}
	if state.ClusterName != "" {
		s.clusterName = state.ClusterName
	}
	s.lastChanged = time.Now().UTC()
}

// Hostname is the answering Sidecar's own name: the top-level "Hostname" of
// its state document and the only host whose services it drains.
func (s *Server) Hostname() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostname
}

// SetHostname changes the answering Sidecar's own name.
func (s *Server) SetHostname(hostname string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostname = hostname
}

// SetClusterName changes the document's ClusterName (default "default").
func (s *Server) SetClusterName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusterName = name
}

// SetService adds or replaces the record of service id12 on host, with status
// and the defaults described on the options. A script for that service is
// dropped.
func (s *Server) SetService(host, id12 string, status int, opts ...ServiceOption) {
	now := time.Now().UTC()
	svc := &Service{
		ID:        id12,
		Name:      "test-service",
		Image:     "sidecar-executor/busybox:1.35",
		Created:   now.Truncate(time.Second),
		Hostname:  host,
		Ports:     []Port{},
		ProxyMode: "http",
		Status:    status,
	}
	for _, opt := range opts {
		opt(svc)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.scripts, host+"/"+id12)
	h := s.hosts[host]
	if h == nil {
		h = &hostRecord{services: make(map[string]*Service)}
		s.hosts[host] = h
	}
	h.services[id12] = svc
	h.lastChanged = now
	s.lastChanged = now
}

// RemoveService deletes a service record; a host left without services is
// removed too, as Sidecar does.
func (s *Server) RemoveService(host, id12 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.scripts, host+"/"+id12)
	h := s.hosts[host]
	if h == nil {
		return
	}
	delete(h.services, id12)
	if len(h.services) == 0 {
		delete(s.hosts, host)
	}
	s.lastChanged = time.Now().UTC()
}

// RemoveHost deletes a host and all its services.
func (s *Server) RemoveHost(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, sc := range s.scripts {
		if sc.host == host {
			delete(s.scripts, key)
		}
	}
	delete(s.hosts, host)
	s.lastChanged = time.Now().UTC()
}

// Script makes the status of service id12 on host follow statuses, one per
// document served from now on (state.json or any service document): the
// N-th document answered after this call (counting from 0, faulted answers
// without a document excluded) shows statuses[N], and the last status
// sticks. The service record is
// created with defaults when missing.
func (s *Server) Script(host, id12 string, statuses ...int) {
	if len(statuses) == 0 {
		panic("sidecartest: Script needs at least one status")
	}
	s.mu.Lock()
	h := s.hosts[host]
	exists := h != nil && h.services[id12] != nil
	s.mu.Unlock()
	if !exists {
		s.SetService(host, id12, statuses[0])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[host+"/"+id12] = &script{host: host, id: id12, statuses: append([]int{}, statuses...)}
}

// SetSlowDelay sets how long FaultSlow holds an answer.
func (s *Server) SetSlowDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowDelay = d
}

// SetHugeSize sets the approximate body size FaultHuge streams.
func (s *Server) SetHugeSize(bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hugeSize = bytes
}

// SetFault applies f to every request from now on. Entering FaultClosed
// closes the port and every open connection; leaving it listens on the same
// port again.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	previous := s.fault
	s.fault = f
	switch {
	case f == FaultClosed && previous != FaultClosed:
		_ = s.httpServer.Close()
		s.httpServer = nil
	case f != FaultClosed && previous == FaultClosed:
		if err := s.reopenLocked(); err != nil {
			s.reportf("sidecartest: after FaultClosed: %v", err)
		}
	}
}

// reopenLocked listens on the old address again (testutil.Relisten covers a
// slow release of the port).
func (s *Server) reopenLocked() error {
	listener, err := testutil.Relisten(s.addr)
	if err != nil {
		return err
	}
	s.serveLocked(listener)
	return nil
}

func (s *Server) reportf(format string, args ...any) {
	if s.tb != nil {
		s.tb.Errorf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// Polls lists the health document requests (state.json and per-service)
// received so far, oldest first.
func (s *Server) Polls() []Poll {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Poll(nil), s.polls...)
}

// Drains lists the drain requests received so far, oldest first.
func (s *Server) Drains() []Drain {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Drain(nil), s.drains...)
}

// WaitForPolls waits until at least n health document requests (either
// route) have arrived.
func (s *Server) WaitForPolls(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, changed := len(s.polls), s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d polls, saw %d: %w", n, got, context.Cause(ctx))
		}
	}
}

// WaitForDrain returns the oldest drain request not yet returned by an
// earlier call, waiting for one if needed.
func (s *Server) WaitForDrain(ctx context.Context) (Drain, error) {
	for {
		s.mu.Lock()
		if s.drainCursor < len(s.drains) {
			d := s.drains[s.drainCursor]
			s.drainCursor++
			s.mu.Unlock()
			return d, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Drain{}, fmt.Errorf("waiting for a drain request: %w", context.Cause(ctx))
		}
	}
}

// notifyLocked wakes the waiters.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/state.json" || path == "/api/state.json":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		s.serveState(w, r)
	case strings.HasPrefix(path, "/api/services/") && strings.HasSuffix(path, "/drain"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/api/services/"), "/drain")
		if id == "" || strings.Contains(id, "/") {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		s.serveDrain(w, r, id)
	case strings.HasPrefix(path, "/api/services/") && !strings.Contains(path[len("/api/services/"):], "/"):
		// Sidecar's mux template /services/{name}.{extension}: both parts
		// at least one character, {name} greedy, so the extension is what
		// follows the last dot. mux matches the decoded path, as we do.
		rest := path[len("/api/services/"):]
		dot := strings.LastIndexByte(rest, '.')
		s.mu.Lock()
		noRoute := s.noRoute
		s.mu.Unlock()
		if noRoute || dot <= 0 || dot == len(rest)-1 {
			// Counted, so that tests see a client asking for the
			// route a Sidecar lacks; not a Poll: no document.
			start, counted := time.Now(), &countingWriter{ResponseWriter: w}
			http.NotFound(counted, r)
			s.account(RouteService, counted, start, 0)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if rest[dot+1:] != "json" {
			writeJSONError(w, http.StatusNotFound, "Not Found - Invalid content type extension")
			return
		}
		s.serveService(w, r, rest[:dot])
	default:
		http.NotFound(w, r)
	}
}

// countingWriter counts the body bytes of an answer.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// account adds one answer to route's stats; held is FaultSlow's wait.
func (s *Server) account(route Route, w *countingWriter, start time.Time, held time.Duration) {
	elapsed := time.Since(start) - held
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats[route]
	st.Requests++
	st.Bytes += w.n
	st.ServeTime += elapsed
}

// hold waits for the FaultSlow delay; false when the client went away or the
// server closed first.
func (s *Server) hold(r *http.Request, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) serveState(rw http.ResponseWriter, r *http.Request) {
	s.serveDocument(rw, r, RouteState, func() document {
		state := s.snapshotLocked()
		return document{
			marshal: state.Marshal,
			huge:    func(w http.ResponseWriter, size int64) { writeHuge(w, state, size) },
			wrongTypes: func(statusAsString bool) []byte {
				return wrongTypes(state, statusAsString)
			},
		}
	})
}

// document is what serveDocument needs of one answer, snapshotted under
// s.mu: how to render it, huge, and with wrong types, and, when the name
// asked for has no instances, the message of a 404.
type document struct {
	notFound   string
	marshal    func() []byte
	huge       func(w http.ResponseWriter, size int64)
	wrongTypes func(statusAsString bool) []byte
}

// serveDocument answers a poll of route: it records the poll, snapshots the
// document (unless the fault answers without one), and answers as the fault
// says.
func (s *Server) serveDocument(rw http.ResponseWriter, r *http.Request, route Route, snapshotLocked func() document) {
	start := time.Now()
	w := &countingWriter{ResponseWriter: rw}
	var held time.Duration
	defer func() { s.account(route, w, start, held) }()

	s.mu.Lock()
	fault, slowDelay, hugeSize := s.fault, s.slowDelay, s.hugeSize
	s.polls = append(s.polls, Poll{Time: start, Path: r.URL.Path, Route: route, Fault: fault})
	s.notifyLocked()
	var doc document
	var serial int
	switch fault {
	case FaultHTTP500, FaultGarbage:
	default:
		doc = snapshotLocked()
		serial = s.stateServed
		s.stateServed++
	}
	s.mu.Unlock()

	switch fault {
	case FaultHTTP500:
		writeJSONError(w, http.StatusInternalServerError, "Internal Server Error - emulated fault")
		return
	case FaultGarbage:
		writeGarbage(w)
		return
	case FaultSlow:
		holdStart := time.Now()
		ok := s.hold(r, slowDelay)
		held = time.Since(holdStart)
		if !ok {
			return
		}
	}
	if doc.notFound != "" {
		writeJSONError(w, http.StatusNotFound, doc.notFound)
		return
	}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch fault {
	case FaultTruncated:
		body := doc.marshal()
		_, _ = w.Write(body[:len(body)/2])
	case FaultHuge:
		doc.huge(w, hugeSize)
	case FaultWrongTypes:
		_, _ = w.Write(doc.wrongTypes(serial%2 == 0))
	default:
		_, _ = w.Write(doc.marshal())
	}
}

// writeGarbage is FaultGarbage's answer: 200, not JSON.
func writeGarbage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>\n\x00\xff not json"))
}

// ServiceDocument is the answer of GET /api/services/{name}.json: the
// instances of one name on every host (tombstones and DRAINING included),
// in no particular order, and the cluster's name. Sidecar leaves
// ClusterMembers out of it.
type ServiceDocument struct {
	Services    map[string][]*Service
	ClusterName string
}

// Marshal renders the document as Sidecar does: indented by two spaces.
func (d ServiceDocument) Marshal() []byte {
	body, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("sidecartest: marshal service document: %v", err))
	}
	return body
}

func (s *Server) serveService(rw http.ResponseWriter, r *http.Request, name string) {
	s.serveDocument(rw, r, RouteService, func() document {
		doc := s.serviceSnapshotLocked(name)
		answer := document{
			marshal: doc.Marshal,
			huge:    func(w http.ResponseWriter, size int64) { writeHugeService(w, doc, name, size) },
			wrongTypes: func(statusAsString bool) []byte {
				return wrongTypesService(doc, name, statusAsString)
			},
		}
		if len(doc.Services[name]) == 0 {
			answer.notFound = "no instances of " + name + " found"
		}
		return answer
	})
}

// serviceSnapshotLocked renders the instances named name, advancing every
// script by one as any served document does. Like Sidecar it goes through
// every host, but copies only the matching records.
func (s *Server) serviceSnapshotLocked(name string) ServiceDocument {
	now := time.Now().UTC()
	var instances []*Service
	// Map iteration order is random, like Sidecar's own answer.
	for _, h := range s.hosts {
		for _, svc := range h.services {
			if svc.Name != name {
				continue
			}
			copied := *svc
			copied.Updated = now
			if sc := s.scripts[copied.Hostname+"/"+copied.ID]; sc != nil {
				copied.Status = sc.statuses[min(sc.served, len(sc.statuses)-1)]
			}
			instances = append(instances, &copied)
		}
	}
	for _, sc := range s.scripts {
		sc.served++
	}
	return ServiceDocument{Services: map[string][]*Service{name: instances}, ClusterName: s.clusterName}
}

// writeHugeService streams doc with filler instances in front of the real
// ones, compactly, one record at a time.
func writeHugeService(w http.ResponseWriter, doc ServiceDocument, name string, size int64) {
	var written int64
	write := func(p []byte) bool {
		n, err := w.Write(p)
		written += int64(n)
		return err == nil
	}
	quotedName, _ := json.Marshal(name)
	if !write([]byte(`{"Services":{` + string(quotedName) + `:[`)) {
		return
	}
	real, _ := json.Marshal(doc.Services[name])
	cluster, _ := json.Marshal(doc.ClusterName)
	filler := &Service{Name: name, Image: "registry.local:5000/filler:1", Hostname: "filler-host",
		Ports: []Port{{Type: "tcp", Port: 31000, ServicePort: 10000, IP: "10.9.9.9"}}, ProxyMode: "http", Status: StatusAlive}
	for i := 0; written < size-int64(len(real)); i++ {
		filler.ID = fmt.Sprintf("f%011x", i)
		record, _ := json.Marshal(filler)
		if !write(append(record, ',')) {
			return
		}
	}
	if !write(real[1:]) { // the real instances and the closing bracket
		return
	}
	write([]byte(`},"ClusterName":` + string(cluster) + `}`))
}

// wrongTypesService renders doc with every Status as its name
// (statusAsString) or the instance list as an object keyed by ID.
func wrongTypesService(doc ServiceDocument, name string, statusAsString bool) []byte {
	instances := doc.Services[name]
	if statusAsString {
		generic := make([]map[string]any, 0, len(instances))
		raw, _ := json.Marshal(instances)
		if err := json.Unmarshal(raw, &generic); err != nil {
			panic(fmt.Sprintf("sidecartest: reparse own instances: %v", err))
		}
		for _, record := range generic {
			status := int(record["Status"].(float64))
			if status >= 0 && status < len(statusNames) {
				record["Status"] = statusNames[status]
			} else {
				record["Status"] = fmt.Sprint(status)
			}
		}
		body, _ := json.MarshalIndent(map[string]any{"Services": map[string]any{name: generic}, "ClusterName": doc.ClusterName}, "", "  ")
		return body
	}
	byID := make(map[string]*Service, len(instances))
	for _, svc := range instances {
		byID[svc.ID] = svc
	}
	body, _ := json.MarshalIndent(map[string]any{"Services": map[string]any{name: byID}, "ClusterName": doc.ClusterName}, "", "  ")
	return body
}

// snapshotLocked renders the current state, advancing every script by one.
func (s *Server) snapshotLocked() State {
	now := time.Now().UTC()
	state := State{
		Servers:     make(map[string]*Host, len(s.hosts)),
		LastChanged: s.lastChanged,
		ClusterName: s.clusterName,
		Hostname:    s.hostname,
	}
	for name, h := range s.hosts {
		host := &Host{Name: name, Services: make(map[string]*Service, len(h.services)), LastUpdated: now, LastChanged: h.lastChanged}
		for id, svc := range h.services {
			copied := *svc
			copied.Updated = now
			host.Services[id] = &copied
		}
		state.Servers[name] = host
	}
	for _, sc := range s.scripts {
		svc := state.Servers[sc.host].Services[sc.id]
		svc.Status = sc.statuses[min(sc.served, len(sc.statuses)-1)]
		sc.served++
	}
	return state
}

// writeHuge streams state with filler hosts in front of the real ones.
// Filler is written host by host, so memory stays at one host's worth.
func writeHuge(w http.ResponseWriter, state State, size int64) {
	document := state.Marshal()
	// document is {"Servers":{...},"LastChanged":...}; the filler goes in
	// right after the opening of Servers.
	const opening = `{"Servers":{`
	rest := document[len(opening):]
	var written int64
	write := func(p []byte) bool {
		n, err := w.Write(p)
		written += int64(n)
		return err == nil
	}
	if !write([]byte(opening)) {
		return
	}
	// Every filler host is the same 200-service record under another name:
	// marshal it once and splice the name in.
	fillerHost := GenerateState(1, 200).Servers["host-0000"]
	fillerHost.Name = ""
	fillerBody, _ := json.Marshal(fillerHost)
	const nameField = `{"Name":"`
	afterName := fillerBody[len(nameField):]
	chunk := make([]byte, 0, len(fillerBody)+64)
	for i := 0; written < size-int64(len(document)); i++ {
		name := fmt.Sprintf("filler-%06d", i)
		chunk = append(chunk[:0], '"')
		chunk = append(chunk, name...)
		chunk = append(chunk, `":`+nameField...)
		chunk = append(chunk, name...)
		chunk = append(chunk, afterName...)
		chunk = append(chunk, ',')
		if !write(chunk) {
			return
		}
	}
	if bytes.HasPrefix(rest, []byte("}")) {
		// No real hosts: drop the trailing comma's partner by writing an
		// empty placeholder host.
		if !write([]byte(`"filler-end":{"Name":"filler-end","Services":{},"LastUpdated":"1970-01-01T00:00:00Z","LastChanged":"1970-01-01T00:00:00Z"}`)) {
			return
		}
	}
	write(rest)
}

// wrongTypes renders state with every Status as its name (statusAsString) or
// every Services object as an array.
func wrongTypes(state State, statusAsString bool) []byte {
	generic := make(map[string]any)
	if err := json.Unmarshal(state.Marshal(), &generic); err != nil {
		panic(fmt.Sprintf("sidecartest: reparse own state: %v", err))
	}
	servers, _ := generic["Servers"].(map[string]any)
	for _, h := range servers {
		host := h.(map[string]any)
		services, _ := host["Services"].(map[string]any)
		if statusAsString {
			for _, svc := range services {
				record := svc.(map[string]any)
				status := int(record["Status"].(float64))
				if status >= 0 && status < len(statusNames) {
					record["Status"] = statusNames[status]
				} else {
					record["Status"] = fmt.Sprint(status)
				}
			}
			continue
		}
		ids := make([]string, 0, len(services))
		for id := range services {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		list := make([]any, 0, len(ids))
		for _, id := range ids {
			list = append(list, services[id])
		}
		host["Services"] = list
	}
	body, err := json.Marshal(generic)
	if err != nil {
		panic(fmt.Sprintf("sidecartest: marshal wrong-typed state: %v", err))
	}
	return body
}

func (s *Server) serveDrain(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	fault, slowDelay := s.fault, s.slowDelay
	s.mu.Unlock()
	if fault == FaultSlow && !s.hold(r, slowDelay) {
		return
	}

	s.mu.Lock()
	status := http.StatusAccepted
	var svc *Service
	switch {
	case fault == FaultHTTP500:
		status = http.StatusInternalServerError
	default:
		if h := s.hosts[s.hostname]; h != nil {
			svc = h.services[id]
		}
		if svc == nil {
			status = http.StatusNotFound
			break
		}
		now := time.Now().UTC()
		svc.Status = StatusDraining
		delete(s.scripts, s.hostname+"/"+id)
		s.hosts[s.hostname].lastChanged = now
		s.lastChanged = now
	}
	s.drains = append(s.drains, Drain{Time: time.Now(), ID: id, Status: status})
	s.notifyLocked()
	var name string
	if svc != nil {
		name = svc.Name
	}
	s.mu.Unlock()

	switch status {
	case http.StatusInternalServerError:
		writeJSONError(w, status, "Internal Server Error - emulated fault")
	case http.StatusNotFound:
		writeJSONError(w, status, fmt.Sprintf("Not Found - Service ID %q not found", id))
	default:
		body, _ := json.MarshalIndent(map[string]string{
			"Message": fmt.Sprintf("Service %q instance %q set to DRAINING", name, id),
		}, "", "  ")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
	}
}

func writeJSONError(w http.ResponseWriter, status int, message string) {
	body, _ := json.Marshal(map[string]string{"status": "error", "message": message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
