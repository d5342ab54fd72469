package main

// The Sidecar health watcher. Sidecar (one per host) health-checks every
// container itself; the executor only asks it, every SidecarPollInterval after
// an initial SidecarBackoff, what it thinks of our container, and fails the
// task after SidecarMaxFails consecutive affirmed unhealthy answers. Trouble
// on Sidecar's side (unreachable, errors, bad documents, our container not yet
// discovered) never counts against the task.
//
// The decisions live in small pure functions (lookupServiceStatus,
// verdictForStatus, healthTracker.observe); the HTTP loop only feeds them.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	log "github.com/sirupsen/logrus"
)

// Service statuses as Sidecar numbers them.
const (
	statusAlive     = 0
	statusTombstone = 1
	statusUnhealthy = 2
	statusUnknown   = 3
	statusDraining  = 4
)

var sidecarStatusNames = [...]string{"ALIVE", "TOMBSTONE", "UNHEALTHY", "UNKNOWN", "DRAINING"}

// statusName is the name Sidecar uses for status, for logs and messages.
func statusName(status int) string {
	if status >= 0 && status < len(sidecarStatusNames) {
		return sidecarStatusNames[status]
	}
	return fmt.Sprintf("status %d", status)
}

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

// serviceIDLength is how much of the Docker container ID Sidecar keeps as
// the service ID.
const serviceIDLength = 12

// errorSnippetBytes bounds how much of an error answer goes into a message.
const errorSnippetBytes = 512

// verdict is what one poll says about the container.
type verdict int

const (
	// verdictNone: no opinion this round (Sidecar trouble, not yet
	// discovered, UNKNOWN, DRAINING). Neither counts nor resets.
	verdictNone verdict = iota
	verdictHealthy
	verdictUnhealthy
)

// verdictForStatus maps a Sidecar status to a verdict. UNHEALTHY is
// Sidecar's affirmative "sick"; TOMBSTONE means Sidecar has written the
// container off while it still runs (it gets no traffic), so it counts too.
// UNKNOWN (not yet checked), DRAINING (deliberate) and values Sidecar does not
// define say nothing about the container's health.
func verdictForStatus(status int) verdict {
	switch status {
	case statusAlive:
		return verdictHealthy
	case statusUnhealthy, statusTombstone:
		return verdictUnhealthy
	default:
		return verdictNone
	}
}

// healthTracker counts consecutive affirmed unhealthy verdicts against the
// threshold and remembers the last verdict reported, so that only changes
// are announced.
type healthTracker struct {
	maxFails       int
	unhealthyCount int
	reported       verdict // verdictNone until the first verdict
}

// trackerStep is the outcome of one observation.
type trackerStep struct {
	notify         bool // the verdict differs from the last one reported
	healthy        bool // the verdict to report when notify is set
	unhealthyCount int  // consecutive unhealthy verdicts so far
	failed         bool // the threshold is reached
}

func newHealthTracker(maxFails int) *healthTracker {
	return &healthTracker{maxFails: maxFails}
}

// observe records one poll's verdict.
func (t *healthTracker) observe(v verdict) trackerStep {
	switch v {
	case verdictHealthy:
		t.unhealthyCount = 0
	case verdictUnhealthy:
		t.unhealthyCount++
	default:
		return trackerStep{unhealthyCount: t.unhealthyCount}
	}
	step := trackerStep{
		notify:         v != t.reported,
		healthy:        v == verdictHealthy,
		unhealthyCount: t.unhealthyCount,
		failed:         v == verdictUnhealthy && t.unhealthyCount >= t.maxFails,
	}
	t.reported = v
	return step
}

// unhealthyError ends Run when the threshold is reached. Its message becomes
// the task's failure message.
type unhealthyError struct {
	Count  int    // consecutive affirmed unhealthy checks
	Status string // the last status seen, e.g. UNHEALTHY
	Detail string // which service, which Sidecar host key, which Sidecar
}

