package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/sidecar-executor/sidecar-executor/internal/mastertest"
	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

func seedSettings(port string) *Config {
	return &Config{HttpTimeout: 2 * time.Second, SeedSettings: SeedSettings{SeedSidecar: true, MesosMasterPort: port}}
}

// TestSeedLookupListsTheMastersAgents: the agents the master lists become
// the seeds, sorted, each once, without the entries no list can hold.
func TestSeedLookupListsTheMastersAgents(t *testing.T) {
	master := mastertest.NewServer(t,
		mastertest.Agent{Hostname: "worker-b.example"},
		mastertest.Agent{Hostname: "worker-a.example", Deactivated: true},
		mastertest.Agent{Hostname: "worker-b.example", ID: "restarted-S7"},
		mastertest.Agent{Hostname: "bad,name"},
		mastertest.Agent{Hostname: ""},
		mastertest.Agent{Hostname: "10.0.0.7"},
	)
	agent := mesostest.NewAgent(t, mesostest.Config{MasterHostname: "localhost"})
	seeds, skipped, err := newSeedLookup(seedSettings(master.Port()), agent.Addr()).lookup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.7", "worker-a.example", "worker-b.example"}; !slices.Equal(seeds, want) {
		t.Errorf("seeds %q, want %q", seeds, want)
	}
	if skipped != 2 {
		t.Errorf("skipped %d, want 2 (the empty name and the one with a comma)", skipped)
	}
	if agent.StateRequests() != 1 || master.Requests() != 1 {
		t.Errorf("%d /state and %d /slaves requests, want one each", agent.StateRequests(), master.Requests())
	}
}

// TestSeedLookupFailuresNameTheURL: every way the lookup fails is an error
// that names the URL asked and why.
func TestSeedLookupFailuresNameTheURL(t *testing.T) {
	master := mastertest.NewServer(t, mastertest.Agent{Hostname: "worker-a"})
	withMaster := mesostest.NewAgent(t, mesostest.Config{MasterHostname: "127.0.0.1"})
	noMaster := mesostest.NewAgent(t, mesostest.Config{})
	oddMaster := mesostest.NewAgent(t, mesostest.Config{MasterHostname: "evil.example/x?"})
	// The emulated master listens on 127.0.0.1 only, so [::1] fails; what
	// matters is the URL.
	ipv6Master := mesostest.NewAgent(t, mesostest.Config{MasterHostname: "::1"})
	closed := mastertest.NewServer(t)
	closed.Close()

	cases := []struct {
		name     string
		endpoint string
		port     string
		prepare  func()
		url      string
		mentions string
	}{
		{"no agent endpoint", "", master.Port(), nil, "MESOS_AGENT_ENDPOINT", "not set"},
		{"agent without master", noMaster.Addr(), master.Port(), nil, "http://" + noMaster.Addr() + "/state", "no master_hostname"},
		{"master_hostname not a host", oddMaster.Addr(), master.Port(), nil, "http://" + oddMaster.Addr() + "/state", "is not a host name"},
		{"IPv6 master", ipv6Master.Addr(), master.Port(), nil, "http://[::1]:" + master.Port() + "/slaves", ""},
		{"master down", withMaster.Addr(), closed.Port(), nil, "http://127.0.0.1:" + closed.Port() + "/slaves", "connection refused"},
		{"master answers 401", withMaster.Addr(), master.Port(), func() { master.SetStatus(http.StatusUnauthorized) },
			"http://127.0.0.1:" + master.Port() + "/slaves", "HTTP 401 Unauthorized"},
		{"master answers no JSON", withMaster.Addr(), master.Port(), func() { master.SetBody("<html>login</html>") },
			"http://127.0.0.1:" + master.Port() + "/slaves", "not valid JSON"},
		{"master answers no slaves", withMaster.Addr(), master.Port(), func() { master.SetBody(`{"recovered_slaves":[]}`) },
			"http://127.0.0.1:" + master.Port() + "/slaves", "no slaves field"},
		{"slaves not an array", withMaster.Addr(), master.Port(), func() { master.SetBody(`{"slaves":{}}`) },
			"http://127.0.0.1:" + master.Port() + "/slaves", "not an array"},
		{"truncated", withMaster.Addr(), master.Port(), func() { master.SetBody(`{"slaves":[{"hostname":"a"}`) },
			"http://127.0.0.1:" + master.Port() + "/slaves", "not valid JSON"},
		{"data after the document", withMaster.Addr(), master.Port(), func() { master.SetBody(`{"slaves":[]} {}`) },
			"http://127.0.0.1:" + master.Port() + "/slaves", "after its closing brace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			master.SetStatus(0)
			master.SetBody("")
			if c.prepare != nil {
				c.prepare()
			}
			seeds, _, err := newSeedLookup(seedSettings(c.port), c.endpoint).lookup(context.Background())
			if err == nil {
				t.Fatalf("no error; seeds %q", seeds)
			}
			var stepErr *seedError
			if !errors.As(err, &stepErr) || stepErr.url != c.url {
				t.Fatalf("error %q does not name %s", err, c.url)
			}
			if !strings.Contains(err.Error(), c.mentions) {
				t.Errorf("error %q does not say %q", err, c.mentions)
			}
		})
	}
}

