package main

// logs.go owns the live stream of the container's output: one goroutine
// reads it from the container's start, splits it into lines and hands
// every line to the sinks (logs_sink.go): the sandbox files
// (logs_sandbox.go) and whatever else the task adds. It reads Docker's
// json-file log on this host where it can (logs_file.go) and follows
// Docker's logs API otherwise, or from where the file reader stopped. A
// follow connection that breaks is resumed from the last timestamp seen,
// skipping what was already delivered; at the container's exit the stream
// is read to its end, in bounded time. A log driver Docker cannot read
// back is reported once and the stream gives up.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
)

const (
	// maxContainerLine caps the length of a delivered line. A longer line
	// is split: it reaches the sinks as several lines of at most this
	// many bytes, nothing dropped. It bounds the memory a line can take.
	maxContainerLine = 64 << 10
	// maxRecordRemainder bounds what one Docker log record may add to the
	// line buffer before it is split anyway. Docker sends a line in
	// records of at most 16 KiB; this only guards against a broken stream.
	maxRecordRemainder = 64 << 10
	// outputDrainIdle and outputDrainMax bound the read of the
	// container's last output once it has exited, which the terminal
	// update waits for: a stream that makes no progress for
	// outputDrainIdle, or still runs after outputDrainMax, is cut.
	outputDrainIdle = 2 * time.Second
	outputDrainMax  = time.Minute
	// followRetryFirst and followRetryMax space the reconnections of a
	// broken follow while the container runs.
	followRetryFirst = 100 * time.Millisecond
	followRetryMax   = 2 * time.Second
	// followFailuresAfterExit is how many reads of an exited container's
	// output may fail in a row, delivering nothing, before the stream
	// ends: Docker cannot give the rest (it is unreachable, say), and the
	// terminal update should not wait on it.
	followFailuresAfterExit = 3
	// followStallLimit is how long a follow connection may deliver
	// nothing while the container runs before it is replaced (once per
	// silence). followBusyStallLimit replaces it for a stream that was
	// busy (followBusyRecords or more records in one of the last two
	// followStallTicks that delivered any): Docker's follow can lose its
	// place at a rotation of its json-file log, which a busy container
	// causes every few seconds, and every second of a stall is output
	// that the rotation then takes away before it is read.
	// followStallTick is how often the watch looks.
	followStallLimit     = 10 * time.Second
	followBusyStallLimit = time.Second
	followBusyRecords    = 1000
	followStallTick      = 500 * time.Millisecond
	// timestampMaxLen is longer than any timestamp Docker puts before a
	// record (RFC 3339 with nanoseconds and a zone offset: 35 bytes).
	timestampMaxLen = 40
)

// outputStream follows one container's output and feeds the sinks.
type outputStream struct {
	runtime containerRuntime
	id      string
	tty     bool
	sinks   []containerLineSink
	logger  *log.Entry
	// logFile is Docker's json-file log of the container, read directly
	// while it can be (logs_file.go); "" follows the logs API only.
	logFile string

	ctx    context.Context
	cancel context.CancelFunc
	// exited is closed by finish once the container has exited.
	exited chan struct{}
	done   chan struct{}

	// mu guards what follows; the follow goroutine holds it while it
	// parses, finish reads the results after done.
	mu      sync.Mutex
	resume  resumePoint
	skip    resumeSkip
	parsers [3]*recordParser // indexed by logStream
	// received is set once a connection delivered a record or reached
	// the end of the output: the sandbox then has the container's output.
	received bool
	// unreadable is set when Docker cannot read this container's logs.
	unreadable bool
	// resendReported: Docker's follow was seen going back (reportResend).
	resendReported bool
	// kickConn ends the current connection; kicked says it was ended
	// on purpose, to replace it.
	kickConn context.CancelFunc
	kicked   bool
	// silenceKickedAt is the delivered count at the last replacement of
	// a silent connection (-1: none yet).
	silenceKickedAt int
}

