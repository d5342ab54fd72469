package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

func TestSidecarServiceName(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		name   string
		why    string // in the reason when name is ""
	}{
		{map[string]string{"ServiceName": "billing"}, "billing", ""},
		{map[string]string{"ServiceName": "billing", "ServicePort_80": "10100"}, "billing", ""},
		{map[string]string{"ServiceName": "app.v2 beta?#%"}, "app.v2 beta?#%", ""},
		{map[string]string{"ServiceName": " padded "}, " padded ", ""}, // Sidecar keeps it verbatim
		{nil, "", "no ServiceName label"},
		{map[string]string{"servicename": "billing"}, "", "no ServiceName label"}, // labels are case-sensitive
		{map[string]string{"ServiceName": ""}, "", "is empty"},
		{map[string]string{"ServiceName": "team/billing"}, "", "holds a '/'"},
		{map[string]string{"ServiceName": ".."}, "", "path step"},
		{map[string]string{"ServiceName": "\xff"}, "", "not valid UTF-8"},
	} {
		name, why := sidecarServiceName(tc.labels)
		if name != tc.name || (tc.name == "" && !strings.Contains(why, tc.why)) || (tc.name != "" && why != "") {
			t.Errorf("sidecarServiceName(%q) = %q, %q; want %q with a reason mentioning %q", tc.labels, name, why, tc.name, tc.why)
		}
	}
	if got := dockerLabels(&docker.Container{Config: &docker.Config{Labels: map[string]string{"ServiceName": "x"}}}); got["ServiceName"] != "x" {
		t.Errorf("dockerLabels = %v", got)
	}
	if got := dockerLabels(&docker.Container{}); got != nil {
		t.Errorf("dockerLabels without Config = %v", got)
	}
}

func TestServiceRouteURL(t *testing.T) {
	for _, tc := range []struct {
		stateURL, name, want, err string
	}{
		{"http://localhost:7777/state.json", "billing", "http://localhost:7777/api/services/billing.json", ""},
		{"http://localhost:7777/api/state.json", "billing", "http://localhost:7777/api/services/billing.json", ""},
		{"https://proxy.example/sidecar/state.json?token=1", "billing", "https://proxy.example/sidecar/api/services/billing.json?token=1", ""},
		{"http://proxy.example/x/api/state.json#frag", "billing", "http://proxy.example/x/api/services/billing.json", ""},
		{"http://h:7777/state.json", "app.v2 beta?#%", "http://h:7777/api/services/app.v2%20beta%3F%23%25.json", ""},
		{"http://h:7777/my/api/state.json", "a:b@c", "http://h:7777/my/api/services/a:b@c.json", ""},
		// Only a path segment named api is stripped.
		{"http://h/myapi/state.json", "s", "http://h/myapi/api/services/s.json", ""},
		{"http://h:7777/mystate.json", "s", "", "does not end in /state.json"},
		{"http://h:7777/services.json", "s", "", "does not end in /state.json"},
		{"http://h:7777", "s", "", "does not end in /state.json"},
		{"unix:///var/run/sidecar.sock", "s", "", "not an http(s) URL"},
		{"::not a url", "s", "", "missing protocol scheme"},
	} {
		got, err := serviceRouteURL(tc.stateURL, tc.name)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("serviceRouteURL(%q) = %q, %v; want an error mentioning %q", tc.stateURL, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("serviceRouteURL(%q, %q) = %q, %v; want %q", tc.stateURL, tc.name, got, err, tc.want)
		}
	}
}

// instance renders one record of a service document as Sidecar does.
func instance(id, host string, status any) string {
	return fmt.Sprintf(`{"ID": %q, "Name": "billing", "Image": "registry.local:5000/billing:1.4.2",
        "Created": "2026-11-23T07:00:01Z", "Hostname": %q,
        "Ports": [{"Type": "tcp", "Port": 31005, "ServicePort": 10100, "IP": "10.1.2.3"}],
        "Updated": "2026-11-23T07:12:03.519301Z", "ProxyMode": "http", "Status": %v}`, id, host, status)
}

