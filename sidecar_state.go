package main

// Reading Sidecar's state.json: the streaming scanner that finds our
// service's status in the document as it arrives, without holding it, and
// the limits on what it reads and keeps. Pure code over an io.Reader; the
// watcher in sidecar.go fetches the document and acts on the answer.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// maxStateBytes caps the state document we accept. A 10,000-service cluster
// answers about 3.1 MB, so 64 MiB leaves room for clusters many times that
// size. The body is streamed through a window of a few KB and never held (see
// stateScanner), so the cap is not what bounds memory; it bounds how long a
// runaway answer is read.
const maxStateBytes = 64 << 20

// keepScannerBytes is the largest decoder window and host record a watcher
// keeps between polls. Normal answers need a few KB; what an exceptional
// answer (a huge string, tens of thousands of hosts) grew is dropped rather
// than held for the life of the task.
const keepScannerBytes = 64 << 10

// recordedHostBytes bounds what one lookup remembers of the hosts that may
// turn out to be the answering Sidecar's own (see stateScanner): about
// 30,000 host names of 30 characters.
const recordedHostBytes = 1 << 20

// errStateTooLarge is returned for a document over the cap.
var errStateTooLarge = errors.New("state document too large")

// serviceLookup is what state.json says about our service.
type serviceLookup struct {
	SidecarHostname string // the answering Sidecar's own top-level Hostname
	HostKey         string // the Servers key used; empty when no candidate is present
	HostFound       bool
	ServiceFound    bool
	Status          int // valid when ServiceFound
}

// candidateHostKeys orders the Servers keys to try: the first configured key
// (the Mesos agent's name), then the answering Sidecar's own Hostname, then
// the other configured keys. Empty and repeated keys are dropped.
func candidateHostKeys(hostKeys []string, sidecarHostname string) []string {
	return appendCandidateHostKeys(make([]string, 0, len(hostKeys)+1), hostKeys, sidecarHostname)
}

// appendCandidateHostKeys appends candidateHostKeys' answer to keys.
func appendCandidateHostKeys(keys, hostKeys []string, sidecarHostname string) []string {
	start := len(keys)
	add := func(key string) {
		if key != "" && !slices.Contains(keys[start:], key) {
			keys = append(keys, key)
		}
	}
	if len(hostKeys) > 0 {
		add(hostKeys[0])
	}
	add(sidecarHostname)
	for _, key := range hostKeys[min(1, len(hostKeys)):] {
		add(key)
	}
	return keys
}

// lookupServiceStatus reads a state.json document from r (at most
// maxStateBytes) and finds service id12 under the first candidate host key
// present (candidateHostKeys). A missing host or service is not an error; a
// document that is not JSON, is incomplete, or has the wrong type where the
// lookup looks, is. A failure to read r is a *stateReadError.
func lookupServiceStatus(r io.Reader, hostKeys []string, id12 string) (serviceLookup, error) {
	return new(stateScanner).lookup(r, maxStateBytes, hostKeys, id12)
}

// stateDecoderOptions: a repeated name is not an error (the first one
// counts, as everywhere in the lookup), and invalid UTF-8 in a string reads
// as U+FFFD, as encoding/json does. The strict defaults would refuse
// documents that encoding/json, and so Sidecar's other clients, accept; the
// duplicate check would also keep a set of names for every object.
var stateDecoderOptions = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

// stateScanner looks our service up in a state.json document as it streams
// in. A jsontext decoder reads the body through a window of a few KB (larger
// only for a single token that does not fit) and checks the whole document's
// syntax; the scanner decodes only the top-level Servers and Hostname, the
// host names, and — inside a host that may be ours — the Services keys and
// our service's Status. Every other value is skipped token by token without
// allocating. A scanner keeps its buffers between lookups: with the one the
// watcher reuses, a poll allocates only the Hostname string of the answer.
//
// Sidecar writes Hostname after Servers, so while Servers streams by the
// candidate keys are not all known: the configured ones are, Sidecar's own
// name is not. The scanner therefore notes what each host entry says about
// our service (a hostFinding) for the configured keys and, until the first
// configured key turns up (it outranks Sidecar's own name), for every other
// host too: its name, and its finding unless that is the plain "present,
// service not listed". The candidate is picked at the end.
//
// jsontext (github.com/go-json-experiment/json) is the package Go 1.27
// ships as encoding/json/jsontext; moving to the standard library is a
// change of import. json-iterator, the other streaming candidate, skips an
// object by reading each of its member names into a new string: about
// 140,000 allocations per 10,000-service document.
type stateScanner struct {
	dec  jsontext.Decoder
	body cappedReader
	name []byte // the last name read, when it had to be unescaped

	// The candidate keys known while Servers streams, whether each was
	// present, and what its first entry says.
	known    []string
	present  []bool
	findings []hostFinding
	order    []string // the candidate keys in the final order

	// Hosts recorded while Sidecar's own name is unknown: each name as a
	// uvarint length and its bytes, in document order, and the findings
	// that are not the plain one.
	recording      bool
	recordOverflow bool
	recorded       []byte
	recordedCount  int
	notes          []hostNote
}