// startOutput starts following the container's output into the sandbox's
// stdout and stderr (the executor's own, see logs_sandbox.go) and into the
// extra sinks, from the container's first line. finishOutput must be
// called once the container has exited.
func (t *taskRunner) startOutput(container *docker.Container, logger *log.Entry, extra ...containerLineSink) *outputStream {
	sinks := append([]containerLineSink{newSandboxSink(t.deps.stdout, t.deps.stderr)}, extra...)
	tty := t.spec != nil && t.spec.Options.Config != nil && t.spec.Options.Config.Tty
	driver := ""
	if t.spec != nil && t.spec.Options.HostConfig != nil {
		driver = t.spec.Options.HostConfig.LogConfig.Type
	}
	logFile := ""
	if t.deps.settings == nil || t.deps.settings.ReadDockerLogFile {
		logFile = t.deps.docker.jsonLogFile(container)
	}
	return startOutputStreamFrom(t.deps.docker, container.ID, tty, driver, logFile, logger, sinks...)
}

// startOutputStreamFrom starts the follow goroutine, reading logFile
// (Docker's json-file log of the container) while it can, else Docker's
// logs API. driver is the log driver the task asked for ("" for the
// daemon's default).
func startOutputStreamFrom(runtime containerRuntime, id string, tty bool, driver, logFile string, logger *log.Entry, sinks ...containerLineSink) *outputStream {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outputStream{
		runtime: runtime, id: id, tty: tty, sinks: sinks, logger: logger, logFile: logFile,
		ctx: ctx, cancel: cancel, exited: make(chan struct{}), done: make(chan struct{}),
		silenceKickedAt: -1,
	}
	for _, stream := range []logStream{streamStdout, streamStderr} {
		o.parsers[stream] = &recordParser{stream: stream, out: o, atStart: true}
	}
	if driver == "none" {
		o.reportUnreadable(driver, nil)
		close(o.done)
		o.closeSinks()
		return o
	}
	go o.follow(driver)
	return o
}

// finish tells the stream the container has exited, waits for it to read
// the output to its end, ends the sinks and reports whether the sandbox
// received the container's output. The wait is bounded: it ends when the
// stream makes no progress for outputDrainIdle, after outputDrainMax, and
// (when deadline is set) after half the time left before it. Without a
// streamed output, the end-of-task copy of the logs is what the sandbox
// gets.
func (o *outputStream) finish(deadline time.Time) (streamed bool) {
	select {
	case <-o.exited:
	default:
		close(o.exited)
	}
	limit := outputDrainMax
	if !deadline.IsZero() {
		limit = max(min(limit, time.Until(deadline)/2), 0)
	}
	hard := time.NewTimer(limit)
	defer hard.Stop()
	tick := time.NewTicker(outputDrainIdle / 8)
	defer tick.Stop()
	progress, lastProgress := o.delivered(), time.Now()
	retried := false
	for waiting := true; waiting; {
		select {
		case <-o.done:
			waiting = false
		case <-hard.C:
			o.giveUpDrain("the container's last output was not read in time; the sandbox may miss its end", limit)
			waiting = false
		case now := <-tick.C:
			if n := o.delivered(); n != progress {
				progress, lastProgress = n, now
			} else if now.Sub(lastProgress) >= outputDrainIdle && !retried {
				// A stalled follow: one fresh connection reads what
				// Docker still has.
				retried, lastProgress = true, now
				o.kick()
			} else if now.Sub(lastProgress) >= outputDrainIdle {
				o.giveUpDrain("the container's last output stopped coming; the sandbox may miss its end", outputDrainIdle)
				waiting = false
			}
		}
	}
	o.cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.received && !o.unreadable
}

func (o *outputStream) delivered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.resume.total
}

// giveUpDrain ends the stream (and so closes the sinks) before it has
// read the container's output to the end.
func (o *outputStream) giveUpDrain(message string, after time.Duration) {
	select {
	case <-o.done:
		return
	default:
	}
	o.logger.WithField("after", after.String()).Warn(message)
	o.cancel()
	<-o.done
}

