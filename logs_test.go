package main

// Unit tests of the container output stream (logs.go) against the fake
// engine: lines in order, resumption without duplicates or loss, long
// lines, the end at exit, unreadable log drivers and the copy fallback.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

// recordingSink keeps what it receives.
type recordingSink struct {
	mu     sync.Mutex
	lines  map[logStream][]string
	closed int
}

func newRecordingSink() *recordingSink {
	return &recordingSink{lines: map[logStream][]string{}}
}

func (s *recordingSink) containerLine(stream logStream, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines[stream] = append(s.lines[stream], string(line))
}

func (s *recordingSink) closeSink() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
}

func (s *recordingSink) of(stream logStream) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines[stream])
}

func (s *recordingSink) closeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// runningFakeContainer creates and starts a container on the fake engine.
func runningFakeContainer(t *testing.T, engine *fakeRuntime) string {
	t.Helper()
	created, err := engine.createContainer(context.Background(), docker.CreateContainerOptions{Name: "output-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.startContainer(context.Background(), created.ID); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

// testLogger is a logger whose output the test reads.
func testLogger() (*log.Entry, *syncBuffer) {
	out := &syncBuffer{}
	logger := log.New()
	logger.SetOutput(out)
	logger.SetLevel(log.DebugLevel)
	return log.NewEntry(logger), out
}

// startOutputStream starts a stream on the logs API only.
func startOutputStream(runtime containerRuntime, id string, tty bool, driver string, logger *log.Entry, sinks ...containerLineSink) *outputStream {
	return startOutputStreamFrom(runtime, id, tty, driver, "", logger, sinks...)
}

// stamped makes records stamped a millisecond apart from base.
func stamped(base time.Time, stream logStream, texts ...string) []fakeOutputRecord {
	var records []fakeOutputRecord
	for i, text := range texts {
		records = append(records, fakeOutputRecord{stream: stream, at: base.Add(time.Duration(i) * time.Millisecond), text: text})
	}
	return records
}

func TestOutputResumesWithoutDuplicatesOrLoss(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			engine := newFakeRuntime()
			id := runningFakeContainer(t, engine)
			// Every record of a second is replayed by a resumed follow
			// (since has a resolution of one second); the stream must skip
			// exactly the ones it delivered. The connections break after
			// whole records, and (TTY) inside one.
			drops := []fakeDrop{{records: 2}, {records: 3}, {records: 1, bytes: 4}, {records: 0, bytes: 2}, {records: 5}}
			engine.followDrops = drops
			base := time.Unix(1_700_000_000, 100_000_000)
			var want []string
			var records []fakeOutputRecord
			for i := 0; i < 12; i++ {
				at := base.Add(time.Duration(i) * 150 * time.Millisecond)
				stream := streamStdout
				if i%3 == 2 && !tty {
					stream = streamStderr
				}
				records = append(records, fakeOutputRecord{stream: stream, at: at, text: fmt.Sprintf("line %02d of the container\n", i)})
				want = append(want, fmt.Sprintf("line %02d of the container", i))
			}
			engine.writeOutput(id, records[:6]...)
			sink := newRecordingSink()
			logger, _ := testLogger()
			o := startOutputStream(engine, id, tty, "", logger, sink)
			eventually(t, 10*time.Second, "the first lines", func() bool {
				return len(sink.of(streamStdout))+len(sink.of(streamStderr)) >= 4
			})
			engine.writeOutput(id, records[6:]...)
			engine.exit(id, 0)
			if !o.finish(time.Time{}) {
				t.Error("finish says nothing was streamed")
			}
			got := append(sink.of(streamStdout), sink.of(streamStderr)...)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("lines delivered:\n%q\nwant each once:\n%q", got, want)
			}
			for _, stream := range []logStream{streamStdout, streamStderr} {
				lines := sink.of(stream)
				if !slices.IsSorted(lines) {
					t.Errorf("%s lines out of order: %q", stream, lines)
				}
			}
			if n := engine.followCount(); n < len(drops)+1 {
				t.Errorf("%d follows, want at least %d (one per broken connection, then the last)", n, len(drops)+1)
			}
			if sink.closeCount() != 1 {
				t.Errorf("sink closed %d times, want once", sink.closeCount())
			}
		})
	}
}

