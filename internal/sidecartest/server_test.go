package sidecartest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testID = "3f2b9c81d4e7"

type answer struct {
	status      int
	contentType string
	body        []byte
}

func do(t *testing.T, method, url string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), body}
}

func getState(t *testing.T, s *Server) State {
	t.Helper()
	a := do(t, http.MethodGet, s.StateURL())
	if a.status != http.StatusOK {
		t.Fatalf("state.json answered %d: %s", a.status, a.body)
	}
	var state State
	if err := json.Unmarshal(a.body, &state); err != nil {
		t.Fatalf("state.json is not a state document: %v", err)
	}
	return state
}

func TestStateDocument(t *testing.T) {
	s := NewServer(t)
	s.SetHostname("agent-01")
	s.SetService("agent-01", testID, StatusAlive, WithName("billing"), WithImage("registry.local:5000/billing:1.4.2"),
		WithPorts(Port{Type: "tcp", Port: 31005, ServicePort: 10100, IP: "10.1.2.3"}), WithProxyMode("tcp"))
	s.SetService("agent-02", "a91c0e5b2f33", StatusUnhealthy)

	for _, path := range []string{"/state.json", "/api/state.json"} {
		a := do(t, http.MethodGet, s.URL()+path)
		if a.status != http.StatusOK || a.contentType != "application/json" {
			t.Fatalf("%s: %d %q", path, a.status, a.contentType)
		}
		if bytes.ContainsAny(a.body, "\n\t") || bytes.Contains(a.body, []byte(": ")) {
			t.Errorf("%s is not compact: %s", path, a.body)
		}
		// Field order as Sidecar writes it.
		order := regexp.MustCompile(`^\{"Servers":\{"agent-01":\{"Name":"agent-01","Services":\{"3f2b9c81d4e7":\{"ID":"3f2b9c81d4e7","Name":"billing","Image":"registry.local:5000/billing:1.4.2","Created":"[^"]+","Hostname":"agent-01","Ports":\[\{"Type":"tcp","Port":31005,"ServicePort":10100,"IP":"10.1.2.3"\}\],"Updated":"[^"]+","ProxyMode":"tcp","Status":0\}\},"LastUpdated":"[^"]+","LastChanged":"[^"]+"\},"agent-02":.*\},"LastChanged":"[^"]+","ClusterName":"default","Hostname":"agent-01"\}$`)
		if !order.Match(a.body) {
			t.Errorf("%s does not follow Sidecar's schema and field order:\n%s", path, a.body)
		}
	}
	state := getState(t, s)
	other := state.Servers["agent-02"].Services["a91c0e5b2f33"]
	if other.Status != StatusUnhealthy || other.Hostname != "agent-02" || other.Ports == nil || other.Name != "test-service" {
		t.Errorf("default record %+v", other)
	}
	if time.Since(other.Updated) > time.Minute {
		t.Errorf("Updated %s is not refreshed", other.Updated)
	}
}

func TestRemoveServiceAndHost(t *testing.T) {
	s := NewServer(t)
	s.SetService("a", "111111111111", StatusAlive)
	s.SetService("a", "222222222222", StatusAlive)
	s.SetService("b", "333333333333", StatusAlive)

	s.RemoveService("a", "111111111111")
	state := getState(t, s)
	if _, ok := state.Servers["a"].Services["111111111111"]; ok || len(state.Servers["a"].Services) != 1 {
		t.Errorf("after RemoveService host a has %v", state.Servers["a"].Services)
	}
	s.RemoveService("a", "222222222222")
	s.RemoveHost("b")
	if state := getState(t, s); len(state.Servers) != 0 {
		t.Errorf("servers left: %v", state.Servers)
	}
}