func (o *outputStream) follow(driver string) {
	defer close(o.done)
	defer o.closeSinks()
	if o.logFile != "" {
		err := o.followFile(o.logFile)
		if err == nil || o.ctx.Err() != nil {
			return
		}
		o.logger.WithError(err).WithField("log_file", o.logFile).
			Warn("reading Docker's json-file log of the container failed; its output is followed through Docker's logs API from the last line delivered")
	}
	stdout := &streamWriter{o: o, stream: streamStdout}
	stderr := &streamWriter{o: o, stream: streamStderr}
	delay := followRetryFirst
	failures, failuresAfterExit := 0, 0
	for {
		exitedBefore := o.hasExited()
		o.mu.Lock()
		since := o.resume.since()
		o.skip = o.resume.skipFor()
		deliveredBefore := o.resume.total
		o.mu.Unlock()
		connCtx, connCancel := context.WithCancel(o.ctx)
		o.mu.Lock()
		o.kickConn, o.kicked = connCancel, false
		o.mu.Unlock()
		watchdog := o.watchStall(connCtx, deliveredBefore)
		err := o.runtime.followLogs(connCtx, o.id, since, o.tty, stdout, stderr)
		connCancel()
		<-watchdog
		progressed := o.connectionEnded(err == nil) > deliveredBefore
		if progressed {
			delay = followRetryFirst
		}
		if o.ctx.Err() != nil {
			return
		}
		o.mu.Lock()
		kicked := o.kicked
		o.mu.Unlock()
		if kicked {
			// Docker's follow can stall (it may lose its place when the
			// json-file driver rotates under a slow reader): a quiet
			// connection is replaced, from where the output stands.
			o.logger.Debug("no output on the follow for a while; reconnecting")
			continue
		}
		if err == nil && exitedBefore {
			// The container had exited before this read began: its
			// output is complete.
			return
		}
		if err != nil {
			if unreadableLogs(err) {
				o.reportUnreadable(driver, err)
				return
			}
			if containerGone(err) {
				o.logger.WithError(err).Warn("the container is gone; its output stream ends")
				return
			}
			failures++
			entry := o.logger.WithError(err).WithField("failures", failures)
			if failures == 1 {
				entry.Warn("the stream of the container's output broke; resuming from the last line delivered")
			} else {
				entry.Debug("the stream of the container's output broke again")
			}
			if exitedBefore && !progressed {
				if failuresAfterExit++; failuresAfterExit >= followFailuresAfterExit {
					o.logger.WithError(err).WithField("attempts", failuresAfterExit).
						Warn("the container's last output could not be read; the sandbox may miss its end")
					return
				}
			} else {
				failuresAfterExit = 0
			}
		} else {
			// The follow ended cleanly: the container stopped, or Docker
			// ended the stream. One more read, once the exit is known,
			// makes sure nothing is missed.
			failures = 0
		}
		// A read that began after the exit was the immediate one: one
		// after it that fails waits like any other.
		exited := o.exited
		if exitedBefore {
			exited = nil
		}
		wait := time.NewTimer(delay)
		select {
		case <-o.ctx.Done():
			wait.Stop()
			return
		case <-exited:
			// Read what is left without waiting.
			wait.Stop()
		case <-wait.C:
			delay = min(delay*2, followRetryMax)
		}
	}
}

// watchStall replaces a follow connection that delivers nothing for
// followStallLimit while the container runs (followBusyStallLimit after a
// busy spell). from is the count delivered when the connection began.
func (o *outputStream) watchStall(ctx context.Context, from int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(followStallTick)
		defer tick.Stop()
		// The last two ticks that delivered records, and how many: a
		// burst can straddle a tick.
		progress, last, lastTicks := from, time.Now(), [2]int{}
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if n := o.delivered(); n != progress {
					progress, last, lastTicks = n, now, [2]int{lastTicks[1], n - progress}
				} else if now.Sub(last) >= silenceLimit(max(lastTicks[0], lastTicks[1])) && !o.hasExited() && o.kickForSilence(n) {
					return
				}
			}
		}
	}()
	return done
}

// silenceLimit is how long a follow may deliver nothing after ticks of
// the watch that delivered at most lastTick records each.
func silenceLimit(lastTick int) time.Duration {
	if lastTick >= followBusyRecords {
		return followBusyStallLimit
	}
	return followStallLimit
}

// kickForSilence replaces a silent connection once per silence: a quiet
// container costs one reconnection (and Docker one read of its log), not
// one every followStallLimit.
func (o *outputStream) kickForSilence(delivered int) bool {
	o.mu.Lock()
	if o.silenceKickedAt == delivered {
		o.mu.Unlock()
		return false
	}
	o.silenceKickedAt = delivered
	o.mu.Unlock()
	o.kick()
	return true
}

// kick ends the current follow connection; the stream reconnects at once.
func (o *outputStream) kick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.kickConn != nil {
		o.kicked = true
		o.kickConn()
	}
}

