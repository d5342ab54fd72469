package main

// logs.go owns the live stream of the container's output: one goroutine
// follows Docker's logs of the container from its start, splits them into
// lines and hands every line to the sinks (logs_sink.go): the sandbox
// files (logs_sandbox.go) and whatever else the task adds. A follow
// connection that breaks is resumed from the last timestamp seen, skipping
// what was already delivered; at the container's exit the stream is read
// to its end, in bounded time. A log driver Docker cannot read back is
// reported once and the stream gives up.

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
	// outputDrainLimit bounds the read of the container's last output
	// once it has exited: the terminal update must not wait on Docker.
	outputDrainLimit = 2 * time.Second
	// followRetryFirst and followRetryMax space the reconnections of a
	// broken follow while the container runs.
	followRetryFirst = 100 * time.Millisecond
	followRetryMax   = 2 * time.Second
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
}

// startOutput starts following the container's output into the sandbox's
// stdout and stderr (the executor's own, see logs_sandbox.go) and into the
// extra sinks, from the container's first line. finishOutput must be
// called once the container has exited.
func (t *taskRunner) startOutput(id string, logger *log.Entry, extra ...containerLineSink) *outputStream {
	sinks := append([]containerLineSink{newSandboxSink(t.deps.stdout, t.deps.stderr)}, extra...)
	tty := t.spec != nil && t.spec.Options.Config != nil && t.spec.Options.Config.Tty
	driver := ""
	if t.spec != nil && t.spec.Options.HostConfig != nil {
		driver = t.spec.Options.HostConfig.LogConfig.Type
	}
	return startOutputStream(t.deps.docker, id, tty, driver, logger, sinks...)
}

// startOutputStream starts the follow goroutine. driver is the log driver
// the task asked for ("" for the daemon's default).
func startOutputStream(runtime containerRuntime, id string, tty bool, driver string, logger *log.Entry, sinks ...containerLineSink) *outputStream {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outputStream{
		runtime: runtime, id: id, tty: tty, sinks: sinks, logger: logger,
		ctx: ctx, cancel: cancel, exited: make(chan struct{}), done: make(chan struct{}),
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
// the output to its end (at most outputDrainLimit, and never past
// deadline when one is set), ends the sinks and reports whether the
// sandbox received the container's output. Without it, the end-of-task
// copy of the logs is what the sandbox gets.
func (o *outputStream) finish(deadline time.Time) (streamed bool) {
	select {
	case <-o.exited:
	default:
		close(o.exited)
	}
	limit := outputDrainLimit
	if !deadline.IsZero() {
		if half := time.Until(deadline) / 2; half < limit {
			limit = max(half, 0)
		}
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-o.done:
	default:
		select {
		case <-o.done:
		case <-timer.C:
			o.logger.WithField("limit", limit.String()).Warn("the container's last output was not read in time; the sandbox may miss its end")
			o.cancel()
			<-o.done
		}
	}
	o.cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.received && !o.unreadable
}

func (o *outputStream) follow(driver string) {
	defer close(o.done)
	defer o.closeSinks()
	stdout := &streamWriter{o: o, stream: streamStdout}
	stderr := &streamWriter{o: o, stream: streamStderr}
	delay := followRetryFirst
	failures := 0
	for {
		exitedBefore := o.hasExited()
		o.mu.Lock()
		since := o.resume.since()
		o.skip = o.resume.skipFor()
		deliveredBefore := o.resume.total
		o.mu.Unlock()
		err := o.runtime.followLogs(o.ctx, o.id, since, o.tty, stdout, stderr)
		if o.connectionEnded(err == nil) > deliveredBefore {
			delay = followRetryFirst
		}
		if o.ctx.Err() != nil {
			return
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
			var missing *docker.NoSuchContainer
			if errors.As(err, &missing) {
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
		} else {
			// The follow ended cleanly: the container stopped, or Docker
			// ended the stream. One more read, once the exit is known,
			// makes sure nothing is missed.
			failures = 0
		}
		wait := time.NewTimer(delay)
		select {
		case <-o.ctx.Done():
			wait.Stop()
			return
		case <-o.exited:
			// Read what is left without waiting.
			wait.Stop()
		case <-wait.C:
			delay = min(delay*2, followRetryMax)
		}
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

// unreadableLogs tells whether Docker refused to read the logs because of
// the container's log driver.
func unreadableLogs(err error) bool {
	var apiErr *docker.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.Status == 501 || strings.Contains(apiErr.Message, "does not support reading")
}

// resumePoint remembers where the output delivered so far ends, in the
// terms of Docker's since filter, which has a resolution of one second:
// sec is the latest second a delivered record was stamped with, and count
// how many delivered records were stamped in that second or later. A
// resumed follow asks for the records since sec and skips count of them:
// Docker replays its log in the order it wrote it, so those are exactly
// the ones delivered. (A record stamped earlier than sec but written
// after, which Docker does between its two streams, is not replayed by
// the since filter and is not counted.)
type resumePoint struct {
	sec   int64
	count int
	// started is set once a record was delivered.
	started bool
	// total counts the records delivered.
	total int
	// partial is how many bytes of a record in progress were already
	// read when the connection broke (a raw TTY stream can break inside
	// a record); they are skipped when it is replayed.
	partial int
}

func (r *resumePoint) delivered(ts time.Time) {
	r.total++
	sec := ts.Unix()
	switch {
	case !r.started || sec > r.sec:
		r.sec, r.count, r.started = sec, 1, true
	case sec == r.sec:
		r.count++
	}
}

func (r *resumePoint) since() time.Time {
	if !r.started {
		return time.Time{}
	}
	return time.Unix(r.sec, 0)
}

func (r *resumePoint) skipFor() resumeSkip {
	if !r.started {
		return resumeSkip{bytes: r.partial}
	}
	return resumeSkip{sec: r.sec, records: r.count, bytes: r.partial}
}

// resumeSkip is what one follow connection skips of what Docker replays.
type resumeSkip struct {
	sec     int64
	records int
	// bytes of the first record not skipped whole.
	bytes int
}

// streamWriter receives one stream of a follow connection. Demultiplexed
// output arrives one Docker record per Write (go-dockerclient hands each
// frame of Docker's multiplexed stream to one Write, and Docker writes one
// record per frame); a raw TTY stream arrives in arbitrary pieces.
type streamWriter struct {
	o      *outputStream
	stream logStream
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	parser := w.o.parsers[w.stream]
	parser.feed(p)
	if !w.o.tty {
		parser.recordEnd()
	}
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
// record was delivered before a reconnection.
func (p *recordParser) beginRecord() {
	ts, err := time.Parse(time.RFC3339Nano, string(p.stamp))
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
	skip := &p.out.skip
	p.skipping = false
	if skip.records > 0 && ts.Unix() >= skip.sec {
		skip.records--
		p.skipping = true
	}
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
	if skip := &p.out.skip; skip.bytes > 0 && skip.records == 0 {
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
		if !p.ts.IsZero() {
			p.out.resume.delivered(p.ts)
			p.out.received = true
		}
		p.out.resume.partial = 0
		p.out.skip.bytes = 0
	}
	p.atStart = true
	p.skipping = false
	p.inRecord = 0
	p.recordStart = len(p.line)
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
