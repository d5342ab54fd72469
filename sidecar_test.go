package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

const (
	testContainerID = "3f2b9c81d4e7a5b60c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70819"
	testServiceID   = "3f2b9c81d4e7"
)

// stateDoc builds a small state.json by hand, so that each table row shows
// exactly what Sidecar answered. services maps host → id → status.
func stateDoc(sidecarHostname string, services map[string]map[string]int) string {
	state := sidecartest.State{Servers: map[string]*sidecartest.Host{}, ClusterName: "test", Hostname: sidecarHostname}
	for host, ids := range services {
		h := &sidecartest.Host{Name: host, Services: map[string]*sidecartest.Service{}}
		for id, status := range ids {
			h.Services[id] = &sidecartest.Service{ID: id, Name: "svc", Image: "img", Hostname: host, Ports: []sidecartest.Port{}, ProxyMode: "http", Status: status}
		}
		state.Servers[host] = h
	}
	return string(state.Marshal())
}

func TestCandidateHostKeys(t *testing.T) {
	tests := []struct {
		name     string
		hostKeys []string
		sidecar  string
		want     []string
	}{
		{"task host, then Sidecar's name, then the rest", []string{"agent-01.example.com", "agent-01"}, "sidecar-name", []string{"agent-01.example.com", "sidecar-name", "agent-01"}},
		{"duplicates dropped", []string{"agent-01", "agent-01"}, "agent-01", []string{"agent-01"}},
		{"empty keys dropped", []string{"", "agent-01"}, "", []string{"agent-01"}},
		{"no configured keys", nil, "sidecar-name", []string{"sidecar-name"}},
		{"nothing at all", nil, "", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := candidateHostKeys(tt.hostKeys, tt.sidecar); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("candidateHostKeys(%q, %q) = %q, want %q", tt.hostKeys, tt.sidecar, got, tt.want)
			}
		})
	}
}

