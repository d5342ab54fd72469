package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// relayLogger is a logger writing to a buffer the test reads.
func relayLogger() (*log.Entry, *testutil.SyncBuffer) {
	out := &testutil.SyncBuffer{}
	logger := log.New()
	logger.SetOutput(out)
	logger.SetFormatter(&log.TextFormatter{DisableColors: true, DisableTimestamp: true})
	return log.NewEntry(logger), out
}

// udpCollector is a UDP socket on 127.0.0.1 that keeps every datagram it
// receives, byte for byte.
type udpCollector struct {
	conn      net.PacketConn
	mu        sync.Mutex
	datagrams []string
}

func newUDPCollector(t *testing.T) *udpCollector {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &udpCollector{conn: conn}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.datagrams = append(c.datagrams, string(buf[:n]))
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *udpCollector) addr() string { return c.conn.LocalAddr().String() }

func (c *udpCollector) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.datagrams...)
}

// timestampField matches the Timestamp field: RFC 3339, whole seconds, a
// zone offset or Z.
var timestampField = regexp.MustCompile(`"Timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d))"`)

// withoutTimestamp checks a datagram's Timestamp (format, local offset,
// within [from, to]) and returns the datagram with the value replaced by T.
func withoutTimestamp(t *testing.T, datagram string, from, to time.Time) string {
	t.Helper()
	match := timestampField.FindStringSubmatch(datagram)
	if match == nil {
		t.Fatalf("no RFC 3339 Timestamp with seconds precision in %q", datagram)
	}
	at, err := time.Parse(time.RFC3339, match[1])
	if err != nil {
		t.Fatal(err)
	}
	_, offset := at.Zone()
	if _, localOffset := at.In(time.Local).Zone(); offset != localOffset {
		t.Errorf("Timestamp %s is not in the local zone", match[1])
	}
	if at.Before(from.Truncate(time.Second)) || at.After(to) {
		t.Errorf("Timestamp %s outside [%s, %s]", match[1], from, to)
	}
	return strings.Replace(datagram, match[0], `"Timestamp":"T"`, 1)
}

func TestRelayDatagramsMatchTheUpstreamFormat(t *testing.T) {
	collector := newUDPCollector(t)
	logger, _ := relayLogger()
	from := time.Now()
	relay := startLogRelay(RelaySettings{
		RelaySyslog: true, SyslogAddr: collector.addr(), LogHostname: "agent-7",
		SendDockerLabels: "ServiceName, team,,absent,Payload,Hostname,Stream",
	}, relayOptions{
		containerID: "0123456789abcdef0123",
		labels:      map[string]string{"ServiceName": "web", "team": "pay<&>", "Payload": "p", "Hostname": "spoofed", "Stream": "s", "other": "not sent"},
		logger:      logger,
	})
	relay.containerLine(streamStdout, []byte(`hello <b>&"quoted"`))
	relay.containerLine(streamStderr, []byte("an ErRoR happened"))
	relay.containerLine(streamStderr, []byte("just a warning"))
	relay.containerLine(streamStdout, []byte("carriage\r"))
	relay.containerLine(streamStdout, []byte(""))
	relay.containerLine(streamStdout, []byte("bad utf-8 \xff"))
	relay.closeSink()
	to := time.Now()

	labels := `"ServiceName":"web","Stream":"%s","Timestamp":"T","fields.Payload":"p","fields.Stream":"s","team":"pay\u003c\u0026\u003e"`
	line := func(level, payload, stream string) string {
		head := `{"Hostname":"agent-7","Level":"` + level + `","Payload":` + payload + `,`
		if stream == "" {
			return head + strings.Replace(labels, `"Stream":"%s",`, "", 1) + "}\n"
		}
		return head + strings.Replace(labels, "%s", stream, 1) + "}\n"
	}
	want := []string{
		line("info", `"sidecar-executor starting log pump for '0123456789ab'"`, ""),
		line("info", `"hello \u003cb\u003e\u0026\"quoted\""`, "stdout"),
		line("error", `"an ErRoR happened"`, "stderr"),
		line("info", `"just a warning"`, "stderr"),
		line("info", `"carriage"`, "stdout"),
		line("info", `""`, "stdout"),
		line("info", `"bad utf-8 \ufffd"`, "stdout"),
	}
	eventually(t, 10*time.Second, "every datagram", func() bool { return len(collector.received()) >= len(want) })
	got := collector.received()
	if len(got) != len(want) {
		t.Fatalf("got %d datagrams, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if g := withoutTimestamp(t, got[i], from, to); g != want[i] {
			t.Errorf("datagram %d\n got %s\nwant %s", i, g, want[i])
		}
		var object map[string]string
		if err := json.Unmarshal([]byte(got[i]), &object); err != nil {
			t.Errorf("datagram %d is not one JSON object of strings: %v", i, err)
		}
	}
}

