package main

// logs_relay.go owns the log relay (EXECUTOR_RELAY_SYSLOG): a sink of the
// container's output lines (logs_sink.go) that sends each line as one UDP
// datagram holding one JSON object, the wire format of the original
// sidecar-executor, to EXECUTOR_SYSLOG_ADDR. The target is best effort: one
// that is down, slow or unresolvable never reaches the task. Lines wait in a
// queue bounded in entries and bytes for one sender goroutine; a full queue
// drops lines and counts them, and the executor log reports counts, never a
// line.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"
)

// RelaySettings are the log relay's settings, with the original
// sidecar-executor's names and defaults. All are task-tunable: the relay
// sends the container's own output, to a place the task's author chooses
// (see SECURITY.md). The type is exported only so that envconfig reaches
// its fields through the anonymous embedding in Config.
type RelaySettings struct {
	// RelaySyslog relays every line of the container's output.
	RelaySyslog bool `envconfig:"RELAY_SYSLOG" default:"false"`
	// RelaySyslogStartupOnly relays only during the first
	// RelaySyslogStartupTime after the relay starts; it turns the relay on
	// by itself, as upstream.
	RelaySyslogStartupOnly bool `envconfig:"RELAY_SYSLOG_STARTUP_ONLY" default:"false"`
	// RelaySyslogStartupTime is the length of that window.
	RelaySyslogStartupTime time.Duration `envconfig:"RELAY_SYSLOG_STARTUP_TIME" default:"1m"`
	// SyslogAddr is the UDP host:port the datagrams go to.
	SyslogAddr string `envconfig:"SYSLOG_ADDR" default:"127.0.0.1:514"`
	// ContainerLogsStdout is accepted for compatibility: upstream copied the
	// relayed JSON to the executor's stdout; the container's raw output
	// already streams into the sandbox's stdout and stderr.
	ContainerLogsStdout bool `envconfig:"CONTAINER_LOGS_STDOUT" default:"false"`
	// SendDockerLabels names the container's Docker labels copied into
	// every datagram (comma list, kept as written so that Config stays
	// comparable; labelNames parses it).
	SendDockerLabels string `envconfig:"SEND_DOCKER_LABELS"`
	// LogHostname is the Hostname field; empty means the OS hostname.
	LogHostname string `envconfig:"LOG_HOSTNAME"`
	// SyslogFormat is the datagrams' format: "json", upstream's, or
	// "rfc5424", syslog messages for syslog daemons (not upstream).
	SyslogFormat string `envconfig:"SYSLOG_FORMAT" default:"json"`
	// AllowedSyslogAddrs, when set, are the only SYSLOG_ADDR values the
	// relay sends to (comma list of host:port as written). Operator-only
	// through its EXECUTOR_ALLOWED_ prefix: the operator's way to keep
	// tasks from aiming the host's datagrams elsewhere.
	AllowedSyslogAddrs string `envconfig:"ALLOWED_SYSLOG_ADDRS"`
}

// addrAllowed reports whether the operator lets the relay send to addr.
func (r RelaySettings) addrAllowed(addr string) bool {
	if strings.TrimSpace(r.AllowedSyslogAddrs) == "" {
		return true
	}
	for _, allowed := range strings.Split(r.AllowedSyslogAddrs, ",") {
		if strings.TrimSpace(allowed) == addr {
			return true
		}
	}
	return false
}

// relayEnabled reports whether the relay runs: either flag turns it on.
func (r RelaySettings) relayEnabled() bool {
	return r.RelaySyslog || r.RelaySyslogStartupOnly
}

// labelNames is SEND_DOCKER_LABELS as a list: elements trimmed, empty ones
// dropped.
func (r RelaySettings) labelNames() []string {
	return splitList(r.SendDockerLabels)
}