// hostNote is the finding of the recorded host at position ordinal.
type hostNote struct {
	ordinal int
	finding hostFinding
}

// noteCost is what a hostNote is counted as against recordedHostBytes.
const noteCost = 64

// hostProblem is what makes a host's entry unusable for our service.
type hostProblem uint8

const (
	problemNone hostProblem = iota
	problemHostNotObject
	problemServicesNotObject
	problemServiceNotObject
	problemNoStatus
	problemStatusNotNumber
	problemStatusNotInteger
	problemStatusOutOfRange
)

// hostFinding is what one Servers entry says about our service.
type hostFinding struct {
	problem hostProblem
	kind    jsontext.Kind // what was found where problem says
	number  string        // the start of a Status that is not a usable integer
	found   bool          // our service is listed with a usable Status
	status  int
}

// err describes f's problem, if any; key is the host's Servers key.
func (f *hostFinding) err(key, id12 string) error {
	switch f.problem {
	case problemHostNotObject:
		return fmt.Errorf("host %q in Servers is a JSON %s, not an object", key, kindName(f.kind))
	case problemServicesNotObject:
		return fmt.Errorf("host %q: field Services is a JSON %s, not an object", key, kindName(f.kind))
	case problemServiceNotObject:
		return fmt.Errorf("service %s is a JSON %s, not an object", id12, kindName(f.kind))
	case problemNoStatus:
		return fmt.Errorf("service %s has no Status", id12)
	case problemStatusNotNumber:
		return fmt.Errorf("service %s Status is a JSON %s, not a number", id12, kindName(f.kind))
	case problemStatusNotInteger:
		return fmt.Errorf("service %s Status %s is not an integer", id12, f.number)
	case problemStatusOutOfRange:
		return fmt.Errorf("service %s Status %s is out of range", id12, f.number)
	}
	return nil
}