func TestRelayLevelTagging(t *testing.T) {
	for _, c := range []struct {
		stream logStream
		line   string
		want   string
	}{
		{streamStdout, "ERROR: on stdout", "info"},
		{streamStderr, "ERROR: on stderr", "error"},
		{streamStderr, "errors everywhere", "error"},
		{streamStderr, "Terror", "error"},
		{streamStderr, "err: not the word", "info"},
		{streamStderr, "", "info"},
	} {
		if got := relayLevel(c.stream, []byte(c.line)); got != c.want {
			t.Errorf("%s %q: level %s, want %s", c.stream, c.line, got, c.want)
		}
	}
}

func TestRelaySettings(t *testing.T) {
	if got, want := (RelaySettings{SendDockerLabels: " a ,b,, c"}).labelNames(), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("labelNames = %q, want %q", got, want)
	}
	if (RelaySettings{}).relayEnabled() || !(RelaySettings{RelaySyslogStartupOnly: true}).relayEnabled() {
		t.Error("the relay runs iff RELAY_SYSLOG or RELAY_SYSLOG_STARTUP_ONLY is set")
	}
	_, err := loadConfigFrom(testSettingsEnv(nil, "EXECUTOR_RELAY_SYSLOG_STARTUP_TIME=0s"))
	if err == nil || !strings.Contains(err.Error(), "EXECUTOR_RELAY_SYSLOG_STARTUP_TIME must be greater than zero") {
		t.Errorf("a zero startup window: %v", err)
	}
	_, err = loadConfigFrom(testSettingsEnv(nil, "EXECUTOR_SYSLOG_FORMAT=rfc3164"))
	if err == nil || !strings.Contains(err.Error(), `EXECUTOR_SYSLOG_FORMAT must be "json" or "rfc5424" (got "rfc3164")`) {
		t.Errorf("an unknown format: %v", err)
	}
	for _, name := range []string{"EXECUTOR_RELAY_SYSLOG", "EXECUTOR_SYSLOG_ADDR", "EXECUTOR_SYSLOG_FORMAT", "EXECUTOR_SEND_DOCKER_LABELS", "EXECUTOR_LOG_HOSTNAME"} {
		if isOperatorOnly(name) {
			t.Errorf("%s should be task-tunable", name)
		}
	}
	if startLogRelay(RelaySettings{SyslogAddr: "127.0.0.1:1"}, relayOptions{logger: log.NewEntry(log.New())}) != nil {
		t.Error("a relay was started without RELAY_SYSLOG")
	}
}

// TestRelayAddressAllowList: only the operator's file sets
// EXECUTOR_ALLOWED_SYSLOG_ADDRS, and an address outside it turns the relay
// off with a log line.
func TestRelayAddressAllowList(t *testing.T) {
	if !isOperatorOnly("EXECUTOR_ALLOWED_SYSLOG_ADDRS") {
		t.Fatal("EXECUTOR_ALLOWED_SYSLOG_ADDRS must be operator-only")
	}
	cfg := mustLoadConfig(t, testSettingsEnv(map[string]string{"EXECUTOR_ALLOWED_SYSLOG_ADDRS": "logs.local:514, 127.0.0.1:514"},
		"EXECUTOR_ALLOWED_SYSLOG_ADDRS=", "EXECUTOR_RELAY_SYSLOG=true", "EXECUTOR_SYSLOG_ADDR=10.0.0.9:9999"))
	if cfg.AllowedSyslogAddrs != "logs.local:514, 127.0.0.1:514" {
		t.Fatalf("allow list %q", cfg.AllowedSyslogAddrs)
	}
	logger, logs := relayLogger()
	if startLogRelay(cfg.RelaySettings, relayOptions{containerID: "c1", logger: logger}) != nil {
		t.Error("a relay was started to an address outside the allow list")
	}
	if !strings.Contains(logs.String(), "log relay off: EXECUTOR_SYSLOG_ADDR is not among the operator's EXECUTOR_ALLOWED_SYSLOG_ADDRS") {
		t.Errorf("no log line: %s", logs)
	}
	for addr, want := range map[string]bool{"logs.local:514": true, "127.0.0.1:514": true, "127.0.0.1:5140": false} {
		if got := cfg.addrAllowed(addr); got != want {
			t.Errorf("addrAllowed(%s) = %v", addr, got)
		}
	}
	if !(RelaySettings{}).addrAllowed("anywhere:1") {
		t.Error("without an allow list every address is allowed, as upstream")
	}
}

// blockingConn is a datagramConn whose writes wait until release is closed.
type blockingConn struct {
	release     chan struct{}
	entered     chan struct{}
	enteredOnce sync.Once
	mu          sync.Mutex
	written     int
}