// problems lists what is wrong with the settings, for Config.validate. An
// address that does not resolve is not a setting error: the relay is best
// effort, so it is turned off with a log line and the task runs.
func (r RelaySettings) problems() []string {
	var problems []string
	if r.RelaySyslogStartupTime <= 0 {
		problems = append(problems, fmt.Sprintf("%s_RELAY_SYSLOG_STARTUP_TIME must be greater than zero (got %s)", envPrefix, r.RelaySyslogStartupTime))
	}
	if r.SyslogFormat != relayFormatJSON && r.SyslogFormat != relayFormatRFC5424 {
		problems = append(problems, fmt.Sprintf("%s_SYSLOG_FORMAT must be %q or %q (got %q)", envPrefix, relayFormatJSON, relayFormatRFC5424, r.SyslogFormat))
	}
	return problems
}

// The datagram formats of EXECUTOR_SYSLOG_FORMAT.
const (
	relayFormatJSON    = "json"
	relayFormatRFC5424 = "rfc5424"
)

const (
	// relayQueueEntries and relayQueueBytes bound the lines waiting for the
	// sender: what a target that does not keep up can cost in memory.
	relayQueueEntries = 1024
	relayQueueBytes   = 1 << 20
	// relayDialTimeout bounds resolving SYSLOG_ADDR.
	relayDialTimeout = 5 * time.Second
	// relayWriteTimeout bounds one datagram's send.
	relayWriteTimeout = time.Second
	// relayCloseTimeout is how long the end of the stream waits for the
	// queue to drain before the rest is dropped.
	relayCloseTimeout = 500 * time.Millisecond
	// relayReportInterval is how often losses are reported while the task
	// runs.
	relayReportInterval = time.Minute
	// relayMinSecretLength is the shortest Vault value masked in relayed
	// lines: masking shorter ones would mangle ordinary words and numbers.
	relayMinSecretLength = 6
)

// datagramConn is the part of a connected UDP socket the sender uses.
type datagramConn interface {
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	Close() error
}

// relayEntry is one line waiting in the queue. stream is 0 for the relay's
// own first line.
type relayEntry struct {
	at     time.Time
	stream logStream
	line   []byte
}

// logRelay is the relay of one container's output.
type logRelay struct {
	addr        string
	containerID string
	taskID      string
	hostname    string
	rfc5424     bool
	// fields are the label fields of every datagram, clashes renamed.
	fields map[string]string
	// object is the JSON datagram's map: fields and Hostname, plus the
	// line's own keys set by encode (the sender's alone).
	object map[string]string
	// secrets are masked in every relayed line.
	secrets [][]byte
	// window is how long a startup-only relay lasts; zero without one.
	window  time.Duration
	started time.Time
	logger  *log.Entry
	dial    func(ctx context.Context, addr string) (datagramConn, error)

	// mu orders the producers against the stop: once stopped, the queue
	// is closed and nothing more is queued.
	mu      sync.Mutex
	stopped bool
	queue   chan relayEntry

	queuedBytes atomic.Int64
	relayed     atomic.Uint64
	dropped     atomic.Uint64
	failed      atomic.Uint64
	// lastError is the latest send error, for the reports.
	lastError atomic.Value

	abandon     chan struct{}
	abandonOnce sync.Once
	done        chan struct{}
}

// relayOptions is what a relay needs besides the settings.
type relayOptions struct {
	containerID string
	// taskID is the APP-NAME of RFC 5424 messages.
	taskID string
	// labels are the container's Docker labels: its `label` parameters and
	// the executor's owner labels.
	labels map[string]string
	// secrets are values the container got from Vault.
	secrets []string
	logger  *log.Entry
	dial    func(ctx context.Context, addr string) (datagramConn, error)
}

