package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	docker "github.com/fsouza/go-dockerclient"
	"github.com/moby/moby/api/types/jsonstream"
	log "github.com/sirupsen/logrus"
)

// maxPullBackoff caps the doubling wait between pull attempts.
const maxPullBackoff = time.Minute

// pullPolicy bounds the pull of one image.
type pullPolicy struct {
	retries          int           // failed attempts retried after the first
	backoff          time.Duration // wait before the first retry; doubles up to maxPullBackoff
	timeout          time.Duration // deadline of the whole pull, retries included
	inactivity       time.Duration // an attempt that makes no progress this long is cut
	progressInterval time.Duration // how often an attempt's progress is logged
}

func pullPolicyFor(settings *Config) pullPolicy {
	return pullPolicy{
		retries:          settings.PullRetries,
		backoff:          settings.PullBackoff,
		timeout:          settings.PullTimeout,
		inactivity:       settings.PullInactivityTimeout,
		progressInterval: settings.PullProgressInterval,
	}
}

// imagePuller pulls an image once; dockerRuntime is the real one.
type imagePuller interface {
	pullImage(ctx context.Context, image string, auth docker.AuthConfiguration, inactivity time.Duration, progress *pullProgress) error
}

// imagePull is the pull of one image, retries included.
type imagePull struct {
	image    string
	registry string
	creds    registryCredentials
	policy   pullPolicy
	puller   imagePuller
	logger   *log.Entry
}

// run pulls the image, retrying failures that may pass (network errors,
// stalls, registry errors) with a doubling backoff, and giving up at once
// on those that will not (authentication, missing image). The whole pull
// ends by policy.timeout; a cancelled ctx (KILL) ends it at once.
func (p *imagePull) run(ctx context.Context) error {
	pullCtx, cancel := context.WithTimeout(ctx, p.policy.timeout)
	defer cancel()
	delay := p.policy.backoff
	lastAnswer := ""
	for attempt := 1; ; attempt++ {
		err := p.attempt(pullCtx, attempt)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("pull of image %s abandoned: %w", p.image, ctx.Err())
		case pullCtx.Err() != nil:
			return p.timedOut(attempt, lastAnswer)
		}
		lastAnswer = p.answer(err)
		logger := p.logger.WithFields(log.Fields{"attempt": attempt, "error": lastAnswer})
		if isPermanentPullError(err, lastAnswer) {
			logger.Error("image pull failed; not retrying: the registry refused the credentials or has no such image")
			return p.refused(lastAnswer)
		}
		if attempt > p.policy.retries {
			logger.Error("image pull failed; no retries left (EXECUTOR_PULL_RETRIES)")
			return fmt.Errorf("cannot pull image %s from registry %s after %d attempts: %s", p.image, p.registry, attempt, lastAnswer)
		}
		logger.WithField("retry_in", delay.String()).Warn("image pull failed; retrying")
		if !sleepContext(pullCtx, delay) {
			if ctx.Err() != nil {
				return fmt.Errorf("pull of image %s abandoned: %w", p.image, ctx.Err())
			}
			return p.timedOut(attempt, lastAnswer)
		}
		delay = min(delay*2, maxPullBackoff)
	}
}

// attempt pulls once, logging its progress.
func (p *imagePull) attempt(ctx context.Context, attempt int) error {
	logger := p.logger.WithField("attempt", attempt)
	logger.WithField("credentials", p.creds.describe()).Info("pulling the image")
	started := time.Now()
	progress := &pullProgress{}
	stopLogging := p.logProgress(progress, logger, started)
	err := p.puller.pullImage(ctx, p.image, p.creds.auth, p.policy.inactivity, progress)
	stopLogging()
	if err != nil {
		return err
	}
	snapshot := progress.snapshot()
	logger.WithFields(snapshot.fields()).WithFields(log.Fields{
		"took":   time.Since(started).Round(time.Millisecond).String(),
		"digest": snapshot.digest,
	}).Info("image pulled")
	return nil
}