// kindName names a JSON kind the way the messages do.
func kindName(kind jsontext.Kind) string {
	switch kind {
	case 'n':
		return "null"
	case 'f', 't':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}

// stateReadError is a failure to read the body, as opposed to a body that
// is not a usable state document: worth another try.
type stateReadError struct{ err error }

func (e *stateReadError) Error() string { return "reading the state document: " + e.err.Error() }
func (e *stateReadError) Unwrap() error { return e.err }

// cappedReader hands the body to the decoder, failing with errStateTooLarge
// once more than limit bytes arrive, and keeps the first error so that a
// failed read can be told from a bad document.
type cappedReader struct {
	r       io.Reader
	limit   int64
	n       int64 // bytes read so far
	err     error // errStateTooLarge or the body's error, returned by every later Read
	largest int   // the largest read asked for: the decoder's window
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.largest = max(c.largest, len(p))
	// One byte past the cap tells a document of exactly the cap from a
	// larger one.
	if room := c.limit + 1 - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		c.err = fmt.Errorf("%w: more than %d bytes", errStateTooLarge, c.limit)
		return 0, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// lookup is lookupServiceStatus with s's buffers and the cap limit.
func (s *stateScanner) lookup(r io.Reader, limit int64, hostKeys []string, id12 string) (serviceLookup, error) {
	s.body = cappedReader{r: r, limit: limit}
	s.dec.Reset(&s.body, stateDecoderOptions...)
	result, err := s.scan(hostKeys, id12)
	s.body.r = nil // the buffers stay, the body goes
	switch {
	case errors.Is(s.body.err, errStateTooLarge):
		return serviceLookup{}, s.body.err
	case s.body.err != nil:
		// Whatever the decoder made of it, the document was cut by
		// the failed read.
		return serviceLookup{}, &stateReadError{s.body.err}
	}
	return result, err
}

// oversized reports whether the last lookup grew s beyond what a watcher
// keeps between polls.
func (s *stateScanner) oversized() bool {
	return s.body.largest > keepScannerBytes || cap(s.recorded) > keepScannerBytes || cap(s.notes)*noteCost > keepScannerBytes
}

// notValid wraps a syntax (or read) error of the document.
func notValid(err error) error {
	if err == io.EOF {
		return errors.New("state document is not a valid JSON object: the body is empty")
	}
	return fmt.Errorf("state document is not a valid JSON object: %w", err)
}

// badEnding wraps a syntax error between the top-level fields: what follows
// the last complete field is neither another field nor the closing brace.
func badEnding(err error) error {
	return fmt.Errorf("state document is not a valid JSON object: it is incomplete or has data after its closing brace: %w", err)
}

// scan reads the whole document and decides.
func (s *stateScanner) scan(hostKeys []string, id12 string) (serviceLookup, error) {
	var result serviceLookup
	if kind := s.dec.PeekKind(); kind != '{' {
		if kind != 0 {
			return result, fmt.Errorf("state document is not a valid JSON object: it is a JSON %s", kindName(kind))
		}
		_, err := s.dec.ReadToken()
		return result, notValid(err)
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return result, notValid(err)
	}
	var haveServers, haveHostname bool
	for s.dec.PeekKind() != '}' {
		name, err := s.readName()
		if err != nil {
			return result, badEnding(err)
		}
		switch {
		case !haveServers && string(name) == "Servers":
			haveServers = true
			if err := s.scanServers(hostKeys, result.SidecarHostname, haveHostname, id12); err != nil {
				return result, err
			}
		case !haveHostname && string(name) == "Hostname":
			haveHostname = true
			if kind := s.dec.PeekKind(); kind != '"' {
				if kind == 0 {
					return result, notValid(s.dec.SkipValue())
				}
				return result, fmt.Errorf("field Hostname is a JSON %s, not a string", kindName(kind))
			}
			value, err := s.dec.ReadValue()
			if err != nil {
				return result, notValid(err)
			}
			result.SidecarHostname = string(s.unquote(value))
		default:
			if err := s.dec.SkipValue(); err != nil {
				return result, notValid(err)
			}
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return result, badEnding(err)
	}
	if err := checkNothingAfter(&s.dec, "state document"); err != nil {
		return result, err
	}
	if !haveServers {
		return result, errors.New("state document has no Servers field")
	}
	return s.decide(result, hostKeys, id12)
}

// scanServers reads the Servers object. hostname is Sidecar's own name when
// haveHostname (it came first), and then a candidate known in advance.
func (s *stateScanner) scanServers(hostKeys []string, hostname string, haveHostname bool, id12 string) error {
	if kind := s.dec.PeekKind(); kind != '{' {
		if kind == 0 {
			return notValid(s.dec.SkipValue())
		}
		return fmt.Errorf("field Servers is a JSON %s, not an object", kindName(kind))
	}
	s.known = appendCandidateHostKeys(s.known[:0], hostKeys, hostname)
	s.present = slices.Grow(s.present[:0], len(s.known))[:len(s.known)]
	clear(s.present)
	s.findings = slices.Grow(s.findings[:0], len(s.known))[:len(s.known)]
	clear(s.findings)
	// The first configured key outranks Sidecar's own name: once it is
	// seen, no other host needs recording.
	var first string
	if len(hostKeys) > 0 {
		first = hostKeys[0]
	}
	s.recording, s.recordOverflow = !haveHostname, false
	s.recorded, s.recordedCount, s.notes = s.recorded[:0], 0, s.notes[:0]

	if _, err := s.dec.ReadToken(); err != nil {
		return notValid(err)
	}
	for s.dec.PeekKind() != '}' {
		name, err := s.readName()
		if err != nil {
			return notValid(err)
		}
		if i := indexKey(s.known, name); i >= 0 {
			if s.present[i] { // a repeated name counts at its first occurrence
				if err := s.dec.SkipValue(); err != nil {
					return notValid(err)
				}
				continue
			}
			s.present[i] = true
			if s.findings[i], err = s.scanHost(id12); err != nil {
				return notValid(err)
			}
			if s.known[i] == first {
				s.recording = false
				s.recorded, s.recordedCount, s.notes = s.recorded[:0], 0, s.notes[:0]
			}
			continue
		}
		if !s.recording || !s.record(name) {
			if err := s.dec.SkipValue(); err != nil {
				return notValid(err)
			}
			continue
		}
		finding, err := s.scanHost(id12)
		if err != nil {
			return notValid(err)
		}
		if finding != (hostFinding{}) {
			s.notes = append(s.notes, hostNote{ordinal: s.recordedCount - 1, finding: finding})
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return notValid(err)
	}
	return nil
}

// indexKey is the position of name in keys, or -1.
func indexKey(keys []string, name []byte) int {
	for i, key := range keys {
		if string(name) == key {
			return i
		}
	}
	return -1
}

// record appends a host name to the record, unless that would pass
// recordedHostBytes: then recording stops for the rest of Servers, so that
// every recorded host was recorded at its first occurrence. The name must
// be copied before the next read.
func (s *stateScanner) record(name []byte) bool {
	if s.recordOverflow || len(s.recorded)+binary.MaxVarintLen64+len(name)+len(s.notes)*noteCost > recordedHostBytes {
		s.recordOverflow = true
		return false
	}
	s.recorded = binary.AppendUvarint(s.recorded, uint64(len(name)))
	s.recorded = append(s.recorded, name...)
	s.recordedCount++
	return true
}

// recordedFinding finds key among the recorded hosts (the first entry
// counts).
func (s *stateScanner) recordedFinding(key string) (hostFinding, bool) {
	rest := s.recorded
	for ordinal := 0; len(rest) > 0; ordinal++ {
		n, width := binary.Uvarint(rest)
		name := rest[width : width+int(n)]
		rest = rest[width+int(n):]
		if string(name) != key {
			continue
		}
		for _, note := range s.notes {
			if note.ordinal == ordinal {
				return note.finding, true
			}
		}
		return hostFinding{}, true
	}
	return hostFinding{}, false
}

// decide picks the first candidate present, now that Sidecar's own name is
// known, and reports what its entry says.
func (s *stateScanner) decide(result serviceLookup, hostKeys []string, id12 string) (serviceLookup, error) {
	s.order = appendCandidateHostKeys(s.order[:0], hostKeys, result.SidecarHostname)
	for _, key := range s.order {
		var finding hostFinding
		if i := slices.Index(s.known, key); i >= 0 {
			if !s.present[i] {
				continue
			}
			finding = s.findings[i]
		} else {
			// Sidecar's own name, learned after Servers: the
			// first configured key was absent, so every host was
			// recorded, unless there were too many.
			var present bool
			if finding, present = s.recordedFinding(key); !present {
				if s.recordOverflow {
					return result, fmt.Errorf("field Servers names more hosts than a lookup records (%d bytes of names) before any configured host key: cannot tell whether Sidecar's own name %q is among them", recordedHostBytes, key)
				}
				continue
			}
		}
		result.HostKey, result.HostFound = key, true
		if err := finding.err(key, id12); err != nil {
			return result, err
		}
		result.ServiceFound, result.Status = finding.found, finding.status
		return result, nil
	}
	return result, nil
}

// scanHost reads one Servers entry and says what it holds for service id12.
// The error is the document's: a syntax or read error.
func (s *stateScanner) scanHost(id12 string) (hostFinding, error) {
	var f hostFinding
	if kind := s.dec.PeekKind(); kind != '{' {
		f.problem, f.kind = problemHostNotObject, kind
		return f, s.dec.SkipValue()
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return f, err
	}
	haveServices := false
	for s.dec.PeekKind() != '}' {
		name, err := s.readName()
		if err != nil {
			return f, err
		}
		if haveServices || string(name) != "Services" {
			if err := s.dec.SkipValue(); err != nil {
				return f, err
			}
			continue
		}
		haveServices = true
		switch kind := s.dec.PeekKind(); kind {
		case '{':
			err = s.scanServices(&f, id12)
		case 'n': // null: no services
			err = s.dec.SkipValue()
		default:
			f.problem, f.kind = problemServicesNotObject, kind
			err = s.dec.SkipValue()
		}
		if err != nil {
			return f, err
		}
	}
	_, err := s.dec.ReadToken()
	return f, err
}

// scanServices reads a Services object, looking into service id12 only.
func (s *stateScanner) scanServices(f *hostFinding, id12 string) error {
	if _, err := s.dec.ReadToken(); err != nil {
		return err
	}
	seen := false
	for s.dec.PeekKind() != '}' {
		name, err := s.readName()
		if err != nil {
			return err
		}
		if seen || string(name) != id12 {
			if err := s.dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		seen = true
		if err := s.scanService(f); err != nil {
			return err
		}
	}
	_, err := s.dec.ReadToken()
	return err
}

// scanService reads our service's record for its Status.
func (s *stateScanner) scanService(f *hostFinding) error {
	if kind := s.dec.PeekKind(); kind != '{' {
		f.problem, f.kind = problemServiceNotObject, kind
		return s.dec.SkipValue()
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return err
	}
	haveStatus := false
	for s.dec.PeekKind() != '}' {
		name, err := s.readName()
		if err != nil {
			return err
		}
		if haveStatus || string(name) != "Status" {
			if err := s.dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		haveStatus = true
		if err := readStatus(&s.dec, f); err != nil {
			return err
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return err
	}
	if !haveStatus && f.problem == problemNone {
		f.problem = problemNoStatus
	}
	f.found = f.problem == problemNone
	return nil
}

// readStatus reads a service's Status value into f: its status, or the
// problem with it (not a number, not an integer, out of range). Both
// stateScanner.scanService and serviceScanner read a Status through it.
func readStatus(dec *jsontext.Decoder, f *hostFinding) error {
	if kind := dec.PeekKind(); kind != '0' {
		f.problem, f.kind = problemStatusNotNumber, kind
		return dec.SkipValue()
	}
	number, err := dec.ReadValue()
	if err != nil {
		return err
	}
	status, err := strconv.ParseInt(string(number), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && int64(int(status)) != status:
		f.problem, f.number = problemStatusOutOfRange, numberStart(number)
	case err != nil:
		f.problem, f.number = problemStatusNotInteger, numberStart(number)
	default:
		f.status = int(status)
	}
	return nil
}

// checkNothingAfter reads on after a document's closing brace and reports
// what it finds there, which is anything but the end of the body; doc names
// the document in the error.
func checkNothingAfter(dec *jsontext.Decoder, doc string) error {
	switch _, err := dec.ReadToken(); {
	case err == nil:
		return errors.New(doc + " has data after its closing brace: another JSON value")
	case err != io.EOF:
		return fmt.Errorf("%s has data after its closing brace: %w", doc, err)
	}
	return nil
}

// numberStart is a number's text for a message, cut at 32 characters.
func numberStart(number []byte) string {
	if len(number) > 32 {
		return string(number[:32]) + "..."
	}
	return string(number)
}

// readName reads an object member name, unescaped. The bytes are valid
// until the next read from the decoder.
func (s *stateScanner) readName() ([]byte, error) {
	return readJSONString(&s.dec, &s.name)
}

// unquote decodes a JSON string the decoder has checked, as unquoteJSON does,
// unescaping into s.name where it must.
func (s *stateScanner) unquote(value jsontext.Value) []byte {
	return unquoteJSON(&s.name, value)
}

// readJSONString reads a JSON string (a member name or value) from dec,
// unescaped as unquoteJSON does. The bytes are valid until the next read from
// dec or the next use of buf.
func readJSONString(dec *jsontext.Decoder, buf *[]byte) ([]byte, error) {
	value, err := dec.ReadValue()
	if err != nil {
		return nil, err
	}
	return unquoteJSON(buf, value), nil
}

// unquoteJSON decodes a JSON string the decoder has checked. Plain ASCII
// without escapes, as Sidecar writes every name, is used in place; anything
// else is unescaped into *buf, with invalid UTF-8 and lone surrogates as
// U+FFFD (as encoding/json reads them; the error that reports them is not
// ours).
func unquoteJSON(buf *[]byte, value jsontext.Value) []byte {
	raw := value[1 : len(value)-1]
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			*buf, _ = jsontext.AppendUnquote((*buf)[:0], value)
			return *buf
		}
	}
	return raw
}
