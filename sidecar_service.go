package main

// Asking Sidecar about our own service only. GET /api/services/<name>.json
// answers with the instances of one service name on every host, so a poll
// costs what our service costs, not what the cluster does (state.json is
// 3.1 MB at 10,000 services; our service's document a few KB). This file
// holds the pure parts: which name Sidecar gives the container, the URL of
// its document, and the streaming reader that picks our record out of it.
// The watcher in sidecar.go decides when to use the route and falls back to
// state.json.

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/go-json-experiment/json/jsontext"
)

// serviceNameLabel is the container label Sidecar's default namer
// (SERVICES_NAMER=docker_label, SERVICES_NAME_LABEL=ServiceName) takes the
// service name from.
const serviceNameLabel = "ServiceName"

// maxServiceBytes caps a service document. Sidecar lists every instance
// of the name, about 450 bytes each once indented, so 16 MiB is some 35,000
// instances of one service; beyond that the answer is not a Sidecar's.
// Like state.json it streams through a small window: the cap bounds how long
// a runaway answer is read, not memory.
const maxServiceBytes = 16 << 20

// sidecarServiceName is the name Sidecar gives a container carrying labels
// (Docker's view: the image's labels overlaid by the container's), when it
// can be known for certain; otherwise "" and why not.
//
// Only the ServiceName label is certain. Without it Sidecar names the
// service after the image string as Docker lists it, which Docker replaces
// by the image ID once the tag points elsewhere (a later pull of the same
// tag does that while the task runs), and image references usually hold a
// '/', which the route cannot carry (mux matches the decoded path, so %2F
// does not help). Those containers are looked up in state.json.
func sidecarServiceName(labels map[string]string) (name, why string) {
	name, ok := labels[serviceNameLabel]
	switch {
	case !ok:
		return "", "the container has no " + serviceNameLabel + " label, so Sidecar names it after its image, which can change under it"
	case name == "":
		return "", "the container's " + serviceNameLabel + " label is empty"
	case strings.Contains(name, "/"):
		return "", fmt.Sprintf("the service name %q holds a '/', which Sidecar's route cannot match", name)
	case name == "." || name == "..":
		return "", fmt.Sprintf("the service name %q is a path step that HTTP routers clean away", name)
	case !utf8.ValidString(name):
		return "", fmt.Sprintf("the service name %q is not valid UTF-8", name)
	}
	return name, ""
}

// dockerLabels are an inspected container's labels: the image's overlaid
// by the container's own, as Docker lists them to Sidecar.
func dockerLabels(container *docker.Container) map[string]string {
	if container == nil || container.Config == nil {
		return nil
	}
	return container.Config.Labels
}