func (e *unhealthyError) Error() string {
	return fmt.Sprintf("Sidecar reported the container unhealthy %d times in a row (last status %s)", e.Count, e.Status)
}

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
	switch _, err := s.dec.ReadToken(); {
	case err == nil:
		return result, errors.New("state document has data after its closing brace: another JSON value")
	case err != io.EOF:
		return result, fmt.Errorf("state document has data after its closing brace: %w", err)
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
		if kind := s.dec.PeekKind(); kind != '0' {
			f.problem, f.kind = problemStatusNotNumber, kind
			if err := s.dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		number, err := s.dec.ReadValue()
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
	value, err := s.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	return s.unquote(value), nil
}

// unquote decodes a JSON string the decoder has checked. Plain ASCII without
// escapes, as Sidecar writes every name, is used in place; anything else is
// unescaped into s.name, with invalid UTF-8 and lone surrogates as U+FFFD
// (as encoding/json reads them; the error that reports them is not ours).
func (s *stateScanner) unquote(value jsontext.Value) []byte {
	raw := value[1 : len(value)-1]
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			s.name, _ = jsontext.AppendUnquote(s.name[:0], value)
			return s.name
		}
	}
	return raw
}

// sidecarWatcher asks Sidecar about one container. Run and Drain may be
// called from different goroutines; Run itself is not reentrant.
type sidecarWatcher struct {
	stateURL      string
	stateURLShown string // stateURL as logs and errors show it, password redacted
	drainURL      string // empty when SidecarUrl cannot be parsed
	serviceID     string // first 12 characters of the container ID
	hostKeys      []string
	httpTimeout   time.Duration
	retryCount    int
	retryDelay    time.Duration
	backoff       time.Duration
	pollInterval  time.Duration
	maxFails      int
	maxStateBytes int
	client        *http.Client
	logger        *log.Entry

	// Owned by Run's goroutine.
	matchedHostKey string        // for logging key changes
	scanner        *stateScanner // reused between polls, see keepScannerBytes
}

// newSidecarWatcher prepares a watcher for containerID. hostKeys are the
// candidate Servers keys in priority order, e.g. [TASK_HOST, os.Hostname()].
func newSidecarWatcher(cfg *Config, containerID string, hostKeys []string, logger *log.Entry) *sidecarWatcher {
	if logger == nil {
		logger = log.NewEntry(log.StandardLogger())
	}
	serviceID := containerID
	if len(serviceID) > serviceIDLength {
		serviceID = serviceID[:serviceIDLength]
	}
	w := &sidecarWatcher{
		stateURL:      cfg.SidecarUrl,
		stateURLShown: redactSecretsIn(cfg.SidecarUrl),
		serviceID:     serviceID,
		hostKeys:      append([]string(nil), hostKeys...),
		httpTimeout:   cfg.HttpTimeout,
		retryCount:    max(cfg.SidecarRetryCount, 0),
		retryDelay:    cfg.SidecarRetryDelay,
		backoff:       cfg.SidecarBackoff,
		pollInterval:  cfg.SidecarPollInterval,
		maxFails:      max(cfg.SidecarMaxFails, 1),
		maxStateBytes: maxStateBytes,
		// Each request also carries its own deadline; this bounds
		// whatever the context does not.
		client: &http.Client{Timeout: cfg.HttpTimeout},
		logger: logger.WithFields(log.Fields{"service_id": serviceID, "sidecar": redactSecretsIn(cfg.SidecarUrl)}),
	}
	if u, err := url.Parse(cfg.SidecarUrl); err == nil && u.Host != "" {
		w.drainURL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/api/services/" + serviceID + "/drain"}).String()
	}
	return w
}

// observation is one poll's outcome.
type observation struct {
	verdict verdict
	status  string // Sidecar's status name when a record was found
	detail  string // for logs, onHealth and the error
}