func TestScript(t *testing.T) {
	s := NewServer(t)
	s.Script("h", testID, StatusUnknown, StatusUnhealthy, StatusAlive)
	var got []int
	for range 5 {
		got = append(got, getState(t, s).Servers["h"].Services[testID].Status)
	}
	if want := []int{StatusUnknown, StatusUnhealthy, StatusAlive, StatusAlive, StatusAlive}; !equalInts(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	// SetService replaces the script.
	s.SetService("h", testID, StatusTombstone)
	if st := getState(t, s).Servers["h"].Services[testID].Status; st != StatusTombstone {
		t.Errorf("status %d after SetService, want TOMBSTONE", st)
	}
	if polls := s.Polls(); len(polls) != 6 || polls[0].Path != "/state.json" {
		t.Errorf("polls %+v, want 6", polls)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDrainEndpoint(t *testing.T) {
	s := NewServer(t)
	s.SetHostname("agent-01")
	s.SetService("agent-01", testID, StatusAlive, WithName("billing"))
	s.SetService("agent-02", "a91c0e5b2f33", StatusAlive)

	a := do(t, http.MethodPost, s.URL()+"/api/services/"+testID+"/drain")
	if a.status != http.StatusAccepted || a.contentType != "application/json" {
		t.Fatalf("drain answered %d %q", a.status, a.contentType)
	}
	var accepted struct{ Message string }
	if err := json.Unmarshal(a.body, &accepted); err != nil || accepted.Message != `Service "billing" instance "3f2b9c81d4e7" set to DRAINING` {
		t.Errorf("drain body %s", a.body)
	}
	if st := getState(t, s).Servers["agent-01"].Services[testID].Status; st != StatusDraining {
		t.Errorf("status %d after drain, want DRAINING", st)
	}

	// Only the answering host's own services can be drained.
	a = do(t, http.MethodPost, s.URL()+"/api/services/a91c0e5b2f33/drain")
	var notFound struct{ Status, Message string }
	if err := json.Unmarshal(a.body, &notFound); a.status != http.StatusNotFound || err != nil ||
		notFound.Status != "error" || notFound.Message != `Not Found - Service ID "a91c0e5b2f33" not found` {
		t.Errorf("drain of another host's service: %d %s", a.status, a.body)
	}
	if a = do(t, http.MethodGet, s.URL()+"/api/services/"+testID+"/drain"); a.status != http.StatusMethodNotAllowed || len(a.body) != 0 {
		t.Errorf("GET on drain: %d %q, want 405 with an empty body", a.status, a.body)
	}

	drains := s.Drains()
	if len(drains) != 2 || drains[0].ID != testID || drains[0].Status != 202 || drains[1].Status != 404 {
		t.Errorf("drains %+v", drains)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, want := range drains {
		if got, err := s.WaitForDrain(ctx); err != nil || got != want {
			t.Errorf("WaitForDrain = %+v, %v; want %+v", got, err, want)
		}
	}
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if _, err := s.WaitForDrain(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForDrain with nothing new = %v, want deadline exceeded", err)
	}
}

func TestRoutes(t *testing.T) {
	s := NewServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/state.json", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/api/state.json", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nothing", http.StatusNotFound},
		{http.MethodPost, "/api/services//drain", http.StatusNotFound},
		{http.MethodGet, "/services.json", http.StatusNotFound},
	} {
		if a := do(t, tc.method, s.URL()+tc.path); a.status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, a.status, tc.status)
		}
	}
	if polls := s.Polls(); len(polls) != 0 {
		t.Errorf("wrong-method requests were recorded as polls: %+v", polls)
	}
}

func TestFaults(t *testing.T) {
	s := NewServer(t)
	s.SetService(s.Hostname(), testID, StatusAlive)
	complete := do(t, http.MethodGet, s.StateURL()).body

	s.SetFault(FaultHTTP500)
	if a := do(t, http.MethodGet, s.StateURL()); a.status != http.StatusInternalServerError || !json.Valid(a.body) {
		t.Errorf("FaultHTTP500: %d %s", a.status, a.body)
	}
	if a := do(t, http.MethodPost, s.URL()+"/api/services/"+testID+"/drain"); a.status != http.StatusInternalServerError {
		t.Errorf("FaultHTTP500 on drain: %d", a.status)
	}

	s.SetFault(FaultGarbage)
	if a := do(t, http.MethodGet, s.StateURL()); a.status != http.StatusOK || json.Valid(a.body) {
		t.Errorf("FaultGarbage: %d %q", a.status, a.body)
	}

	s.SetFault(FaultTruncated)
	if a := do(t, http.MethodGet, s.StateURL()); a.status != http.StatusOK || json.Valid(a.body) ||
		len(a.body) < 10 || !bytes.HasPrefix(complete, a.body[:10]) {
		t.Errorf("FaultTruncated: %d %q", a.status, a.body)
	}

	s.SetFault(FaultWrongTypes)
	first, second := do(t, http.MethodGet, s.StateURL()).body, do(t, http.MethodGet, s.StateURL()).body
	if !json.Valid(first) || !bytes.Contains(first, []byte(`"Status":"ALIVE"`)) {
		t.Errorf("FaultWrongTypes, first answer: %s", first)
	}
	if !json.Valid(second) || !bytes.Contains(second, []byte(`"Services":[{`)) {
		t.Errorf("FaultWrongTypes, second answer: %s", second)
	}

	s.SetFault(FaultNone)
	if a := do(t, http.MethodGet, s.StateURL()); a.status != http.StatusOK || !json.Valid(a.body) {
		t.Errorf("after clearing: %d", a.status)
	}
	faults := map[Fault]int{}
	for _, p := range s.Polls() {
		faults[p.Fault]++
	}
	if faults[FaultHTTP500] != 1 || faults[FaultWrongTypes] != 2 || faults[FaultNone] != 2 {
		t.Errorf("polls by fault %v", faults)
	}
}

func TestFaultClosedReopensOnTheSamePort(t *testing.T) {
	s := NewServer(t)
	url := s.StateURL()
	// A kept-alive connection must not survive the fault either.
	do(t, http.MethodGet, url)
	s.SetFault(FaultClosed)
	_, err := http.Get(url)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET during FaultClosed = %v, want connection refused", err)
	}
	s.SetFault(FaultNone)
	if s.StateURL() != url {
		t.Fatalf("URL changed from %s to %s", url, s.StateURL())
	}
	if a := do(t, http.MethodGet, url); a.status != http.StatusOK {
		t.Errorf("after reopening: %d", a.status)
	}
}

