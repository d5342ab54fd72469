package main

// Unit tests of Mesos health checks and checks without Docker: validation
// and defaults, the state machine with explicit times, the schedule with a
// scripted probe, the HTTP and TCP probes against local listeners, the
// kill of a timed-out exec in a fake /proc, and the whole task lifecycle
// against the fake runtime.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

func f64(v float64) *float64 { return &v }
func u32(v uint32) *uint32   { return &v }

func TestParseHealthCheckDefaults(t *testing.T) {
	cfg, err := parseHealthCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.delay != 15*time.Second || cfg.interval != 10*time.Second || cfg.timeout != 20*time.Second ||
		cfg.grace != 10*time.Second || cfg.consecutiveFailures != 3 {
		t.Errorf("defaults %+v", cfg)
	}
	if cfg.probe.kind != probeTCP || cfg.probe.port != 8080 || cfg.probe.ipv6 {
		t.Errorf("probe %+v", cfg.probe)
	}
	cfg, err = parseHealthCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 80},
		DelaySeconds: f64(0.5), IntervalSeconds: f64(0.2), TimeoutSeconds: f64(0), GracePeriodSeconds: f64(0), ConsecutiveFailures: u32(0)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.delay != 500*time.Millisecond || cfg.interval != 200*time.Millisecond || cfg.timeout != 0 || cfg.grace != 0 || cfg.consecutiveFailures != 0 {
		t.Errorf("explicit values %+v", cfg)
	}
	if cfg.probe.scheme != "http" || cfg.probe.path != "" {
		t.Errorf("HTTP probe %+v", cfg.probe)
	}
	cfg, err = parseHealthCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: strPtr("test -f /ok"),
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "A", Value: strPtr("1")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.probe.cmd, "|") != "sh|-c|test -f /ok" || strings.Join(cfg.probe.env, "|") != "A=1" {
		t.Errorf("shell command %q env %q", cfg.probe.cmd, cfg.probe.env)
	}
	cfg, err = parseHealthCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{
		Shell: boolPtr(false), Value: strPtr("/bin/check"), Arguments: []string{"--quick", "a b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.probe.cmd, "|") != "/bin/check|--quick|a b" {
		t.Errorf("exec-form command %q", cfg.probe.cmd)
	}
}

func TestParseHealthCheckRejectsWhatMesosRejects(t *testing.T) {
	http := func(h mesos.HealthCheck_HTTPCheckInfo) *mesos.HealthCheck {
		return &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &h}
	}
	cases := []struct {
		name  string
		check *mesos.HealthCheck
		want  string
	}{
		{"no type", &mesos.HealthCheck{TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}}, "health_check.type must be"},
		{"HTTP without http", &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP}, "health_check.http is not set"},
		{"TCP without tcp", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP}, "health_check.tcp is not set"},
		{"COMMAND without command", &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND}, "health_check.command is not set"},
		{"COMMAND without value", &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{}}, "health_check.command.value must be set"},
		{"bad scheme", http(mesos.HealthCheck_HTTPCheckInfo{Port: 80, Scheme: strPtr("ftp")}), "health_check.http.scheme"},
		{"relative path", http(mesos.HealthCheck_HTTPCheckInfo{Port: 80, Path: strPtr("health")}), `health_check.http.path must start with "/"`},
		{"port 0", http(mesos.HealthCheck_HTTPCheckInfo{Port: 0}), "health_check.http.port"},
		{"negative delay", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, DelaySeconds: f64(-1)}, "health_check.delay_seconds"},
		{"negative interval", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, IntervalSeconds: f64(-1)}, "health_check.interval_seconds"},
		{"negative timeout", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, TimeoutSeconds: f64(-0.1)}, "health_check.timeout_seconds"},
		{"negative grace", &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 1}, GracePeriodSeconds: f64(-5)}, "health_check.grace_period_seconds"},
		{"secret env", &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: strPtr("true"),
			Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "S", Type: mesos.Environment_Variable_SECRET.Enum()}}}}}, "secret variables are not supported"},
	}
	for _, c := range cases {
		if _, err := parseHealthCheck(c.check); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestParseCheck(t *testing.T) {
	cfg, err := parseCheck(&mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 8080, Path: strPtr("/status")}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.delay != 15*time.Second || cfg.interval != 10*time.Second || cfg.timeout != 20*time.Second {
		t.Errorf("defaults %+v", cfg.checkTiming)
	}
	if cfg.probe.scheme != "http" || cfg.probe.path != "/status" || cfg.probe.port != 8080 {
		t.Errorf("probe %+v", cfg.probe)
	}
	for _, c := range []struct {
		check *mesos.CheckInfo
		want  string
	}{
		{&mesos.CheckInfo{}, "check.type must be"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND}, "check.command is not set"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND, Command: &mesos.CheckInfo_Command{}}, "check.command.command.value must be set"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 1, Path: strPtr("x")}}, "check.http.path"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_TCP}, "check.tcp is not set"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 1}, TimeoutSeconds: f64(-1)}, "check.timeout_seconds"},
	} {
		if _, err := parseCheck(c.check); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.check, err, c.want)
		}
	}
}