func (o *outputStream) hasExited() bool {
	select {
	case <-o.exited:
		return true
	default:
		return false
	}
}

// connectionEnded notes the end of one follow: a record in progress is
// replayed on the next one. It returns how many records were delivered
// so far.
func (o *outputStream) connectionEnded(clean bool) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if clean {
		o.received = true
	}
	for _, stream := range []logStream{streamStdout, streamStderr} {
		o.parsers[stream].connectionEnded()
	}
	return o.resume.total
}

// reportResend logs, once per task, that Docker's follow sent records
// again. It runs under mu.
func (o *outputStream) reportResend() {
	if o.resendReported {
		return
	}
	o.resendReported = true
	o.logger.Warn("Docker's follow sent records of the container's output again (it re-reads its json-file log after a rotation, or the host's clock stepped back); the repeats are dropped")
}

// reportUnreadable logs, once per task, that the output cannot be streamed.
func (o *outputStream) reportUnreadable(driver string, err error) {
	o.mu.Lock()
	o.unreadable = true
	o.mu.Unlock()
	if driver == "" {
		driver = "the daemon's default"
	}
	entry := o.logger.WithField("log_driver", driver)
	if err != nil {
		entry = entry.WithError(err)
	}
	entry.Warn("Docker cannot read back this container's output with its log driver: it is not streamed to the sandbox's stdout and stderr")
}

// closeSinks delivers the lines still without a newline and ends the sinks.
func (o *outputStream) closeSinks() {
	o.mu.Lock()
	for _, stream := range []logStream{streamStdout, streamStderr} {
		o.parsers[stream].flushFinal()
	}
	o.mu.Unlock()
	for _, sink := range o.sinks {
		sink.closeSink()
	}
}

// containerGone tells whether Docker no longer has the container.
func containerGone(err error) bool {
	var missing *docker.NoSuchContainer
	var apiErr *docker.Error
	return errors.As(err, &missing) || errors.As(err, &apiErr) && apiErr.Status == 404
}

// unreadableLogs tells whether Docker refused to read the logs because of
// the container's log driver.
func unreadableLogs(err error) bool {
	var apiErr *docker.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.Status == 501 || strings.Contains(apiErr.Message, "does not support reading")
}

// resumePoint remembers where the output delivered so far ends: for each
// stream, the timestamp of its latest delivered record and how many were
// stamped exactly so. Docker stamps every record with the nanosecond it
// read it, in order within a stream. A resumed follow asks for the records
// since the earliest of those (Docker's since filter has a resolution of
// one second, so some are replayed) and drops the replayed ones: those
// stamped before their stream's latest, and as many stamped exactly then
// as were delivered. A record Docker no longer has (its json-file rotated
// under a slow reader) is simply not replayed; what follows it still is.
type resumePoint struct {
	last  [3]time.Time // by logStream; zero: nothing delivered yet
	atEnd [3]int
	// total counts the records delivered.
	total int
	// partial is how many bytes of a record in progress were already
	// read when the connection broke (a raw TTY stream can break inside
	// a record); they are skipped when it is replayed.
	partial int
}

func (r *resumePoint) delivered(stream logStream, ts time.Time) {
	r.total++
	switch {
	case ts.After(r.last[stream]):
		r.last[stream], r.atEnd[stream] = ts, 1
	case ts.Equal(r.last[stream]):
		r.atEnd[stream]++
	}
}

// wentBack tells whether a record of the stream stamped ts is before the
// latest one delivered: Docker stamps a stream's records in order, so it
// was sent before. (A stamp equal to the latest is no proof: with a coarse
// clock two new records can share one; once the follow is seen going back,
// the skip counts those as a reconnection's replay does.)
func (r *resumePoint) wentBack(stream logStream, ts time.Time) bool {
	last := r.last[stream]
	return !last.IsZero() && ts.Before(last)
}

func (r *resumePoint) since() time.Time {
	var since time.Time
	for _, stream := range []logStream{streamStdout, streamStderr} {
		if last := r.last[stream]; !last.IsZero() && (since.IsZero() || last.Before(since)) {
			since = last
		}
	}
	if since.IsZero() {
		return since
	}
	return time.Unix(since.Unix(), 0)
}

func (r *resumePoint) skipFor() resumeSkip {
	return resumeSkip{last: r.last, atEnd: r.atEnd, bytes: r.partial}
}

