package main

// The Sidecar health watcher. Sidecar (one per host) health-checks every
// container itself; the executor only asks it, every SidecarPollInterval after
// an initial SidecarBackoff, what it thinks of our container, and fails the
// task after SidecarMaxFails consecutive affirmed unhealthy answers. Trouble
// on Sidecar's side (unreachable, errors, bad documents, our container not yet
// discovered) never counts against the task.
//
// Where Sidecar can answer it, a poll asks only for our own service
// (GET /api/services/<name>.json, see sidecar_service.go), so that its cost
// follows the service, not the cluster; state.json is the fallback for
// containers whose service name is not certain and for Sidecars without the
// route.
//
// The decisions live in small pure functions (lookupServiceStatus,
// lookupServiceRecord, verdictForStatus, healthTracker.observe); the HTTP
// loop only feeds them. Reading the state document is sidecar_state.go's,
// reading a service document sidecar_service.go's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

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

	// The per-service route, set up by useServiceRoute. serviceURL is
	// empty while it is not used: no certain service name, or given up on
	// for the rest of the task (Run's goroutine clears it).
	serviceName     string
	serviceURL      string
	maxServiceBytes int

	// Owned by Run's goroutine.
	matchedHostKey  string          // for logging key changes
	scanner         *stateScanner   // reused between polls, see keepScannerBytes
	serviceScanner  *serviceScanner // likewise
	routeConfirmed  bool            // the route has listed our container at least once
	nameMisses      int             // rounds in which state.json listed our container and the route did not
	sidecarHostname string          // the answering Sidecar's own name, from the last state.json read
}

// serviceNameMisses is how many rounds state.json must list our container
// while the per-service route does not before the watcher concludes that
// Sidecar names the service otherwise (a SERVICES_NAMER or
// SERVICES_NAME_LABEL other than the default) and stops asking the route.
// More than one, so that a container discovered between the two requests
// of a round does not decide it.
const serviceNameMisses = 3

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
		// maxServiceBytes matters only once useServiceRoute is called.
		maxServiceBytes: maxServiceBytes,
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