// TestCheckAndHealthCheckShareTheirTimingAndTargetErrors pins the whole
// texts of the errors both parsers share (parseTiming, httpProbeSpec,
// tcpProbeSpec), each under its own field prefix, and the probes built.
func TestCheckAndHealthCheckShareTheirTimingAndTargetErrors(t *testing.T) {
	tcpCheck := func(c mesos.CheckInfo) *mesos.CheckInfo {
		c.Type, c.TCP = mesos.CheckInfo_TCP, &mesos.CheckInfo_Tcp{Port: 1}
		return &c
	}
	tcpHealth := func(h mesos.HealthCheck) *mesos.HealthCheck {
		h.Type, h.TCP = mesos.HealthCheck_TCP, &mesos.HealthCheck_TCPCheckInfo{Port: 1}
		return &h
	}
	checks := []struct {
		check *mesos.CheckInfo
		want  string
	}{
		{tcpCheck(mesos.CheckInfo{DelaySeconds: f64(-1)}), "check.delay_seconds must be a non-negative number of seconds (got -1)"},
		{tcpCheck(mesos.CheckInfo{IntervalSeconds: f64(-2.5)}), "check.interval_seconds must be a non-negative number of seconds (got -2.5)"},
		{tcpCheck(mesos.CheckInfo{DelaySeconds: f64(-1), TimeoutSeconds: f64(-3)}), "check.delay_seconds must be a non-negative number of seconds (got -1)"},
		{tcpCheck(mesos.CheckInfo{TimeoutSeconds: f64(-3)}), "check.timeout_seconds must be a non-negative number of seconds (got -3)"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 0, Path: strPtr("x")}}, `check.http.path must start with "/" (got "x")`},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 0}}, "check.http.port must be a port number from 1 to 65535 (got 0)"},
		{&mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 70000}}, "check.tcp.port must be a port number from 1 to 65535 (got 70000)"},
	}
	for _, c := range checks {
		if _, err := parseCheck(c.check); err == nil || err.Error() != c.want {
			t.Errorf("check %+v: error %v, want %q", c.check, err, c.want)
		}
	}
	healthChecks := []struct {
		check *mesos.HealthCheck
		want  string
	}{
		{tcpHealth(mesos.HealthCheck{DelaySeconds: f64(-1)}), "health_check.delay_seconds must be a non-negative number of seconds (got -1)"},
		{tcpHealth(mesos.HealthCheck{IntervalSeconds: f64(-2.5)}), "health_check.interval_seconds must be a non-negative number of seconds (got -2.5)"},
		{tcpHealth(mesos.HealthCheck{TimeoutSeconds: f64(-3), GracePeriodSeconds: f64(-4)}), "health_check.timeout_seconds must be a non-negative number of seconds (got -3)"},
		{tcpHealth(mesos.HealthCheck{GracePeriodSeconds: f64(-4)}), "health_check.grace_period_seconds must be a non-negative number of seconds (got -4)"},
		{&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 0, Path: strPtr("x")}}, `health_check.http.path must start with "/" (got "x")`},
		{&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 0}}, "health_check.http.port must be a port number from 1 to 65535 (got 0)"},
		{&mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 70000}}, "health_check.tcp.port must be a port number from 1 to 65535 (got 70000)"},
	}
	for _, c := range healthChecks {
		if _, err := parseHealthCheck(c.check); err == nil || err.Error() != c.want {
			t.Errorf("health check %+v: error %v, want %q", c.check, err, c.want)
		}
	}

	ipv6 := mesos.IPv6
	health, err := parseHealthCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP,
		HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 8443, Scheme: strPtr("https"), Protocol: &ipv6}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (probeSpec{kind: probeHTTP, scheme: "https", port: 8443, ipv6: true}); !reflect.DeepEqual(health.probe, want) {
		t.Errorf("health check HTTP probe %+v, want %+v", health.probe, want)
	}
	if health, err = parseHealthCheck(&mesos.HealthCheck{Type: mesos.HealthCheck_TCP,
		TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 22, Protocol: &ipv6}}); err != nil {
		t.Fatal(err)
	}
	if want := (probeSpec{kind: probeTCP, port: 22, ipv6: true}); !reflect.DeepEqual(health.probe, want) {
		t.Errorf("health check TCP probe %+v, want %+v", health.probe, want)
	}
	check, err := parseCheck(&mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 22}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (probeSpec{kind: probeTCP, port: 22}); !reflect.DeepEqual(check.probe, want) {
		t.Errorf("check TCP probe %+v, want %+v", check.probe, want)
	}
}