// resumeSkip is what one follow connection drops of what Docker replays.
type resumeSkip struct {
	last  [3]time.Time
	atEnd [3]int
	// bytes of the first record not dropped whole.
	bytes int
}

// rearm makes the skip of one stream drop what was delivered of it so far.
func (s *resumeSkip) rearm(stream logStream, r *resumePoint) {
	s.last[stream], s.atEnd[stream] = r.last[stream], r.atEnd[stream]
}

// replayed tells whether a record was delivered before, and counts it.
func (s *resumeSkip) replayed(stream logStream, ts time.Time) bool {
	last := s.last[stream]
	switch {
	case last.IsZero() || ts.After(last):
		return false
	case ts.Equal(last):
		if s.atEnd[stream] == 0 {
			return false
		}
		s.atEnd[stream]--
	}
	return true
}

// streamWriter receives one stream of a follow connection. Demultiplexed
// output arrives one Docker record per Write (frameSplitter hands each
// frame of Docker's multiplexed stream to one Write, and Docker writes one
// record per frame); a raw TTY stream arrives in arbitrary pieces.
type streamWriter struct {
	o      *outputStream
	stream logStream
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	parser := w.o.parsers[w.stream]
	parser.feed(p)
	if !w.o.tty {
		parser.recordEnd()
	}
	w.o.mu.Unlock()
	return len(p), nil
}

// recordParser turns one stream's records ("<timestamp> <text>") into
// lines. It runs under outputStream.mu.
type recordParser struct {
	stream logStream
	out    *outputStream
	// atStart: the next byte begins a record's timestamp.
	atStart bool
	stamp   []byte
	stamps  stampReader
	ts      time.Time
	// inRecord counts the text bytes of the current record read so far.
	inRecord int
	// skipping: the current record was delivered before the connection
	// broke and is being dropped.
	skipping bool
	line     []byte
	// recordStart is where the current record's text begins in line.
	recordStart int
}

func (p *recordParser) feed(data []byte) {
	for len(data) > 0 {
		if p.atStart {
			i := bytes.IndexByte(data, ' ')
			if i < 0 {
				p.stamp = append(p.stamp, data...)
				if len(p.stamp) > timestampMaxLen {
					p.badStamp()
				}
				return
			}
			p.stamp = append(p.stamp, data[:i]...)
			data = data[i+1:]
			p.beginRecord()
			continue
		}
		i := bytes.IndexByte(data, '\n')
		text := data
		if i >= 0 {
			text = data[:i]
		}
		p.text(text)
		if i < 0 {
			return
		}
		data = data[i+1:]
		if !p.skipping {
			p.lineEnd()
		}
		p.recordEnd()
	}
}

// beginRecord parses the timestamp just read and decides whether the
// record was delivered before: before a reconnection, or earlier on this
// connection.
func (p *recordParser) beginRecord() {
	ts, err := p.stamps.parse(p.stamp)
	p.stamp = p.stamp[:0]
	p.atStart = false
	p.inRecord = 0
	p.recordStart = len(p.line)
	if err != nil {
		// Not one of Docker's timestamps: keep the bytes as text.
		p.ts = time.Time{}
		p.skipping = false
		return
	}
	p.ts = ts
	// Docker's follow can go back on this connection: it re-reads a
	// json-file log after a rotation and sends again what it sent.
	var wentBack bool
	p.skipping, wentBack = p.deliveredBefore(ts, p.stream)
	if wentBack {
		p.out.reportResend()
	}
}

// deliveredBefore tells whether the record of p's stream stamped ts was
// delivered before: a replay the skip drops, or a record stamped before
// the last delivered one of its stream (wentBack), after which the skip is
// re-armed to drop what was delivered of the rearm streams as a
// reconnection's replay is. (A host clock stepped back looks the same, and
// costs the output of the step.)
func (p *recordParser) deliveredBefore(ts time.Time, rearm ...logStream) (delivered, wentBack bool) {
	skip := &p.out.skip
	if skip.replayed(p.stream, ts) {
		return true, false
	}
	if !p.out.resume.wentBack(p.stream, ts) {
		return false, false
	}
	for _, stream := range rearm {
		skip.rearm(stream, &p.out.resume)
	}
	return skip.replayed(p.stream, ts), true
}

