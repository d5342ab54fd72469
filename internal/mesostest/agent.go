// Package mesostest is an emulated Mesos agent for testing an executor that
// speaks the v1 executor HTTP API, modelled on net/http/httptest: a real HTTP
// server on 127.0.0.1 that answers /api/v1/executor the way a Mesos 1.x agent
// does (status codes, validation order and messages, RecordIO event stream,
// status-update acknowledgement and reconciliation), plus methods to drive
// the executor (launch, kill, shut down) and to inject faults (agent restart,
// unavailability, refused connections, withheld acknowledgements).
//
// The protocol it follows is described in
// shared/reference/mesos-executor-api.md; section numbers in comments refer
// to that document.
//
// The names follow the other test servers (vaulttest, registrytest): a
// constructor that starts it for one test, Start outside of tests, URL,
// Addr and Close. The constructor is NewAgent, not NewServer: the agent is
// the active side of the protocol (it launches, kills and acknowledges),
// and the executor is the one that connects to it.
package mesostest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// Config describes the agent, the framework and the executor it emulates.
// Zero values are replaced by defaults; see Agent.Config for the result.
type Config struct {
	FrameworkID, ExecutorID, AgentID, AgentHostname string // generated defaults when empty
	Checkpoint                                      bool   // framework checkpointing
	Capabilities                                    []mesos.FrameworkInfo_Capability_Type

	ShutdownGracePeriod    time.Duration // default 5s
	RecoveryTimeout        time.Duration // default 15m (only exported when Checkpoint)
	SubscriptionBackoffMax time.Duration // default 2s (only exported when Checkpoint)
	HeartbeatInterval      time.Duration // HEARTBEAT event period; default 30m

	// MasterHostname is the master_hostname the agent's /state reports;
	// when empty the field is left out, as an agent does when it cannot
	// resolve its master's address to a name.
	MasterHostname string

	// AuthToken, when set, makes the agent require
	// "Authorization: Bearer <AuthToken>" on every call (401 otherwise).
	AuthToken string

	// Logf, when set, receives a trace of what the agent does. Lines describe
	// calls, events and task states, never payloads (task environments and
	// status messages may hold secrets). Logf must not call back into the
	// Agent.
	Logf func(format string, args ...any)
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.FrameworkID == "" {
		cfg.FrameworkID = uuid.NewString() + "-0000"
	}
	if cfg.ExecutorID == "" {
		cfg.ExecutorID = "mesostest-executor-" + uuid.NewString()[:8]
	}
	if cfg.AgentID == "" {
		cfg.AgentID = uuid.NewString() + "-S0"
	}
	if cfg.AgentHostname == "" {
		cfg.AgentHostname = "localhost"
	}
	defaults := []struct {
		d    *time.Duration
		name string
		def  time.Duration
	}{
		{&cfg.ShutdownGracePeriod, "ShutdownGracePeriod", 5 * time.Second},
		{&cfg.RecoveryTimeout, "RecoveryTimeout", 15 * time.Minute},
		{&cfg.SubscriptionBackoffMax, "SubscriptionBackoffMax", 2 * time.Second},
		{&cfg.HeartbeatInterval, "HeartbeatInterval", 30 * time.Minute},
	}
	for _, d := range defaults {
		if *d.d < 0 {
			return cfg, fmt.Errorf("mesostest: %s must not be negative, got %v", d.name, *d.d)
		}
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	cfg.Capabilities = append([]mesos.FrameworkInfo_Capability_Type(nil), cfg.Capabilities...)
	return cfg, nil
}

func (cfg Config) hasCapability(c mesos.FrameworkInfo_Capability_Type) bool {
	for _, have := range cfg.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// RefuseMode selects how the agent refuses calls; see Agent.SetRefuse.
type RefuseMode int

const (
	// RefuseNone serves calls normally.
	RefuseNone RefuseMode = iota
	// RefuseUnavailable answers every call 503 "Agent has not finished
	// recovery", as an agent that is still recovering after a restart.
	RefuseUnavailable
	// RefuseConnections closes the listening socket (connection refused),
	// as an agent that is down. The same port is listened on again when the
	// mode is set back.
	RefuseConnections
)

func (m RefuseMode) String() string {
	switch m {
	case RefuseNone:
		return "RefuseNone"
	case RefuseUnavailable:
		return "RefuseUnavailable"
	case RefuseConnections:
		return "RefuseConnections"
	}
	return "RefuseMode(" + strconv.Itoa(int(m)) + ")"
}

// executorState is the agent's view of the executor (Executor::State).
type executorState int

const (
	executorRegistering executorState = iota // launched or agent restarted; not subscribed
	executorRunning                          // subscribed
	executorTerminating                      // SHUTDOWN sent
	executorTerminated                       // process exited
)

func (s executorState) String() string {
	return [...]string{"REGISTERING", "RUNNING", "TERMINATING", "TERMINATED"}[s]
}

// Agent is an emulated Mesos agent hosting a single executor.
type Agent struct {
	cfg         Config
	addr        string // 127.0.0.1:port, kept across RefuseConnections
	port        int32
	containerID string

	srv       *http.Server
	jobs      *actor
	quit      chan struct{} // closed by Close
	serveWG   sync.WaitGroup
	handlerWG sync.WaitGroup

	mu              sync.Mutex
	changed         chan struct{} // closed and replaced on every observable change
	closed          bool
	listener        net.Listener // nil while refusing connections
	conns           map[net.Conn]*connInfo
	refuse          RefuseMode
	withholdAcks    bool
	withheld        []int // indexes into updates whose ACK is being withheld
	allowViolations bool
	internalErrs    []string

	execState     executorState
	executorInfo  *mesos.ExecutorInfo // fixed by the first launched task
	tasks         map[string]*taskRecord
	taskOrder     []string
	seenUUIDs     map[string]map[string]bool // task ID → uuids the update manager received
	stream        *stream                    // latest subscription stream, possibly ended
	streamSeq     int
	subscriptions int
	everDelivered bool // a LAUNCH was sent to this executor
	killedQueued  int  // tasks killed before they could be delivered
	stateRequests int  // requests to /state

	updates    []Update
	calls      []CallRecord
	violations []string
	events     []SentEvent
	messages   [][]byte
}

// Start starts an agent listening on a free port of 127.0.0.1.
func Start(cfg Config) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ln, err := testutil.Listen()
	if err != nil {
		return nil, fmt.Errorf("mesostest: %w", err)
	}
	a := &Agent{
		cfg:         cfg,
		addr:        ln.Addr().String(),
		port:        int32(ln.Addr().(*net.TCPAddr).Port),
		containerID: uuid.NewString(),
		jobs:        newActor(),
		quit:        make(chan struct{}),
		changed:     make(chan struct{}),
		listener:    ln,
		conns:       make(map[net.Conn]*connInfo),
		tasks:       make(map[string]*taskRecord),
		seenUUIDs:   make(map[string]map[string]bool),
	}
	a.srv = &http.Server{
		Handler:           a,
		ConnContext:       a.connContext,
		ConnState:         a.connState,
		ReadHeaderTimeout: 10 * time.Second,
	}
	a.serve(ln)
	a.logf("agent %s listening on %s (framework %s, executor %s, checkpoint=%t)",
		cfg.AgentID, a.addr, cfg.FrameworkID, cfg.ExecutorID, cfg.Checkpoint)
	return a, nil
}

// NewAgent starts an agent for the duration of a test. At cleanup it closes
// the agent and reports, with t.Errorf, every protocol violation it recorded
// (see Violations) unless AllowViolations was called.
func NewAgent(t testing.TB, cfg Config) *Agent {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	a, err := Start(cfg)
	if err != nil {
		t.Fatalf("mesostest: %v", err)
	}
	t.Cleanup(func() {
		a.Close()
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, e := range a.internalErrs {
			t.Errorf("mesostest: %s", e)
		}
		if a.allowViolations {
			return
		}
		for _, v := range a.violations {
			t.Errorf("mesostest: protocol violation: %s", v)
		}
	})
	return a
}

func (a *Agent) serve(ln net.Listener) {
	a.serveWG.Add(1)
	go func() {
		defer a.serveWG.Done()
		// Serve returns when the listener is closed (Close or
		// RefuseConnections); either is expected.
		_ = a.srv.Serve(ln)
	}()
}

// Close stops the agent: the stream and every connection are closed and all
// of the agent's goroutines have ended when it returns. Close is idempotent.
func (a *Agent) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.endStreamLocked("agent closed")
	close(a.quit)
	a.mu.Unlock()

	_ = a.srv.Close() // closes the listener and every connection
	a.jobs.stop()
	a.serveWG.Wait()
	a.handlerWG.Wait()
}

