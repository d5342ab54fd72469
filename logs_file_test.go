package main

// Unit tests of the json-file follow (logs_file.go) against the fake
// engine keeping a json-file log the way Docker's driver does: live
// lines, rotations, a file cut in place, and the hand-over to the logs API
// when the file holds something unexpected.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

// numberedLines are "<prefix>0" … "<prefix>n-1".
func numberedLines(prefix string, from, n int) []string {
	var lines []string
	for i := from; i < from+n; i++ {
		lines = append(lines, fmt.Sprintf("%s%d", prefix, i))
	}
	return lines
}

// recordsOf stamps lines (given without newlines) a microsecond apart.
func recordsOf(base time.Time, stream logStream, lines []string) []fakeOutputRecord {
	var records []fakeOutputRecord
	for i, line := range lines {
		records = append(records, fakeOutputRecord{stream: stream, at: base.Add(time.Duration(i) * time.Microsecond), text: line + "\n"})
	}
	return records
}

// jsonLogFixture is a running container of the fake engine that keeps a
// json-file log, and what a stream of it records.
type jsonLogFixture struct {
	engine *fakeRuntime
	id     string
	path   string
	sink   *recordingSink
	logs   *syncBuffer
}

func newJSONLogFixture(t *testing.T) *jsonLogFixture {
	engine := newFakeRuntime()
	id := runningFakeContainer(t, engine)
	return &jsonLogFixture{engine: engine, id: id, path: engine.keepJSONLog(t, id), sink: newRecordingSink()}
}

// start streams the output from path (the fixture's log unless given)
// into the fixture's sink, or into sink when given.
func (f *jsonLogFixture) start(tty bool, path string, sink containerLineSink) *outputStream {
	if path == "" {
		path = f.path
	}
	if sink == nil {
		sink = f.sink
	}
	logger, logs := testLogger()
	f.logs = logs
	return startOutputStreamFrom(f.engine, f.id, tty, "", path, logger, sink)
}

func TestFileOutputFollowsLiveAcrossRotations(t *testing.T) {
	f := newJSONLogFixture(t)
	engine, id, sink := f.engine, f.id, f.sink
	o := f.start(false, "", nil)
	base := time.Now()
	var wantOut, wantErr []string
	for batch := range 6 {
		out, errs := numberedLines("out ", batch*500, 500), numberedLines("err ", batch*10, 10)
		engine.writeOutput(id, recordsOf(base.Add(time.Duration(batch)*time.Second), streamStdout, out)...)
		engine.writeOutput(id, recordsOf(base.Add(time.Duration(batch)*time.Second+time.Millisecond), streamStderr, errs)...)
		wantOut, wantErr = append(wantOut, out...), append(wantErr, errs...)
		// The lines arrive while the container runs, on inotify's word.
		eventually(t, 10*time.Second, fmt.Sprintf("batch %d in the sink", batch), func() bool {
			return len(sink.of(streamStdout)) == len(wantOut) && len(sink.of(streamStderr)) == len(wantErr)
		})
		if batch%2 == 1 {
			engine.rotateJSONLog(id)
		}
	}
	// A record written in two pieces is delivered once it is whole.
	at := base.Add(10 * time.Second).UTC().Format(time.RFC3339Nano)
	engine.writeJSONLogRaw(id, `{"log":"split rec`)
	engine.writeJSONLogRaw(id, `ord\n","stream":"stdout","time":"`+at+`"}`+"\n")
	wantOut = append(wantOut, "split record")
	// The last output lands in a log rotated just before the exit.
	engine.writeOutput(id, recordsOf(base.Add(11*time.Second), streamStdout, []string{"before the last rotation"})...)
	engine.rotateJSONLog(id)
	engine.writeOutput(id, recordsOf(base.Add(12*time.Second), streamStdout, []string{"last words"})...)
	wantOut = append(wantOut, "before the last rotation", "last words")
	engine.exit(id, 0)
	if !o.finish(time.Now().Add(time.Minute)) {
		t.Error("finish says nothing was streamed")
	}
	if got := sink.of(streamStdout); !slices.Equal(got, wantOut) {
		t.Errorf("stdout: %d lines, want %d in order, each once; first difference at %d; last %q", len(got), len(wantOut), firstDifference(got, wantOut), got[max(0, len(got)-3):])
	}
	if got := sink.of(streamStderr); !slices.Equal(got, wantErr) {
		t.Errorf("stderr %q, want %q", got, wantErr)
	}
	if n := engine.followCount(); n != 0 {
		t.Errorf("the logs API was followed %d times; the file had everything", n)
	}
}

// firstDifference is the index of the first line that differs.
func firstDifference(got, want []string) int {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return i
		}
	}
	return min(len(got), len(want))
}