// logProgress logs the attempt's progress every policy.progressInterval
// until the returned function is called, so an operator reading the
// sandbox's stdout sees a long pull move, or stall.
func (p *imagePull) logProgress(progress *pullProgress, logger *log.Entry, started time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(p.policy.progressInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				logger.WithFields(progress.snapshot().fields()).
					WithField("elapsed", time.Since(started).Round(time.Second).String()).
					Info("pull in progress")
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// answer is what Docker or the registry said about a failed attempt, fit
// for an operator, with any credential scrubbed.
func (p *imagePull) answer(err error) string {
	var apiErr *docker.Error
	var streamErr *pullStreamError
	var text string
	switch {
	case errors.As(err, &apiErr):
		text = apiErr.Message
	case errors.As(err, &streamErr):
		text = streamErr.message
	case errors.Is(err, docker.ErrInactivityTimeout):
		text = fmt.Sprintf("no progress for %s (EXECUTOR_PULL_INACTIVITY_TIMEOUT): the registry or the Docker daemon stalled", p.policy.inactivity)
	case errors.Is(err, docker.ErrConnectionRefused):
		text = "the Docker daemon refused the connection"
	default:
		text = err.Error()
	}
	return p.creds.scrub(strings.TrimSpace(text))
}

// refused builds the failure for an answer not worth retrying, saying
// which credentials were sent when the registry refused them.
func (p *imagePull) refused(answer string) error {
	message := fmt.Sprintf("cannot pull image %s from registry %s: %s", p.image, p.registry, answer)
	if !isAuthenticationAnswer(answer) {
		return errors.New(message)
	}
	if p.creds.found {
		return errors.New(message + "; credentials used: " + p.creds.describe())
	}
	return errors.New(message + "; the registry wants credentials (unauthorized) and no credentials for it were found in the task sandbox or the host's Docker config")
}

func (p *imagePull) timedOut(attempt int, lastAnswer string) error {
	message := fmt.Sprintf("cannot pull image %s from registry %s: timed out after %s (EXECUTOR_PULL_TIMEOUT) during attempt %d",
		p.image, p.registry, p.policy.timeout, attempt)
	if lastAnswer != "" {
		message += "; previous attempt: " + lastAnswer
	}
	return errors.New(message)
}

// authenticationAnswers mark a registry's refusal of the credentials (or
// their absence); Docker Hub also says "denied" for images that do not exist.
var authenticationAnswers = []string{"unauthorized", "denied", "authentication required", "no basic auth credentials", "docker login"}

// notFoundAnswers mark an image the registry does not have.
var notFoundAnswers = []string{"manifest unknown", "not found", "repository does not exist", "name unknown"}

func isAuthenticationAnswer(answer string) bool {
	return containsAny(strings.ToLower(answer), authenticationAnswers)
}

// isPermanentPullError tells the failures that another attempt cannot fix.
func isPermanentPullError(err error, answer string) bool {
	var apiErr *docker.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		return true
	}
	lower := strings.ToLower(answer)
	return containsAny(lower, authenticationAnswers) || containsAny(lower, notFoundAnswers)
}

func containsAny(text string, parts []string) bool {
	for _, part := range parts {
		if strings.Contains(text, part) {
			return true
		}
	}
	return false
}

// pullStreamError is an error Docker reported inside the progress stream,
// after it had already answered 200.
type pullStreamError struct{ message string }

func (e *pullStreamError) Error() string { return e.message }

// maxProgressLine bounds a line of the progress stream kept in memory;
// Docker's messages are a few hundred bytes.
const maxProgressLine = 64 << 10

// pullProgress follows Docker's JSON progress stream of one pull attempt:
// the Docker client writes the raw stream into it, the progress logger
// reads snapshots of it from another goroutine.
type pullProgress struct {
	mu      sync.Mutex
	pending []byte
	layers  map[string]*layerProgress
	order   []string
	digest  string
	err     error
}

type layerProgress struct {
	downloaded int64
	size       int64 // 0 until Docker reports it
	done       bool
}

// Write takes any slice of the stream: messages are newline-terminated
// JSON objects and may arrive split.
func (p *pullProgress) Write(data []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, data...)
	for {
		newline := bytes.IndexByte(p.pending, '\n')
		if newline < 0 {
			break
		}
		p.handleLine(p.pending[:newline])
		p.pending = p.pending[newline+1:]
	}
	if len(p.pending) > maxProgressLine {
		p.pending = nil
	}
	return len(data), nil
}