// Addr is the agent's host:port, the value for MESOS_AGENT_ENDPOINT.
func (a *Agent) Addr() string { return a.addr }

// URL is the executor API URL: Addr's http:// URL with the path
// /api/v1/executor (unlike httptest's URL, which is the bare base URL).
func (a *Agent) URL() string { return "http://" + a.addr + "/api/v1/executor" }

// Config returns the effective configuration, IDs and defaults filled in.
func (a *Agent) Config() Config {
	cfg := a.cfg
	cfg.Capabilities = append([]mesos.FrameworkInfo_Capability_Type(nil), a.cfg.Capabilities...)
	return cfg
}

// Environment returns the variables a Mesos agent gives the executor process
// (§6.1), with durations in stout syntax (§6.2). sandbox is used for both
// MESOS_DIRECTORY and MESOS_SANDBOX, as for an executor run without an image.
func (a *Agent) Environment(sandbox string) []string {
	_, port, _ := net.SplitHostPort(a.addr)
	env := []string{
		"MESOS_FRAMEWORK_ID=" + a.cfg.FrameworkID,
		"MESOS_EXECUTOR_ID=" + a.cfg.ExecutorID,
		"MESOS_DIRECTORY=" + sandbox,
		"MESOS_SANDBOX=" + sandbox,
		"MESOS_AGENT_ENDPOINT=" + a.addr,
		"MESOS_SLAVE_ID=" + a.cfg.AgentID,
		"MESOS_SLAVE_PID=slave(1)@127.0.0.1:" + port,
		"MESOS_CHECKPOINT=" + map[bool]string{true: "1", false: "0"}[a.cfg.Checkpoint],
		"MESOS_HTTP_COMMAND_EXECUTOR=0",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=" + StoutDuration(a.cfg.ShutdownGracePeriod),
		"LIBPROCESS_PORT=0",
	}
	if a.cfg.Checkpoint {
		env = append(env,
			"MESOS_RECOVERY_TIMEOUT="+StoutDuration(a.cfg.RecoveryTimeout),
			"MESOS_SUBSCRIPTION_BACKOFF_MAX="+StoutDuration(a.cfg.SubscriptionBackoffMax),
		)
	}
	if a.cfg.AuthToken != "" {
		env = append(env, "MESOS_EXECUTOR_AUTHENTICATION_TOKEN="+a.cfg.AuthToken)
	}
	return env
}