// TestSeedLookupIsBoundedByTheHTTPTimeout: a master that never answers
// costs EXECUTOR_HTTP_TIMEOUT, not the launch.
func TestSeedLookupIsBoundedByTheHTTPTimeout(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	stuck := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})}
	listener, err := testutil.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = stuck.Serve(listener) }()
	t.Cleanup(func() { _ = stuck.Close() })

	agent := mesostest.NewAgent(t, mesostest.Config{MasterHostname: "127.0.0.1"})
	_, port, _ := net.SplitHostPort(listener.Addr().String())
	settings := seedSettings(port)
	settings.HttpTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err = newSeedLookup(settings, agent.Addr()).lookup(ctx)
	if err == nil || !strings.Contains(err.Error(), "Client.Timeout") {
		t.Fatalf("error %v, want the client's timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the lookup ran until the test's own deadline")
	}
}

// TestSeedsApply: the seeds are set once, replacing the task's own; a
// failed lookup leaves the environment alone and logs the URL and why.
func TestSeedsApply(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	done := make(chan struct{})
	close(done)
	pending := &pendingSeeds{done: done, seeds: []string{"a", "b"}, logger: log.NewEntry(logger)}
	env := pending.apply(context.Background(), []string{"A=1", "SIDECAR_SEEDS=task-chosen", "B=2"})
	if want := []string{"A=1", "B=2", "SIDECAR_SEEDS=a,b"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}

	hook.Reset()
	failed := &pendingSeeds{done: done, logger: log.NewEntry(logger),
		err: &seedError{url: "http://127.0.0.1:1/slaves", err: errors.New("connection refused")}}
	original := []string{"A=1"}
	if env := failed.apply(context.Background(), original); !slices.Equal(env, original) {
		t.Errorf("env %q after a failed lookup, want it unchanged", env)
	}
	entry := hook.LastEntry()
	if entry == nil || entry.Level != log.WarnLevel || entry.Data["url"] != "http://127.0.0.1:1/slaves" ||
		entry.Data["error"] != "connection refused" || !strings.Contains(entry.Message, "without SIDECAR_SEEDS") {
		t.Fatalf("log entry %+v, want a warning naming the URL and the error", entry)
	}

	hook.Reset()
	empty := &pendingSeeds{done: done, logger: log.NewEntry(logger)}
	if env := empty.apply(context.Background(), original); !slices.Equal(env, []string{"A=1", "SIDECAR_SEEDS="}) {
		t.Errorf("env %q for a master with no agents, want an empty SIDECAR_SEEDS as upstream", env)
	}
	if entry := hook.AllEntries(); len(entry) == 0 || entry[0].Level != log.WarnLevel {
		t.Error("no warning for a master with no agents")
	}

	var none *pendingSeeds
	if env := none.apply(context.Background(), original); !slices.Equal(env, original) {
		t.Errorf("env %q without seeding, want it unchanged", env)
	}
	if startSeedLookup(context.Background(), &Config{}, "127.0.0.1:1", log.NewEntry(logger)) != nil {
		t.Error("a lookup started with EXECUTOR_SEED_SIDECAR off")
	}
}

// TestSeedSettings: the port is checked, is the operator's alone, and the
// seeding itself is the task's choice.
func TestSeedSettings(t *testing.T) {
	for _, port := range []string{"0", "65536", "http", "50 50", "-1"} {
		_, err := loadConfigFrom(testSettingsEnv(map[string]string{"EXECUTOR_MESOS_MASTER_PORT": port}))
		if err == nil || !strings.Contains(err.Error(), "EXECUTOR_MESOS_MASTER_PORT") {
			t.Errorf("port %q: error %v, want one naming the setting", port, err)
		}
	}
	cfg, err := loadConfigFrom(testSettingsEnv(map[string]string{"EXECUTOR_MESOS_MASTER_PORT": "8080"},
		"EXECUTOR_MESOS_MASTER_PORT=1", "EXECUTOR_SEED_SIDECAR=true"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MesosMasterPort != "8080" || !cfg.SeedSidecar {
		t.Errorf("port %q, seed %t: want the operator's port and the task's seeding", cfg.MesosMasterPort, cfg.SeedSidecar)
	}
	cfg, err = loadConfigFrom(testSettingsEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MesosMasterPort != "5050" || cfg.SeedSidecar {
		t.Errorf("defaults: port %q, seed %t; want 5050 and off", cfg.MesosMasterPort, cfg.SeedSidecar)
	}
}

func TestValidHost(t *testing.T) {
	for _, host := range []string{"localhost", "master-1.example.com", "10.0.0.1", "::1", "under_score"} {
		if !validHost(host) {
			t.Errorf("%q refused", host)
		}
	}
	for _, host := range []string{"", "a/b", "a:b", "user@host", "a b", "a?x", "a#b", "ünï", strings.Repeat("a", 254)} {
		if validHost(host) {
			t.Errorf("%q accepted", host)
		}
	}
}

// FuzzReadAgentHostnames: any body is an error or a list, never a panic,
// and a list holds only names that came from the document.
func FuzzReadAgentHostnames(f *testing.F) {
	f.Add(`{"slaves":[{"id":"x","hostname":"a","port":5051},{"hostname":"b"}],"recovered_slaves":[]}`)
	f.Add(`{"slaves":[{"hostname":1}]}`)
	f.Add(`{"slaves":[]}{}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		hostnames, err := readAgentHostnames(jsontext.NewDecoder(strings.NewReader(body), stateDecoderOptions...))
		if err != nil {
			return
		}
		for _, hostname := range hostnames {
			if hostname != "" && !strings.Contains(body, hostname) && !strings.Contains(body, `\`) && !strings.ContainsRune(hostname, '\uFFFD') {
				t.Fatalf("hostname %q is not in the document", hostname)
			}
		}
	})
}