func serviceDoc(instances ...string) string {
	return "{\n  \"Services\": {\n    \"billing\": [\n" + strings.Join(instances, ",\n") + "\n    ]\n  },\n  \"ClusterName\": \"prod\"\n}"
}

func TestLookupServiceRecord(t *testing.T) {
	const id = testServiceID
	keys := []string{"agent-01", "sidecar-own", "agent-01.local"}
	for _, tc := range []struct {
		name  string
		doc   string
		want  serviceMatch
		error string
	}{
		{"ours, alone", serviceDoc(instance(id, "agent-01", 2)),
			serviceMatch{Listed: 1, HostKey: "agent-01", Found: true, Status: 2}, ""},
		{"ours among others, listed last", serviceDoc(instance("aaaaaaaaaaaa", "agent-02", 0), instance("bbbbbbbbbbbb", "agent-01", 2), instance(id, "agent-01", 0)),
			serviceMatch{Listed: 3, HostKey: "agent-01", Found: true, Status: 0}, ""},
		{"the first candidate key wins over a later-listed lower one", serviceDoc(instance(id, "agent-01.local", 2), instance(id, "agent-01", 0)),
			serviceMatch{Listed: 2, HostKey: "agent-01", Found: true, Status: 0}, ""},
		{"a lower candidate when the first does not list it", serviceDoc(instance(id, "agent-01.local", 4)),
			serviceMatch{Listed: 1, HostKey: "agent-01.local", Found: true, Status: 4}, ""},
		{"the first record under a key counts", serviceDoc(instance(id, "agent-01", 1), instance(id, "agent-01", 0)),
			serviceMatch{Listed: 2, HostKey: "agent-01", Found: true, Status: 1}, ""},
		{"our ID on a host that is no candidate", serviceDoc(instance(id, "elsewhere", 2)),
			serviceMatch{Listed: 1, Stranger: "elsewhere"}, ""},
		{"not listed", serviceDoc(instance("aaaaaaaaaaaa", "agent-01", 2)), serviceMatch{Listed: 1}, ""},
		{"another name only", `{"Services": {"search": [` + instance(id, "agent-01", 2) + `]}, "ClusterName": "x"}`, serviceMatch{}, ""},
		{"escaped names and members", `{"Services": {"bill\u0069ng": [{"I\u0044": "3f2b9c81d4e7", "Hostname": "agent-\u00301", "Status": 2}]}}`,
			serviceMatch{Listed: 1, HostKey: "agent-01", Found: true, Status: 2}, ""},
		{"unknown fields are skipped", `{"Extra": [1, {"a": null}], "Services": {"billing": [{"X": {"Status": 9}, "ID": "3f2b9c81d4e7", "Hostname": "agent-01", "Status": 0}]}}`,
			serviceMatch{Listed: 1, HostKey: "agent-01", Found: true, Status: 0}, ""},
		{"a broken Status of another instance does not matter", serviceDoc(instance("aaaaaaaaaaaa", "agent-01", `"ALIVE"`), instance(id, "agent-01", 0)),
			serviceMatch{Listed: 2, HostKey: "agent-01", Found: true, Status: 0}, ""},
		{"our Status as a string", serviceDoc(instance(id, "agent-01", `"ALIVE"`)), serviceMatch{}, "Status is a JSON string, not a number"},
		{"our Status fractional", serviceDoc(instance(id, "agent-01", 1.5)), serviceMatch{}, "Status 1.5 is not an integer"},
		{"our Status out of range", serviceDoc(instance(id, "agent-01", "99999999999999999999")), serviceMatch{}, "out of range"},
		{"our record without Status", `{"Services": {"billing": [{"ID": "3f2b9c81d4e7", "Hostname": "agent-01"}]}}`, serviceMatch{}, "has no Status"},
		{"instances as an object", `{"Services": {"billing": {"3f2b9c81d4e7": {}}}}`, serviceMatch{}, `service "billing" is a JSON object, not an array`},
		{"an instance that is no object", `{"Services": {"billing": [null]}}`, serviceMatch{}, "instance 1 is a JSON null"},
		{"an ID that is no string", `{"Services": {"billing": [{"ID": 3}]}}`, serviceMatch{}, "field ID is a JSON number"},
		{"Services as an array", `{"Services": []}`, serviceMatch{}, "field Services is a JSON array"},
		{"no Services", `{"ClusterName": "x"}`, serviceMatch{}, "no Services field"},
		{"not an object", `[]`, serviceMatch{}, "it is a JSON array"},
		{"empty", ``, serviceMatch{}, "the body is empty"},
		{"garbage", `<html>502</html>`, serviceMatch{}, "not a valid JSON object"},
		{"truncated", serviceDoc(instance(id, "agent-01", 0))[:120], serviceMatch{}, "not a valid JSON object"},
		{"data after the end", serviceDoc(instance(id, "agent-01", 0)) + `{}`, serviceMatch{}, "data after its closing brace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookupServiceRecord(strings.NewReader(tc.doc), "billing", id, keys)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("error = %v, want one mentioning %q", err, tc.error)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("lookup = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// The emulator's documents are read the way the hand-written ones are,
// whatever order the instances come in.
func TestLookupServiceRecordOnEmulatorDocuments(t *testing.T) {
	state := sidecartest.GenerateState(50, 10000)
	// service-007 has 34 instances; the 8th host's is ours.
	name, id, host := "service-007", sidecartest.GeneratedID(7), "host-0007"
	var instances []*sidecartest.Service
	for _, h := range state.Servers {
		for _, svc := range h.Services {
			if svc.Name == name {
				instances = append(instances, svc)
			}
		}
	}
	body := sidecartest.ServiceDocument{Services: map[string][]*sidecartest.Service{name: instances}, ClusterName: "bench"}.Marshal()
	got, err := lookupServiceRecord(strings.NewReader(string(body)), name, id, []string{host})
	if err != nil || !got.Found || got.HostKey != host || got.Status != statusAlive || got.Listed != len(instances) {
		t.Fatalf("lookup = %+v, %v (of %d instances)", got, err, len(instances))
	}
}

func TestLookupServiceRecordCapsTheBody(t *testing.T) {
	s := new(serviceScanner)
	endless := io.MultiReader(strings.NewReader(`{"Services": {"billing": [`), &endlessInstances{})
	_, err := s.lookup(endless, 1<<20, "billing", testServiceID, []string{"agent-01"})
	if !errors.Is(err, errServiceTooLarge) {
		t.Fatalf("error = %v, want errServiceTooLarge", err)
	}
	if s.body.n > 1<<20+1 {
		t.Errorf("read %d bytes past a 1 MiB cap", s.body.n)
	}
	_, err = s.lookup(io.MultiReader(strings.NewReader(serviceDoc(instance(testServiceID, "agent-01", 0))[:50]), iotestReset{}),
		1<<20, "billing", testServiceID, []string{"agent-01"})
	var readErr *stateReadError
	if !errors.As(err, &readErr) {
		t.Fatalf("error = %v, want a read error", err)
	}
}

// endlessInstances is an endless list of other services' instances.
type endlessInstances struct{ pending []byte }

func (e *endlessInstances) Read(p []byte) (int, error) {
	if len(e.pending) == 0 {
		e.pending = []byte(instance("aaaaaaaaaaaa", "agent-02", 0) + ",")
	}
	n := copy(p, e.pending)
	e.pending = e.pending[n:]
	return n, nil
}

type iotestReset struct{}

func (iotestReset) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// routeWatcher sets a started watcher up for the per-service route.
func routeWatcher(name string) func(*sidecarWatcher) {
	return func(w *sidecarWatcher) { w.useServiceRoute(map[string]string{"ServiceName": name}) }
}

func TestRunUsesTheServiceRoute(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetState(sidecartest.GenerateState(20, 400))
	sidecar.SetHostname(host)
	sidecar.SetService(host, testServiceID, statusUnhealthy, sidecartest.WithName("billing"))
	sidecar.SetService("agent-02", "aaaaaaaaaaaa", statusAlive, sidecartest.WithName("billing"))
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{host}, routeWatcher("billing"))

	var unhealthy *unhealthyError
	if err := run.wait(t); !errors.As(err, &unhealthy) || unhealthy.Count != 3 {
		t.Fatalf("Run = %v, want unhealthy after 3", err)
	}
	if st := sidecar.Stats(sidecartest.RouteState); st.Requests != 0 {
		t.Errorf("state.json was fetched %d times (%d bytes)", st.Requests, st.Bytes)
	}
	sv := sidecar.Stats(sidecartest.RouteService)
	if sv.Requests != 3 {
		t.Errorf("%d service document requests, want one per poll = 3", sv.Requests)
	}
	for _, p := range sidecar.Polls() {
		if p.Path != "/api/services/billing.json" {
			t.Errorf("polled %s", p.Path)
		}
	}
	if !strings.Contains(unhealthy.Detail, fmt.Sprintf("service %s on Sidecar host %q is UNHEALTHY", testServiceID, host)) {
		t.Errorf("detail %q", unhealthy.Detail)
	}
}

func TestRunFallsBackToStateWithoutTheServiceRoute(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetServiceRoute(false)
	sidecar.SetService(host, testServiceID, statusUnhealthy, sidecartest.WithName("billing"))
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{host}, routeWatcher("billing"))

	if err := run.wait(t); err == nil {
		t.Fatal("Run = nil, want unhealthy through state.json")
	}
	if sv, st := sidecar.Stats(sidecartest.RouteService), sidecar.Stats(sidecartest.RouteState); sv.Requests != 1 || st.Requests != 3 {
		t.Errorf("%d route and %d state.json requests, want the route once (no retry of a 404) and state.json for each of the 3 polls", sv.Requests, st.Requests)
	}
	if n := run.countLogs(log.WarnLevel, "no per-service route"); n != 1 {
		t.Errorf("the missing route was logged %d times, want once", n)
	}
}

func TestRunServiceRouteBeforeAndAfterDiscovery(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarMaxFails = 1
	run := startWatcher(t, cfg, []string{host}, routeWatcher("billing"))

	// Not discovered yet: the route's 404 is a miss that state.json
	// confirms, round after round, without a verdict.
	waitForPolls(t, sidecar, 8)
	if st := sidecar.Stats(sidecartest.RouteState); st.Requests < 3 {
		t.Errorf("state.json asked %d times while the route had never listed the container", st.Requests)
	}
	run.assertRunning(t)

	// Discovered: the route confirms the name.
	sidecar.SetService(host, testServiceID, statusAlive, sidecartest.WithName("billing"))
	waitUntil(t, "a healthy verdict", func() bool { return len(run.healthCalls()) == 1 })
	// Gone again (a Sidecar restart): no verdict, and no more state.json.
	sidecar.RemoveService(host, testServiceID)
	sidecar.ResetStats()
	waitUntil(t, "rounds without the record", func() bool {
		return run.countLogs(log.WarnLevel, `is not listed under service name "billing"`) >= 3
	})
	if st := sidecar.Stats(sidecartest.RouteState); st.Requests != 0 {
		t.Errorf("state.json asked %d times once the route had been confirmed", st.Requests)
	}
	sidecar.SetService(host, testServiceID, statusUnhealthy, sidecartest.WithName("billing"))
	if err := run.wait(t); err == nil {
		t.Fatal("Run = nil, want unhealthy once listed again")
	}
	if got := run.healthValues(); !reflect.DeepEqual(got, []bool{true, false}) {
		t.Errorf("onHealth %v", got)
	}
}

func TestRunGivesTheRouteUpWhenSidecarNamesTheServiceOtherwise(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	// Sidecar runs another namer: the container is "billing-v2" to it.
	sidecar.SetService(host, testServiceID, statusAlive, sidecartest.WithName("billing-v2"))
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{host}, routeWatcher("billing"))

	waitUntil(t, "the route given up", func() bool { return run.countLogs(log.WarnLevel, "names services otherwise") == 1 })
	waitForPolls(t, sidecar, len(sidecar.Polls())+5)
	if sv := sidecar.Stats(sidecartest.RouteService); sv.Requests != serviceNameMisses {
		t.Errorf("the route was asked %d times, want %d and never after", sv.Requests, serviceNameMisses)
	}
	// state.json answered every round meanwhile.
	if got := run.healthValues(); !reflect.DeepEqual(got, []bool{true}) {
		t.Errorf("onHealth %v, want the healthy verdict from state.json", got)
	}
	if n := run.countLogs(log.WarnLevel, "names services otherwise"); n != 1 {
		t.Errorf("logged %d times", n)
	}
}