// startLogRelay starts the relay for a started container, or returns nil
// when the settings do not ask for one. It never blocks on the network:
// resolving and sending happen on the sender goroutine.
func startLogRelay(settings RelaySettings, opts relayOptions) *logRelay {
	logger := opts.logger
	if settings.ContainerLogsStdout {
		logger.Info("EXECUTOR_CONTAINER_LOGS_STDOUT is set: nothing more to do, the container's output already streams live into the sandbox's stdout and stderr")
	}
	if !settings.relayEnabled() {
		return nil
	}
	if !settings.addrAllowed(settings.SyslogAddr) {
		logger.WithFields(log.Fields{"syslog_addr": settings.SyslogAddr, "allowed": settings.AllowedSyslogAddrs}).
			Error("log relay off: EXECUTOR_SYSLOG_ADDR is not among the operator's EXECUTOR_ALLOWED_SYSLOG_ADDRS; the task runs without it")
		return nil
	}
	hostname := settings.LogHostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	dial := opts.dial
	if dial == nil {
		dial = dialUDP
	}
	r := &logRelay{
		addr:        settings.SyslogAddr,
		containerID: opts.containerID,
		taskID:      opts.taskID,
		hostname:    hostname,
		rfc5424:     settings.SyslogFormat == relayFormatRFC5424,
		fields:      relayLabelFields(settings.labelNames(), opts.labels),
		started:     time.Now(),
		logger:      logger.WithField("syslog_addr", settings.SyslogAddr),
		dial:        dial,
		queue:       make(chan relayEntry, relayQueueEntries),
		abandon:     make(chan struct{}),
		done:        make(chan struct{}),
	}
	for _, secret := range opts.secrets {
		if len(secret) >= relayMinSecretLength {
			r.secrets = append(r.secrets, []byte(secret))
		}
	}
	fields := log.Fields{"labels": strings.Join(slices.Sorted(maps.Keys(r.fields)), " "), "format": settings.SyslogFormat}
	if settings.RelaySyslogStartupOnly {
		r.window = settings.RelaySyslogStartupTime
		fields["startup_window"] = settings.RelaySyslogStartupTime.String()
	}
	r.logger.WithFields(fields).Info("relaying the container's output to the log collector over UDP")
	r.queueEntry(relayEntry{at: r.started, line: []byte(fmt.Sprintf("sidecar-executor starting log pump for '%s'", shortID(opts.containerID)))})
	go r.send()
	return r
}

// logRelaySinks returns the log relay of the task's started container as
// a sink of its output, when the settings ask for one. The labels offered
// to SEND_DOCKER_LABELS are those the container carries (its `label`
// parameters and the owner labels), not TaskInfo.labels, as upstream; the
// values the container got from Vault are masked in relayed lines.
func (t *taskRunner) logRelaySinks(containerID string, logger *log.Entry) []containerLineSink {
	if t.deps.settings == nil || t.spec == nil {
		return nil
	}
	opts := relayOptions{containerID: containerID, taskID: t.info.TaskID.Value, logger: logger}
	if config := t.spec.Options.Config; config != nil {
		opts.labels = config.Labels
		for _, kv := range config.Env {
			name, value, _ := strings.Cut(kv, "=")
			if slices.Contains(t.fromVault, name) {
				opts.secrets = append(opts.secrets, value)
			}
		}
	}
	relay := startLogRelay(t.deps.settings.RelaySettings, opts)
	if relay == nil {
		return nil
	}
	return []containerLineSink{relay}
}