func TestLookupServiceStatus(t *testing.T) {
	keys := []string{"agent-01.example.com", "agent-01"}
	id := testServiceID
	tests := []struct {
		name    string
		doc     string
		want    serviceLookup
		wantErr string // substring; empty means no error
	}{
		{
			name: "first key wins over Sidecar's own name",
			doc:  stateDoc("agent-01", map[string]map[string]int{"agent-01.example.com": {id: statusAlive}, "agent-01": {id: statusUnhealthy}}),
			want: serviceLookup{SidecarHostname: "agent-01", HostKey: "agent-01.example.com", HostFound: true, ServiceFound: true, Status: statusAlive},
		},
		{
			name: "Sidecar's own name before the other keys",
			doc:  stateDoc("sidecar-own", map[string]map[string]int{"sidecar-own": {id: statusUnhealthy}, "agent-01": {id: statusAlive}}),
			want: serviceLookup{SidecarHostname: "sidecar-own", HostKey: "sidecar-own", HostFound: true, ServiceFound: true, Status: statusUnhealthy},
		},
		{
			name: "last key when nothing else matches",
			doc:  stateDoc("elsewhere", map[string]map[string]int{"agent-01": {id: statusAlive}}),
			want: serviceLookup{SidecarHostname: "elsewhere", HostKey: "agent-01", HostFound: true, ServiceFound: true, Status: statusAlive},
		},
		{
			name: "present host without our service is not discovered yet, even if another key has it",
			doc:  stateDoc("agent-01", map[string]map[string]int{"agent-01.example.com": {"000000000000": statusAlive}, "agent-01": {id: statusUnhealthy}}),
			want: serviceLookup{SidecarHostname: "agent-01", HostKey: "agent-01.example.com", HostFound: true},
		},
		{
			name: "no candidate host",
			doc:  stateDoc("elsewhere", map[string]map[string]int{"other": {id: statusAlive}}),
			want: serviceLookup{SidecarHostname: "elsewhere"},
		},
		{
			name: "empty Servers",
			doc:  `{"Servers":{},"LastChanged":"2026-11-23T07:11:58.01Z","ClusterName":"c","Hostname":"agent-01"}`,
			want: serviceLookup{SidecarHostname: "agent-01"},
		},
		{
			name: "null Services is an empty host",
			doc:  `{"Servers":{"agent-01":{"Name":"agent-01","Services":null}},"Hostname":"agent-01"}`,
			want: serviceLookup{SidecarHostname: "agent-01", HostKey: "agent-01", HostFound: true},
		},
		{
			name: "escaped keys and unknown fields",
			doc:  `{"Extra":[1,{"Servers":{}}],"Servers":{"agent-\u0030\u0031":{"Services":{"3f2b9c81d4e7":{"Ports":[{"Status":9}],"Status":2,"Extra":{"Status":0}}}}},"Hostname":"x"}`,
			want: serviceLookup{SidecarHostname: "x", HostKey: "agent-01", HostFound: true, ServiceFound: true, Status: statusUnhealthy},
		},
		{
			name: "Hostname before Servers",
			doc:  `{"Hostname":"h","Servers":{"h":{"Services":{"3f2b9c81d4e7":{"Status":4}}}}}`,
			want: serviceLookup{SidecarHostname: "h", HostKey: "h", HostFound: true, ServiceFound: true, Status: statusDraining},
		},
		{
			name: "Sidecar's own name, learned after Servers, outranks a later key listed after it",
			doc:  `{"Servers":{"own":{"Services":{"3f2b9c81d4e7":{"Status":2}}},"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":0}}}},"Hostname":"own"}`,
			want: serviceLookup{SidecarHostname: "own", HostKey: "own", HostFound: true, ServiceFound: true, Status: statusUnhealthy},
		},
		{
			name: "Sidecar's own name, learned after Servers, listed after a later key",
			doc:  `{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":0}}},"o\u0077n":{"Services":{"3f2b9c81d4e7":{"Status":2}}}},"Hostname":"own"}`,
			want: serviceLookup{SidecarHostname: "own", HostKey: "own", HostFound: true, ServiceFound: true, Status: statusUnhealthy},
		},
		{
			name: "a repeated host name counts at its first occurrence",
			doc:  `{"Servers":{"own":{"Services":{"3f2b9c81d4e7":{"Status":1}}},"own":{"Services":{"3f2b9c81d4e7":{"Status":0}}}},"Hostname":"own"}`,
			want: serviceLookup{SidecarHostname: "own", HostKey: "own", HostFound: true, ServiceFound: true, Status: statusTombstone},
		},
		{
			name: "the first key present makes Sidecar's own entry irrelevant",
			doc:  `{"Servers":{"own":"x","agent-01.example.com":{"Services":{}}},"Hostname":"own"}`,
			want: serviceLookup{SidecarHostname: "own", HostKey: "agent-01.example.com", HostFound: true},
		},
		{name: "Sidecar's own entry is a string", doc: `{"Servers":{"own":"x","agent-01":{}},"Hostname":"own"}`, wantErr: `host "own" in Servers is a JSON string`},
		{name: "garbage", doc: "<html>502 Bad Gateway</html>", wantErr: "not a valid JSON object"},
		{name: "empty body", doc: "", wantErr: "not a valid JSON object"},
		{name: "empty object", doc: " { } ", wantErr: "no Servers field"},
		{name: "cut before the closing brace", doc: `{"Servers":{},"Hostname":"a"`, wantErr: "not a valid JSON object"},
		{name: "trailing comma", doc: `{"Servers":{},"Hostname":"a",}`, wantErr: "data after its closing brace"},
		{name: "top level array", doc: `[{"Servers":{}}]`, wantErr: "not a valid JSON object"},
		{name: "truncated", doc: stateDoc("agent-01", map[string]map[string]int{"agent-01": {id: statusAlive}})[:60], wantErr: "not a valid JSON object"},
		{name: "trailing data", doc: `{"Servers":{},"Hostname":"a"} {}`, wantErr: "after its closing brace"},
		{name: "no Servers", doc: `{"Hostname":"agent-01"}`, wantErr: "no Servers field"},
		{name: "Servers is an array", doc: `{"Servers":[],"Hostname":"agent-01"}`, wantErr: "Servers is a JSON array"},
		{name: "Hostname is a number", doc: `{"Servers":{},"Hostname":7}`, wantErr: "Hostname is a JSON number"},
		{name: "host is a string", doc: `{"Servers":{"agent-01":"up"}}`, wantErr: `host "agent-01" in Servers is a JSON string`},
		{name: "Services is an array", doc: `{"Servers":{"agent-01":{"Services":[{"ID":"3f2b9c81d4e7","Status":0}]}}}`, wantErr: "Services is a JSON array"},
		{name: "service is a number", doc: `{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":0}}}}`, wantErr: "not an object"},
		{name: "Status is a string", doc: `{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":"ALIVE"}}}}}`, wantErr: "Status is a JSON string"},
		{name: "Status is a fraction", doc: `{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":1.5}}}}}`, wantErr: "not an integer"},
		{name: "Status out of range", doc: `{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":99999999999999999999}}}}}`, wantErr: "out of range"},
		{name: "malformed where nothing is looked at", doc: `{"Servers":{},"Hostname":"a","Extra":[1 2]}`, wantErr: "not a valid JSON object"},
		{name: "Status missing", doc: `{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"ID":"3f2b9c81d4e7"}}}}}`, wantErr: "has no Status"},
		{
			name: "wrong types elsewhere do not matter",
			doc:  `{"Servers":{"other":"x","agent-01":{"Services":{"aaaaaaaaaaaa":{"Status":"bad"},"3f2b9c81d4e7":{"Status":0}}}}}`,
			want: serviceLookup{HostKey: "agent-01", HostFound: true, ServiceFound: true, Status: statusAlive},
		},
	}
	for status := statusAlive; status <= statusDraining; status++ {
		tests = append(tests, struct {
			name    string
			doc     string
			want    serviceLookup
			wantErr string
		}{
			name: "status " + statusName(status),
			doc:  stateDoc("agent-01", map[string]map[string]int{"agent-01": {id: status, "aaaaaaaaaaaa": statusUnhealthy}}),
			want: serviceLookup{SidecarHostname: "agent-01", HostKey: "agent-01", HostFound: true, ServiceFound: true, Status: status},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookupServiceStatus(strings.NewReader(tt.doc), keys, id)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("lookup = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// endlessState is a valid-looking state.json that never ends: the opening of
// a host, then service records without end, cut wherever a Read ends.
type endlessState struct {
	read int64
}

const (
	endlessOpening = `{"Servers":{"filler":{"Name":"filler","Services":{`
	endlessRecord  = `"aaaaaaaaaaaa":{"ID":"aaaaaaaaaaaa","Status":0},`
)

func (e *endlessState) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		var copied int
		if e.read < int64(len(endlessOpening)) {
			copied = copy(p[n:], endlessOpening[e.read:])
		} else {
			at := (e.read - int64(len(endlessOpening))) % int64(len(endlessRecord))
			copied = copy(p[n:], endlessRecord[at:])
		}
		n += copied
		e.read += int64(copied)
	}
	return n, nil
}

func TestLookupServiceStatusCutsHugeBodyAtTheCap(t *testing.T) {
	body := &endlessState{}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := lookupServiceStatus(body, []string{"agent-01"}, testServiceID)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errStateTooLarge) {
		t.Fatalf("error = %v, want errStateTooLarge", err)
	}
	// Reading stops one byte past the cap (plus whatever the last Read
	// returned with it).
	if body.read > maxStateBytes+64<<10 {
		t.Errorf("read %d bytes of an endless body, want about the cap %d", body.read, maxStateBytes)
	}
	// The body streams through the decoder's window: memory does not grow
	// with the document. (The bound leaves room for whatever other
	// goroutines allocate meanwhile.)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 4<<20 {
		t.Errorf("allocated %d KiB for an endless body, want a few KiB", allocated>>10)
	}
}

// TestLookupServiceStatusRecordsHostsUpToABound: while Sidecar's own name
// is unknown (it comes after Servers) and no configured key has turned up,
// the lookup records every host, up to recordedHostBytes of them.
func TestLookupServiceStatusRecordsHostsUpToABound(t *testing.T) {
	// Enough hosts of 40-character names to pass the bound twice.
	count := 2 * recordedHostBytes / 40
	document := func(ownAt int, keyed bool) string {
		var b strings.Builder
		b.WriteString(`{"Servers":{`)
		for i := range count {
			if i == ownAt {
				b.WriteString(`"own":{"Services":{"3f2b9c81d4e7":{"Status":2}}},`)
			}
			fmt.Fprintf(&b, `"filler-host-%027d":{},`, i)
		}
		if keyed {
			b.WriteString(`"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":0}}},`)
		}
		b.WriteString(`"last":{}},"Hostname":"own"}`)
		return b.String()
	}
	keys := []string{"agent-01.example.com", "agent-01"}
	own := serviceLookup{SidecarHostname: "own", HostKey: "own", HostFound: true, ServiceFound: true, Status: statusUnhealthy}
	tests := []struct {
		name    string
		doc     string
		want    serviceLookup
		wantErr string
	}{
		{"own host recorded before the bound", document(10, true), own, ""},
		{"own host past the bound", document(count-10, true), serviceLookup{}, "cannot tell whether Sidecar's own name"},
		{"own host absent, but past the bound it could have been", document(-1, true), serviceLookup{}, "cannot tell whether Sidecar's own name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookupServiceStatus(strings.NewReader(tt.doc), keys, testServiceID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("lookup = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("lookup = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("the first key ends the recording", func(t *testing.T) {
		// The first configured key comes first: nothing is recorded,
		// however many hosts follow.
		doc := strings.Replace(document(count-10, false), `{"Servers":{`, `{"Servers":{"agent-01.example.com":{"Services":{"3f2b9c81d4e7":{"Status":0}}},`, 1)
		scanner := new(stateScanner)
		got, err := scanner.lookup(strings.NewReader(doc), maxStateBytes, keys, testServiceID)
		if err != nil || got.HostKey != "agent-01.example.com" || !got.ServiceFound || got.Status != statusAlive {
			t.Fatalf("lookup = %+v, %v", got, err)
		}
		if cap(scanner.recorded) > 0 {
			t.Errorf("%d bytes of host names recorded after the first key was seen", cap(scanner.recorded))
		}
	})
}

func TestStateScannerReading(t *testing.T) {
	doc := stateDoc("agent-01", map[string]map[string]int{"agent-01": {testServiceID: statusUnhealthy}})
	want := serviceLookup{SidecarHostname: "agent-01", HostKey: "agent-01", HostFound: true, ServiceFound: true, Status: statusUnhealthy}
	tests := []struct {
		name    string
		limit   int64
		wantErr bool
	}{
		{"under the cap", int64(len(doc)) + 1000, false},
		{"exactly the cap", int64(len(doc)), false},
		{"one byte over the cap", int64(len(doc)) - 1, true},
		{"zero cap", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := new(stateScanner).lookup(strings.NewReader(doc), tt.limit, []string{"agent-01"}, testServiceID)
			if tt.wantErr {
				if !errors.Is(err, errStateTooLarge) {
					t.Fatalf("error = %v, want errStateTooLarge", err)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("lookup = %+v, %v; want %+v", got, err, want)
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		broken := io.MultiReader(strings.NewReader(doc[:len(doc)/2]), iotestErrReader{})
		_, err := lookupServiceStatus(broken, []string{"agent-01"}, testServiceID)
		var readErr *stateReadError
		if !errors.As(err, &readErr) || errors.Is(err, errStateTooLarge) || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("error = %v, want a *stateReadError with the reader's error", err)
		}
	})
	t.Run("read error after a complete document", func(t *testing.T) {
		broken := io.MultiReader(strings.NewReader(doc), iotestErrReader{})
		var readErr *stateReadError
		if _, err := lookupServiceStatus(broken, []string{"agent-01"}, testServiceID); !errors.As(err, &readErr) {
			t.Fatalf("error = %v, want a *stateReadError: the end of the body was never seen", err)
		}
	})
	t.Run("any split of the body", func(t *testing.T) {
		for _, r := range []io.Reader{iotest.OneByteReader(strings.NewReader(doc)), iotest.DataErrReader(strings.NewReader(doc)), iotest.HalfReader(strings.NewReader(doc))} {
			if got, err := lookupServiceStatus(r, []string{"agent-01"}, testServiceID); err != nil || got != want {
				t.Fatalf("lookup = %+v, %v; want %+v", got, err, want)
			}
		}
	})
	t.Run("reused scanner allocates nothing", func(t *testing.T) {
		state := sidecartest.GenerateState(50, 1000)
		big := state.Marshal()
		keys := []string{"host-0049", "nope"} // the last host: every other one is recorded
		id := sidecartest.GeneratedID(49)
		scanner := new(stateScanner)
		reader := bytes.NewReader(big)
		allocs := testing.AllocsPerRun(20, func() {
			reader.Reset(big)
			got, err := scanner.lookup(reader, maxStateBytes, keys, id)
			if err != nil || !got.ServiceFound || got.HostKey != "host-0049" {
				t.Fatalf("lookup = %+v, %v", got, err)
			}
		})
		// SidecarHostname is the one string the answer carries.
		if allocs > 1 {
			t.Errorf("%v allocations per lookup with a reused scanner, want at most 1", allocs)
		}
		if scanner.oversized() {
			t.Errorf("a 1,000-service lookup grew the scanner past what the watcher keeps")
		}
	})
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestVerdictForStatus(t *testing.T) {
	want := map[int]verdict{
		statusAlive:     verdictHealthy,
		statusTombstone: verdictUnhealthy,
		statusUnhealthy: verdictUnhealthy,
		statusUnknown:   verdictNone,
		statusDraining:  verdictNone,
		-1:              verdictNone,
		5:               verdictNone,
	}
	for status, v := range want {
		if got := verdictForStatus(status); got != v {
			t.Errorf("verdictForStatus(%d) = %d, want %d", status, got, v)
		}
	}
	for status, name := range map[int]string{0: "ALIVE", 1: "TOMBSTONE", 2: "UNHEALTHY", 3: "UNKNOWN", 4: "DRAINING", 9: "status 9"} {
		if got := statusName(status); got != name {
			t.Errorf("statusName(%d) = %q, want %q", status, got, name)
		}
	}
}

func TestHealthTracker(t *testing.T) {
	const (
		H = verdictHealthy
		U = verdictUnhealthy
		N = verdictNone
	)
	// notes: "+" notified healthy, "-" notified unhealthy, "." nothing,
	// "X" threshold reached (the watcher stops there).
	tests := []struct {
		name     string
		maxFails int
		verdicts []verdict
		want     string
		counts   []int
	}{
		{"unhealthy from the start", 3, []verdict{U, U, U}, "-.X", []int{1, 2, 3}},
		{"one fail allowed", 1, []verdict{U}, "X", []int{1}},
		{"healthy throughout", 3, []verdict{H, H, H, H}, "+...", []int{0, 0, 0, 0}},
		{"healthy resets the count", 3, []verdict{U, U, H, U, U, H}, "-.+-.+", []int{1, 2, 0, 1, 2, 0}},
		{"no verdict neither counts nor resets", 3, []verdict{U, N, U, N, N, U}, "-....X", []int{1, 1, 2, 2, 2, 3}},
		{"no verdict before the first verdict", 2, []verdict{N, N, H, N, U, N, U}, "..+.-.X", []int{0, 0, 0, 0, 1, 1, 2}},
		{"alternating never fails", 2, []verdict{U, H, U, H, U, H}, "-+-+-+", []int{1, 0, 1, 0, 1, 0}},
		{"recovery after a bad spell", 5, []verdict{H, U, U, U, H, H}, "+-..+.", []int{0, 1, 2, 3, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tracker := newHealthTracker(tt.maxFails)
			var notes strings.Builder
			var counts []int
			for i, v := range tt.verdicts {
				step := tracker.observe(v)
				counts = append(counts, step.unhealthyCount)
				switch {
				case step.failed:
					notes.WriteByte('X')
					if i != len(tt.verdicts)-1 {
						t.Fatalf("threshold reached at observation %d of %d", i+1, len(tt.verdicts))
					}
				case step.notify && step.healthy:
					notes.WriteByte('+')
				case step.notify:
					notes.WriteByte('-')
				default:
					notes.WriteByte('.')
				}
			}
			if notes.String() != tt.want {
				t.Errorf("notifications %q, want %q", notes.String(), tt.want)
			}
			if !reflect.DeepEqual(counts, tt.counts) {
				t.Errorf("counts %v, want %v", counts, tt.counts)
			}
		})
	}
	t.Run("the failing observation also notifies when it is the first unhealthy one", func(t *testing.T) {
		step := newHealthTracker(1).observe(U)
		if !step.failed || !step.notify || step.healthy {
			t.Errorf("step = %+v, want failed and notified unhealthy", step)
		}
	})
}

func TestUnhealthyErrorMessage(t *testing.T) {
	err := error(&unhealthyError{Count: 3, Status: "UNHEALTHY", Detail: "service x"})
	const want = "Sidecar reported the container unhealthy 3 times in a row (last status UNHEALTHY)"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// --- Run and Drain over HTTP against the emulator ---

// testWatcherConfig has millisecond-scale timings.
func testWatcherConfig(sidecarURL string) *Config {
	return &Config{
		SidecarUrl:          sidecarURL,
		HttpTimeout:         500 * time.Millisecond,
		SidecarRetryCount:   1,
		SidecarRetryDelay:   5 * time.Millisecond,
		SidecarBackoff:      0,
		SidecarPollInterval: 15 * time.Millisecond,
		SidecarMaxFails:     3,
	}
}

type healthCall struct {
	healthy bool
	detail  string
}

// watchedRun is a Run in progress.
type watchedRun struct {
	watcher *sidecarWatcher
	cancel  context.CancelFunc
	done    chan error
	hook    *logtest.Hook

	mu    sync.Mutex
	calls []healthCall
}

func startWatcher(t *testing.T, cfg *Config, hostKeys []string, adjust ...func(*sidecarWatcher)) *watchedRun {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(log.DebugLevel)
	w := newSidecarWatcher(cfg, testContainerID, hostKeys, log.NewEntry(logger))
	for _, f := range adjust {
		f(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &watchedRun{watcher: w, cancel: cancel, done: make(chan error, 1), hook: hook}
	go func() {
		run.done <- w.Run(ctx, func(healthy bool, detail string) {
			run.mu.Lock()
			defer run.mu.Unlock()
			run.calls = append(run.calls, healthCall{healthy, detail})
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-run.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return run
}

func (r *watchedRun) healthCalls() []healthCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]healthCall(nil), r.calls...)
}

func (r *watchedRun) healthValues() []bool {
	var values []bool
	for _, c := range r.healthCalls() {
		values = append(values, c.healthy)
	}
	return values
}

// wait returns Run's result, failing the test if it takes too long.
func (r *watchedRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // keep it for Cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// stop cancels Run and returns its result.
func (r *watchedRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *watchedRun) assertRunning(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run returned early: %v", err)
	default:
	}
}

func (r *watchedRun) countLogs(level log.Level, contains string) int {
	n := 0
	for _, e := range r.hook.AllEntries() {
		if e.Level == level && strings.Contains(e.Message, contains) {
			n++
		}
	}
	return n
}

func quietLogger() *log.Entry {
	logger, _ := logtest.NewNullLogger()
	return log.NewEntry(logger)
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitForPolls(t *testing.T, sidecar *sidecartest.Server, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sidecar.WaitForPolls(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func TestRunFailsAfterMaxFailsUnhealthyPolls(t *testing.T) {
	for _, status := range []int{statusUnhealthy, statusTombstone} {
		t.Run(statusName(status), func(t *testing.T) {
			sidecar := sidecartest.NewServer(t)
			sidecar.SetService(sidecar.Hostname(), testServiceID, status)
			run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{sidecar.Hostname()})

			err := run.wait(t)
			var unhealthy *unhealthyError
			if !errors.As(err, &unhealthy) {
				t.Fatalf("Run = %v, want *unhealthyError", err)
			}
			if unhealthy.Count != 3 || unhealthy.Status != statusName(status) {
				t.Errorf("error = %+v, want Count 3, Status %s", unhealthy, statusName(status))
			}
			want := fmt.Sprintf("Sidecar reported the container unhealthy 3 times in a row (last status %s)", statusName(status))
			if err.Error() != want {
				t.Errorf("message %q, want %q", err.Error(), want)
			}
			if !strings.Contains(unhealthy.Detail, testServiceID) {
				t.Errorf("Detail %q does not name the service", unhealthy.Detail)
			}
			if polls := len(sidecar.Polls()); polls != 3 {
				t.Errorf("Sidecar was polled %d times, want exactly SidecarMaxFails = 3", polls)
			}
			if got := run.healthValues(); !reflect.DeepEqual(got, []bool{false}) {
				t.Errorf("onHealth calls %v, want one unhealthy call", got)
			}
		})
	}
}

func TestRunKeepsRunningWhileAlive(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	sidecar.SetService(sidecar.Hostname(), testServiceID, statusAlive)
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{sidecar.Hostname()})

	waitForPolls(t, sidecar, 15)
	run.assertRunning(t)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v after cancel, want nil", err)
	}
	calls := run.healthCalls()
	if len(calls) != 1 || !calls[0].healthy || !strings.Contains(calls[0].detail, "ALIVE") {
		t.Errorf("onHealth calls %+v, want exactly one healthy call mentioning ALIVE", calls)
	}
}

func TestRunNotifiesEveryVerdictChangeAndNeverFailsWhenAlternating(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.Script(host, testServiceID,
		statusUnhealthy, statusAlive, statusUnhealthy, statusUnhealthy, statusAlive, statusUnhealthy, statusAlive)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarMaxFails = 3
	run := startWatcher(t, cfg, []string{host})

	waitForPolls(t, sidecar, 12)
	run.assertRunning(t)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := []bool{false, true, false, true, false, true}
	if got := run.healthValues(); !reflect.DeepEqual(got, want) {
		t.Errorf("onHealth calls %v, want %v", got, want)
	}
}

func TestRunTreatsUnknownAndDrainingAsNeutral(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	// Counts: 1, -, 2, -, -, 3 → fails on the 6th poll.
	sidecar.Script(host, testServiceID,
		statusUnhealthy, statusUnknown, statusUnhealthy, statusDraining, statusUnknown, statusUnhealthy)
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{host})

	var unhealthy *unhealthyError
	if err := run.wait(t); !errors.As(err, &unhealthy) || unhealthy.Count != 3 {
		t.Fatalf("Run = %v, want unhealthy 3 times", err)
	}
	if polls := len(sidecar.Polls()); polls != 6 {
		t.Errorf("polled %d times, want 6", polls)
	}
	if got := run.healthValues(); !reflect.DeepEqual(got, []bool{false}) {
		t.Errorf("onHealth calls %v, want one unhealthy call", got)
	}
	if n := run.countLogs(log.InfoLevel, "is DRAINING"); n != 1 {
		t.Errorf("%d logs about DRAINING, want 1", n)
	}
}

func TestRunAliveResetsTheCount(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.Script(host, testServiceID,
		statusUnhealthy, statusUnhealthy, statusAlive, statusUnhealthy, statusUnhealthy, statusAlive,
		statusUnhealthy, statusUnhealthy, statusUnhealthy)
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{host})

	// Only the last three in a row reach the threshold.
	if err := run.wait(t); err == nil {
		t.Fatal("Run = nil, want unhealthy")
	}
	if polls := len(sidecar.Polls()); polls != 9 {
		t.Errorf("polled %d times, want 9", polls)
	}
}

func TestRunWaitsForTheBackoff(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	sidecar.SetService(sidecar.Hostname(), testServiceID, statusAlive)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarBackoff = 150 * time.Millisecond
	started := time.Now()
	startWatcher(t, cfg, []string{sidecar.Hostname()})

	waitForPolls(t, sidecar, 2)
	polls := sidecar.Polls()
	if first := polls[0].Time.Sub(started); first < cfg.SidecarBackoff {
		t.Errorf("first poll %s after the start, before the %s backoff", first, cfg.SidecarBackoff)
	}
	if second := polls[1].Time.Sub(started); second < cfg.SidecarBackoff+cfg.SidecarPollInterval {
		t.Errorf("second poll %s after the start, before backoff + interval", second)
	}
}

func TestRunCancelledDuringBackoffNeverPolls(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarBackoff = time.Hour
	run := startWatcher(t, cfg, []string{sidecar.Hostname()})

	waitUntil(t, "the backoff log", func() bool { return run.countLogs(log.InfoLevel, "after the backoff") == 1 })
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if polls := len(sidecar.Polls()); polls != 0 {
		t.Errorf("polled %d times during the backoff", polls)
	}
}

func TestRunFindsTheHostThroughSidecarsOwnHostname(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	sidecar.SetHostname("sidecar-own")
	sidecar.SetService("sidecar-own", testServiceID, statusAlive)
	sidecar.SetService("some-other-host", "aaaaaaaaaaaa", statusUnhealthy)
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{"agent-01.example.com", "agent-01"})

	waitForPolls(t, sidecar, 3)
	waitUntil(t, "a healthy verdict", func() bool { return len(run.healthCalls()) == 1 })
	// The agent's own name appears: it takes precedence from now on.
	sidecar.SetService("agent-01.example.com", testServiceID, statusAlive)
	waitUntil(t, "the key change", func() bool { return run.countLogs(log.InfoLevel, "lists this host under this key") == 2 })
	waitForPolls(t, sidecar, len(sidecar.Polls())+3)

	var keys []any
	for _, e := range run.hook.AllEntries() {
		if strings.Contains(e.Message, "lists this host under this key") {
			keys = append(keys, e.Data["host_key"])
		}
	}
	if want := []any{"sidecar-own", "agent-01.example.com"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("matched keys logged %v, want %v (once each)", keys, want)
	}
	if got := run.healthValues(); !reflect.DeepEqual(got, []bool{true}) {
		t.Errorf("onHealth calls %v, want one healthy call", got)
	}
}

func TestRunWaitsForDiscovery(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarMaxFails = 2
	run := startWatcher(t, cfg, []string{host})

	// Neither the host nor the service exists yet.
	waitUntil(t, "warnings about the missing host", func() bool {
		return run.countLogs(log.WarnLevel, "none of the host keys") >= 3
	})
	sidecar.SetService(host, "aaaaaaaaaaaa", statusAlive)
	missing := run.countLogs(log.WarnLevel, "is not in Sidecar's state")
	waitUntil(t, "warnings about the missing service", func() bool {
		return run.countLogs(log.WarnLevel, "is not in Sidecar's state") >= missing+3
	})
	run.assertRunning(t)
	if calls := run.healthCalls(); len(calls) != 0 {
		t.Fatalf("onHealth called %+v before the service was discovered", calls)
	}

	sidecar.SetService(host, testServiceID, statusUnhealthy)
	if err := run.wait(t); err == nil {
		t.Fatal("Run = nil, want unhealthy once discovered")
	}
	if n := run.countLogs(log.WarnLevel, "Sidecar reports the container unhealthy"); n != 2 {
		t.Errorf("%d unhealthy observations before failing, want SidecarMaxFails = 2", n)
	}
}

// sidecarFault is a fault Sidecar may show and what the warning of a round
// without a verdict then says.
type sidecarFault struct {
	fault  sidecartest.Fault
	reason string // in the warning
}

// sidecarFaults lists every fault; hugeReason is what a FaultHuge warning
// says (the document read names its cap).
func sidecarFaults(hugeReason string) []sidecarFault {
	return []sidecarFault{
		{sidecartest.FaultClosed, "connection refused"},
		{sidecartest.FaultHTTP500, "500 Internal Server Error"},
		{sidecartest.FaultGarbage, "not a valid JSON object"},
		{sidecartest.FaultTruncated, "not a valid JSON object"},
		{sidecartest.FaultSlow, "deadline exceeded"},
		{sidecartest.FaultHuge, hugeReason},
		{sidecartest.FaultWrongTypes, "is a JSON"},
	}
}

// faultedWatcherConfig makes sidecar answer with fault (slow for 2 s, huge
// at 4 MB) and returns a config that gives up on a fetch quickly, unless the
// fault is FaultHuge, and fails on the first unhealthy record.
func faultedWatcherConfig(sidecar *sidecartest.Server, fault sidecartest.Fault) *Config {
	sidecar.SetSlowDelay(2 * time.Second)
	sidecar.SetHugeSize(4 << 20)
	sidecar.SetFault(fault)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.HttpTimeout = 100 * time.Millisecond
	if fault == sidecartest.FaultHuge {
		// Time enough to read up to the cap even under -race.
		cfg.HttpTimeout = 10 * time.Second
	}
	cfg.SidecarMaxFails = 1
	return cfg
}

// assertNoVerdictDuring waits for three rounds without a verdict while tc's
// fault lasts, and checks that Run goes on, that the warning names tc's
// reason, and that onHealth was not called.
func assertNoVerdictDuring(t *testing.T, run *watchedRun, tc sidecarFault) {
	t.Helper()
	waitUntil(t, "three rounds without a verdict", func() bool {
		return run.countLogs(log.WarnLevel, "no health verdict this round") >= 3
	})
	run.assertRunning(t)
	for _, e := range run.hook.AllEntries() {
		if strings.Contains(e.Message, "no health verdict") {
			if cause, _ := e.Data[log.ErrorKey].(error); cause == nil || !strings.Contains(cause.Error(), tc.reason) {
				t.Errorf("warning %q carries error %v, want one mentioning %q", e.Message, e.Data[log.ErrorKey], tc.reason)
			}
			break
		}
	}
	if calls := run.healthCalls(); len(calls) != 0 {
		t.Errorf("onHealth called %+v during %s", calls, tc.fault)
	}
}

// assertUnhealthyOnceCleared clears the fault and checks that the same
// UNHEALTHY record then ends Run: the fault alone was what kept the verdict
// away.
func assertUnhealthyOnceCleared(t *testing.T, sidecar *sidecartest.Server, run *watchedRun) {
	t.Helper()
	sidecar.SetFault(sidecartest.FaultNone)
	var unhealthy *unhealthyError
	if err := run.wait(t); !errors.As(err, &unhealthy) {
		t.Fatalf("Run = %v after the fault cleared, want unhealthy", err)
	}
}

func TestRunNeverFailsOnSidecarFaults(t *testing.T) {
	for _, tc := range sidecarFaults("too large") {
		t.Run(tc.fault.String(), func(t *testing.T) {
			sidecar := sidecartest.NewServer(t)
			host := sidecar.Hostname()
			sidecar.SetService(host, testServiceID, statusUnhealthy)
			cfg := faultedWatcherConfig(sidecar, tc.fault)
			// A small cap, so that the 4 MB FaultHuge answer is over it.
			run := startWatcher(t, cfg, []string{host}, func(w *sidecarWatcher) { w.maxStateBytes = 1 << 20 })

			assertNoVerdictDuring(t, run, tc)
			assertUnhealthyOnceCleared(t, sidecar, run)
		})
	}
}

func TestRunRetriesAFailedFetch(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetService(host, testServiceID, statusUnhealthy)
	sidecar.SetFault(sidecartest.FaultHTTP500)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarRetryCount = 2
	cfg.SidecarPollInterval = time.Hour // one round only
	run := startWatcher(t, cfg, []string{host})

	waitUntil(t, "the round to give up", func() bool { return run.countLogs(log.WarnLevel, "no health verdict") == 1 })
	if polls := len(sidecar.Polls()); polls != 3 {
		t.Errorf("%d requests in one round, want 1 + SidecarRetryCount = 3", polls)
	}
	if n := run.countLogs(log.WarnLevel, "retrying in"); n != 2 {
		t.Errorf("%d retry warnings, want 2", n)
	}
	if !strings.Contains(fmt.Sprint(run.hook.LastEntry().Data[log.ErrorKey]), "gave up after 3 attempts") {
		t.Errorf("last warning %v does not say how many attempts were made", run.hook.LastEntry().Data)
	}
}

// A document under the cap is read whole, however large; only the pure
// test above can measure the allocation exactly, since the emulator in this
// process allocates too.
func TestRunReadsHugeAnswerUnderTheCap(t *testing.T) {
	if testing.Short() {
		t.Skip("streams a 50 MB document")
	}
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetService(host, testServiceID, statusAlive)
	sidecar.SetFault(sidecartest.FaultHuge) // 50 MB by default
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.HttpTimeout = 30 * time.Second
	cfg.SidecarPollInterval = time.Hour
	run := startWatcher(t, cfg, []string{host})

	waitUntil(t, "a verdict from the huge answer", func() bool { return len(run.healthCalls()) == 1 })
	if call := run.healthCalls()[0]; !call.healthy {
		t.Errorf("verdict %+v, want healthy", call)
	}
}

func TestDrain(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetService(host, testServiceID, statusAlive)
	w := newSidecarWatcher(testWatcherConfig(sidecar.StateURL()), testContainerID, []string{host}, quietLogger())

	if err := w.Drain(context.Background()); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	drains := sidecar.Drains()
	if len(drains) != 1 || drains[0].ID != testServiceID || drains[0].Status != http.StatusAccepted {
		t.Fatalf("drains %+v, want one accepted drain of %s", drains, testServiceID)
	}
	resp, err := http.Get(sidecar.StateURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lookup, err := lookupServiceStatus(resp.Body, []string{host}, testServiceID)
	if err != nil || lookup.Status != statusDraining {
		t.Errorf("after Drain the service is %+v (%v), want DRAINING", lookup, err)
	}
}

// The task lifecycle drains while the watcher still runs: DRAINING must
// then neither count nor reset, and the two must not race.
func TestDrainWhileRunning(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetService(host, testServiceID, statusAlive)
	run := startWatcher(t, testWatcherConfig(sidecar.StateURL()), []string{host})
	waitUntil(t, "a healthy verdict", func() bool { return len(run.healthCalls()) == 1 })

	if err := run.watcher.Drain(context.Background()); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	waitUntil(t, "polls that see DRAINING", func() bool { return run.countLogs(log.InfoLevel, "is DRAINING") >= 3 })
	run.assertRunning(t)
	if got := run.healthValues(); !reflect.DeepEqual(got, []bool{true}) {
		t.Errorf("onHealth calls %v, want only the first healthy one", got)
	}
}

func TestDrainRetriesUntilAccepted(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	host := sidecar.Hostname()
	sidecar.SetService(host, testServiceID, statusAlive)
	sidecar.SetFault(sidecartest.FaultHTTP500)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarRetryCount = 50
	cfg.SidecarRetryDelay = 10 * time.Millisecond
	w := newSidecarWatcher(cfg, testContainerID, []string{host}, quietLogger())

	result := make(chan error, 1)
	go func() { result <- w.Drain(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := sidecar.WaitForDrain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != http.StatusInternalServerError || first.ID != testServiceID {
		t.Fatalf("first drain %+v, want a 500 for %s", first, testServiceID)
	}
	sidecar.SetFault(sidecartest.FaultNone)
	if err := <-result; err != nil {
		t.Fatalf("Drain = %v, want success after the fault cleared", err)
	}
	drains := sidecar.Drains()
	if last := drains[len(drains)-1]; last.Status != http.StatusAccepted || last.ID != testServiceID {
		t.Errorf("last drain %+v, want accepted", last)
	}
}

func TestDrainReportsTheLastFailure(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarRetryCount = 2
	w := newSidecarWatcher(cfg, testContainerID, nil, quietLogger())

	err := w.Drain(context.Background())
	if err == nil {
		t.Fatal("Drain of an unknown service succeeded")
	}
	for _, part := range []string{testServiceID, "404 Not Found", `Not Found - Service ID "` + testServiceID + `" not found`, "3 attempts"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
	if drains := sidecar.Drains(); len(drains) != 3 {
		t.Errorf("%d drain requests, want 1 + SidecarRetryCount = 3", len(drains))
	}
}

func TestDrainUnreachable(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	sidecar.SetFault(sidecartest.FaultClosed)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarRetryCount = 1
	err := newSidecarWatcher(cfg, testContainerID, nil, quietLogger()).Drain(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Drain = %v, want connection refused", err)
	}
}

func TestDrainStopsRetryingWhenCancelled(t *testing.T) {
	sidecar := sidecartest.NewServer(t)
	sidecar.SetFault(sidecartest.FaultHTTP500)
	cfg := testWatcherConfig(sidecar.StateURL())
	cfg.SidecarRetryCount = 5
	cfg.SidecarRetryDelay = time.Hour
	w := newSidecarWatcher(cfg, testContainerID, nil, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- w.Drain(ctx) }()
	waitCtx, waitCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer waitCancel()
	if _, err := sidecar.WaitForDrain(waitCtx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-result:
		if err == nil || !strings.Contains(err.Error(), "stopped retrying") {
			t.Errorf("Drain = %v, want it to say it stopped retrying", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain kept waiting after its context was cancelled")
	}
}

// TestFetchStateTellsReadErrorsFromBadAnswers: a body cut by the connection
// is retried; an answer over the cap, announced or not, is not.
func TestFetchStateTellsReadErrorsFromBadAnswers(t *testing.T) {
	doc := []byte(stateDoc("agent-01", map[string]map[string]int{"agent-01": {testServiceID: statusAlive}}))
	tests := []struct {
		name          string
		serve         func(w http.ResponseWriter)
		wantRetryable bool
		wantErr       string
	}{
		{"announced over the cap", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(2048))
			_, _ = w.Write(bytes.Repeat([]byte(" "), 2048))
		}, false, "2048 bytes announced"},
		{"chunked over the cap", func(w http.ResponseWriter) {
			_, _ = w.Write(doc)
			w.(http.Flusher).Flush()
			_, _ = w.Write(bytes.Repeat([]byte(" "), 2048))
		}, false, "too large"},
		{"cut by the connection", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
			_, _ = w.Write(doc[:len(doc)/2])
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, true, "reading the answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.serve(w) }))
			defer server.Close()
			w := newSidecarWatcher(testWatcherConfig(server.URL+"/state.json"), testContainerID, []string{"agent-01"}, quietLogger())
			w.maxStateBytes = 1024
			_, retryable, err := w.fetchState(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || retryable != tt.wantRetryable {
				t.Fatalf("fetchState: retryable %v, error %v; want retryable %v and an error containing %q", retryable, err, tt.wantRetryable, tt.wantErr)
			}
		})
	}
}

func TestNewSidecarWatcherDerivesURLs(t *testing.T) {
	cfg := testWatcherConfig("http://sidecar.local:7777/state.json")
	w := newSidecarWatcher(cfg, testContainerID, []string{"a"}, quietLogger())
	if w.serviceID != testServiceID {
		t.Errorf("service ID %q, want %q", w.serviceID, testServiceID)
	}
	if want := "http://sidecar.local:7777/api/services/" + testServiceID + "/drain"; w.drainURL != want {
		t.Errorf("drain URL %q, want %q", w.drainURL, want)
	}
	short := newSidecarWatcher(cfg, "abc", nil, quietLogger())
	if short.serviceID != "abc" {
		t.Errorf("short container ID became %q", short.serviceID)
	}
	broken := newSidecarWatcher(testWatcherConfig("::not a url"), testContainerID, nil, quietLogger())
	if err := broken.Drain(context.Background()); err == nil || !strings.Contains(err.Error(), "drain URL") {
		t.Errorf("Drain with a broken SidecarUrl = %v", err)
	}
}

// --- the encoding/json candidate, kept for the benchmark and as an
// independent reference for the fuzz target ---

// lookupServiceStatusTokens does what lookupServiceStatus does with
// encoding/json's streaming decoder: tokens for the structure, Decode into
// an empty struct to skip every other service. Duplicate keys resolve to the
// first occurrence, as in the lookup.
func lookupServiceStatusTokens(r io.Reader, hostKeys []string, id12 string) (serviceLookup, error) {
	dec := json.NewDecoder(&capReader{r: r, limit: maxStateBytes})
	dec.UseNumber()
	var result serviceLookup
	hosts := make(map[string]*tokenHost)
	var haveServers, haveHostname bool
	if err := expectDelim(dec, '{'); err != nil {
		return result, err
	}
	for dec.More() {
		key, err := readKey(dec)
		if err != nil {
			return result, err
		}
		switch {
		case key == "Servers" && !haveServers:
			haveServers = true
			if err := expectDelim(dec, '{'); err != nil {
				return result, fmt.Errorf("Servers: %w", err)
			}
			for dec.More() {
				name, err := readKey(dec)
				if err != nil {
					return result, err
				}
				if hosts[name] != nil {
					if err := skipValue(dec); err != nil {
						return result, err
					}
					continue
				}
				host := &tokenHost{}
				hosts[name] = host
				if err := host.read(dec, id12); err != nil {
					return result, err
				}
			}
			if err := expectDelim(dec, '}'); err != nil {
				return result, err
			}
		case key == "Hostname" && !haveHostname:
			haveHostname = true
			tok, err := dec.Token()
			if err != nil {
				return result, err
			}
			hostname, ok := tok.(string)
			if !ok {
				return result, fmt.Errorf("Hostname is %v, not a string", tok)
			}
			result.SidecarHostname = hostname
		default:
			if err := skipValue(dec); err != nil {
				return result, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return result, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return result, fmt.Errorf("data after the document (%v)", err)
	}
	if !haveServers {
		return result, errors.New("no Servers")
	}
	for _, key := range candidateHostKeys(hostKeys, result.SidecarHostname) {
		host := hosts[key]
		if host == nil {
			continue
		}
		result.HostKey, result.HostFound = key, true
		if host.err != nil {
			return result, host.err
		}
		result.ServiceFound, result.Status = host.serviceFound, host.status
		return result, nil
	}
	return result, nil
}

// tokenHost is what one Servers entry says about our service. Shape errors
// are kept, not returned: they matter only if this host is the one chosen,
// which is known only once Hostname has been read.
type tokenHost struct {
	err          error
	serviceSeen  bool
	serviceFound bool
	status       int
}

func (h *tokenHost) read(dec *json.Decoder, id12 string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		h.err = fmt.Errorf("host is %v, not an object", tok)
		return skipRest(dec, tok)
	}
	haveServices := false
	for dec.More() {
		field, err := readKey(dec)
		if err != nil {
			return err
		}
		if field != "Services" || haveServices {
			if err := skipValue(dec); err != nil {
				return err
			}
			continue
		}
		haveServices = true
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok == nil {
			continue
		}
		if tok != json.Delim('{') {
			h.err = fmt.Errorf("Services is %v, not an object", tok)
			if err := skipRest(dec, tok); err != nil {
				return err
			}
			continue
		}
		for dec.More() {
			id, err := readKey(dec)
			if err != nil {
				return err
			}
			if id == id12 && !h.serviceSeen {
				h.serviceSeen = true
				if err := h.readService(dec); err != nil {
					return err
				}
				continue
			}
			if err := skipValue(dec); err != nil {
				return err
			}
		}
		if err := expectDelim(dec, '}'); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

func (h *tokenHost) readService(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		h.err = fmt.Errorf("service is %v, not an object", tok)
		return skipRest(dec, tok)
	}
	haveStatus := false
	for dec.More() {
		field, err := readKey(dec)
		if err != nil {
			return err
		}
		if field != "Status" || haveStatus {
			if err := skipValue(dec); err != nil {
				return err
			}
			continue
		}
		haveStatus = true
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		number, ok := tok.(json.Number)
		if !ok {
			h.err = fmt.Errorf("Status is %v, not a number", tok)
			if err := skipRest(dec, tok); err != nil {
				return err
			}
			continue
		}
		status, err := strconv.ParseInt(string(number), 10, 64)
		if err != nil || int64(int(status)) != status {
			h.err = fmt.Errorf("Status %s is not an integer", number)
			continue
		}
		h.status = int(status)
	}
	if !haveStatus && h.err == nil {
		h.err = errors.New("no Status")
	}
	h.serviceFound = h.err == nil
	return expectDelim(dec, '}')
}

func readKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("expected an object key, got %v", tok)
	}
	return key, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("expected %v, got %v", want, tok)
	}
	return nil
}

// skipValue skips the next value without keeping it.
func skipValue(dec *json.Decoder) error {
	var discard struct{}
	err := dec.Decode(&discard)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return nil
	}
	return err
}

// skipRest skips the remainder of a value whose first token was tok.
func skipRest(dec *json.Decoder, tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

type capReader struct {
	r     io.Reader
	limit int64
	n     int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n > c.limit {
		return 0, errStateTooLarge
	}
	if room := c.limit + 1 - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, errStateTooLarge
	}
	return n, err
}

func TestTokenLookupAgreesOnTheExamples(t *testing.T) {
	state := sidecartest.GenerateState(7, 100)
	doc := state.Marshal()
	for _, keys := range [][]string{{"host-0006"}, {"nope", "host-0003"}, {"nope"}} {
		for _, id := range []string{sidecartest.GeneratedID(6), sidecartest.GeneratedID(10), "missing"} {
			fast, fastErr := lookupServiceStatus(bytes.NewReader(doc), keys, id)
			ref, refErr := lookupServiceStatusTokens(bytes.NewReader(doc), keys, id)
			if fastErr != nil || refErr != nil || fast != ref {
				t.Errorf("keys %q id %s: streaming %+v (%v), encoding/json %+v (%v)", keys, id, fast, fastErr, ref, refErr)
			}
		}
	}
}

// --- benchmark and fuzz ---

// BenchmarkLookupServiceStatus compares the chosen lookup (jsontext's
// streaming decoder) with encoding/json's token stream on generated
// clusters of 20 services per host, looking up a service on the last host
// so that both have to get through the whole document (and, Sidecar's own
// Hostname coming last, the lookup has to record every other host).
func BenchmarkLookupServiceStatus(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		hosts := max(size/20, 1)
		doc := sidecartest.GenerateState(hosts, size).Marshal()
		lastHost := fmt.Sprintf("host-%04d", hosts-1)
		id := sidecartest.GeneratedID(hosts - 1) // service i lives on host i%hosts
		keys := []string{lastHost, "not-a-host"}
		candidates := []struct {
			name   string
			lookup func(io.Reader, []string, string) (serviceLookup, error)
		}{
			{"jsontext_stream", lookupServiceStatus},
			{"encoding_json_tokens", lookupServiceStatusTokens},
		}
		for _, c := range candidates {
			b.Run(fmt.Sprintf("%s/services=%d", c.name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(doc)))
				for b.Loop() {
					got, err := c.lookup(bytes.NewReader(doc), keys, id)
					if err != nil || !got.ServiceFound || got.HostKey != lastHost {
						b.Fatalf("lookup = %+v, %v", got, err)
					}
				}
			})
		}
		// What the watcher does from the second poll on: the scanner
		// kept from the previous poll streams the body.
		b.Run(fmt.Sprintf("jsontext_stream_reused_scanner/services=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			scanner := new(stateScanner)
			reader := bytes.NewReader(doc)
			for b.Loop() {
				reader.Reset(doc)
				if got, err := scanner.lookup(reader, maxStateBytes, keys, id); err != nil || !got.ServiceFound {
					b.Fatalf("lookup = %+v, %v", got, err)
				}
			}
		})
	}
}

// FuzzLookupServiceStatus feeds arbitrary bodies to the lookup: it must
// never panic, must answer consistently — whatever the reads' sizes, and
// with a scanner reused from earlier lookups — and on valid JSON must agree
// with the independent encoding/json implementation.
func FuzzLookupServiceStatus(f *testing.F) {
	f.Add([]byte(stateDoc("agent-01", map[string]map[string]int{"agent-01": {testServiceID: 2, "aaaaaaaaaaaa": 0}, "agent-02": {testServiceID: 0}})))
	f.Add([]byte(`{"Servers":{"agent-01.example.com":{"Services":{"3f2b9c81d4e7":{"Status":1}}}},"Hostname":"agent-01"}`))
	f.Add([]byte(`{"Servers":{"x":{"Services":[{"Status":"ALIVE"}]}},"Hostname":"x"}`))
	f.Add([]byte(`{"Hostname":"agent-01","Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":2,"Status":0}}}}}`))
	f.Add([]byte(`{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":-1e3}}}}`))
	f.Add(sidecartest.GenerateState(3, 12).Marshal())
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"Servers":{"\ud800":{"Services":{"3f2b9c81d4e7":{"Status":2}}}},"Hostname":"\ud800"}`))
	f.Add([]byte(`{"Servers":{"\ud83d\ude00":{"Services":{"3f2b9c81d4e7":{"Status":2}}}},"Hostname":"\ud83d\ude00"}`))
	f.Add([]byte(`{"Servers":{"agent-01":{"Services":{"3f2b9c81d4e7":{"Status":0}}}}} x`))
	f.Add([]byte(`{"Servers":{"own":{"Services":{"3f2b9c81d4e7":{"Status":1}}},"own":5,"agent-01":{"Services":null}},"Hostname":"own"}`))
	f.Add([]byte(`{"Servers":{"own":"x","other":{"Services":{"3f2b9c81d4e7":{"Status":3}}}},"Hostname":"other","Hostname":"own"}`))
	f.Add([]byte(`{"Servers":{"` + "\xff" + `":{"Services":{"3f2b9c81d4e7":{"Status":4}}}},"Hostname":"\ufffd"}`))
	keySets := [][]string{{"agent-01.example.com", "agent-01"}, {"agent-01"}, nil}
	shared := new(stateScanner)
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys := keySets[len(doc)%len(keySets)]
		got, err := lookupServiceStatus(bytes.NewReader(doc), keys, testServiceID)
		if err == nil {
			if got.ServiceFound && !got.HostFound {
				t.Fatalf("service found without a host: %+v", got)
			}
			if got.HostFound != (got.HostKey != "") {
				t.Fatalf("HostFound and HostKey disagree: %+v", got)
			}
			if got.HostFound && !slices.Contains(candidateHostKeys(keys, got.SidecarHostname), got.HostKey) {
				t.Fatalf("matched key %q is not a candidate: %+v", got.HostKey, got)
			}
		}
		again, againErr := shared.lookup(iotest.OneByteReader(bytes.NewReader(doc)), maxStateBytes, keys, testServiceID)
		if (againErr == nil) != (err == nil) || err == nil && again != got {
			t.Fatalf("one byte at a time, with a reused scanner: %+v (%v); at once: %+v (%v)", again, againErr, got, err)
		}
		if !json.Valid(doc) {
			return
		}
		ref, refErr := lookupServiceStatusTokens(bytes.NewReader(doc), keys, testServiceID)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("streaming error %v, encoding/json error %v", err, refErr)
		}
		if err == nil && (got.HostKey != ref.HostKey || got.ServiceFound != ref.ServiceFound || got.Status != ref.Status) {
			t.Fatalf("streaming %+v, encoding/json %+v", got, ref)
		}
	})
}

// TestDrainGivesUpAtOnceWhenRefused: a refused connection means no Sidecar
// listens there; retrying it would only eat the stop's grace period.
func TestDrainGivesUpAtOnceWhenRefused(t *testing.T) {
	// Port 1, not a closed ephemeral port: another test may listen on
	// that again by the time Drain dials it.
	cfg := testWatcherConfig("http://127.0.0.1:1/state.json")
	cfg.SidecarRetryCount = 5
	cfg.SidecarRetryDelay = time.Hour
	w := newSidecarWatcher(cfg, testContainerID, nil, quietLogger())
	result := make(chan error, 1)
	go func() { result <- w.Drain(context.Background()) }()
	select {
	case err := <-result:
		if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "gave up after") {
			t.Errorf("Drain = %v, want connection refused after one attempt", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain retried a refused connection")
	}
}