func TestOutputJoinsDockersPiecesAndSplitsLongLines(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	// Docker keeps a long line as pieces of 16 KiB without newlines.
	long := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	var records []fakeOutputRecord
	at := time.Unix(1_700_000_000, 0)
	for rest := long + "\n"; rest != ""; {
		n := min(len(rest), 16<<10)
		records = append(records, fakeOutputRecord{stream: streamStdout, at: at, text: rest[:n]})
		rest = rest[n:]
		at = at.Add(time.Microsecond)
	}
	records = append(records, stamped(at.Add(time.Millisecond), streamStdout, "short\n", "no newline at the end")...)
	engine.writeOutput(id, records...)
	// The connection breaks in the middle of the long line.
	engine.followDrops = []fakeDrop{{records: 20}}
	engine.exit(id, 0)
	sink := newRecordingSink()
	logger, _ := testLogger()
	o := startOutputStream(engine, id, false, "", logger, sink)
	o.finish(time.Time{})
	lines := sink.of(streamStdout)
	if len(lines) < 2 || lines[len(lines)-2] != "short" || lines[len(lines)-1] != "no newline at the end" {
		t.Fatalf("last lines %q, want short, then the last line without its newline", lines[max(0, len(lines)-2):])
	}
	pieces := lines[:len(lines)-2]
	if want := len(long) / maxContainerLine; len(pieces) != want {
		t.Errorf("the 1 MiB line came as %d lines, want %d of %d bytes", len(pieces), want, maxContainerLine)
	}
	for _, piece := range pieces {
		if len(piece) > maxContainerLine {
			t.Fatalf("a line of %d bytes was delivered, over the cap of %d", len(piece), maxContainerLine)
		}
	}
	if strings.Join(pieces, "") != long {
		t.Error("the pieces of the long line do not add up to it")
	}
}

func TestOutputTTYLinesLoseTheTerminalsCarriageReturn(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	engine.writeOutput(id, stamped(time.Unix(1_700_000_000, 0), streamStdout, "one\r\n", "two\r\n", "tail")...)
	engine.exit(id, 0)
	sink := newRecordingSink()
	logger, _ := testLogger()
	startOutputStream(engine, id, true, "", logger, sink).finish(time.Time{})
	if got := sink.of(streamStdout); !slices.Equal(got, []string{"one", "two", "tail"}) {
		t.Errorf("lines %q", got)
	}
}

func TestOutputFollowsLiveAndEndsAtExit(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	sink := newRecordingSink()
	logger, _ := testLogger()
	o := startOutputStream(engine, id, false, "", logger, sink)
	base := time.Now()
	for i := 0; i < 3; i++ {
		engine.writeOutput(id, fakeOutputRecord{stream: streamStderr, at: base.Add(time.Duration(i) * time.Millisecond), text: fmt.Sprintf("e%d\n", i)})
		eventually(t, 10*time.Second, "the line while the container runs", func() bool { return len(sink.of(streamStderr)) == i+1 })
	}
	if sink.closeCount() != 0 {
		t.Fatal("the sinks were closed while the container runs")
	}
	engine.writeOutput(id, fakeOutputRecord{stream: streamStdout, at: base.Add(time.Second), text: "last words\n"})
	engine.exit(id, 1)
	if !o.finish(time.Now().Add(time.Minute)) {
		t.Error("finish says nothing was streamed")
	}
	if got := sink.of(streamStdout); !slices.Equal(got, []string{"last words"}) {
		t.Errorf("stdout %q, want the line written just before the exit", got)
	}
	if sink.closeCount() != 1 {
		t.Errorf("sink closed %d times, want once", sink.closeCount())
	}
}

