package mesostest

// The agent's /state endpoint (alias /slave(1)/state), which the executor
// reads for master_hostname when it seeds Sidecar. The document has the
// shape of a Mesos 1.x agent's, with empty framework lists: this agent
// hosts its one executor through the executor API, not through /state.

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// agentState is the part of the agent's /state document the emulator
// fills in. MasterHostname is omitted when empty, as a real agent omits it
// when it could not resolve its master's address to a name.
type agentState struct {
	Version             string            `json:"version"`
	GitSHA              string            `json:"git_sha"`
	BuildDate           string            `json:"build_date"`
	BuildTime           float64           `json:"build_time"`
	BuildUser           string            `json:"build_user"`
	StartTime           float64           `json:"start_time"`
	ID                  string            `json:"id"`
	PID                 string            `json:"pid"`
	Hostname            string            `json:"hostname"`
	Capabilities        []string          `json:"capabilities"`
	Resources           map[string]any    `json:"resources"`
	Attributes          map[string]string `json:"attributes"`
	MasterHostname      string            `json:"master_hostname,omitempty"`
	LogDir              string            `json:"log_dir,omitempty"`
	Flags               map[string]string `json:"flags"`
	Frameworks          []any             `json:"frameworks"`
	CompletedFrameworks []any             `json:"completed_frameworks"`
}

func isStatePath(path string) bool { return path == "/state" || path == "/slave(1)/state" }

// serveState answers GET /state. Other methods are refused with 405 and
// recorded as a violation.
func (a *Agent) serveState(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	refuse := a.refuse
	a.stateRequests++
	if r.Method != http.MethodGet {
		a.violations = append(a.violations, fmt.Sprintf("%s %s: /state answers GET only", r.Method, r.URL.Path))
	}
	a.logf("%s %s", r.Method, r.URL.Path)
	a.mu.Unlock()
	switch {
	case refuse == RefuseUnavailable:
		http.Error(w, unavailable, http.StatusServiceUnavailable)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", "GET")
		http.Error(w, fmt.Sprintf("405 Method Not Allowed. Expecting one of { 'GET' }, but received '%s'.", r.Method), http.StatusMethodNotAllowed)
		return
	}
	_, port, _ := net.SplitHostPort(a.addr)
	now := float64(time.Now().UnixNano()) / 1e9
	testutil.WriteJSON(w, agentState{
		Version:             "1.11.0",
		GitSHA:              "0000000000000000000000000000000000000000",
		BuildDate:           "2020-11-24 09:00:00",
		BuildTime:           1606208400,
		BuildUser:           "mesostest",
		StartTime:           now,
		ID:                  a.cfg.AgentID,
		PID:                 "slave(1)@127.0.0.1:" + port,
		Hostname:            a.cfg.AgentHostname,
		Capabilities:        []string{"MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT", "TASK_RESOURCE_LIMITS"},
		Resources:           map[string]any{"cpus": 8, "mem": 15000, "disk": 100000, "gpus": 0, "ports": "[31000-32000]"},
		Attributes:          map[string]string{},
		MasterHostname:      a.cfg.MasterHostname,
		Flags:               map[string]string{"port": port, "hostname": a.cfg.AgentHostname},
		Frameworks:          []any{},
		CompletedFrameworks: []any{},
	})
}

// StateRequests is how many requests /state received.
func (a *Agent) StateRequests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stateRequests
}
