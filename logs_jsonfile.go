package main

// logs_jsonfile.go decodes the records of Docker's json-file log: one JSON
// object a line, {"log":"<text>","stream":"stdout","time":"<RFC 3339>"}
// in that order (moby's jsonlog.JSONLogs, with "attrs" before "time" when
// the log options ask for labels or env). decode reads that shape
// directly and hands anything else to encoding/json, so that what it
// returns is always what encoding/json would: FuzzJSONFileDecoder checks
// it. At 10 MB/s of 100-byte lines encoding/json alone would cost about a
// tenth of a core.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonFileRecord is one decoded record.
type jsonFileRecord struct {
	stream logStream
	time   time.Time
	// text is the record's "log": a line with its newline, or a piece of
	// a long line without one. It is valid until the next decode and
	// while the decoded line is unchanged.
	text []byte
}

// jsonFileDecoder decodes one log's records.
type jsonFileDecoder struct {
	// text holds an unescaped "log" when it had escapes to undo.
	text   []byte
	stamps stampReader
}

var (
	jsonFileLogKey    = []byte(`{"log":"`)
	jsonFileStdout    = []byte(`,"stream":"stdout"`)
	jsonFileStderr    = []byte(`,"stream":"stderr"`)
	jsonFileTimeKey   = []byte(`,"time":"`)
	errJSONFileRecord = errors.New("not a record of Docker's json-file log")
)

// decode reads one record; line has no trailing newline.
func (d *jsonFileDecoder) decode(line []byte) (jsonFileRecord, error) {
	if rec, ok := d.decodeUsual(line); ok {
		return rec, nil
	}
	return decodeJSONFileRecord(line)
}

// decodeUsual reads a record of the shape Docker writes without attrs.
func (d *jsonFileDecoder) decodeUsual(line []byte) (jsonFileRecord, bool) {
	var rec jsonFileRecord
	if !bytes.HasPrefix(line, jsonFileLogKey) {
		return rec, false
	}
	text, n, ok := d.unquote(line[len(jsonFileLogKey):])
	if !ok {
		return rec, false
	}
	rest := line[len(jsonFileLogKey)+n:]
	switch {
	case bytes.HasPrefix(rest, jsonFileStdout):
		rec.stream = streamStdout
	case bytes.HasPrefix(rest, jsonFileStderr):
		rec.stream = streamStderr
	default:
		return rec, false
	}
	rest = rest[len(jsonFileStdout):]
	if len(rest) < len(jsonFileTimeKey)+2 || !bytes.HasPrefix(rest, jsonFileTimeKey) || !bytes.HasSuffix(rest, []byte(`"}`)) {
		return rec, false
	}
	stamp := rest[len(jsonFileTimeKey) : len(rest)-2]
	if len(stamp) < 2 || bytes.IndexByte(stamp, '"') >= 0 || bytes.IndexByte(stamp, '\\') >= 0 {
		return rec, false
	}
	ts, err := d.stamps.parseWith(stamp, parseJSONTime)
	if err != nil || ts.IsZero() {
		return rec, false
	}
	rec.time, rec.text = ts, text
	return rec, true
}

// parseJSONTime reads a stamp as encoding/json reads a time.Time.
func parseJSONTime(stamp []byte) (time.Time, error) {
	quoted := make([]byte, 0, len(stamp)+2)
	quoted = append(append(append(quoted, '"'), stamp...), '"')
	var ts time.Time
	err := ts.UnmarshalJSON(quoted)
	return ts, err
}

// unquote reads a JSON string's body up to its closing quote: the text,
// unescaped, and the bytes read with the quote. It refuses what
// encoding/json would read differently (invalid UTF-8, which it replaces,
// and lone surrogates) as well as what it refuses.
func (d *jsonFileDecoder) unquote(s []byte) (text []byte, n int, ok bool) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == '"' {
			return s[:i], i + 1, true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		i++
	}
	out := append(d.text[:0], s[:i]...)
	defer func() { d.text = out[:0] }()
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return out, i + 1, true
		case c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, 0, false
			}
			out = append(out, s[i:i+size]...)
			i += size
		case c != '\\':
			out = append(out, c)
			i++
		case i+1 >= len(s):
			return nil, 0, false
		default:
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'u':
				r, size := unicodeEscape(s[i:])
				if size == 0 {
					return nil, 0, false
				}
				out = utf8.AppendRune(out, r)
				i += size
				continue
			default:
				return nil, 0, false
			}
			i += 2
		}
	}
	return nil, 0, false
}

// unicodeEscape reads \uXXXX, or a surrogate pair of two, at the start of
// s; size 0 refuses it.
func unicodeEscape(s []byte) (rune, int) {
	r, ok := hex4(s)
	if !ok {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	r2, ok := hex4(s[min(6, len(s)):])
	if !ok {
		return 0, 0
	}
	if paired := utf16.DecodeRune(r, r2); paired != utf8.RuneError {
		return paired, 12
	}
	return 0, 0
}

// hex4 reads \uXXXX at the start of s.
func hex4(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// decodeJSONFileRecord reads a record with encoding/json.
func decodeJSONFileRecord(line []byte) (jsonFileRecord, error) {
	var raw struct {
		Log    string    `json:"log"`
		Stream string    `json:"stream"`
		Time   time.Time `json:"time"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return jsonFileRecord{}, fmt.Errorf("%w: %v", errJSONFileRecord, err)
	}
	rec := jsonFileRecord{time: raw.Time, text: []byte(raw.Log)}
	switch raw.Stream {
	case "stdout":
		rec.stream = streamStdout
	case "stderr":
		rec.stream = streamStderr
	default:
		return jsonFileRecord{}, fmt.Errorf("%w: stream %q", errJSONFileRecord, raw.Stream)
	}
	if rec.time.IsZero() {
		return jsonFileRecord{}, fmt.Errorf("%w: no time", errJSONFileRecord)
	}
	return rec, nil
}
