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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/buger/jsonparser"
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
// answers about 3.5 MB, so 64 MiB leaves room for clusters many times that
// size while keeping a runaway answer from taking the executor's memory: the
// body is buffered (the parser needs it whole) and reading stops at the cap.
const maxStateBytes = 64 << 20

// keepStateBufferBytes is the largest read buffer the watcher keeps between
// polls (a cluster of about 20,000 services). Reusing it spares a few MB of
// allocation per poll; a larger one, from an exceptional answer, is dropped
// rather than held for the life of the task.
const keepStateBufferBytes = 8 << 20

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
	ordered := make([]string, 0, len(hostKeys)+1)
	if len(hostKeys) > 0 {
		ordered = append(ordered, hostKeys[0])
	}
	ordered = append(ordered, sidecarHostname)
	if len(hostKeys) > 1 {
		ordered = append(ordered, hostKeys[1:]...)
	}
	keys := ordered[:0]
	for _, key := range ordered {
		if key != "" && !containsString(keys, key) {
			keys = append(keys, key)
		}
	}
	return keys
}

func containsString(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

// lookupServiceStatus reads a state.json document from r (at most
// maxStateBytes) and finds service id12 under the first candidate host key
// present (candidateHostKeys). A missing host or service is not an error; a
// document that is not JSON, is incomplete, or has the wrong type where the
// lookup looks, is.
func lookupServiceStatus(r io.Reader, hostKeys []string, id12 string) (serviceLookup, error) {
	doc, err := readCapped(r, maxStateBytes, -1, nil)
	if err != nil {
		return serviceLookup{}, err
	}
	return lookupInState(doc, hostKeys, id12)
}

// readCapped reads all of r into buf (reusing its capacity), failing with
// errStateTooLarge as soon as more than limit bytes arrive. sizeHint (a
// Content-Length, or -1) sizes a new buffer exactly; without it the buffer
// doubles up to limit, so a hostile sender makes it allocate at most about
// twice the cap in all.
func readCapped(r io.Reader, limit int, sizeHint int64, buf []byte) ([]byte, error) {
	if sizeHint > int64(limit) {
		return nil, fmt.Errorf("%w: %d bytes announced, the cap is %d", errStateTooLarge, sizeHint, limit)
	}
	switch {
	case sizeHint >= 0 && cap(buf) < min(int(sizeHint), limit):
		buf = make([]byte, 0, min(int(sizeHint), limit))
	case cap(buf) == 0:
		buf = make([]byte, 0, min(64<<10, limit))
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit || len(buf) == int(sizeHint) {
				// Full: one more byte tells the end of the body from
				// an oversized or mis-announced one without growing
				// the buffer for nothing.
				var probe [1]byte
				n, err := io.ReadFull(r, probe[:])
				if n == 0 {
					if errors.Is(err, io.EOF) {
						return buf, nil
					}
					return nil, err
				}
				if len(buf) >= limit {
					return nil, fmt.Errorf("%w: more than %d bytes", errStateTooLarge, limit)
				}
				sizeHint = -1
				buf = append(growCapped(buf, limit), probe[0])
				continue
			}
			buf = growCapped(buf, limit)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// growCapped doubles buf's capacity (at least 4 KiB), never beyond limit;
// len(buf) must be below limit.
func growCapped(buf []byte, limit int) []byte {
	grown := make([]byte, len(buf), min(max(2*cap(buf), 4096), limit))
	copy(grown, buf)
	return grown
}

// lookupInState is lookupServiceStatus on a document in memory. It makes two
// passes of a skipping scanner — one over the top level, one over the
// Servers keys — and looks inside our host only, so other hosts and services
// are never decoded and nothing is allocated for them.
func lookupInState(doc []byte, hostKeys []string, id12 string) (serviceLookup, error) {
	var result serviceLookup
	var servers []byte
	var haveServers, haveHostname bool
	lastValueEnd := -1
	err := jsonparser.ObjectEach(doc, func(key, value []byte, kind jsonparser.ValueType, valueEnd int) error {
		lastValueEnd = valueEnd
		switch string(key) {
		case "Servers":
			if haveServers {
				return nil
			}
			if kind != jsonparser.Object {
				return fmt.Errorf("field Servers is a JSON %s, not an object", kind)
			}
			servers, haveServers = value, true
		case "Hostname":
			if haveHostname {
				return nil
			}
			if kind != jsonparser.String {
				return fmt.Errorf("field Hostname is a JSON %s, not a string", kind)
			}
			hostname, err := jsonparser.ParseString(value)
			if err != nil {
				return fmt.Errorf("field Hostname: %w", err)
			}
			result.SidecarHostname, haveHostname = hostname, true
		}
		return nil
	})
	if err != nil {
		return result, fmt.Errorf("state document is not a valid JSON object: %w", err)
	}
	if !endsObject(doc, lastValueEnd) {
		return result, errors.New("state document is incomplete or has data after its closing brace")
	}
	if !haveServers {
		return result, errors.New("state document has no Servers field")
	}

	// One pass over the host names finds the best candidate present; a
	// repeated name counts at its first occurrence.
	candidates := candidateHostKeys(hostKeys, result.SidecarHostname)
	best := len(candidates)
	var host []byte
	var hostKind jsonparser.ValueType
	err = jsonparser.ObjectEach(servers, func(key, value []byte, kind jsonparser.ValueType, _ int) error {
		for i := 0; i < best; i++ {
			if string(key) == candidates[i] {
				best, host, hostKind = i, value, kind
				break
			}
		}
		return nil
	})
	if err != nil {
		return result, fmt.Errorf("field Servers: %w", err)
	}
	if best == len(candidates) {
		return result, nil
	}
	result.HostKey, result.HostFound = candidates[best], true
	if hostKind != jsonparser.Object {
		return result, fmt.Errorf("host %q in Servers is a JSON %s, not an object", result.HostKey, hostKind)
	}
	return lookupInHost(result, host, id12)
}

// endsObject reports whether what follows the top-level object's last value
// (lastValueEnd, or -1 for an empty object) is only its closing brace and
// white space: anything else is a cut or padded document.
func endsObject(doc []byte, lastValueEnd int) bool {
	rest := bytes.TrimSpace(doc)
	if lastValueEnd >= 0 {
		rest = bytes.TrimSpace(doc[lastValueEnd:])
	} else if len(rest) > 0 && rest[0] == '{' {
		rest = bytes.TrimSpace(rest[1:])
	}
	return len(rest) == 1 && rest[0] == '}'
}

// lookupInHost finds service id12 in one Servers entry.
func lookupInHost(result serviceLookup, host []byte, id12 string) (serviceLookup, error) {
	services, kind, _, err := jsonparser.Get(host, "Services")
	switch {
	case errors.Is(err, jsonparser.KeyPathNotFoundError):
		return result, nil
	case err != nil:
		return result, fmt.Errorf("host %q: field Services: %w", result.HostKey, err)
	case kind == jsonparser.Null:
		return result, nil
	case kind != jsonparser.Object:
		return result, fmt.Errorf("host %q: field Services is a JSON %s, not an object", result.HostKey, kind)
	}
	service, kind, _, err := jsonparser.Get(services, id12)
	switch {
	case errors.Is(err, jsonparser.KeyPathNotFoundError):
		return result, nil
	case err != nil:
		return result, fmt.Errorf("service %s: %w", id12, err)
	case kind != jsonparser.Object:
		return result, fmt.Errorf("service %s is a JSON %s, not an object", id12, kind)
	}
	raw, kind, _, err := jsonparser.Get(service, "Status")
	switch {
	case errors.Is(err, jsonparser.KeyPathNotFoundError):
		return result, fmt.Errorf("service %s has no Status", id12)
	case err != nil:
		return result, fmt.Errorf("service %s Status: %w", id12, err)
	case kind != jsonparser.Number:
		return result, fmt.Errorf("service %s Status is a JSON %s, not a number", id12, kind)
	}
	status, err := jsonparser.ParseInt(raw)
	if err != nil {
		return result, fmt.Errorf("service %s Status %q is not an integer", id12, raw)
	}
	if int64(int(status)) != status {
		return result, fmt.Errorf("service %s Status %d is out of range", id12, status)
	}
	result.ServiceFound, result.Status = true, int(status)
	return result, nil
}

// sidecarWatcher asks Sidecar about one container. Run and Drain may be
// called from different goroutines; Run itself is not reentrant.
type sidecarWatcher struct {
	stateURL      string
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
	matchedHostKey string // for logging key changes
	stateBuffer    []byte // reused between polls, see keepStateBufferBytes
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
		logger: logger.WithFields(log.Fields{"service_id": serviceID, "sidecar": cfg.SidecarUrl}),
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
	err := w.withRetries(ctx, "fetch Sidecar state", func(ctx context.Context) (bool, error) {
		doc, retryable, err := w.fetchState(ctx)
		if err != nil {
			return retryable, err
		}
		lookup, err = lookupInState(doc, w.hostKeys, w.serviceID)
		return false, err
	})
	return lookup, err
}

// fetchState makes one GET of state.json.
func (w *sidecarWatcher) fetchState(ctx context.Context) (doc []byte, retryable bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.stateURL, nil)
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: %w", w.stateURL, err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, true, fmt.Errorf("GET %s: %w", w.stateURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, true, fmt.Errorf("GET %s: Sidecar answered %s%s", w.stateURL, resp.Status, errorSnippet(resp.Body))
	}
	doc, err = readCapped(resp.Body, w.maxStateBytes, resp.ContentLength, w.stateBuffer)
	switch {
	case cap(doc) > keepStateBufferBytes:
		w.stateBuffer = nil
	case doc != nil:
		w.stateBuffer = doc[:0]
	}
	if errors.Is(err, errStateTooLarge) {
		return nil, false, fmt.Errorf("GET %s: %w", w.stateURL, err)
	}
	if err != nil {
		return nil, true, fmt.Errorf("GET %s: reading the answer: %w", w.stateURL, err)
	}
	return doc, false, nil
}

// Drain asks Sidecar to mark our service DRAINING, so that traffic moves
// away before the container is stopped. Sidecar only drains services of its
// own host, so this goes to the Sidecar of SidecarUrl. Failures are retried
// like polls; the error describes the last one.
func (w *sidecarWatcher) Drain(ctx context.Context) error {
	if w.drainURL == "" {
		return fmt.Errorf("drain service %s: cannot derive the drain URL from SidecarUrl %q", w.serviceID, w.stateURL)
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
			return true, err
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