func (c *blockingConn) Write(b []byte) (int, error) {
	c.enteredOnce.Do(func() { close(c.entered) })
	<-c.release
	c.mu.Lock()
	c.written++
	c.mu.Unlock()
	return len(b), nil
}
func (c *blockingConn) SetWriteDeadline(time.Time) error { return nil }
func (c *blockingConn) Close() error                     { return nil }

// TestRelayQueueIsBounded: with a target that takes no datagram, the
// caller is never blocked and the queue holds at most relayQueueEntries
// lines and relayQueueBytes bytes; every line is either sent or counted as
// dropped.
func TestRelayQueueIsBounded(t *testing.T) {
	conn := &blockingConn{release: make(chan struct{}), entered: make(chan struct{})}
	logger, logs := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: "collector:514"}, relayOptions{
		containerID: "c1", logger: logger,
		dial: func(context.Context, string) (datagramConn, error) { return conn, nil },
	})
	// The sender holds the pump's first line, stuck in its write.
	<-conn.entered
	small := []byte(strings.Repeat("s", 100))
	large := []byte(strings.Repeat("L", 300<<10))
	fed := 1 // the pump's first line
	for i := 0; i < 3*relayQueueEntries; i++ {
		relay.containerLine(streamStdout, small)
		fed++
		if n := len(relay.queue); n > relayQueueEntries {
			t.Fatalf("%d entries queued", n)
		}
	}
	// Free the queue's entries without letting anything out: only the bytes
	// bound can refuse these.
	drained := 0
	for len(relay.queue) > 0 {
		entry := <-relay.queue
		relay.queuedBytes.Add(-int64(len(entry.line)))
		drained++
	}
	if drained != relayQueueEntries {
		t.Errorf("%d entries were queued, want the bound %d", drained, relayQueueEntries)
	}
	for i := 0; i < 8; i++ {
		relay.containerLine(streamStderr, large)
		if queued := relay.queuedBytes.Load(); queued > relayQueueBytes {
			t.Fatalf("%d bytes queued, bound %d", queued, relayQueueBytes)
		}
	}
	if n := len(relay.queue); n != relayQueueBytes/len(large) {
		t.Errorf("%d large lines queued, want %d", n, relayQueueBytes/len(large))
	}
	close(conn.release)
	relay.closeSink()
	conn.mu.Lock()
	written := conn.written
	conn.mu.Unlock()
	if written != 1+relayQueueBytes/len(large) {
		t.Errorf("%d datagrams sent, want the first line and the queued large ones", written)
	}
	if got := int(relay.dropped.Load()) + written + drained; got != fed+8 {
		t.Errorf("sent %d + dropped %d + drained %d = %d, want the %d lines fed", written, relay.dropped.Load(), drained, got, fed+8)
	}
	if !strings.Contains(logs.String(), "lines are dropped while the relay's queue is full") {
		t.Errorf("no drop reported: %s", logs)
	}
	if !strings.Contains(logs.String(), "dropped=") || strings.Contains(logs.String(), "sss") {
		t.Errorf("the final report must count drops and show no line: %s", logs)
	}
}

func TestRelayUnusableAddressTurnsTheRelayOff(t *testing.T) {
	for _, c := range []struct {
		name string
		addr string
		dial func(context.Context, string) (datagramConn, error)
	}{
		{"no port", "127.0.0.1", nil},
		{"unresolvable", "collector.invalid:514", func(context.Context, string) (datagramConn, error) {
			return nil, &net.DNSError{Err: "no such host", Name: "collector.invalid", IsNotFound: true}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			logger, logs := relayLogger()
			relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: c.addr}, relayOptions{containerID: "c1", logger: logger, dial: c.dial})
			eventually(t, 10*time.Second, "the relay to turn itself off", func() bool {
				relay.mu.Lock()
				defer relay.mu.Unlock()
				return relay.stopped
			})
			relay.containerLine(streamStdout, []byte("after"))
			relay.closeSink()
			out := logs.String()
			if !strings.Contains(out, "log relay off: cannot use EXECUTOR_SYSLOG_ADDR") || !strings.Contains(out, c.addr) {
				t.Errorf("no clear log line naming the address: %s", out)
			}
			if relay.queuedBytes.Load() != 0 {
				t.Errorf("%d bytes left queued", relay.queuedBytes.Load())
			}
		})
	}
}

func TestRelayStartupWindow(t *testing.T) {
	collector := newUDPCollector(t)
	logger, logs := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslogStartupOnly: true, RelaySyslogStartupTime: 300 * time.Millisecond, SyslogAddr: collector.addr()},
		relayOptions{containerID: "c1", logger: logger})
	relay.containerLine(streamStdout, []byte("early"))
	eventually(t, 10*time.Second, "the startup window to close", func() bool {
		return strings.Contains(logs.String(), "the startup window is over; the relay stopped")
	})
	relay.containerLine(streamStdout, []byte("late"))
	relay.closeSink()
	eventually(t, 10*time.Second, "the early line", func() bool { return len(collector.received()) >= 2 })
	got := collector.received()
	if len(got) != 2 || !strings.Contains(got[1], `"Payload":"early"`) {
		t.Fatalf("datagrams %q, want the pump line and early only", got)
	}
	if n := strings.Count(logs.String(), "startup window is over"); n != 1 {
		t.Errorf("the end of the window logged %d times", n)
	}
}