func TestOutputRidesOutAnEngineOutage(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	base := time.Now()
	engine.writeOutput(id, stamped(base, streamStdout, "before\n")...)
	sink := newRecordingSink()
	logger, logs := testLogger()
	o := startOutputStream(engine, id, false, "", logger, sink)
	eventually(t, 10*time.Second, "the first line", func() bool { return len(sink.of(streamStdout)) == 1 })
	engine.setUnreachable(true)
	engine.writeOutput(id, stamped(base.Add(time.Millisecond), streamStdout, "during\n")...)
	eventually(t, 10*time.Second, "a failed reconnection", func() bool { return engine.followCount() >= 3 })
	engine.setUnreachable(false)
	engine.writeOutput(id, stamped(base.Add(2*time.Millisecond), streamStdout, "after\n")...)
	eventually(t, 10*time.Second, "the lines after the outage", func() bool { return len(sink.of(streamStdout)) == 3 })
	engine.exit(id, 0)
	o.finish(time.Time{})
	if got := sink.of(streamStdout); !slices.Equal(got, []string{"before", "during", "after"}) {
		t.Errorf("lines %q", got)
	}
	if n := strings.Count(logs.String(), "the stream of the container's output broke; resuming"); n != 1 {
		t.Errorf("the broken stream was reported %d times at warning level, want once:\n%s", n, logs.String())
	}
}

// streamingOneLine starts a stream of a running container that wrote one
// line, once the line is delivered.
func streamingOneLine(t *testing.T) (*fakeRuntime, string, *outputStream, *recordingSink, *syncBuffer) {
	t.Helper()
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	engine.writeOutput(id, stamped(time.Now(), streamStdout, "only line\n")...)
	sink := newRecordingSink()
	logger, logs := testLogger()
	o := startOutputStream(engine, id, false, "", logger, sink)
	eventually(t, 10*time.Second, "the line", func() bool { return len(sink.of(streamStdout)) == 1 })
	return engine, id, o, sink, logs
}

// Once the container has exited, a Docker that cannot be reached gets one
// immediate read and a few spaced ones, not a loop of reconnections until
// the drain gives up: the terminal update does not wait on it.
func TestOutputAfterExitWithDockerUnreachableEndsAfterAFewReads(t *testing.T) {
	engine, id, o, sink, logs := streamingOneLine(t)
	engine.setUnreachable(true)
	before := engine.followCount()
	engine.exit(id, 0)
	start := time.Now()
	o.finish(time.Time{})
	took := time.Since(start)
	if reads := engine.followCount() - before; reads > followFailuresAfterExit+1 {
		t.Errorf("%d reads of the output after the exit, want at most %d", reads, followFailuresAfterExit+1)
	}
	if took >= outputDrainIdle {
		t.Errorf("finish took %s, as long as the idle drain limit (%s): the failed reads did not end the stream", took, outputDrainIdle)
	}
	if !strings.Contains(logs.String(), "the container's last output could not be read") {
		t.Errorf("the end was not logged:\n%s", logs.String())
	}
	if sink.closeCount() != 1 {
		t.Errorf("sink closed %d times, want once", sink.closeCount())
	}
}

// A busy stream whose follow stalls (Docker's follow can lose its place
// at a json-file rotation) is replaced after followBusyStallLimit, long
// before the quiet limit, and resumes without a repeated or lost line.
func TestOutputBusyStreamStallIsReplacedSoon(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	var texts, want []string
	for i := range 4 * followBusyRecords {
		texts = append(texts, fmt.Sprintf("line %d\n", i))
		want = append(want, fmt.Sprintf("line %d", i))
	}
	// A millisecond apart: a thousand share each second, as a busy
	// container's do, so the resume must skip the replayed ones.
	engine.followDrops = []fakeDrop{{records: 3 * followBusyRecords, stall: true}}
	engine.writeOutput(id, stamped(time.Now().Add(-5*time.Second), streamStdout, texts...)...)
	sink := newRecordingSink()
	logger, logs := testLogger()
	start := time.Now()
	o := startOutputStream(engine, id, false, "", logger, sink)
	eventually(t, followStallLimit, "every line after the stall", func() bool { return len(sink.of(streamStdout)) == len(want) })
	took := time.Since(start)
	engine.exit(id, 0)
	o.finish(time.Time{})
	if got := sink.of(streamStdout); !slices.Equal(got, want) {
		t.Errorf("%d lines, want %d in order without repeats", len(got), len(want))
	}
	if engine.followCount() < 2 {
		t.Errorf("%d follows: the stalled one was not replaced", engine.followCount())
	}
	if took >= followStallLimit {
		t.Errorf("the stall of a busy stream was ended after %s, the quiet stream's limit", took)
	}
	if !strings.Contains(logs.String(), "no output on the follow for a while; reconnecting") {
		t.Errorf("the replacement was not logged:\n%s", logs.String())
	}
}

