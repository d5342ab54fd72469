package main

// The relay against a real rsyslogd (internal/syslogtest), without Docker:
// what a real syslog daemon receives, and a collector that goes down.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/syslogtest"
)

func TestRelayThroughRsyslog(t *testing.T) {
	collector := syslogtest.NewServer(t)
	logger, _ := relayLogger()
	from := time.Now()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: collector.Addr(), LogHostname: "agent-7", SendDockerLabels: "ServiceName"},
		relayOptions{containerID: "abcdef0123456789", labels: map[string]string{"ServiceName": "web"}, logger: logger})
	relay.containerLine(streamStdout, []byte("listening on :8080 <ok>"))
	relay.containerLine(streamStderr, []byte("fatal error: out of cheese"))
	relay.closeSink()
	to := time.Now()
	want := []string{
		`{"Hostname":"agent-7","Level":"info","Payload":"sidecar-executor starting log pump for 'abcdef012345'","ServiceName":"web","Timestamp":"T"}`,
		`{"Hostname":"agent-7","Level":"info","Payload":"listening on :8080 \u003cok\u003e","ServiceName":"web","Stream":"stdout","Timestamp":"T"}`,
		`{"Hostname":"agent-7","Level":"error","Payload":"fatal error: out of cheese","ServiceName":"web","Stream":"stderr","Timestamp":"T"}`,
	}
	eventually(t, 20*time.Second, "rsyslogd to write every message", func() bool { return len(collector.Messages()) >= len(want) })
	got := collector.Messages()
	if len(got) != len(want) {
		t.Fatalf("rsyslogd received %q", got)
	}
	for i := range want {
		if g := withoutTimestamp(t, got[i], from, to); g != want[i] {
			t.Errorf("message %d\n got %s\nwant %s", i, g, want[i])
		}
	}
}

// TestRelayOutlivesRsyslog: rsyslogd stops while lines keep coming; the
// caller is never held up, the failures are counted and reported, and no
// line reaches the executor's log.
func TestRelayOutlivesRsyslog(t *testing.T) {
	collector := syslogtest.NewServer(t)
	logger, logs := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: collector.Addr()}, relayOptions{containerID: "c1", logger: logger})
	relay.containerLine(streamStdout, []byte("before the stop"))
	eventually(t, 20*time.Second, "the first line at rsyslogd", func() bool { return len(collector.Messages()) == 2 })
	collector.Stop()
	for i := 0; i < 200; i++ {
		relay.containerLine(streamStdout, []byte(fmt.Sprintf("secret-ish line %d", i)))
	}
	relay.closeSink()
	if relay.failed.Load() == 0 {
		t.Fatal("no failed send counted with rsyslogd down")
	}
	out := logs.String()
	if !strings.Contains(out, "log relay finished; some lines did not reach the log collector") || !strings.Contains(out, fmt.Sprintf("failed=%d", relay.failed.Load())) {
		t.Errorf("the final report lacks the count: %s", out)
	}
	if strings.Contains(out, "secret-ish") {
		t.Errorf("a line reached the executor's log: %s", out)
	}
}

// TestRelayRFC5424ThroughRsyslog: with EXECUTOR_SYSLOG_FORMAT=rfc5424 the
// datagrams are syslog messages rsyslogd parses field by field.
func TestRelayRFC5424ThroughRsyslog(t *testing.T) {
	collector := syslogtest.NewServer(t)
	logger, _ := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: collector.Addr(), SyslogFormat: relayFormatRFC5424, LogHostname: "agent 7"},
		relayOptions{containerID: "abcdef0123456789", taskID: "billing.2026-11-27T18:00", logger: logger})
	relay.containerLine(streamStdout, []byte("listening on :8080"))
	relay.containerLine(streamStderr, []byte("fatal ERROR: out of cheese"))
	relay.closeSink()
	eventually(t, 20*time.Second, "rsyslogd to parse every message", func() bool { return len(collector.Parsed()) >= 3 })

	stamp := regexp.MustCompile(`^(<\d+>1) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d) `)
	wantRaw := []string{
		"<14>1 T agent_7 billing.2026-11-27T18:00 abcdef012345 - - sidecar-executor starting log pump for 'abcdef012345'",
		"<14>1 T agent_7 billing.2026-11-27T18:00 abcdef012345 stdout - listening on :8080",
		"<11>1 T agent_7 billing.2026-11-27T18:00 abcdef012345 stderr - fatal ERROR: out of cheese",
	}
	raw := collector.Messages()
	if len(raw) != len(wantRaw) {
		t.Fatalf("received %q", raw)
	}
	for i := range wantRaw {
		if got := stamp.ReplaceAllString(raw[i], "$1 T "); got != wantRaw[i] {
			t.Errorf("message %d\n got %s\nwant %s", i, got, wantRaw[i])
		}
	}
	// rsyslogd's reading of them: facility, severity, hostname, app-name,
	// procid, msgid, structured data, msg (the timestamp checked above).
	wantParsed := []string{
		"user|info|agent_7|billing.2026-11-27T18:00|abcdef012345|-|-|sidecar-executor starting log pump for 'abcdef012345'",
		"user|info|agent_7|billing.2026-11-27T18:00|abcdef012345|stdout|-|listening on :8080",
		"user|err|agent_7|billing.2026-11-27T18:00|abcdef012345|stderr|-|fatal ERROR: out of cheese",
	}
	for i, line := range collector.Parsed() {
		fields := strings.SplitN(line, "|", 9)
		if len(fields) != 9 {
			t.Fatalf("parsed %q", line)
		}
		got := strings.Join(append(fields[:2:2], fields[3:]...), "|")
		if got != wantParsed[i] {
			t.Errorf("parsed %d\n got %s\nwant %s", i, got, wantParsed[i])
		}
	}
}