func TestHealthStateGraceCountsAndKill(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(seconds float64) time.Time { return start.Add(time.Duration(seconds * float64(time.Second))) }
	s := &healthState{grace: 10 * time.Second, consecutiveFailures: 3, started: start}

	// Failures inside the grace period, before any success, do not count.
	for _, sec := range []float64{1, 5, 10} {
		if v, report := s.observe(false, "refused", at(sec)); report {
			t.Fatalf("failure at %vs inside the grace reported: %+v", sec, v)
		}
	}
	// Past the grace, each failure counts and is reported.
	v, report := s.observe(false, "refused", at(10.5))
	if !report || v.healthy || v.kill || !strings.Contains(v.message, "(1 of 3)") {
		t.Fatalf("first counted failure: %+v %v", v, report)
	}
	v, report = s.observe(true, "", at(11))
	if !report || !v.healthy {
		t.Fatalf("first success: %+v %v", v, report)
	}
	if _, report = s.observe(true, "", at(12)); report {
		t.Fatal("a second success in a row was reported")
	}
	for i := 1; i <= 2; i++ {
		v, report = s.observe(false, "HTTP 500", at(12+float64(i)))
		if !report || v.healthy || v.kill {
			t.Fatalf("failure %d after success: %+v %v", i, v, report)
		}
	}
	if v, report = s.observe(true, "", at(15)); !report || !v.healthy {
		t.Fatalf("first success after failures must be reported: %+v %v", v, report)
	}
	for i := 1; i <= 3; i++ {
		v, report = s.observe(false, "HTTP 503", at(15+float64(i)))
		if !report || v.healthy || v.kill != (i == 3) {
			t.Fatalf("failure %d: %+v %v", i, v, report)
		}
	}
	if !strings.Contains(v.message, "failed 3 times in a row") || !strings.Contains(v.message, "HTTP 503") {
		t.Errorf("kill message %q", v.message)
	}
}