// Docker's follow can go back and send records again on the same
// connection (it re-reads its json-file log after a rotation): each line
// still reaches the sinks once, in order, and the repeat is logged once.
func TestOutputDropsWhatDockersFollowSendsAgain(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	var records []fakeOutputRecord
	var want []string
	base := time.Now().Add(-time.Second)
	for i := range 3000 {
		at := base.Add(time.Duration(i) * 100 * time.Microsecond)
		records = append(records, fakeOutputRecord{stream: streamStdout, at: at, text: fmt.Sprintf("out %d\n", i)})
		want = append(want, fmt.Sprintf("out %d", i))
		if i%10 == 0 {
			records = append(records, fakeOutputRecord{stream: streamStderr, at: at, text: fmt.Sprintf("err %d\n", i)})
		}
	}
	// After 2,000 records, back 500 (of both streams) and on again.
	engine.followDrops = []fakeDrop{{records: 2000, resend: 500}}
	engine.writeOutput(id, records...)
	sink := newRecordingSink()
	logger, logs := testLogger()
	o := startOutputStream(engine, id, false, "", logger, sink)
	eventually(t, 10*time.Second, "the last line", func() bool {
		lines := sink.of(streamStdout)
		return len(lines) > 0 && lines[len(lines)-1] == want[len(want)-1]
	})
	follows := engine.followCount()
	engine.exit(id, 0)
	o.finish(time.Time{})
	if got := sink.of(streamStdout); !slices.Equal(got, want) {
		t.Errorf("%d stdout lines, want %d, each once and in order", len(got), len(want))
	}
	if got := sink.of(streamStderr); len(got) != 300 || got[299] != "err 2990" {
		t.Errorf("%d stderr lines, want 300 ending with err 2990", len(got))
	}
	if n := strings.Count(logs.String(), "Docker's follow sent records of the container's output again"); n != 1 {
		t.Errorf("the repeat was logged %d times, want once:\n%s", n, logs.String())
	}
	if follows != 1 {
		t.Errorf("%d follows while the container ran; the repeat needs no reconnection", follows)
	}
}

// Two new records may share a stamp (a coarse clock): the second is not
// taken for a repeat.
func TestOutputKeepsRecordsSharingAStamp(t *testing.T) {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	at := time.Now().Add(-time.Second)
	engine.writeOutput(id,
		fakeOutputRecord{stream: streamStdout, at: at, text: "first\n"},
		fakeOutputRecord{stream: streamStdout, at: at, text: "second\n"},
		fakeOutputRecord{stream: streamStdout, at: at.Add(time.Microsecond), text: "third\n"})
	sink := newRecordingSink()
	logger, logs := testLogger()
	o := startOutputStream(engine, id, false, "", logger, sink)
	eventually(t, 10*time.Second, "the third line", func() bool { return len(sink.of(streamStdout)) >= 3 })
	engine.exit(id, 0)
	o.finish(time.Time{})
	if got := sink.of(streamStdout); !slices.Equal(got, []string{"first", "second", "third"}) {
		t.Errorf("lines %q", got)
	}
	if strings.Contains(logs.String(), "sent records of the container's output again") {
		t.Errorf("a shared stamp was taken for a repeat:\n%s", logs.String())
	}
}

// The silence a follow may keep before it is replaced: short after a busy
// spell, long otherwise.
func TestOutputSilenceLimit(t *testing.T) {
	for _, tc := range []struct {
		lastTick int
		want     time.Duration
	}{
		{0, followStallLimit},
		{1, followStallLimit},
		{followBusyRecords - 1, followStallLimit},
		{followBusyRecords, followBusyStallLimit},
		{100 * followBusyRecords, followBusyStallLimit},
	} {
		if got := silenceLimit(tc.lastTick); got != tc.want {
			t.Errorf("after %d records in a tick: %s, want %s", tc.lastTick, got, tc.want)
		}
	}
}