func TestFaultSlow(t *testing.T) {
	s := NewServer(t)
	s.SetSlowDelay(300 * time.Millisecond)
	s.SetFault(FaultSlow)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := client.Get(s.StateURL()); err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("GET with a 50ms timeout = %v, want a timeout", err)
	}
	start := time.Now()
	if a := do(t, http.MethodGet, s.StateURL()); a.status != http.StatusOK || time.Since(start) < 300*time.Millisecond {
		t.Errorf("patient GET: %d after %s", a.status, time.Since(start))
	}
}

func TestFaultHugeStreamsAValidDocument(t *testing.T) {
	s := NewServer(t)
	s.SetService(s.Hostname(), testID, StatusUnhealthy)
	s.SetHugeSize(3 << 20)
	s.SetFault(FaultHuge)
	resp, err := http.Get(s.StateURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Errorf("Content-Length %d, want a streamed (chunked) answer", resp.ContentLength)
	}
	counted := &countingReader{r: resp.Body}
	var state State
	if err := json.NewDecoder(counted).Decode(&state); err != nil {
		t.Fatalf("huge answer is not a state document: %v", err)
	}
	if counted.n < 3<<20 {
		t.Errorf("huge answer is %d bytes, want at least %d", counted.n, 3<<20)
	}
	if len(state.Servers) < 10 || state.Servers[s.Hostname()].Services[testID].Status != StatusUnhealthy {
		t.Errorf("huge answer has %d hosts, ours is %+v", len(state.Servers), state.Servers[s.Hostname()])
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestWaitForPolls(t *testing.T) {
	s := NewServer(t)
	go func() {
		for range 3 {
			resp, err := http.Get(s.StateURL())
			if err != nil {
				return
			}
			resp.Body.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitForPolls(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Polls()); n < 3 {
		t.Errorf("%d polls after WaitForPolls(3)", n)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := s.WaitForPolls(short, 100); err == nil {
		t.Error("WaitForPolls(100) returned without 100 polls")
	}
}

func TestStartAndClose(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	url := s.StateURL()
	s.SetSlowDelay(time.Hour)
	s.SetFault(FaultSlow)
	held := make(chan error, 1)
	go func() {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitForPolls(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a held answer hanging")
	}
	if _, err := http.Get(url); err == nil {
		t.Error("server still answers after Close")
	}
}

func TestGenerateState(t *testing.T) {
	state := GenerateState(5, 100)
	total := 0
	for name, host := range state.Servers {
		total += len(host.Services)
		for id, svc := range host.Services {
			if svc.ID != id || len(id) != 12 || svc.Hostname != name {
				t.Fatalf("record %+v under %s/%s", svc, name, id)
			}
		}
	}
	if len(state.Servers) != 5 || total != 100 {
		t.Errorf("%d hosts, %d services; want 5, 100", len(state.Servers), total)
	}
	if state.Servers["host-0001"].Services[GeneratedID(6)] == nil {
		t.Error("service 6 is not on host 1 as documented")
	}
}

func TestServiceDocument(t *testing.T) {
	s := NewServer(t)
	s.SetHostname("agent-01")
	s.SetClusterName("prod")
	s.SetService("agent-01", testID, StatusAlive, WithName("billing"),
		WithPorts(Port{Type: "tcp", Port: 31005, ServicePort: 10100, IP: "10.1.2.3"}))
	s.SetService("agent-02", "7d40aa1c9e02", StatusDraining, WithName("billing"))
	s.SetService("agent-02", "a91c0e5b2f33", StatusUnhealthy, WithName("search"))

	a := do(t, http.MethodGet, s.ServiceURL("billing"))
	if a.status != http.StatusOK || a.contentType != "application/json" {
		t.Fatalf("billing: %d %q %s", a.status, a.contentType, a.body)
	}
	// Sidecar's shape: Services then ClusterName, no ClusterMembers,
	// two-space indentation.
	if !bytes.HasPrefix(a.body, []byte("{\n  \"Services\": {\n    \"billing\": [\n      {\n        \"ID\": ")) ||
		!bytes.HasSuffix(a.body, []byte("\n  },\n  \"ClusterName\": \"prod\"\n}")) || bytes.Contains(a.body, []byte("ClusterMembers")) {
		t.Errorf("not Sidecar's indented service document:\n%s", a.body)
	}
	var doc ServiceDocument
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, svc := range doc.Services["billing"] {
		if svc.Name != "billing" {
			t.Errorf("instance of another name: %+v", svc)
		}
		got[svc.Hostname+"/"+svc.ID] = svc.Status
	}
	want := map[string]int{"agent-01/" + testID: StatusAlive, "agent-02/7d40aa1c9e02": StatusDraining}
	if len(doc.Services) != 1 || len(got) != 2 || got["agent-01/"+testID] != StatusAlive || got["agent-02/7d40aa1c9e02"] != StatusDraining {
		t.Errorf("instances %v, want %v (names %d)", got, want, len(doc.Services))
	}

	// Unknown name: Sidecar's JSON 404.
	a = do(t, http.MethodGet, s.ServiceURL("nothing"))
	if a.status != http.StatusNotFound || string(a.body) != `{"message":"no instances of nothing found","status":"error"}` {
		t.Errorf("unknown name: %d %s", a.status, a.body)
	}
	// Names with dots and escapes: the extension is what follows the last dot.
	s.SetService("agent-01", "0123456789ab", StatusAlive, WithName("app.v2 beta"))
	if a = do(t, http.MethodGet, s.ServiceURL("app.v2 beta")); a.status != http.StatusOK || !bytes.Contains(a.body, []byte(`"app.v2 beta": [`)) {
		t.Errorf("dotted name: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		method, path string
		status       int
		jsonBody     bool
	}{
		{http.MethodGet, "/api/services/billing.xml", http.StatusNotFound, true},
		{http.MethodGet, "/services/billing.json", http.StatusNotFound, false}, // no root alias
		{http.MethodGet, "/api/services/.json", http.StatusNotFound, false},
		{http.MethodGet, "/api/services/billing", http.StatusNotFound, false},
		{http.MethodPost, "/api/services/billing.json", http.StatusMethodNotAllowed, false},
	} {
		a := do(t, tc.method, s.URL()+tc.path)
		if a.status != tc.status || json.Valid(a.body) != tc.jsonBody {
			t.Errorf("%s %s: %d %q, want %d (JSON body %v)", tc.method, tc.path, a.status, a.body, tc.status, tc.jsonBody)
		}
	}

	// Without the route: the router's plain-text 404, as an older Sidecar.
	s.SetServiceRoute(false)
	if a = do(t, http.MethodGet, s.ServiceURL("billing")); a.status != http.StatusNotFound || json.Valid(a.body) {
		t.Errorf("route removed: %d %s", a.status, a.body)
	}
}

func TestStatsPerRoute(t *testing.T) {
	s := NewServer(t)
	s.SetService(s.Hostname(), testID, StatusAlive, WithName("billing"))
	state := do(t, http.MethodGet, s.StateURL())
	first := do(t, http.MethodGet, s.ServiceURL("billing"))
	second := do(t, http.MethodGet, s.ServiceURL("billing"))
	missing := do(t, http.MethodGet, s.ServiceURL("nothing"))

	st := s.Stats(RouteState)
	if st.Requests != 1 || st.Bytes != int64(len(state.body)) || st.ServeTime <= 0 {
		t.Errorf("state.json stats %+v, want 1 request of %d bytes", st, len(state.body))
	}
	sv := s.Stats(RouteService)
	if want := int64(len(first.body) + len(second.body) + len(missing.body)); sv.Requests != 3 || sv.Bytes != want || sv.ServeTime <= 0 {
		t.Errorf("service stats %+v, want 3 requests of %d bytes", sv, want)
	}
	polls := s.Polls()
	if len(polls) != 4 || polls[0].Route != RouteState || polls[1].Route != RouteService || polls[1].Path != "/api/services/billing.json" {
		t.Errorf("polls %+v", polls)
	}
	s.ResetStats()
	if st := s.Stats(RouteService); st != (RouteStats{}) {
		t.Errorf("after ResetStats: %+v", st)
	}
}

func TestServiceRouteFaultsAndScripts(t *testing.T) {
	s := NewServer(t)
	s.Script(s.Hostname(), testID, StatusUnhealthy, StatusAlive)
	s.SetService("other", "0123456789ab", StatusAlive) // same default name
	url := s.ServiceURL("test-service")
	status := func(body []byte) int {
		var doc ServiceDocument
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("not a service document: %v\n%s", err, body)
		}
		for _, svc := range doc.Services["test-service"] {
			if svc.ID == testID {
				return svc.Status
			}
		}
		t.Fatalf("our instance is missing: %s", body)
		return -1
	}
	// Scripts advance with service documents too.
	if got := status(do(t, http.MethodGet, url).body); got != StatusUnhealthy {
		t.Errorf("first document status %d", got)
	}
	if got := status(do(t, http.MethodGet, url).body); got != StatusAlive {
		t.Errorf("second document status %d", got)
	}
	complete := do(t, http.MethodGet, url).body

	s.SetFault(FaultHTTP500)
	if a := do(t, http.MethodGet, url); a.status != http.StatusInternalServerError || !json.Valid(a.body) {
		t.Errorf("FaultHTTP500: %d %s", a.status, a.body)
	}
	s.SetFault(FaultGarbage)
	if a := do(t, http.MethodGet, url); a.status != http.StatusOK || json.Valid(a.body) {
		t.Errorf("FaultGarbage: %d %q", a.status, a.body)
	}
	s.SetFault(FaultTruncated)
	if a := do(t, http.MethodGet, url); a.status != http.StatusOK || json.Valid(a.body) || !bytes.HasPrefix(complete, a.body[:10]) {
		t.Errorf("FaultTruncated: %d %q", a.status, a.body)
	}
	s.SetFault(FaultWrongTypes)
	first, second := do(t, http.MethodGet, url).body, do(t, http.MethodGet, url).body
	if !json.Valid(first) || !bytes.Contains(first, []byte(`"Status": "ALIVE"`)) {
		t.Errorf("FaultWrongTypes, first answer: %s", first)
	}
	if !json.Valid(second) || !bytes.Contains(second, []byte(`"test-service": {`)) {
		t.Errorf("FaultWrongTypes, second answer: %s", second)
	}
	s.SetHugeSize(1 << 20)
	s.SetFault(FaultHuge)
	huge := do(t, http.MethodGet, url)
	if huge.status != http.StatusOK || len(huge.body) < 1<<20 {
		t.Fatalf("FaultHuge: %d, %d bytes", huge.status, len(huge.body))
	}
	if got := status(huge.body); got != StatusAlive {
		t.Errorf("FaultHuge: our status %d", got)
	}
	if !bytes.Contains(huge.body[:1000], []byte("filler-host")) {
		t.Errorf("FaultHuge: the filler does not come first")
	}
}