func TestHealthStateGraceEndsWithFirstSuccess(t *testing.T) {
	start := time.Unix(1000, 0)
	s := &healthState{grace: time.Hour, consecutiveFailures: 2, started: start}
	if _, report := s.observe(true, "", start.Add(time.Second)); !report {
		t.Fatal("first success not reported")
	}
	v, report := s.observe(false, "x", start.Add(2*time.Second))
	if !report || v.healthy {
		t.Fatalf("a failure after a success counts even inside the grace: %+v %v", v, report)
	}
}

func TestHealthStateZeroGraceAndZeroFailures(t *testing.T) {
	start := time.Unix(1000, 0)
	s := &healthState{grace: 0, consecutiveFailures: 0, started: start}
	v, report := s.observe(false, "x", start)
	if !report || !v.kill {
		t.Fatalf("consecutive_failures=0 kills on the first counted failure: %+v %v", v, report)
	}
}

// scriptedProber returns the scripted outcomes in order; past the end,
// successes. It records when each attempt began.
type scriptedProber struct {
	mu       sync.Mutex
	outcomes []probeOutcome
	attempts int
	hang     bool // attempts wait for their context instead
}

func (p *scriptedProber) attempt(ctx context.Context) probeOutcome {
	p.mu.Lock()
	p.attempts++
	hang := p.hang
	var out probeOutcome
	if len(p.outcomes) > 0 {
		out = p.outcomes[0]
		p.outcomes = p.outcomes[1:]
	}
	p.mu.Unlock()
	if hang {
		<-ctx.Done()
		return probeOutcome{target: "scripted", err: ctx.Err()}
	}
	return out
}
func (p *scriptedProber) healthy(out probeOutcome) bool { return out.err == nil }
func (p *scriptedProber) describe() string              { return "scripted" }

func TestRunHealthCheckReportsAndStopsAfterTheKill(t *testing.T) {
	fail := probeOutcome{target: "scripted", err: errors.New("refused")}
	p := &scriptedProber{outcomes: []probeOutcome{{}, {}, fail, {}, fail, fail, fail, {}, {}}}
	state := &healthState{grace: 0, consecutiveFailures: 3, started: time.Now()}
	verdicts := make(chan healthVerdict, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runHealthCheck(context.Background(), checkTiming{interval: time.Millisecond}, p, state, time.Now, log.NewEntry(log.New()), verdicts)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the health check did not end after its kill verdict")
	}
	close(verdicts)
	var got []string
	for v := range verdicts {
		got = append(got, fmt.Sprintf("%t/%t", v.healthy, v.kill))
	}
	want := "true/false false/false true/false false/false false/false false/true"
	if strings.Join(got, " ") != want {
		t.Errorf("verdicts %q, want %q", strings.Join(got, " "), want)
	}
	if p.attempts != 7 {
		t.Errorf("%d attempts, want 7: none after the kill", p.attempts)
	}
}

func TestRunScheduleTimesOutAHangingAttempt(t *testing.T) {
	p := &scriptedProber{hang: true}
	var got []probeOutcome
	runSchedule(context.Background(), checkTiming{timeout: 20 * time.Millisecond}, p.attempt, func(out probeOutcome) bool {
		got = append(got, out)
		return len(got) < 2
	})
	if len(got) != 2 {
		t.Fatalf("%d outcomes, want 2", len(got))
	}
	for _, out := range got {
		if !out.timedOut || out.err == nil || !strings.Contains(out.err.Error(), "timed out after 20ms") {
			t.Errorf("outcome %+v, want a timeout", out)
		}
	}
}