func TestOutputUnreadableDriverIsReportedOnce(t *testing.T) {
	refused := &docker.Error{Status: 501, Message: "configured logging driver does not support reading"}
	for _, tc := range []struct {
		name, driver string
		follows      int
	}{
		{"the daemon refuses", "syslog", 1},
		{"known from the task", "none", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := newFakeRuntime()
			id := runningFakeContainer(t, engine)
			engine.followErrs = []error{refused, refused, refused}
			sink := newRecordingSink()
			logger, logs := testLogger()
			o := startOutputStream(engine, id, false, tc.driver, logger, sink)
			// The stream gives up at once while the container runs on.
			select {
			case <-o.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the stream still runs after Docker refused to read the logs")
			}
			engine.exit(id, 0)
			if o.finish(time.Time{}) {
				t.Error("finish says the output was streamed")
			}
			if n := engine.followCount(); n != tc.follows {
				t.Errorf("%d follows, want %d", n, tc.follows)
			}
			if n := strings.Count(logs.String(), "Docker cannot read back this container's output"); n != 1 {
				t.Errorf("reported %d times, want once:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "log_driver="+tc.driver) {
				t.Errorf("the report does not name the driver %s:\n%s", tc.driver, logs.String())
			}
			if sink.closeCount() != 1 {
				t.Errorf("sink closed %d times, want once", sink.closeCount())
			}
		})
	}
}

func TestOutputUnreadableDriverFallsBackToTheCopy(t *testing.T) {
	engine := newUnitRuntime()
	engine.logs = "boom: config missing\n"
	engine.followErrs = []error{&docker.Error{Status: 501, Message: "configured logging driver does not support reading"}}
	u := startUnitTask(t, engine, unitConfig{})
	c := engine.running(t)
	engine.exit(c.id, 3)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, nil, "container exited with status 3")
	assertSubsequence(t, engine.methods(), []string{"inspectPatiently", "copyLogs", "removeContainer"})
	out := u.stdout.String()
	if !strings.Contains(out, "----- begin container "+shortID(c.id)+" stdout -----\nboom: config missing\n----- end container") {
		t.Errorf("the container's output was not copied, framed, to stdout:\n%s", out)
	}
}

func TestOutputStreamsIntoTheTasksStdoutAndStderr(t *testing.T) {
	engine := newUnitRuntime()
	stderr := &syncBuffer{}
	u := startUnitTask(t, engine, unitConfig{deps: func(d *taskDeps) { d.stderr = stderr }})
	c := engine.running(t)
	base := time.Now()
	engine.writeOutput(c.id, stamped(base, streamStdout, "out 1\n", "out 2\n")...)
	engine.writeOutput(c.id, stamped(base.Add(time.Second), streamStderr, "err 1\n")...)
	eventually(t, 10*time.Second, "the lines in the task's stdout and stderr while it runs", func() bool {
		return strings.Contains(u.stdout.String(), "out 1\nout 2\n") && stderr.String() == "err 1\n"
	})
	engine.exit(c.id, 0)
	u.finish(t)
	if strings.Count(u.stdout.String(), "out 1\n") != 1 {
		t.Errorf("stdout %q", u.stdout.String())
	}
}

// assertNoLogCopy fails the test when the logs were copied at the end.
func assertNoLogCopy(t *testing.T, engine *fakeRuntime) {
	t.Helper()
	if slices.Contains(engine.methods(), "copyLogs") {
		t.Error("the logs were copied at the end although they were streamed")
	}
}

// BenchmarkOutputStream measures the stream's parsing and the sandbox
// writer on demultiplexed records of 100-byte lines.
func BenchmarkOutputStream(b *testing.B) {
	sink := newSandboxSink(discardWriter{}, discardWriter{})
	o := &outputStream{sinks: []containerLineSink{sink}}
	for _, stream := range []logStream{streamStdout, streamStderr} {
		o.parsers[stream] = &recordParser{stream: stream, out: o, atStart: true}
	}
	w := &streamWriter{o: o, stream: streamStdout}
	record := []byte(time.Now().Format(dockerTimestampLayout) + " " + strings.Repeat("x", 99) + "\n")
	b.SetBytes(int64(len(record)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Write(record)
	}
	sink.closeSink()
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestOutputEndsWhenTheContainerIsGone(t *testing.T) {
	engine, id, o, sink, logs := streamingOneLine(t)
	if err := engine.removeContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream still runs after the container was removed")
	}
	if !strings.Contains(logs.String(), "the container is gone") {
		t.Errorf("the end was not logged:\n%s", logs.String())
	}
	if !o.finish(time.Time{}) || sink.closeCount() != 1 {
		t.Errorf("finish or close wrong: closed %d times", sink.closeCount())
	}
}
