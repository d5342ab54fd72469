package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// jsonFileLine is a record as Docker's json-file driver writes it.
func jsonFileLine(t testing.TB, stream logStream, at time.Time, text string) []byte {
	t.Helper()
	body, err := json.Marshal(text)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`{"log":` + string(body) + `,"stream":"` + stream.String() + `","time":"` + at.UTC().Format(time.RFC3339Nano) + `"}`)
}

func TestJSONFileDecoderReadsDockersRecords(t *testing.T) {
	at := time.Date(2026, 11, 28, 5, 30, 1, 123_456_700, time.UTC)
	cases := []struct {
		name   string
		line   string
		stream logStream
		text   string
		time   time.Time
	}{
		{"a line", `{"log":"hello\n","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`, streamStdout, "hello\n", at},
		{"stderr", `{"log":"oops\n","stream":"stderr","time":"2026-11-28T05:30:01.1234567Z"}`, streamStderr, "oops\n", at},
		{"a piece of a long line", `{"log":"abc","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`, streamStdout, "abc", at},
		{"escapes", `{"log":"\"q\" \\ \/ \t\r\u003chtml\u003e \u0026 \u2028 \ud83d\ude00\n","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`,
			streamStdout, "\"q\" \\ / \t\r<html> & \u2028 😀\n", at},
		{"UTF-8 as is", `{"log":"héllo wörld ✓\n","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`, streamStdout, "héllo wörld ✓\n", at},
		{"attrs", `{"log":"x\n","stream":"stdout","attrs":{"app":"web"},"time":"2026-11-28T05:30:01.1234567Z"}`, streamStdout, "x\n", at},
		{"another order", `{"time":"2026-11-28T05:30:01.1234567Z","stream":"stderr","log":"y\n"}`, streamStderr, "y\n", at},
		{"a zone offset", `{"log":"z\n","stream":"stdout","time":"2026-11-28T06:30:01.1234567+01:00"}`, streamStdout, "z\n", at},
		{"a lone surrogate", `{"log":"\ud83d!\n","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`, streamStdout, "\ufffd!\n", at},
		{"invalid UTF-8", "{\"log\":\"a\xffb\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-28T05:30:01.1234567Z\"}", streamStdout, "a\ufffdb\n", at},
	}
	var d jsonFileDecoder
	for _, c := range cases {
		rec, err := d.decode([]byte(c.line))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if rec.stream != c.stream || string(rec.text) != c.text || !rec.time.Equal(c.time) {
			t.Errorf("%s: got %s %q %s, want %s %q %s", c.name, rec.stream, rec.text, rec.time, c.stream, c.text, c.time)
		}
	}
	for _, bad := range []string{
		``,
		`{"log":"x\n","stream":"stdin","time":"2026-11-28T05:30:01.1234567Z"}`,
		`{"log":"x\n","stream":"stdout"}`,
		`{"log":"x\n","stream":"stdout","time":"yesterday"}`,
		`{"log":"x\n","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"`,
		`{"log":"x` + "\n" + `","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`,
		`not json`,
	} {
		if rec, err := d.decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded as %s %q %s", bad, rec.stream, rec.text, rec.time)
		}
	}
}

// TestJSONFileDecoderTakesTheUsualShapeItself: the records Docker writes
// are read without encoding/json, which allocates.
func TestJSONFileDecoderTakesTheUsualShapeItself(t *testing.T) {
	at := time.Date(2026, 11, 28, 5, 30, 1, 0, time.UTC)
	lines := [][]byte{
		jsonFileLine(t, streamStdout, at, "plain\n"),
		jsonFileLine(t, streamStderr, at.Add(120*time.Millisecond), "<escaped> & \"quoted\"\n"),
		jsonFileLine(t, streamStdout, at.Add(time.Second+1), "ünïcödé\n"),
	}
	var d jsonFileDecoder
	d.decode(lines[0]) // the first stamp of a second is read in full
	for _, line := range lines {
		if _, ok := d.decodeUsual(line); !ok {
			t.Errorf("%s went to encoding/json", line)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.decode(lines[0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decoding a usual record allocates %.0f times", allocs)
	}
}

func FuzzJSONFileDecoder(f *testing.F) {
	f.Add([]byte(`{"log":"hello\n","stream":"stdout","time":"2026-11-28T05:30:01.1234567Z"}`), []byte(`{"log":"x\u003c\n","stream":"stderr","time":"2026-11-28T05:30:01.5Z"}`))
	f.Add([]byte(`{"log":"\ud83d\ude00","stream":"stdout","time":"2026-11-28T05:30:01Z"}`), []byte(`{"log":"\ud83d\u0041","stream":"stdout","time":"2026-11-28T05:30:01.000000001Z"}`))
	f.Add([]byte(`{"log":"a","stream":"stdout","time":"2026-11-28T05:30:01.1Z"}`), []byte(`{"log":"b","stream":"stdout","time":"2026-11-28T05:30:01.1x3Z"}`))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var d jsonFileDecoder
		d.decode(bytes.Clone(first))
		got, gotErr := d.decode(bytes.Clone(second))
		want, wantErr := decodeJSONFileRecord(second)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("after %q, %q: error %v, encoding/json's %v", first, second, gotErr, wantErr)
		}
		if gotErr == nil && (got.stream != want.stream || !bytes.Equal(got.text, want.text) || !got.time.Equal(want.time)) {
			t.Fatalf("after %q, %q: %s %q %s, encoding/json: %s %q %s", first, second, got.stream, got.text, got.time, want.stream, want.text, want.time)
		}
	})
}

func BenchmarkJSONFileDecoder(b *testing.B) {
	at := time.Date(2026, 11, 28, 5, 30, 1, 0, time.UTC)
	line := jsonFileLine(b, streamStdout, at, strings.Repeat("x", 99)+"\n")
	var d jsonFileDecoder
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := d.decode(line); err != nil {
			b.Fatal(err)
		}
	}
}