// useServiceRoute makes the watcher ask Sidecar for the container's own
// service instead of its whole state, when the name Sidecar gives the
// container can be derived from labels (the container's labels as Docker
// reports them) and the route's URL from SidecarUrl. Call it before Run.
func (w *sidecarWatcher) useServiceRoute(labels map[string]string) {
	name, why := sidecarServiceName(labels)
	if name == "" {
		w.logger.Info("asking Sidecar's state.json for the container's health: " + why)
		return
	}
	routeURL, err := serviceRouteURL(w.stateURL, name)
	if err != nil {
		w.logger.WithError(err).Info("asking Sidecar's state.json for the container's health: no per-service route")
		return
	}
	w.serviceName, w.serviceURL = name, routeURL
	w.logger.WithFields(log.Fields{"service_name": name, "url": routeURL}).
		Info("asking Sidecar for this service only; state.json is the fallback")
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

// observe polls Sidecar once (with retries) and interprets the answer:
// through the per-service route when it is in use, else, or when the route
// has never yet listed our container and does not now, through state.json.
func (w *sidecarWatcher) observe(ctx context.Context) observation {
	checkName := false
	if w.serviceURL != "" {
		obs, settled := w.observeService(ctx)
		if settled {
			return obs
		}
		// Not listed under the name, never yet confirmed: not yet
		// discovered, or Sidecar names it otherwise. state.json tells.
		checkName = w.serviceURL != ""
	}
	lookup, err := w.fetchLookup(ctx)
	if ctx.Err() != nil {
		return observation{}
	}
	if err != nil {
		w.logger.WithError(err).Warn("no health verdict this round: Sidecar's state could not be read")
		return observation{detail: err.Error()}
	}
	if lookup.SidecarHostname != "" {
		w.sidecarHostname = lookup.SidecarHostname
	}
	if checkName && lookup.ServiceFound {
		w.nameMissed()
	}
	if !lookup.HostFound {
		detail := fmt.Sprintf("none of the host keys %q is in Sidecar's state (the answering Sidecar calls itself %q)",
			candidateHostKeys(w.hostKeys, lookup.SidecarHostname), lookup.SidecarHostname)
		w.logger.Warn("no health verdict this round: " + detail)
		return observation{detail: detail}
	}
	if !lookup.ServiceFound {
		w.noteHostKey(lookup.HostKey)
		detail := fmt.Sprintf("service %s on Sidecar host %q", w.serviceID, lookup.HostKey) +
			" is not in Sidecar's state (not yet discovered, or the container is excluded from discovery)"
		w.logger.Warn("no health verdict this round: " + detail)
		return observation{detail: detail}
	}
	return w.recordObservation(lookup.HostKey, lookup.Status)
}

// noteHostKey logs the Servers key our host is found under when it changes.
func (w *sidecarWatcher) noteHostKey(key string) {
	if key != w.matchedHostKey {
		w.logger.WithFields(log.Fields{"host_key": key, "previous_host_key": w.matchedHostKey}).
			Info("Sidecar lists this host under this key")
		w.matchedHostKey = key
	}
}

// recordObservation turns our record's status, found under hostKey, into
// the round's observation.
func (w *sidecarWatcher) recordObservation(hostKey string, status int) observation {
	w.noteHostKey(hostKey)
	where := fmt.Sprintf("service %s on Sidecar host %q", w.serviceID, hostKey)
	obs := observation{
		verdict: verdictForStatus(status),
		status:  statusName(status),
		detail:  fmt.Sprintf("%s is %s", where, statusName(status)),
	}
	if obs.verdict == verdictNone {
		w.logger.WithField("status", obs.status).Info("no health verdict this round: " + obs.detail)
	}
	return obs
}

// observeService polls the per-service route. settled is false when the
// round is to be decided by state.json instead: the route is missing (and
// now given up on), or it does not list our container and never has.
func (w *sidecarWatcher) observeService(ctx context.Context) (obs observation, settled bool) {
	// Sidecar's own name is one of the host keys once a state.json read
	// taught it; a service document does not carry it.
	candidates := candidateHostKeys(w.hostKeys, w.sidecarHostname)
	var match serviceMatch
	err := w.withRetries(ctx, "fetch Sidecar's service document", func(ctx context.Context) (retryable bool, err error) {
		match, retryable, err = w.fetchService(ctx, candidates)
		return retryable, err
	})
	if ctx.Err() != nil {
		return observation{}, true
	}
	switch {
	case errors.Is(err, errNoServiceRoute):
		// Logged once: the route is not asked again in this task.
		w.logger.WithError(err).Warn("Sidecar has no per-service route; using state.json for the rest of the task")
		w.serviceURL = ""
		return observation{}, false
	case errors.Is(err, errServiceUnknown):
		match = serviceMatch{} // Sidecar lists no instance of the name: a miss
	case err != nil:
		w.logger.WithError(err).Warn("no health verdict this round: Sidecar's service document could not be read")
		return observation{detail: err.Error()}, true
	}
	if match.Found {
		w.routeConfirmed, w.nameMisses = true, 0
		return w.recordObservation(match.HostKey, match.Status), true
	}
	if !w.routeConfirmed {
		return observation{}, false
	}
	detail := fmt.Sprintf("service %s is not listed under service name %q for host keys %q", w.serviceID, w.serviceName, candidates)
	if match.Stranger != "" {
		detail += fmt.Sprintf(" (Sidecar lists it on host %q)", match.Stranger)
	} else {
		detail += " (not yet rediscovered, e.g. after a Sidecar restart)"
	}
	w.logger.Warn("no health verdict this round: " + detail)
	return observation{detail: detail}, true
}

// nameMissed counts a round in which state.json listed our container and
// the route did not, and gives the route up after serviceNameMisses of them.
func (w *sidecarWatcher) nameMissed() {
	w.nameMisses++
	if w.nameMisses < serviceNameMisses {
		return
	}
	w.logger.WithFields(log.Fields{"service_name": w.serviceName, "url": w.serviceURL}).
		Warnf("Sidecar's state.json lists the container but its service document does not, %d rounds in a row: "+
			"this Sidecar names services otherwise (SERVICES_NAMER, SERVICES_NAME_LABEL); using state.json for the rest of the task", w.nameMisses)
	w.serviceURL = ""
}

// errNoServiceRoute: the per-service route answered 404 with something
// other than Sidecar's "no instances" error, i.e. this Sidecar (or what
// stands in front of it) does not have the route.
var errNoServiceRoute = errors.New("no per-service route")

// errServiceUnknown: Sidecar's 404 "no instances of <name> found".
var errServiceUnknown = errors.New("Sidecar lists no instance of the service")

// fetchService makes one GET of our service's document and looks our
// record up in the body as it arrives.
func (w *sidecarWatcher) fetchService(ctx context.Context, candidates []string) (match serviceMatch, retryable bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.serviceURL, nil)
	if err != nil {
		return match, false, fmt.Errorf("GET %s: %w", w.serviceURL, err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return match, true, fmt.Errorf("GET %s: %w", w.serviceURL, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, errorSnippetBytes))
		var answer struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &answer) == nil && answer.Status == "error" && strings.HasPrefix(answer.Message, "no instances of ") {
			return match, false, fmt.Errorf("GET %s: %w", w.serviceURL, errServiceUnknown)
		}
		return match, false, fmt.Errorf("GET %s: Sidecar answered %s%s: %w", w.serviceURL, resp.Status, snippetOf(raw), errNoServiceRoute)
	default:
		return match, true, fmt.Errorf("GET %s: Sidecar answered %s%s", w.serviceURL, resp.Status, errorSnippet(resp.Body))
	}
	if resp.ContentLength > int64(w.maxServiceBytes) {
		return match, false, fmt.Errorf("GET %s: %w: %d bytes announced, the cap is %d", w.serviceURL, errServiceTooLarge, resp.ContentLength, w.maxServiceBytes)
	}
	if w.serviceScanner == nil {
		w.serviceScanner = new(serviceScanner)
	}
	match, err = w.serviceScanner.lookup(resp.Body, int64(w.maxServiceBytes), w.serviceName, w.serviceID, candidates)
	if w.serviceScanner.oversized() {
		w.serviceScanner = nil
	}
	var readErr *stateReadError
	if errors.As(err, &readErr) {
		return match, true, fmt.Errorf("GET %s: reading the answer: %w", w.serviceURL, readErr.err)
	}
	if err != nil {
		return match, false, fmt.Errorf("GET %s: %w", w.serviceURL, err)
	}
	return match, false, nil
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
	return snippetOf(raw)
}

// snippetOf is errorSnippet of an answer already read.
func snippetOf(raw []byte) string {
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