// serviceRouteURL derives the URL of service name's document from
// SidecarUrl, which names state.json: the per-service route lives next to
// it under /api, whether SidecarUrl uses the /api/state.json path or the
// root alias /state.json, and behind any path prefix a proxy adds:
//
//	http://host:7777/state.json           → http://host:7777/api/services/<name>.json
//	http://host:7777/api/state.json       → http://host:7777/api/services/<name>.json
//	https://proxy/sidecar/state.json?t=1  → https://proxy/sidecar/api/services/<name>.json?t=1
//
// A SidecarUrl whose path does not end in /state.json gives no route: where
// the API lives cannot be told.
func serviceRouteURL(stateURL, name string) (string, error) {
	u, err := url.Parse(stateURL)
	if err != nil {
		return "", fmt.Errorf("SidecarUrl %q: %w", stateURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("SidecarUrl %q is not an http(s) URL with a host", stateURL)
	}
	base, ok := strings.CutSuffix(u.Path, "/state.json")
	if !ok {
		return "", fmt.Errorf("SidecarUrl %q does not end in /state.json, so the per-service route cannot be placed next to it", stateURL)
	}
	base = strings.TrimSuffix(base, "/api")
	u.Path = base + "/api/services/" + name + ".json"
	u.RawPath = "" // re-escaped from Path by String
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// errServiceTooLarge is returned for a service document over the cap.
var errServiceTooLarge = errors.New("service document too large")

// serviceMatch is what a service document says about our container.
type serviceMatch struct {
	Listed   int    // instances of the name in the document
	HostKey  string // the candidate key whose record was used
	Found    bool   // our record was found under a candidate key
	Status   int    // valid when Found
	Stranger string // a host listing our ID that is no candidate (for messages)
}

// serviceScanner reads a service document as it streams in, looking at
// each instance's ID, Hostname and Status only. Its buffers are kept
// between polls, like stateScanner's.
type serviceScanner struct {
	dec      jsontext.Decoder
	body     cappedReader
	name     []byte // the last unescaped string
	id       []byte // the current instance's ID
	host     []byte // the current instance's Hostname
	findings []hostFinding
	present  []bool
}

// lookupServiceRecord reads a service document (at most maxServiceBytes)
// for service name and finds the record of service id12 under the first of
// candidates (host keys, in priority order) that lists it. A document
// without our record is not an error; one that is not JSON, is incomplete,
// or has the wrong type where the lookup looks, is. A failure to read r is
// a *stateReadError.
func lookupServiceRecord(r io.Reader, name, id12 string, candidates []string) (serviceMatch, error) {
	return new(serviceScanner).lookup(r, maxServiceBytes, name, id12, candidates)
}

func (s *serviceScanner) lookup(r io.Reader, limit int64, name, id12 string, candidates []string) (serviceMatch, error) {
	s.body = cappedReader{r: r, limit: limit}
	s.dec.Reset(&s.body, stateDecoderOptions...)
	s.findings = append(s.findings[:0], make([]hostFinding, len(candidates))...)
	s.present = append(s.present[:0], make([]bool, len(candidates))...)
	match, err := s.scan(name, id12, candidates)
	s.body.r = nil
	switch {
	case errors.Is(s.body.err, errStateTooLarge):
		return serviceMatch{}, fmt.Errorf("%w: more than %d bytes", errServiceTooLarge, limit)
	case s.body.err != nil:
		return serviceMatch{}, &stateReadError{s.body.err}
	}
	if err != nil {
		return match, err
	}
	for i, key := range candidates {
		if !s.present[i] {
			continue
		}
		match.HostKey = key
		if err := s.findings[i].err(key, id12); err != nil {
			return match, err
		}
		match.Found, match.Status = true, s.findings[i].status
		return match, nil
	}
	return match, nil
}

// oversized reports whether the last lookup grew s beyond what a watcher
// keeps between polls.
func (s *serviceScanner) oversized() bool {
	return s.body.largest > keepScannerBytes || cap(s.name) > keepScannerBytes || cap(s.id) > keepScannerBytes || cap(s.host) > keepScannerBytes
}

func serviceNotValid(err error) error {
	if err == io.EOF {
		return errors.New("service document is not a valid JSON object: the body is empty")
	}
	return fmt.Errorf("service document is not a valid JSON object: %w", err)
}

// scan reads the whole document: {"Services": {name: [instance, …]}, …}.
func (s *serviceScanner) scan(name, id12 string, candidates []string) (serviceMatch, error) {
	var match serviceMatch
	if kind := s.dec.PeekKind(); kind != '{' {
		if kind != 0 {
			return match, fmt.Errorf("service document is not a valid JSON object: it is a JSON %s", kindName(kind))
		}
		_, err := s.dec.ReadToken()
		return match, serviceNotValid(err)
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return match, serviceNotValid(err)
	}
	haveServices := false
	for s.dec.PeekKind() != '}' {
		field, err := s.readString()
		if err != nil {
			return match, serviceNotValid(err)
		}
		if haveServices || string(field) != "Services" {
			if err := s.dec.SkipValue(); err != nil {
				return match, serviceNotValid(err)
			}
			continue
		}
		haveServices = true
		if err := s.scanServices(&match, name, id12, candidates); err != nil {
			return match, err
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return match, serviceNotValid(err)
	}
	if err := checkNothingAfter(&s.dec, "service document"); err != nil {
		return match, err
	}
	if !haveServices {
		return match, errors.New("service document has no Services field")
	}
	return match, nil
}

// scanServices reads the Services object, looking into name's list only.
func (s *serviceScanner) scanServices(match *serviceMatch, name, id12 string, candidates []string) error {
	if kind := s.dec.PeekKind(); kind != '{' {
		if kind == 0 {
			return serviceNotValid(s.dec.SkipValue())
		}
		return fmt.Errorf("service document: field Services is a JSON %s, not an object", kindName(kind))
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return serviceNotValid(err)
	}
	seen := false
	for s.dec.PeekKind() != '}' {
		key, err := s.readString()
		if err != nil {
			return serviceNotValid(err)
		}
		if seen || string(key) != name {
			if err := s.dec.SkipValue(); err != nil {
				return serviceNotValid(err)
			}
			continue
		}
		seen = true
		if kind := s.dec.PeekKind(); kind != '[' {
			if kind == 0 {
				return serviceNotValid(s.dec.SkipValue())
			}
			return fmt.Errorf("service document: service %q is a JSON %s, not an array of instances", name, kindName(kind))
		}
		if _, err := s.dec.ReadToken(); err != nil {
			return serviceNotValid(err)
		}
		for s.dec.PeekKind() != ']' {
			match.Listed++
			if err := s.scanInstance(match, match.Listed, id12, candidates); err != nil {
				return err
			}
		}
		if _, err := s.dec.ReadToken(); err != nil {
			return serviceNotValid(err)
		}
	}
	_, err := s.dec.ReadToken()
	if err != nil {
		return serviceNotValid(err)
	}
	return nil
}

// scanInstance reads one instance; the n-th of the list, for messages.
// Its ID and Hostname say whether it is ours; only then does its Status
// matter, as in state.json, where only our record is looked into.
func (s *serviceScanner) scanInstance(match *serviceMatch, n int, id12 string, candidates []string) error {
	if kind := s.dec.PeekKind(); kind != '{' {
		if kind == 0 {
			return serviceNotValid(s.dec.SkipValue())
		}
		return fmt.Errorf("service document: instance %d is a JSON %s, not an object", n, kindName(kind))
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return serviceNotValid(err)
	}
	s.id, s.host = s.id[:0], s.host[:0]
	var haveID, haveHost, haveStatus bool
	var f hostFinding
	for s.dec.PeekKind() != '}' {
		field, err := s.readString()
		if err != nil {
			return serviceNotValid(err)
		}
		var target *[]byte
		switch {
		case !haveID && string(field) == "ID":
			haveID, target = true, &s.id
		case !haveHost && string(field) == "Hostname":
			haveHost, target = true, &s.host
		case !haveStatus && string(field) == "Status":
			haveStatus = true
			if err := s.readStatus(&f); err != nil {
				return serviceNotValid(err)
			}
			continue
		default:
			if err := s.dec.SkipValue(); err != nil {
				return serviceNotValid(err)
			}
			continue
		}
		if kind := s.dec.PeekKind(); kind != '"' {
			if kind == 0 {
				return serviceNotValid(s.dec.SkipValue())
			}
			return fmt.Errorf("service document: instance %d: field %s is a JSON %s, not a string", n, field, kindName(kind))
		}
		value, err := s.readString()
		if err != nil {
			return serviceNotValid(err)
		}
		*target = append((*target)[:0], value...)
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return serviceNotValid(err)
	}
	if string(s.id) != id12 {
		return nil
	}
	for i, key := range candidates {
		if string(s.host) == key {
			if !s.present[i] { // the first record under a key counts
				if !haveStatus && f.problem == problemNone {
					f.problem = problemNoStatus
				}
				s.present[i], s.findings[i] = true, f
			}
			return nil
		}
	}
	if match.Stranger == "" {
		match.Stranger = string(s.host)
	}
	return nil
}

// readStatus reads a Status value into f (see readStatus).
func (s *serviceScanner) readStatus(f *hostFinding) error {
	return readStatus(&s.dec, f)
}

// readString reads a string (a member name or value), unescaped; the bytes
// are valid until the next read.
func (s *serviceScanner) readString() ([]byte, error) {
	return readJSONString(&s.dec, &s.name)
}