func TestFileOutputHandsOverToTheAPIOnWhatItCannotRead(t *testing.T) {
	at := time.Now().UTC()
	for _, tc := range []struct {
		name, raw, why string
	}{
		{"not a record", "this is not json\n", "json-file"},
		{"a record too long", `{"log":"` + strings.Repeat("x", logFileMaxRecord) + "\n", "longer than"},
		{"an unknown stream", `{"log":"x\n","stream":"stdin","time":"` + at.Format(time.RFC3339Nano) + `"}` + "\n", "stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newJSONLogFixture(t)
			engine, id, sink := f.engine, f.id, f.sink
			o := f.start(false, "", nil)
			logs := f.logs
			base := time.Now().Add(-time.Minute)
			engine.writeOutput(id, recordsOf(base, streamStdout, numberedLines("line ", 0, 50))...)
			eventually(t, 10*time.Second, "the first lines", func() bool { return len(sink.of(streamStdout)) == 50 })
			// What the file holds next is not for this reader; Docker's
			// logs API has the same output and resumes after the last
			// line delivered.
			engine.writeJSONLogRaw(id, tc.raw)
			engine.writeOutput(id, recordsOf(base.Add(time.Millisecond), streamStdout, numberedLines("line ", 50, 50))...)
			eventually(t, 10*time.Second, "the lines through the logs API", func() bool { return len(sink.of(streamStdout)) == 100 })
			engine.exit(id, 0)
			o.finish(time.Now().Add(time.Minute))
			if got, want := sink.of(streamStdout), numberedLines("line ", 0, 100); !slices.Equal(got, want) {
				t.Errorf("%d lines, want %d in order, each once; first difference at %d", len(got), len(want), firstDifference(got, want))
			}
			if engine.followCount() == 0 {
				t.Error("the logs API was never followed")
			}
			if out := logs.String(); !strings.Contains(out, "reading Docker's json-file log of the container failed") || !strings.Contains(out, tc.why) {
				t.Errorf("the hand-over is not logged with its reason (%q):\n%s", tc.why, out)
			}
			if strings.Contains(logs.String(), "xxxxxxxx") {
				t.Error("the container's output reached the executor's log")
			}
		})
	}
}

func TestFileOutputReadsALogCutInPlace(t *testing.T) {
	// A json-file driver that keeps one file (max-file=1) empties it in
	// place at its cap.
	f := newJSONLogFixture(t)
	engine, id, path, sink := f.engine, f.id, f.path, f.sink
	o := f.start(false, "", nil)
	base := time.Now()
	engine.writeOutput(id, recordsOf(base, streamStdout, numberedLines("before ", 0, 20))...)
	eventually(t, 10*time.Second, "the lines before the cut", func() bool { return len(sink.of(streamStdout)) == 20 })
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	engine.writeOutput(id, recordsOf(base.Add(time.Second), streamStdout, numberedLines("after ", 0, 3))...)
	engine.exit(id, 0)
	o.finish(time.Now().Add(time.Minute))
	want := append(numberedLines("before ", 0, 20), numberedLines("after ", 0, 3)...)
	if got := sink.of(streamStdout); !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	if n := engine.followCount(); n != 0 {
		t.Errorf("the logs API was followed %d times", n)
	}
}

func TestFileOutputIsNotReadThroughALinkOrWhenMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(t *testing.T, real string) string
	}{
		{"missing", func(t *testing.T, real string) string { return real + ".missing" }},
		{"a link", func(t *testing.T, real string) string {
			link := filepath.Join(filepath.Dir(real), "link-json.log")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newJSONLogFixture(t)
			engine, sink := f.engine, f.sink
			engine.writeOutput(f.id, recordsOf(time.Now(), streamStdout, []string{"one", "two"})...)
			engine.exit(f.id, 0)
			f.start(false, tc.path(t, f.path), nil).finish(time.Now().Add(time.Minute))
			logs := f.logs
			if got := sink.of(streamStdout); !slices.Equal(got, []string{"one", "two"}) {
				t.Errorf("lines %q", got)
			}
			if engine.followCount() == 0 {
				t.Error("the logs API was not followed")
			}
			if !strings.Contains(logs.String(), "through Docker's logs API") {
				t.Errorf("the fall-back is not logged:\n%s", logs.String())
			}
		})
	}
}