// finish handles a last message that lacked its newline.
func (p *pullProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handleLine(p.pending)
	p.pending = nil
}

// streamError is the error Docker reported in the stream, if any.
func (p *pullProgress) streamError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// progressMessage is one message of the stream. Old daemons send the error
// text only in "error"; current ones also in "errorDetail".
type progressMessage struct {
	jsonstream.Message
	ErrorText string `json:"error"`
}

func (p *pullProgress) handleLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var msg progressMessage
	if json.Unmarshal(line, &msg) != nil {
		return
	}
	switch {
	case msg.Error != nil && msg.Error.Message != "":
		p.err = &pullStreamError{message: msg.Error.Message}
	case msg.ErrorText != "":
		p.err = &pullStreamError{message: msg.ErrorText}
	case strings.HasPrefix(msg.Status, "Digest: "):
		p.digest = strings.TrimPrefix(msg.Status, "Digest: ")
	case msg.ID != "":
		p.layerEvent(msg.ID, msg.Status, msg.Progress)
	}
}

// layerEvent records what Docker says about one layer. Messages with an ID
// that are not about a layer ("Pulling from team/app" carries the tag as
// its ID) are ignored.
func (p *pullProgress) layerEvent(id, status string, detail *jsonstream.Progress) {
	switch {
	case status == "Pulling fs layer", status == "Waiting", status == "Verifying Checksum",
		status == "Extracting", strings.HasPrefix(status, "Retrying"):
		p.layer(id)
	case status == "Downloading":
		layer := p.layer(id)
		if detail != nil {
			layer.downloaded = detail.Current
			if detail.Total > 0 {
				layer.size = detail.Total
			}
		}
	case status == "Download complete":
		layer := p.layer(id)
		if layer.size > 0 {
			layer.downloaded = layer.size
		}
	case status == "Pull complete", status == "Already exists":
		p.layer(id).done = true
	}
}

func (p *pullProgress) layer(id string) *layerProgress {
	if p.layers == nil {
		p.layers = map[string]*layerProgress{}
	}
	layer, ok := p.layers[id]
	if !ok {
		layer = &layerProgress{}
		p.layers[id] = layer
		p.order = append(p.order, id)
	}
	return layer
}

// progressSnapshot sums the stream up so far.
type progressSnapshot struct {
	layersDone, layersTotal int
	downloaded, size        int64
	digest                  string
}

func (p *pullProgress) snapshot() progressSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := progressSnapshot{layersTotal: len(p.order), digest: p.digest}
	for _, id := range p.order {
		layer := p.layers[id]
		if layer.done {
			s.layersDone++
		}
		s.downloaded += layer.downloaded
		s.size += layer.size
	}
	return s
}

// fields renders the snapshot for the log: layers as done/total, bytes in
// human units. The size counts only layers whose size Docker has reported
// (layers already present locally are never downloaded).
func (s progressSnapshot) fields() log.Fields {
	return log.Fields{
		"layers":     fmt.Sprintf("%d/%d", s.layersDone, s.layersTotal),
		"downloaded": fmt.Sprintf("%s/%s", units.HumanSize(float64(s.downloaded)), units.HumanSize(float64(s.size))),
	}
}