func TestRunServiceRouteLearnsSidecarsOwnHostname(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	sidecar.SetHostname("osx")
	sidecar.SetService("osx", testServiceID, statusAlive, sidecartest.WithName("billing"))
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{"agent-01"}, routeWatcher("billing"))

	waitForPolls(t, sidecar, 6)
	// Round 1: the route lists us under "osx", no candidate yet; state.json
	// names its Sidecar "osx". From round 2 the route alone answers.
	if st := sidecar.Stats(sidecartest.RouteState); st.Requests != 1 {
		t.Errorf("state.json asked %d times, want once to learn Sidecar's name", st.Requests)
	}
	if got := run.healthValues(); !reflect.DeepEqual(got, []bool{true}) {
		t.Errorf("onHealth %v", got)
	}
}

func TestRunNeverFailsOnSidecarFaultsThroughTheServiceRoute(t *testing.T) {
	for _, tc := range sidecarFaults("service document too large") {
		t.Run(tc.fault.String(), func(t *testing.T) {
			sidecar := sidecartest.NewServer(t)
			host := sidecar.Hostname()
			sidecar.SetService(host, testServiceID, statusUnhealthy, sidecartest.WithName("billing"))
			cfg := faultedWatcherConfig(sidecar, tc.fault)
			run := startWatcher(t, cfg, []string{host}, routeWatcher("billing"), func(w *sidecarWatcher) { w.maxServiceBytes = 1 << 20 })

			assertNoVerdictDuring(t, run, tc)
			// Sidecar's trouble is not a reason to fetch state.json.
			if st := sidecar.Stats(sidecartest.RouteState); st.Requests != 0 {
				t.Errorf("state.json fetched %d times during %s", st.Requests, tc.fault)
			}
			assertUnhealthyOnceCleared(t, sidecar, run)
		})
	}
}

