// Package syslogtest runs a real rsyslogd for tests: Debian's rsyslog,
// receiving UDP on a free port of 127.0.0.1 and writing every message it
// receives, raw, as one line of a file the test reads, and as rsyslogd
// parsed it as a syslog message, in a second file. Nothing else is
// loaded (no imuxsock, no imklog): it is a collector, not the host's
// syslog.
package syslogtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// probePrefix starts the datagrams NewServer sends until rsyslogd shows it
// receives them; Messages leaves them out.
const probePrefix = "syslogtest-probe "

// startTimeout bounds one attempt to start rsyslogd and see it receive.
const startTimeout = 20 * time.Second

// Server is one rsyslogd.
type Server struct {
	t       testing.TB
	dir     string
	addr    string
	out     string
	parsed  string
	cmd     *exec.Cmd
	stderr  *testutil.SyncBuffer
	exited  chan struct{}
	stopped sync.Once
}

// Binary returns the path of rsyslogd, or ends the test: a skip, or a
// failure under CI=true (or SIDECAR_EXECUTOR_REQUIRE_DOCKER=1, which make
// test sets), as a missing Docker engine does. scripts/ensure-test-tools.sh
// installs it.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("rsyslogd")
	if err != nil {
		// Debian installs it in /usr/sbin, which is not on every PATH.
		if _, statErr := os.Stat("/usr/sbin/rsyslogd"); statErr == nil {
			return "/usr/sbin/rsyslogd"
		}
		message := "needs rsyslogd (Debian package rsyslog); install it with scripts/ensure-test-tools.sh"
		if testutil.DockerRequired() {
			t.Fatalf("%s (a failure, not a skip: CI=true or %s=1)", message, testutil.RequireDockerEnv)
		}
		t.Skipf("%s; CI=true makes this a failure", message)
	}
	return path
}

// NewServer starts rsyslogd for the test and stops it at the test's end.
// It returns once rsyslogd has received and written a probe datagram.
func NewServer(t testing.TB) *Server {
	t.Helper()
	binary := Binary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, binary)
		if err == nil {
			t.Cleanup(s.Close)
			return s
		}
		lastErr = err
	}
	t.Fatalf("syslogtest: %v", lastErr)
	return nil
}

func start(t testing.TB, binary string) (*Server, error) {
	// rsyslogd binds the port itself, so a free one is found first; the
	// probe shows whether the bind worked, and a lost race is retried.
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	s := &Server{
		t:      t,
		dir:    dir,
		addr:   fmt.Sprintf("127.0.0.1:%d", port),
		out:    filepath.Join(dir, "received.log"),
		parsed: filepath.Join(dir, "parsed.log"),
		stderr: &testutil.SyncBuffer{},
		exited: make(chan struct{}),
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k" net.enableDNS="off"
       parser.escapeControlCharactersOnReceive="off")
module(load="imudp")
template(name="raw" type="string" string="%%rawmsg%%\n")
template(name="parsed" type="string"
         string="%%syslogfacility-text%%|%%syslogseverity-text%%|%%timereported:::date-rfc3339%%|%%hostname%%|%%app-name%%|%%procid%%|%%msgid%%|%%structured-data%%|%%msg%%\n")
ruleset(name="received") {
	action(type="omfile" file=%q template="raw")
	action(type="omfile" file=%q template="parsed")
}
input(type="imudp" address="127.0.0.1" port="%d" ruleset="received")
`, dir, s.out, s.parsed, port)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(binary, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rsyslogd: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReceiving(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func freeUDPPort() (int, error) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).Port, nil
}

// waitReceiving sends probes until one is in the output file.
func (s *Server) waitReceiving() error {
	conn, err := net.Dial("udp", s.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(startTimeout)
	for n := 0; ; n++ {
		// A refused probe (nothing bound yet) is expected at first.
		conn.Write([]byte(fmt.Sprintf("%s%d\n", probePrefix, n)))
		for _, line := range s.lines() {
			if strings.HasPrefix(line, probePrefix) {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("rsyslogd exited at start: %s", s.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rsyslogd on %s wrote no probe within %s: %s", s.addr, startTimeout, s.stderr)
		}
	}
}

// Addr is the UDP host:port rsyslogd receives on.
func (s *Server) Addr() string { return s.addr }

// lines are the complete lines of the raw output file.
func (s *Server) lines() []string {
	return completeLines(s.out)
}

// completeLines are the lines of path that end with a newline.
func completeLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if end := bytes.LastIndexByte(data, '\n'); end >= 0 {
		data = data[:end+1]
	} else {
		return nil
	}
	var lines []string
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	return lines
}

// Messages are the messages received so far, in order, each as rsyslogd
// received it (%rawmsg%; rsyslogd drops one trailing newline), the
// start-up probes left out.
func (s *Server) Messages() []string {
	var messages []string
	for _, line := range s.lines() {
		if !strings.HasPrefix(line, probePrefix) {
			messages = append(messages, line)
		}
	}
	return messages
}

// Parsed are the messages received so far as rsyslogd parsed them, the
// probes left out: facility|severity|timestamp|hostname|app-name|procid|msgid|structured-data|msg
// (rsyslogd's properties, the timestamp in RFC 3339).
func (s *Server) Parsed() []string {
	raw := s.lines()
	parsed := completeLines(s.parsed)
	var messages []string
	for i := 0; i < len(raw) && i < len(parsed); i++ {
		if !strings.HasPrefix(raw[i], probePrefix) {
			messages = append(messages, parsed[i])
		}
	}
	return messages
}

// Stop stops rsyslogd, as a collector that goes down: datagrams sent
// afterwards are refused. Safe to call more than once.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// Close stops rsyslogd; the test's cleanup calls it.
func (s *Server) Close() {
	s.Stop()
	if s.t.Failed() {
		if errOut := s.stderr.String(); errOut != "" {
			s.t.Logf("rsyslogd output: %s", errOut)
		}
	}
}