func TestCheckStatusFrom(t *testing.T) {
	cases := []struct {
		kind mesos.CheckInfo_Type
		out  probeOutcome
		want string
	}{
		{mesos.CheckInfo_COMMAND, probeOutcome{code: 3}, "command exit code 3"},
		{mesos.CheckInfo_COMMAND, probeOutcome{err: errors.New("x"), timedOut: true}, "no result"},
		{mesos.CheckInfo_HTTP, probeOutcome{code: 503}, "HTTP status 503"},
		{mesos.CheckInfo_HTTP, probeOutcome{err: errors.New("refused")}, "no result"},
		{mesos.CheckInfo_TCP, probeOutcome{}, "succeeded: true"},
		{mesos.CheckInfo_TCP, probeOutcome{err: errors.New("refused"), refused: true}, "succeeded: false"},
		{mesos.CheckInfo_TCP, probeOutcome{err: errors.New("timeout"), timedOut: true}, "no result"},
	}
	for _, c := range cases {
		cs := checkStatusFrom(c.kind, c.out)
		if msg := validateCheckStatusShape(cs); msg != "" {
			t.Errorf("%s: %s", c.kind, msg)
		}
		if got := describeCheckStatus(cs); !strings.Contains(got, c.want) {
			t.Errorf("%s %+v: %q, want %q", c.kind, c.out, got, c.want)
		}
	}
}

// validateCheckStatusShape is what the agent requires of a check_status.
func validateCheckStatusShape(cs *mesos.CheckStatusInfo) string {
	switch {
	case cs.Type == nil:
		return "no type"
	case cs.GetType() == mesos.CheckInfo_COMMAND && cs.Command == nil,
		cs.GetType() == mesos.CheckInfo_HTTP && cs.HTTP == nil,
		cs.GetType() == mesos.CheckInfo_TCP && cs.TCP == nil:
		return "sub-message missing"
	}
	return ""
}

// localTarget is the host's network: probes connect to 127.0.0.1.
var localTarget = probeTarget{hostNetwork: true, network: "host"}

func portOf(t *testing.T, addr string) uint32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return uint32(n)
}

func TestHTTPProbeStatusesRedirectsAndTLS(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/same-host", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/bad", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()
	secure := httptest.NewTLSServer(mux)
	defer secure.Close()

	probe := func(scheme, addr, path string) probeOutcome {
		p := newHTTPProber(probeSpec{kind: probeHTTP, scheme: scheme, port: portOf(t, addr), path: path}, localTarget)
		return p.attempt(context.Background())
	}
	healthy := func(out probeOutcome) bool { return (&httpProber{}).healthy(out) }
	if out := probe("http", plain.Listener.Addr().String(), "/ok"); !healthy(out) || out.code != 204 {
		t.Errorf("/ok: %+v", out)
	}
	if out := probe("http", plain.Listener.Addr().String(), "/bad"); healthy(out) || out.code != 500 {
		t.Errorf("/bad: %+v", out)
	}
	if out := probe("http", plain.Listener.Addr().String(), "/same-host"); healthy(out) || out.code != 500 {
		t.Errorf("a redirect on the same host is followed: %+v", out)
	}
	if out := probe("http", plain.Listener.Addr().String(), "/elsewhere"); out.code != http.StatusFound || !healthy(out) {
		t.Errorf("a redirect to another host is not followed; its 302 is the answer: %+v", out)
	}
	if out := probe("https", secure.Listener.Addr().String(), "/ok"); !healthy(out) {
		t.Errorf("HTTPS with a self-signed certificate: %+v", out)
	}
	closed := closedPort(t)
	if out := probe("http", closed, "/"); healthy(out) || out.err == nil || !strings.Contains(out.err.Error(), "refused") {
		t.Errorf("closed port: %+v", out)
	}
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := &tcpProber{spec: probeSpec{kind: probeTCP, port: portOf(t, l.Addr().String())}, target: localTarget}
	if out := p.attempt(context.Background()); !p.healthy(out) {
		t.Errorf("listening port: %+v", out)
	}
	p.spec.port = portOf(t, closedPort(t))
	out := p.attempt(context.Background())
	if p.healthy(out) || !out.refused {
		t.Errorf("closed port: %+v", out)
	}
}