// A service document under the cap is streamed whole, however padded;
// over it, the round has no verdict and state.json is not asked instead.
func TestRunServiceDocumentCap(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetService(host, testServiceID, statusAlive, sidecartest.WithName("billing"))
	sidecar.SetHugeSize(6 << 20)
	sidecar.SetFault(sidecartest.FaultHuge)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.HttpTimeout = 30 * time.Second
	cfg.SidecarPollInterval = time.Hour
	run := startWatcher(t, cfg, []string{host}, routeWatcher("billing"))
	waitUntil(t, "a verdict from the padded answer", func() bool { return len(run.healthCalls()) == 1 })
	if call := run.healthCalls()[0]; !call.healthy {
		t.Errorf("verdict %+v, want healthy", call)
	}
	if sv := sidecar.Stats(sidecartest.RouteService); sv.Bytes < 6<<20 {
		t.Errorf("served %d bytes, want the padded document", sv.Bytes)
	}

	small := startWatcher(t, cfg, []string{host}, routeWatcher("billing"), func(w *sidecarWatcher) { w.maxServiceBytes = 1 << 20 })
	waitUntil(t, "a round over the cap", func() bool { return small.countLogs(log.WarnLevel, "no health verdict this round") == 1 })
	if calls := small.healthCalls(); len(calls) != 0 {
		t.Errorf("onHealth %+v from a document over the cap", calls)
	}
	if st := sidecar.Stats(sidecartest.RouteState); st.Requests != 0 {
		t.Errorf("state.json fetched %d times", st.Requests)
	}
}