// TestRelaySendFailuresAreCountedNotLogged: a target with no listener
// refuses datagrams (ICMP port unreachable); the relay carries on, and the
// log has counts and the error, never a line.
func TestRelaySendFailuresAreCountedNotLogged(t *testing.T) {
	closed := newUDPCollector(t)
	addr := closed.addr()
	closed.conn.Close()
	logger, logs := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: addr}, relayOptions{containerID: "c1", logger: logger})
	for i := 0; i < 50; i++ {
		relay.containerLine(streamStdout, []byte("payload-never-logged"))
	}
	relay.closeSink()
	out := logs.String()
	if relay.failed.Load() == 0 {
		t.Fatal("no failed send counted")
	}
	for _, want := range []string{"a send to the log collector failed", "log relay finished; some lines did not reach the log collector", "failed=", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
	if strings.Contains(out, "payload-never-logged") {
		t.Errorf("a relayed line reached the executor's log: %s", out)
	}
}

func TestRelayMasksValuesFromVault(t *testing.T) {
	collector := newUDPCollector(t)
	logger, _ := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: collector.addr()}, relayOptions{
		containerID: "c1", logger: logger, secrets: []string{"planted-vault-value", "abc"},
	})
	relay.containerLine(streamStdout, []byte("DB=planted-vault-value; x=abc"))
	relay.closeSink()
	eventually(t, 10*time.Second, "the line", func() bool { return len(collector.received()) >= 2 })
	if got := collector.received()[1]; !strings.Contains(got, `"Payload":"DB=[REDACTED]; x=abc"`) {
		t.Errorf("datagram %s: the Vault value must be masked, short values left alone", got)
	}
}

// TestRelayNeverBlocksOnASlowDial: lines arrive while the target is still
// being resolved; they wait in the queue, and closeSink gives up on the
// dial within its bound.
func TestRelayNeverBlocksOnASlowDial(t *testing.T) {
	logger, _ := relayLogger()
	relay := startLogRelay(RelaySettings{RelaySyslog: true, SyslogAddr: "slow:514"}, relayOptions{
		containerID: "c1", logger: logger,
		dial: func(ctx context.Context, _ string) (datagramConn, error) {
			<-ctx.Done()
			return nil, errors.New("dial abandoned")
		},
	})
	for i := 0; i < 10; i++ {
		relay.containerLine(streamStdout, []byte("waiting"))
	}
	relay.closeSink()
	select {
	case <-relay.done:
	default:
		t.Fatal("the sender outlived closeSink")
	}
}

// TestRelayIsASinkOfTheTasksOutput: the task runner hands the relay the
// started container's output, labels and ID, without Docker (fake runtime).
func TestRelayIsASinkOfTheTasksOutput(t *testing.T) {
	collector := newUDPCollector(t)
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{
		info: unitTaskInfo(withDockerParameter("label", "team=pay")),
		operator: map[string]string{"EXECUTOR_RELAY_SYSLOG": "true", "EXECUTOR_SYSLOG_ADDR": collector.addr(),
			"EXECUTOR_SEND_DOCKER_LABELS": "team", "EXECUTOR_LOG_HOSTNAME": "h"},
	})
	c := engine.running(t)
	base := time.Now()
	engine.writeOutput(c.id, stamped(base, streamStdout, "out 1\n")...)
	engine.writeOutput(c.id, stamped(base.Add(time.Second), streamStderr, "error 1\n")...)
	eventually(t, 10*time.Second, "the pump line and both lines", func() bool { return len(collector.received()) == 3 })
	engine.exit(c.id, 0)
	u.finish(t)
	got := collector.received()
	for i, want := range []string{
		`"Payload":"sidecar-executor starting log pump for '` + shortID(c.id) + `'"`,
		`"Level":"info","Payload":"out 1","Stream":"stdout"`,
		`"Level":"error","Payload":"error 1","Stream":"stderr"`,
	} {
		if !strings.Contains(got[i], want) || !strings.Contains(got[i], `"team":"pay"`) || !strings.HasPrefix(got[i], `{"Hostname":"h",`) {
			t.Errorf("datagram %d %s, want %s with the team label", i, got[i], want)
		}
	}
	if !strings.Contains(u.logs.String(), "log relay finished") {
		t.Errorf("the relay was not closed with the output stream: %s", u.logs)
	}
}