func dialUDP(ctx context.Context, addr string) (datagramConn, error) {
	dialer := net.Dialer{Timeout: relayDialTimeout}
	conn, err := dialer.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// relayLabelFields picks the labels named in names that the container
// carries. As in upstream's logrus formatter, a label named like a
// built-in field is kept as fields.<name>, except Hostname, which the
// relay's own value overwrites.
func relayLabelFields(names []string, labels map[string]string) map[string]string {
	fields := map[string]string{}
	for _, name := range names {
		if value, ok := labels[name]; ok {
			fields[name] = value
		}
	}
	for _, key := range []string{"Timestamp", "Level", "Payload", "Stream"} {
		if value, ok := fields[key]; ok {
			fields["fields."+key] = value
			delete(fields, key)
		}
	}
	delete(fields, "Hostname")
	return fields
}

// containerLine implements containerLineSink. It never blocks: the line is
// copied into the queue, or dropped and counted when the queue is full.
func (r *logRelay) containerLine(stream logStream, line []byte) {
	r.queueEntry(relayEntry{at: time.Now(), stream: stream, line: line})
}

func (r *logRelay) queueEntry(entry relayEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.window > 0 && entry.at.Sub(r.started) >= r.window {
		r.stopLocked("the startup window is over; the relay stopped")
		return
	}
	size := int64(len(entry.line))
	if r.queuedBytes.Load()+size > relayQueueBytes {
		r.drop()
		return
	}
	entry.line = bytes.Clone(entry.line)
	select {
	case r.queue <- entry:
		r.queuedBytes.Add(size)
	default:
		r.drop()
	}
}

// drop counts a line the queue had no room for; the first is logged at
// once, the others in the reports.
func (r *logRelay) drop() {
	if r.dropped.Add(1) == 1 {
		r.logger.Warn("the log collector does not keep up: lines are dropped while the relay's queue is full (counted, reported every minute and at the end)")
	}
}

// stopLocked stops queuing and lets the sender drain what is queued. r.mu
// is held.
func (r *logRelay) stopLocked(why string) {
	if r.stopped {
		return
	}
	r.stopped = true
	close(r.queue)
	if why != "" {
		r.logger.WithField("startup_window", r.window.String()).Info(why)
	}
}

func (r *logRelay) stop(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(why)
}

// closeSink implements containerLineSink: the queue is drained, within
// relayCloseTimeout, and the totals are logged.
func (r *logRelay) closeSink() {
	r.stop("")
	timer := time.NewTimer(relayCloseTimeout)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-timer.C:
		r.abandonOnce.Do(func() { close(r.abandon) })
		<-r.done
	}
}

// send is the sender goroutine: it resolves the target, then sends the
// queue's lines in order until the queue is closed and empty.
func (r *logRelay) send() {
	defer close(r.done)
	var windowOver <-chan time.Time
	if r.window > 0 {
		timer := time.NewTimer(time.Until(r.started.Add(r.window)))
		defer timer.Stop()
		windowOver = timer.C
	}
	dialCtx, cancelDial := context.WithCancel(context.Background())
	go func() {
		select {
		case <-r.abandon:
			cancelDial()
		case <-r.done:
		}
	}()
	conn, err := r.dial(dialCtx, r.addr)
	cancelDial()
	if err != nil {
		r.logger.WithError(err).Error("log relay off: cannot use EXECUTOR_SYSLOG_ADDR; the task runs without it")
		r.stop("")
		for entry := range r.queue {
			r.queuedBytes.Add(-int64(len(entry.line)))
		}
		return
	}
	defer conn.Close()
	report := time.NewTicker(relayReportInterval)
	defer report.Stop()
	var reported [2]uint64
	var datagram bytes.Buffer
	for {
		select {
		case entry, ok := <-r.queue:
			if !ok {
				r.reportTotals()
				return
			}
			r.queuedBytes.Add(-int64(len(entry.line)))
			select {
			case <-r.abandon:
				r.dropped.Add(1)
				continue
			default:
			}
			datagram.Reset()
			r.encode(&datagram, entry)
			conn.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
			if _, err := conn.Write(datagram.Bytes()); err != nil {
				r.lastError.Store(err.Error())
				if r.failed.Add(1) == 1 {
					r.logger.WithError(err).Warn("a send to the log collector failed; the relay goes on (failures are counted, reported every minute and at the end)")
				}
				continue
			}
			r.relayed.Add(1)
		case <-windowOver:
			r.stop("the startup window is over; the relay stopped")
		case <-report.C:
			now := [2]uint64{r.dropped.Load(), r.failed.Load()}
			if now != reported {
				reported = now
				r.lossFields().Warn("log relay: some lines did not reach the log collector")
			}
		}
	}
}