// Run waits SidecarBackoff, then polls every SidecarPollInterval until ctx
// ends (nil) or SidecarMaxFails consecutive affirmed unhealthy checks were
// seen (*unhealthyError). onHealth, if not nil, is called from Run's
// goroutine whenever the verdict changes: the first ALIVE (true), the first
// unhealthy observation (false), a recovery (true).
func (w *sidecarWatcher) Run(ctx context.Context, onHealth func(healthy bool, detail string)) error {
	w.logger.WithFields(log.Fields{
		"backoff": w.backoff.String(), "poll_interval": w.pollInterval.String(), "max_fails": w.maxFails,
	}).Info("Sidecar health checks start after the backoff")
	if !sleepContext(ctx, w.backoff) {
		return nil
	}
	tracker := newHealthTracker(w.maxFails)
	ticker := time.NewTicker(w.pollInterval)
	defer ticker.Stop()
	for {
		obs := w.observe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		step := tracker.observe(obs.verdict)
		entry := w.logger.WithField("status", obs.status)
		switch obs.verdict {
		case verdictUnhealthy:
			entry.WithField("unhealthy_count", step.unhealthyCount).
				Warnf("Sidecar reports the container unhealthy (%d of %d before the task fails): %s", step.unhealthyCount, w.maxFails, obs.detail)
		case verdictHealthy:
			if step.notify {
				entry.Infof("Sidecar reports the container healthy: %s", obs.detail)
			} else {
				entry.Debugf("Sidecar reports the container healthy: %s", obs.detail)
			}
		}
		if step.notify && onHealth != nil {
			onHealth(step.healthy, obs.detail)
		}
		if step.failed {
			return &unhealthyError{Count: step.unhealthyCount, Status: obs.status, Detail: obs.detail}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// observe polls Sidecar once (with retries) and interprets the answer.
func (w *sidecarWatcher) observe(ctx context.Context) observation {
	lookup, err := w.fetchLookup(ctx)
	if ctx.Err() != nil {
		return observation{}
	}
	if err != nil {
		w.logger.WithError(err).Warn("no health verdict this round: Sidecar's state could not be read")
		return observation{detail: err.Error()}
	}
	if !lookup.HostFound {
		detail := fmt.Sprintf("none of the host keys %q is in Sidecar's state (the answering Sidecar calls itself %q)",
			candidateHostKeys(w.hostKeys, lookup.SidecarHostname), lookup.SidecarHostname)
		w.logger.Warn("no health verdict this round: " + detail)
		return observation{detail: detail}
	}
	if lookup.HostKey != w.matchedHostKey {
		w.logger.WithFields(log.Fields{"host_key": lookup.HostKey, "previous_host_key": w.matchedHostKey}).
			Info("Sidecar lists this host under this key")
		w.matchedHostKey = lookup.HostKey
	}
	where := fmt.Sprintf("service %s on Sidecar host %q", w.serviceID, lookup.HostKey)
	if !lookup.ServiceFound {
		detail := where + " is not in Sidecar's state (not yet discovered, or the container is excluded from discovery)"
		w.logger.Warn("no health verdict this round: " + detail)
		return observation{detail: detail}
	}
	obs := observation{
		verdict: verdictForStatus(lookup.Status),
		status:  statusName(lookup.Status),
		detail:  fmt.Sprintf("%s is %s", where, statusName(lookup.Status)),
	}
	if obs.verdict == verdictNone {
		w.logger.WithField("status", obs.status).Info("no health verdict this round: " + obs.detail)
	}
	return obs
}

// fetchLookup gets state.json and looks our service up. Failures to get an
// answer are retried; an answer that cannot be used (too large, not
// state.json) is not, since asking again would most likely get the same.
func (w *sidecarWatcher) fetchLookup(ctx context.Context) (serviceLookup, error) {
	var lookup serviceLookup
	err := w.withRetries(ctx, "fetch Sidecar state", func(ctx context.Context) (retryable bool, err error) {
		lookup, retryable, err = w.fetchState(ctx)
		return retryable, err
	})
	return lookup, err
}

// fetchState makes one GET of state.json and looks our service up in the
// body as it arrives.
func (w *sidecarWatcher) fetchState(ctx context.Context) (lookup serviceLookup, retryable bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.stateURL, nil)
	if err != nil {
		return lookup, false, fmt.Errorf("GET %s: %w", w.stateURLShown, err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return lookup, true, fmt.Errorf("GET %s: %w", w.stateURLShown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lookup, true, fmt.Errorf("GET %s: Sidecar answered %s%s", w.stateURLShown, resp.Status, errorSnippet(resp.Body))
	}
	if resp.ContentLength > int64(w.maxStateBytes) {
		return lookup, false, fmt.Errorf("GET %s: %w: %d bytes announced, the cap is %d", w.stateURLShown, errStateTooLarge, resp.ContentLength, w.maxStateBytes)
	}
	if w.scanner == nil {
		w.scanner = new(stateScanner)
	}
	lookup, err = w.scanner.lookup(resp.Body, int64(w.maxStateBytes), w.hostKeys, w.serviceID)
	if w.scanner.oversized() {
		w.scanner = nil
	}
	var readErr *stateReadError
	switch {
	case errors.Is(err, errStateTooLarge):
		return lookup, false, fmt.Errorf("GET %s: %w", w.stateURLShown, err)
	case errors.As(err, &readErr):
		return lookup, true, fmt.Errorf("GET %s: reading the answer: %w", w.stateURLShown, readErr.err)
	}
	return lookup, false, err
}

// Drain asks Sidecar to mark our service DRAINING, so that traffic moves
// away before the container is stopped. Sidecar only drains services of its
// own host, so this goes to the Sidecar of SidecarUrl. Failures are retried
// like polls; the error describes the last one.
func (w *sidecarWatcher) Drain(ctx context.Context) error {
	if w.drainURL == "" {
		return fmt.Errorf("drain service %s: cannot derive the drain URL from SidecarUrl %q", w.serviceID, w.stateURLShown)
	}
	w.logger.WithField("url", w.drainURL).Info("asking Sidecar to drain the service")
	err := w.withRetries(ctx, "drain service", func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, w.httpTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.drainURL, nil)
		if err != nil {
			return false, err
		}
		resp, err := w.client.Do(req)
		if err != nil {
			// Nothing listens there: retrying would only use up the
			// stop's grace period, and the container stops either way.
			return !errors.Is(err, syscall.ECONNREFUSED), err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return true, fmt.Errorf("answered %s%s", resp.Status, errorSnippet(resp.Body))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errorSnippetBytes))
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("drain service %s via %s: %w", w.serviceID, w.drainURL, err)
	}
	w.logger.Info("Sidecar accepted the drain")
	return nil
}

// withRetries runs attempt up to 1+retryCount times, retryDelay apart,
// while it fails with retryable set. A cancelled ctx ends the waiting.
func (w *sidecarWatcher) withRetries(ctx context.Context, what string, attempt func(context.Context) (retryable bool, err error)) error {
	attempts := w.retryCount + 1
	for i := 1; ; i++ {
		retryable, err := attempt(ctx)
		if err == nil {
			return nil
		}
		if !retryable {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (stopped retrying: %w)", err, context.Cause(ctx))
		}
		if i == attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempts)
		}
		w.logger.WithError(err).WithFields(log.Fields{"attempt": i, "attempts": attempts}).
			Warnf("%s failed; retrying in %s", what, w.retryDelay)
		if !sleepContext(ctx, w.retryDelay) {
			return fmt.Errorf("%w (stopped retrying: %w)", err, context.Cause(ctx))
		}
	}
}

// errorSnippet renders the start of an error answer for a message: the
// "message" of Sidecar's JSON errors, or the text itself.
func errorSnippet(body io.Reader) string {
	raw, _ := io.ReadAll(io.LimitReader(body, errorSnippetBytes))
	var sidecarError struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &sidecarError) == nil && sidecarError.Message != "" {
		return ": " + sidecarError.Message
	}
	text := strings.TrimSpace(strings.ToValidUTF8(string(raw), "?"))
	if text == "" {
		return ""
	}
	return fmt.Sprintf(": %q", text)
}

// sleepContext waits d; false when ctx ended first.
func sleepContext(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