func TestStartOutputReadsTheLogFileOnlyWhenTheOperatorLetsIt(t *testing.T) {
	for _, allowed := range []bool{true, false} {
		t.Run(fmt.Sprintf("allowed=%v", allowed), func(t *testing.T) {
			f := newJSONLogFixture(t)
			engine, id := f.engine, f.id
			engine.writeOutput(id, recordsOf(time.Now(), streamStdout, []string{"hello"})...)
			engine.exit(id, 0)
			settings := &Config{OutputSettings: OutputSettings{ReadDockerLogFile: allowed}}
			logger, _ := testLogger()
			runner := &taskRunner{deps: &taskDeps{settings: settings, docker: engine, stdout: &syncBuffer{}, stderr: &syncBuffer{}}}
			sink := newRecordingSink()
			o := runner.startOutput(&docker.Container{ID: id}, logger, sink)
			o.finish(time.Now().Add(time.Minute))
			if got := sink.of(streamStdout); !slices.Equal(got, []string{"hello"}) {
				t.Errorf("lines %q", got)
			}
			if used := engine.followCount() > 0; used == allowed {
				t.Errorf("EXECUTOR_READ_DOCKER_LOG_FILE=%v: logs API followed %v", allowed, used)
			}
		})
	}
}

// blockingSink holds the stream on one line until released.
type blockingSink struct {
	*recordingSink
	on      string
	reached chan struct{}
	release chan struct{}
}

func (s *blockingSink) containerLine(stream logStream, line []byte) {
	if string(line) == s.on {
		close(s.reached)
		<-s.release
	}
	s.recordingSink.containerLine(stream, line)
}

func TestFileOutputCatchesUpWithSeveralRotations(t *testing.T) {
	// A reader held up (a starved executor) while Docker rotates the log
	// more than once reads the rotated files in order; one rotated out
	// meanwhile was already open.
	for _, rotations := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d rotations", rotations), func(t *testing.T) {
			f := newJSONLogFixture(t)
			engine, id := f.engine, f.id
			sink := &blockingSink{recordingSink: f.sink, on: "line 1", reached: make(chan struct{}), release: make(chan struct{})}
			o := f.start(false, "", sink)
			base := time.Now()
			engine.writeOutput(id, recordsOf(base, streamStdout, numberedLines("line ", 0, 3))...)
			<-sink.reached
			for r := range rotations {
				engine.rotateJSONLog(id)
				engine.writeOutput(id, recordsOf(base.Add(time.Duration(r+1)*time.Second), streamStdout, numberedLines("line ", 3+3*r, 3))...)
			}
			close(sink.release)
			engine.exit(id, 0)
			o.finish(time.Now().Add(time.Minute))
			want := numberedLines("line ", 0, 3+3*rotations)
			if got := sink.of(streamStdout); !slices.Equal(got, want) {
				t.Errorf("lines %q, want %q", got, want)
			}
			if n := engine.followCount(); n != 0 {
				t.Errorf("the logs API was followed %d times", n)
			}
		})
	}
}

func TestFileOutputDropsAFileReadAgain(t *testing.T) {
	// Should a rename under the reader's look make it open a file it has
	// read, its records are dropped as already delivered.
	f := newJSONLogFixture(t)
	engine, id, path, sink := f.engine, f.id, f.path, f.sink
	base := time.Now()
	engine.writeOutput(id, recordsOf(base, streamStdout, numberedLines("line ", 0, 5))...)
	engine.writeOutput(id, recordsOf(base.Add(time.Millisecond), streamStderr, []string{"err 0"})...)
	o := f.start(false, "", nil)
	eventually(t, 10*time.Second, "the first lines", func() bool { return len(sink.of(streamStdout)) == 5 })
	// The same records once more, then new ones, in a new file.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	engine.rotateJSONLog(id)
	engine.writeJSONLogRaw(id, string(data))
	engine.writeOutput(id, recordsOf(base.Add(time.Second), streamStdout, numberedLines("line ", 5, 2))...)
	engine.exit(id, 0)
	o.finish(time.Now().Add(time.Minute))
	if got, want := sink.of(streamStdout), numberedLines("line ", 0, 7); !slices.Equal(got, want) {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got := sink.of(streamStderr); !slices.Equal(got, []string{"err 0"}) {
		t.Errorf("stderr %q", got)
	}
}

func TestFileOutputTTYLinesLoseTheTerminalsCarriageReturn(t *testing.T) {
	f := newJSONLogFixture(t)
	engine, sink := f.engine, f.sink
	engine.writeOutput(f.id, stamped(time.Unix(1_700_000_000, 0), streamStdout, "one\r\n", "two\r\n", "tail")...)
	engine.exit(f.id, 0)
	f.start(true, "", nil).finish(time.Time{})
	if got := sink.of(streamStdout); !slices.Equal(got, []string{"one", "two", "tail"}) {
		t.Errorf("lines %q", got)
	}
	if n := engine.followCount(); n != 0 {
		t.Errorf("the logs API was followed %d times", n)
	}
}