// badStamp handles a record start that is not a timestamp: its bytes are
// text.
func (p *recordParser) badStamp() {
	stamp := append([]byte(nil), p.stamp...)
	p.stamp = p.stamp[:0]
	p.atStart = false
	p.ts = time.Time{}
	p.skipping = false
	p.inRecord = 0
	p.recordStart = len(p.line)
	p.text(stamp)
}

func (p *recordParser) text(text []byte) {
	if p.skipping {
		return
	}
	if skip := &p.out.skip; skip.bytes > 0 {
		n := min(skip.bytes, len(text))
		skip.bytes -= n
		p.inRecord += n
		text = text[n:]
	}
	for len(text) > 0 {
		if p.out.tty {
			// Raw records may be cut by a broken connection, so a line
			// is split only when a record grows past the guard.
			held := len(p.line) - p.recordStart
			if held >= maxRecordRemainder {
				p.emitSplit(p.line)
				p.line = p.line[:0]
				p.recordStart = 0
				continue
			}
			n := min(len(text), maxRecordRemainder-held)
			p.line = append(p.line, text[:n]...)
			p.inRecord += n
			text = text[n:]
			continue
		}
		if len(p.line) >= maxContainerLine {
			// Split a line too long for one delivery. Demultiplexed
			// records arrive whole, so no connection breaks in between.
			p.emit(p.line[:maxContainerLine])
			p.line = append(p.line[:0], p.line[maxContainerLine:]...)
			p.recordStart = 0
			continue
		}
		n := min(len(text), maxContainerLine-len(p.line))
		p.line = append(p.line, text[:n]...)
		p.inRecord += n
		text = text[n:]
	}
}

// lineEnd delivers the current line, split if it is too long.
func (p *recordParser) lineEnd() {
	line := p.line
	if p.out.tty {
		// The terminal ends lines with \r\n; the container wrote \n.
		line = bytes.TrimSuffix(line, []byte{'\r'})
	}
	p.emitSplit(line)
	p.line = p.line[:0]
	p.recordStart = 0
}

// recordEnd closes the current record: it counts as delivered.
func (p *recordParser) recordEnd() {
	if p.atStart {
		return
	}
	if !p.skipping {
		p.delivered()
	}
	p.atStart = true
	p.skipping = false
	p.inRecord = 0
	p.recordStart = len(p.line)
}

// delivered notes the current record as delivered.
func (p *recordParser) delivered() {
	if !p.ts.IsZero() {
		p.out.resume.delivered(p.stream, p.ts)
		p.out.received = true
	}
	p.out.resume.partial = 0
	p.out.skip.bytes = 0
}

// fileRecord delivers one record of Docker's json-file log (logs_file.go):
// a line with its newline, or a piece of a longer one. A record stamped
// before the last delivered of its stream was read before (a rotated file
// read again, which holds both streams): what was delivered of both is
// then dropped.
func (p *recordParser) fileRecord(ts time.Time, text []byte) {
	if delivered, _ := p.deliveredBefore(ts, streamStdout, streamStderr); delivered {
		return
	}
	p.ts, p.skipping, p.inRecord, p.recordStart = ts, false, 0, len(p.line)
	newline := len(text) > 0 && text[len(text)-1] == '\n'
	if newline {
		text = text[:len(text)-1]
	}
	p.text(text)
	if newline {
		p.lineEnd()
	}
	p.delivered()
	p.inRecord, p.recordStart = 0, len(p.line)
}

// connectionEnded drops a timestamp cut in the middle and remembers how
// much of a record in progress was read, so that its replay skips it.
func (p *recordParser) connectionEnded() {
	p.stamp = p.stamp[:0]
	if !p.atStart {
		if !p.skipping {
			p.out.resume.partial = p.inRecord
		}
		p.atStart = true
		p.skipping = false
		p.inRecord = 0
	}
}

// flushFinal delivers a last line that has no newline.
func (p *recordParser) flushFinal() {
	if len(p.line) > 0 {
		p.emitSplit(p.line)
		p.line = p.line[:0]
	}
}

func (p *recordParser) emitSplit(line []byte) {
	for len(line) > maxContainerLine {
		p.emit(line[:maxContainerLine])
		line = line[maxContainerLine:]
	}
	p.emit(line)
}

func (p *recordParser) emit(line []byte) {
	for _, sink := range p.out.sinks {
		sink.containerLine(p.stream, line)
	}
}
