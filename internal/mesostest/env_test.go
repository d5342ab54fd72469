package mesostest

import (
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
)

func TestStoutDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0ns"},
		{1, "1ns"},
		{999, "999ns"},
		{1500, "1500ns"},
		{3 * time.Microsecond, "3us"},
		{1500 * time.Microsecond, "1500us"},
		{250 * time.Millisecond, "250ms"},
		{2 * time.Second, "2secs"},
		{5 * time.Second, "5secs"},
		{1500 * time.Millisecond, "1500ms"},
		{90 * time.Second, "90secs"},
		{15 * time.Minute, "15mins"},
		{time.Hour, "1hrs"},
		{36 * time.Hour, "36hrs"},
		{48 * time.Hour, "2days"},
		{14 * 24 * time.Hour, "2weeks"},
		{10 * 24 * time.Hour, "10days"},
		// Neither the unit nor the next smaller one gives a whole number:
		// stout prints 15 significant digits, which does not round-trip.
		{90*time.Second + time.Millisecond, "1.50001666666667mins"},
		{-5 * time.Second, "-5secs"}, // stout cannot parse its own negative output
	} {
		if got := StoutDuration(tc.d); got != tc.want {
			t.Errorf("StoutDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
		if tc.d < 0 || strings.Contains(tc.want, ".") {
			continue
		}
		back, err := mesostime.ParseDuration(tc.want)
		if err != nil || back != tc.d {
			t.Errorf("mesostime.ParseDuration(%q) = %v, %v; want %v", tc.want, back, err, tc.d)
		}
	}
}

func setEnv(t *testing.T, env []string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("malformed environment entry %q", kv)
		}
		if _, dup := vars[k]; dup {
			t.Fatalf("%s set twice", k)
		}
		vars[k] = v
		t.Setenv(k, v)
	}
	return vars
}

func TestEnvironmentWithCheckpointing(t *testing.T) {
	a := NewAgent(t, Config{
		Checkpoint:             true,
		ShutdownGracePeriod:    90 * time.Second,
		SubscriptionBackoffMax: 250 * time.Millisecond,
		AuthToken:              "tok",
	})
	cfg := a.Config()
	vars := setEnv(t, a.Environment("/tmp/sandbox"))
	for k, want := range map[string]string{
		"MESOS_FRAMEWORK_ID":                   cfg.FrameworkID,
		"MESOS_EXECUTOR_ID":                    cfg.ExecutorID,
		"MESOS_DIRECTORY":                      "/tmp/sandbox",
		"MESOS_SANDBOX":                        "/tmp/sandbox",
		"MESOS_AGENT_ENDPOINT":                 a.Addr(),
		"MESOS_SLAVE_ID":                       cfg.AgentID,
		"MESOS_SLAVE_PID":                      "slave(1)@" + a.Addr(),
		"MESOS_CHECKPOINT":                     "1",
		"MESOS_HTTP_COMMAND_EXECUTOR":          "0",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "90secs",
		"MESOS_RECOVERY_TIMEOUT":               "15mins",
		"MESOS_SUBSCRIPTION_BACKOFF_MAX":       "250ms",
		"MESOS_EXECUTOR_AUTHENTICATION_TOKEN":  "tok",
		"LIBPROCESS_PORT":                      "0",
	} {
		if vars[k] != want {
			t.Errorf("%s = %q, want %q", k, vars[k], want)
		}
	}
	got, err := config.FromEnv()
	if err != nil {
		t.Fatalf("config.FromEnv: %v", err)
	}
	want := config.Config{
		FrameworkID:                 cfg.FrameworkID,
		ExecutorID:                  cfg.ExecutorID,
		Directory:                   "/tmp/sandbox",
		Sandbox:                     "/tmp/sandbox",
		AgentEndpoint:               a.Addr(),
		ExecutorShutdownGracePeriod: 90 * time.Second,
		Checkpoint:                  true,
		RecoveryTimeout:             15 * time.Minute,
		SubscriptionBackoffMax:      250 * time.Millisecond,
	}
	if got != want {
		t.Errorf("config.FromEnv() = %+v\nwant %+v", got, want)
	}
}

func TestEnvironmentWithoutCheckpointing(t *testing.T) {
	a := NewAgent(t, Config{})
	vars := setEnv(t, a.Environment("/sb"))
	for _, k := range []string{"MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX", "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"} {
		if _, ok := vars[k]; ok {
			t.Errorf("%s set without checkpointing/auth", k)
		}
	}
	got, err := config.FromEnv()
	if err != nil {
		t.Fatalf("config.FromEnv: %v", err)
	}
	if got.Checkpoint || got.ExecutorShutdownGracePeriod != 5*time.Second || got.AgentEndpoint != a.Addr() {
		t.Errorf("config.FromEnv() = %+v", got)
	}
}

func TestConfigDefaults(t *testing.T) {
	a := NewAgent(t, Config{})
	cfg := a.Config()
	if cfg.FrameworkID == "" || cfg.ExecutorID == "" || cfg.AgentID == "" || cfg.AgentHostname == "" {
		t.Errorf("IDs not generated: %+v", cfg)
	}
	if cfg.ShutdownGracePeriod != 5*time.Second || cfg.RecoveryTimeout != 15*time.Minute ||
		cfg.SubscriptionBackoffMax != 2*time.Second || cfg.HeartbeatInterval != 30*time.Minute {
		t.Errorf("duration defaults: %+v", cfg)
	}
	if _, err := Start(Config{HeartbeatInterval: -time.Second}); err == nil {
		t.Error("Start accepted a negative HeartbeatInterval")
	}
}

// fakeTB records what NewAgent's cleanup reports.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Logf(string, ...any)            {}
func (f *fakeTB) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(format string, _ ...any) { f.errors = append(f.errors, format) }
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestNewAgentReportsViolations(t *testing.T) {
	for _, allow := range []bool{false, true} {
		tb := &fakeTB{TB: t}
		a := NewAgent(tb, Config{})
		if allow {
			a.AllowViolations()
		}
		resp, _ := rawPost(t, a, "GET", nil, nil)
		if resp.StatusCode != 405 {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		tb.runCleanups()
		if want := map[bool]int{false: 1, true: 0}[allow]; len(tb.errors) != want {
			t.Errorf("AllowViolations=%t: %d errors reported, want %d", allow, len(tb.errors), want)
		}
	}
}