func TestProbeTargetAddresses(t *testing.T) {
	bridge := probeTarget{network: "bridge", ipv4: "172.17.0.5", ipv6: "fd00::5"}
	if host, _ := bridge.host(false); host != "172.17.0.5" {
		t.Errorf("bridge IPv4 %q", host)
	}
	if host, _ := bridge.host(true); host != "fd00::5" {
		t.Errorf("bridge IPv6 %q", host)
	}
	if host, _ := localTarget.host(true); host != "::1" {
		t.Errorf("host IPv6 %q", host)
	}
	if _, err := (probeTarget{network: "none"}).host(false); err == nil || !strings.Contains(err.Error(), "no IP address") {
		t.Errorf("no address: %v", err)
	}
	p := newHTTPProber(probeSpec{kind: probeHTTP, scheme: "http", port: 8080, path: "/health", ipv6: true}, bridge)
	if u, _ := p.url(); u != "http://[fd00::5]:8080/health" {
		t.Errorf("IPv6 URL %q", u)
	}
}

func TestKillMarkedProcessesOnlyInTheContainer(t *testing.T) {
	root := t.TempDir()
	const container = "0123456789abcdef0123456789abcdef"
	write := func(pid, cgroup, environ string) {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644)
		os.WriteFile(filepath.Join(dir, "environ"), []byte(environ), 0o644)
	}
	marker := "feedface"
	// Not ours: the right marker in another cgroup, another marker, a
	// variable whose name only ends like the marker's. PIDs that cannot
	// exist on this machine make a kill attempt fail harmlessly.
	write("99999990", "0::/docker/other\n", "PATH=/bin\x00"+execMarkerVar+"=feedface\x00")
	write("99999991", "0::/docker/"+container+"\n", execMarkerVar+"=other\x00")
	write("99999992", "0::/docker/"+container+"\n", "X"+execMarkerVar+"=feedface\x00")
	write("self", "", "")
	if killed := killMarkedProcesses(root, container, marker); len(killed) != 0 {
		t.Errorf("killed %v", killed)
	}
	// A real process of ours, marked and in a cgroup naming the
	// container, is killed.
	cmd := startSleeper(t)
	write(strconv.Itoa(cmd.Process.Pid), "0::/system.slice/docker-"+container+".scope\n", "A=1\x00"+execMarkerVar+"=feedface")
	killed := killMarkedProcesses(root, container, marker)
	if len(killed) != 1 || killed[0] != cmd.Process.Pid {
		t.Fatalf("killed %v, want [%d]", killed, cmd.Process.Pid)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the marked process ended with %v, want killed", err)
	}
}

func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd
}

// A container on several networks is probed at its own network's address
// (the task's network mode), then at the others' by name: never at an
// address picked by map order.
func TestProbeTargetPrefersTheTasksNetwork(t *testing.T) {
	networks := map[string]docker.ContainerNetwork{
		"zeta":     {IPAddress: "10.9.0.2"},
		"backend":  {IPAddress: "10.1.0.2"},
		"frontend": {IPAddress: "10.2.0.2", GlobalIPv6Address: "fd02::2"},
		"bridge":   {IPAddress: "172.17.0.2"},
	}
	container := &docker.Container{NetworkSettings: &docker.NetworkSettings{Networks: networks}}
	for _, tc := range []struct{ mode, ipv4, ipv6 string }{
		{"frontend", "10.2.0.2", "fd02::2"},
		{"zeta", "10.9.0.2", "fd02::2"},
		{"bridge", "172.17.0.2", "fd02::2"},
		{"default", "172.17.0.2", "fd02::2"},
		{"", "172.17.0.2", "fd02::2"},
		{"container:abc", "10.1.0.2", "fd02::2"},
	} {
		for range 20 {
			spec := &containerSpec{Options: docker.CreateContainerOptions{HostConfig: &docker.HostConfig{NetworkMode: tc.mode}}}
			target := probeTargetFor(container, spec)
			if target.ipv4 != tc.ipv4 || target.ipv6 != tc.ipv6 {
				t.Fatalf("network mode %q: probed at %s / %s, want %s / %s", tc.mode, target.ipv4, target.ipv6, tc.ipv4, tc.ipv6)
			}
		}
	}
}