func (r *logRelay) lossFields() *log.Entry {
	fields := log.Fields{"relayed": r.relayed.Load(), "dropped": r.dropped.Load(), "failed": r.failed.Load()}
	if lastError, ok := r.lastError.Load().(string); ok {
		fields["last_error"] = lastError
	}
	return r.logger.WithFields(fields)
}

func (r *logRelay) reportTotals() {
	if r.dropped.Load() > 0 || r.failed.Load() > 0 {
		r.lossFields().Warn("log relay finished; some lines did not reach the log collector")
		return
	}
	r.lossFields().Info("log relay finished")
}

// encode writes one datagram: the JSON object upstream's logrus formatter
// wrote (keys sorted, <, > and & escaped, a newline after it), plus Stream.
func (r *logRelay) encode(buf *bytes.Buffer, entry relayEntry) {
	line := bytes.TrimSuffix(entry.line, []byte("\r"))
	for _, secret := range r.secrets {
		if bytes.Contains(line, secret) {
			line = bytes.ReplaceAll(line, secret, []byte(redactedValue))
		}
	}
	if r.rfc5424 {
		r.encodeRFC5424(buf, entry, line)
		return
	}
	if r.object == nil {
		// The fields every datagram carries, once; only the sender
		// encodes, so the map is reused from line to line.
		r.object = make(map[string]string, len(r.fields)+5)
		for key, value := range r.fields {
			r.object[key] = value
		}
		r.object["Hostname"] = r.hostname
	}
	object := r.object
	object["Timestamp"] = entry.at.Format(time.RFC3339)
	object["Level"] = relayLevel(entry.stream, line)
	object["Payload"] = string(line)
	if entry.stream != 0 {
		object["Stream"] = entry.stream.String()
	} else {
		delete(object, "Stream")
	}
	// A map of strings always encodes.
	_ = json.NewEncoder(buf).Encode(object)
}

// relayLevel tags a line as upstream did: stdout is info; stderr is error
// when the line mentions "error" in any case, else info.
func relayLevel(stream logStream, line []byte) string {
	if stream == streamStderr && bytes.Contains(bytes.ToLower(line), []byte("error")) {
		return "error"
	}
	return "info"
}

// encodeRFC5424 writes one syslog message (RFC 5424, over UDP as RFC 5426
// sends it: no trailer): facility user, severity informational or error as
// Level, the timestamp in microseconds, the relay's hostname, the task ID
// as APP-NAME, the short container ID as PROCID, the stream as MSGID, no
// structured data (the labels travel in the JSON format only: an SD-ID
// needs an IANA enterprise number this project does not have), and the
// line as MSG.
func (r *logRelay) encodeRFC5424(buf *bytes.Buffer, entry relayEntry, line []byte) {
	priority := 1*8 + 6
	if relayLevel(entry.stream, line) == "error" {
		priority = 1*8 + 3
	}
	msgID := "-"
	if entry.stream != 0 {
		msgID = entry.stream.String()
	}
	fmt.Fprintf(buf, "<%d>1 %s %s %s %s %s - ", priority, entry.at.Format("2006-01-02T15:04:05.000000Z07:00"),
		syslogHeaderField(r.hostname, 255), syslogHeaderField(r.taskID, 48), syslogHeaderField(shortID(r.containerID), 128), msgID)
	buf.Write(line)
}

// syslogHeaderField makes value a valid RFC 5424 header field: printable
// US-ASCII without spaces (others become _), at most max bytes, "-" when
// empty.
func syslogHeaderField(value string, max int) string {
	if value == "" {
		return "-"
	}
	field := []byte(value)
	if len(field) > max {
		field = field[:max]
	}
	for i, c := range field {
		if c < 33 || c > 126 {
			field[i] = '_'
		}
	}
	return string(field)
}