// AllowViolations stops NewAgent's cleanup from failing the test on recorded
// violations (for tests that provoke them on purpose).
func (a *Agent) AllowViolations() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allowViolations = true
}

// DropConnection emulates an agent restart as the executor sees it: the
// subscription stream's connection is cut and the executor is back to
// REGISTERING, so UPDATE and MESSAGE get 403 "Executor is not subscribed"
// until it subscribes again. Task state, received updates and queued launches
// survive (as with framework checkpointing). Call connections are left open
// so that the executor sees the 403 rather than a network error.
func (a *Agent) DropConnection() {
	a.mu.Lock()
	conns := a.dropLocked("agent restart", false)
	a.mu.Unlock()
	closeConns(conns)
}

// dropLocked ends the stream and puts a subscribed executor back to
// REGISTERING. It returns the connections to close once a.mu is released:
// the stream's, or every connection when all is set.
func (a *Agent) dropLocked(why string, all bool) []net.Conn {
	var conns []net.Conn
	if s := a.liveStreamLocked(); s != nil && s.conn != nil {
		conns = append(conns, s.conn.conn)
	}
	a.endStreamLocked(why)
	if a.execState == executorRunning {
		a.execState = executorRegistering
	}
	if all {
		conns = conns[:0]
		for c := range a.conns {
			conns = append(conns, c)
		}
	}
	a.notifyLocked()
	return conns
}

func closeConns(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close() // already-closed connections are fine
	}
}

// SetRefuse changes how calls are refused (see RefuseMode). Setting any mode,
// RefuseNone included, also drops the current stream as DropConnection does;
// RefuseConnections closes every other connection as well.
func (a *Agent) SetRefuse(mode RefuseMode) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	old := a.refuse
	a.refuse = mode
	conns := a.dropLocked("refuse mode "+mode.String(), mode == RefuseConnections)
	var closeListener net.Listener
	if mode == RefuseConnections && a.listener != nil {
		closeListener, a.listener = a.listener, nil
	}
	if old == RefuseConnections && mode != RefuseConnections {
		ln, err := testutil.Relisten(a.addr)
		if err != nil {
			a.internalErrs = append(a.internalErrs, err.Error())
		} else {
			a.listener = ln
			a.serve(ln)
		}
	}
	a.logf("refuse mode %v -> %v", old, mode)
	a.mu.Unlock()
	if closeListener != nil {
		_ = closeListener.Close()
	}
	closeConns(conns)
}

// SetWithholdAcks makes the agent record updates without acknowledging them.
// Turning it off sends the withheld ACKNOWLEDGED events on the live stream;
// with no live stream they are lost (the executor resends the updates when it
// subscribes again and gets them acknowledged as duplicates).
func (a *Agent) SetWithholdAcks(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.withholdAcks = on
	if on {
		return
	}
	withheld := a.withheld
	a.withheld = nil
	for _, idx := range withheld {
		a.sendAckLocked(idx)
	}
}

func (a *Agent) logf(format string, args ...any) {
	if a.cfg.Logf != nil {
		a.cfg.Logf("mesostest: "+format, args...)
	}
}

func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

var errClosed = errors.New("mesostest: agent is closed")
