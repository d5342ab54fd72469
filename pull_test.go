package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// scriptedPuller answers pull attempts from a script: the i-th attempt
// runs script[i] (the last entry repeats).
type scriptedPuller struct {
	mu       sync.Mutex
	script   []func(ctx context.Context, progress *pullProgress) error
	attempts int
	auths    []docker.AuthConfiguration
}

func (s *scriptedPuller) pullImage(ctx context.Context, image string, auth docker.AuthConfiguration, inactivity time.Duration, progress *pullProgress) error {
	s.mu.Lock()
	step := s.script[min(s.attempts, len(s.script)-1)]
	s.attempts++
	s.auths = append(s.auths, auth)
	s.mu.Unlock()
	return step(ctx, progress)
}

func (s *scriptedPuller) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

func fails(err error) func(context.Context, *pullProgress) error {
	return func(context.Context, *pullProgress) error { return err }
}

func succeeds(context.Context, *pullProgress) error { return nil }

// hangs blocks until the attempt's context ends, like a stalled registry.
func hangs(ctx context.Context, _ *pullProgress) error {
	<-ctx.Done()
	return fmt.Errorf("pull: %w", ctx.Err())
}

// Answers of Docker 20.10 recorded against a distribution registry.
var (
	errRefused      = &docker.Error{Status: 500, Message: `Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`}
	errUnauthorized = &docker.Error{Status: 500, Message: "unauthorized: authentication required"}
	errNoCreds      = &docker.Error{Status: 500, Message: `Head "http://127.0.0.1:5000/v2/team/app/manifests/1": no basic auth credentials`}
	errNoManifest   = &docker.Error{Status: 404, Message: "manifest for 127.0.0.1:5000/team/app:2 not found: manifest unknown: manifest unknown"}
	errHubDenied    = &docker.Error{Status: 404, Message: "pull access denied for team/nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"}
)

func testPolicy() pullPolicy {
	return pullPolicy{retries: 3, backoff: 5 * time.Millisecond, timeout: 10 * time.Second, inactivity: time.Minute, progressInterval: time.Hour}
}

func newTestPull(puller imagePuller, policy pullPolicy, creds registryCredentials) (*imagePull, *logtest.Hook) {
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(log.DebugLevel)
	return &imagePull{
		image:    "127.0.0.1:5000/team/app:1",
		registry: "127.0.0.1:5000",
		creds:    creds,
		policy:   policy,
		puller:   puller,
		logger:   log.NewEntry(logger),
	}, hook
}

func entriesWith(hook *logtest.Hook, message string) []*log.Entry {
	var out []*log.Entry
	for _, entry := range hook.AllEntries() {
		if entry.Message == message {
			out = append(out, entry)
		}
	}
	return out
}

func TestPullRetriesTransientFailuresWithBackoff(t *testing.T) {
	puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{fails(errRefused), fails(docker.ErrInactivityTimeout), succeeds}}
	pull, hook := newTestPull(puller, testPolicy(), registryCredentials{})
	if err := pull.run(context.Background()); err != nil {
		t.Fatalf("pull failed: %v", err)
	}
	if puller.count() != 3 {
		t.Fatalf("%d attempts, want 3", puller.count())
	}
	retries := entriesWith(hook, "image pull failed; retrying")
	if len(retries) != 2 {
		t.Fatalf("%d retry warnings, want 2", len(retries))
	}
	if got := retries[0].Data["error"]; !strings.Contains(fmt.Sprint(got), "connection refused") {
		t.Errorf("first retry logs error %q, want the registry's answer", got)
	}
	if got := fmt.Sprint(retries[1].Data["error"]); !strings.Contains(got, "EXECUTOR_PULL_INACTIVITY_TIMEOUT") {
		t.Errorf("stall logged as %q, want it to name the inactivity setting", got)
	}
	if retries[0].Data["retry_in"] != "5ms" || retries[1].Data["retry_in"] != "10ms" {
		t.Errorf("backoff %v then %v, want 5ms then 10ms", retries[0].Data["retry_in"], retries[1].Data["retry_in"])
	}
	if n := len(entriesWith(hook, "pulling the image")); n != 3 {
		t.Errorf("%d attempts logged, want 3", n)
	}
	if n := len(entriesWith(hook, "image pulled")); n != 1 {
		t.Errorf("%d success lines, want 1", n)
	}
}

func TestPullGivesUpAfterTheRetries(t *testing.T) {
	puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{fails(errRefused)}}
	policy := testPolicy()
	policy.retries = 2
	pull, _ := newTestPull(puller, policy, registryCredentials{})
	err := pull.run(context.Background())
	if puller.count() != 3 {
		t.Fatalf("%d attempts, want 1 + 2 retries", puller.count())
	}
	want := "cannot pull image 127.0.0.1:5000/team/app:1 from registry 127.0.0.1:5000 after 3 attempts: "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %v, want %q… naming connection refused", err, want)
	}
}

func TestPullDoesNotRetryWhatCannotSucceed(t *testing.T) {
	found := registryCredentials{found: true, file: "/sandbox/.dockercfg", key: "127.0.0.1:5000", auth: docker.AuthConfiguration{Username: "alice", Password: "pw-alice"}}
	cases := []struct {
		name     string
		err      error
		creds    registryCredentials
		contains []string
		lacks    string
	}{
		{"wrong credentials", errUnauthorized, found, []string{"unauthorized: authentication required", `credentials used: entry "127.0.0.1:5000" of /sandbox/.dockercfg`}, ""},
		{"no credentials", errNoCreds, registryCredentials{}, []string{"no basic auth credentials", "unauthorized", "no credentials for it were found"}, ""},
		{"missing tag", errNoManifest, found, []string{"manifest unknown"}, "credentials"},
		{"hub denial", errHubDenied, registryCredentials{}, []string{"repository does not exist"}, ""},
		{"denial inside the stream", fmt.Errorf("pull: %w", &pullStreamError{message: "denied: requested access to the resource is denied"}), found, []string{"denied"}, ""},
		{"repository unknown", &docker.Error{Status: 500, Message: "name unknown: repository name not known to registry"}, found, []string{"name unknown"}, "credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{fails(tc.err), succeeds}}
			pull, hook := newTestPull(puller, testPolicy(), tc.creds)
			err := pull.run(context.Background())
			if puller.count() != 1 {
				t.Fatalf("%d attempts, want exactly 1", puller.count())
			}
			if err == nil {
				t.Fatal("pull succeeded")
			}
			message := err.Error()
			for _, want := range append(tc.contains, "127.0.0.1:5000/team/app:1", "registry 127.0.0.1:5000") {
				if !strings.Contains(message, want) {
					t.Errorf("message %q lacks %q", message, want)
				}
			}
			if tc.lacks != "" && strings.Contains(message, tc.lacks) {
				t.Errorf("message %q mentions %s for a failure that is not about them", message, tc.lacks)
			}
			if n := len(entriesWith(hook, "image pull failed; not retrying: the registry refused the credentials or has no such image")); n != 1 {
				t.Errorf("%d not-retrying lines, want 1", n)
			}
		})
	}
}

func TestIsPermanentPullError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errUnauthorized, true},
		{errNoCreds, true},
		{errNoManifest, true},
		{errHubDenied, true},
		{&docker.Error{Status: 404, Message: "something new"}, true},
		{errRefused, false},
		{docker.ErrInactivityTimeout, false},
		{&docker.Error{Status: 500, Message: "received unexpected HTTP status: 503 Service Unavailable"}, false},
		{&docker.Error{Status: 500, Message: "Get \"https://registry.local/v2/\": net/http: TLS handshake timeout"}, false},
		{&pullStreamError{message: "unexpected EOF"}, false},
	} {
		pull, _ := newTestPull(nil, testPolicy(), registryCredentials{})
		if got := isPermanentPullError(tc.err, pull.answer(tc.err)); got != tc.want {
			t.Errorf("isPermanentPullError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestPullDeadlineCutsAStalledAttempt(t *testing.T) {
	puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{hangs}}
	policy := testPolicy()
	policy.timeout = 100 * time.Millisecond
	pull, _ := newTestPull(puller, policy, registryCredentials{})
	start := time.Now()
	err := pull.run(context.Background())
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the deadline of 100ms ended the pull after %s", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms (EXECUTOR_PULL_TIMEOUT) during attempt 1") {
		t.Fatalf("error %v, want a timeout naming the deadline", err)
	}
}

func TestPullDeadlineCutsTheBackoff(t *testing.T) {
	puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{fails(errRefused)}}
	policy := testPolicy()
	policy.backoff = time.Hour
	policy.timeout = 100 * time.Millisecond
	pull, _ := newTestPull(puller, policy, registryCredentials{})
	start := time.Now()
	err := pull.run(context.Background())
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the deadline did not cut the backoff: %s", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") || !strings.Contains(err.Error(), "previous attempt: ") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %v, want a timeout with the last answer", err)
	}
}

func TestPullAbandonedWhenTheTaskIsKilled(t *testing.T) {
	for name, step := range map[string]func(context.Context, *pullProgress) error{"during an attempt": hangs, "during the backoff": fails(errRefused)} {
		t.Run(name, func(t *testing.T) {
			puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{step}}
			policy := testPolicy()
			policy.backoff = time.Hour
			pull, _ := newTestPull(puller, policy, registryCredentials{})
			ctx, cancel := context.WithCancel(context.Background())
			result := make(chan error, 1)
			go func() { result <- pull.run(ctx) }()
			eventually(t, 5*time.Second, "the first attempt", func() bool { return puller.count() > 0 })
			cancel()
			select {
			case err := <-result:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("error %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the pull did not end when its context was cancelled")
			}
		})
	}
}

func TestPullNeverShowsCredentials(t *testing.T) {
	creds := registryCredentials{found: true, file: "/h/.docker/config.json", key: "127.0.0.1:5000",
		auth: docker.AuthConfiguration{Username: "alice", Password: "hunter2-pw"}}
	leaky := &docker.Error{Status: 500, Message: "unauthorized: proxy echoed hunter2-pw and YWxpY2U6aHVudGVyMi1wdw=="}
	puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{fails(leaky)}}
	pull, hook := newTestPull(puller, testPolicy(), creds)
	err := pull.run(context.Background())
	if err == nil {
		t.Fatal("pull succeeded")
	}
	texts := []string{err.Error()}
	for _, entry := range hook.AllEntries() {
		texts = append(texts, fmt.Sprint(entry.Message, entry.Data))
	}
	for _, text := range texts {
		if strings.Contains(text, "hunter2-pw") || strings.Contains(text, "YWxpY2U6aHVudGVyMi1wdw") {
			t.Errorf("credential visible in %q", text)
		}
	}
	if puller.auths[0].Password != "hunter2-pw" {
		t.Errorf("the credentials were not handed to Docker")
	}
}

func TestPullLogsProgressWhileItRuns(t *testing.T) {
	release := make(chan struct{})
	puller := &scriptedPuller{script: []func(context.Context, *pullProgress) error{func(ctx context.Context, progress *pullProgress) error {
		_, _ = io.WriteString(progress, `{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}`+"\r\n"+
			`{"status":"Already exists","progressDetail":{},"id":"bbb"}`+"\r\n"+
			`{"status":"Downloading","progressDetail":{"current":1000000,"total":4000000},"id":"aaa"}`+"\r\n")
		<-release
		return nil
	}}}
	policy := testPolicy()
	policy.progressInterval = 5 * time.Millisecond
	pull, hook := newTestPull(puller, policy, registryCredentials{})
	result := make(chan error, 1)
	go func() { result <- pull.run(context.Background()) }()
	eventually(t, 5*time.Second, "a progress line", func() bool { return len(entriesWith(hook, "pull in progress")) > 0 })
	close(release)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	entry := entriesWith(hook, "pull in progress")[0]
	if entry.Data["layers"] != "1/2" || entry.Data["downloaded"] != "1MB/4MB" {
		t.Fatalf("progress logged as %v, want layers 1/2 and 1MB/4MB", entry.Data)
	}
}

// recordedPull is what Docker 20.10 streamed for a pull of a two-layer
// image, one layer of which was present locally.
const recordedPull = `{"status":"Pulling from team/app","id":"1"}
{"status":"Already exists","progressDetail":{},"id":"3161b2b5427c"}
{"status":"Pulling fs layer","progressDetail":{},"id":"9e3206759b84"}
{"status":"Downloading","progressDetail":{"current":32768,"total":3001229},"progress":"[\u003e      ]  32.77kB/3.001MB","id":"9e3206759b84"}
{"status":"Verifying Checksum","progressDetail":{},"id":"9e3206759b84"}
{"status":"Download complete","progressDetail":{},"id":"9e3206759b84"}
{"status":"Extracting","progressDetail":{"current":32768,"total":3001229},"progress":"[\u003e      ]  32.77kB/3.001MB","id":"9e3206759b84"}
{"status":"Extracting","progressDetail":{"current":3001229,"total":3001229},"progress":"[=======\u003e]  3.001MB/3.001MB","id":"9e3206759b84"}
{"status":"Pull complete","progressDetail":{},"id":"9e3206759b84"}
{"status":"Digest: sha256:6603ebc28892da654bba2cf03a0545ea0f242d7db39fd48e467128d2b2834885"}
{"status":"Status: Downloaded newer image for 127.0.0.1:46331/team/app:1"}
`

func TestPullProgressFollowsTheStream(t *testing.T) {
	stream := strings.ReplaceAll(recordedPull, "\n", "\r\n")
	split := strings.Index(stream, `{"status":"Verifying`)
	// Feed the stream in random pieces: Docker's writes and the HTTP
	// client's reads do not respect message boundaries.
	rng := rand.New(rand.NewPCG(1, 2))
	feed := func(progress *pullProgress, part string) {
		for part != "" {
			n := min(len(part), 1+rng.IntN(80))
			if _, err := progress.Write([]byte(part[:n])); err != nil {
				t.Fatal(err)
			}
			part = part[n:]
		}
	}
	for round := 0; round < 50; round++ {
		progress := &pullProgress{}
		feed(progress, stream[:split])
		midway := progress.snapshot()
		feed(progress, stream[split:])
		progress.finish()
		if midway.layersDone != 1 || midway.layersTotal != 2 || midway.downloaded != 32768 || midway.size != 3001229 {
			t.Fatalf("round %d: midway snapshot %+v, want 1/2 layers, 32768 of 3001229 bytes", round, midway)
		}
		final := progress.snapshot()
		if final.layersDone != 2 || final.layersTotal != 2 || final.downloaded != 3001229 ||
			final.digest != "sha256:6603ebc28892da654bba2cf03a0545ea0f242d7db39fd48e467128d2b2834885" {
			t.Fatalf("round %d: final snapshot %+v", round, final)
		}
		if err := progress.streamError(); err != nil {
			t.Fatalf("round %d: stream error %v in a successful pull", round, err)
		}
	}
}

func TestPullProgressCatchesErrorsInTheStream(t *testing.T) {
	for name, stream := range map[string]string{
		"errorDetail":             `{"status":"Pulling fs layer","id":"a"}` + "\r\n" + `{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}` + "\r\n",
		"error only (old daemon)": `{"error":"unexpected EOF"}` + "\r\n",
		"last line unterminated":  `{"errorDetail":{"message":"unexpected EOF"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			progress := &pullProgress{}
			_, _ = io.WriteString(progress, stream)
			progress.finish()
			var streamErr *pullStreamError
			if err := progress.streamError(); !errors.As(err, &streamErr) || streamErr.message != "unexpected EOF" {
				t.Fatalf("stream error %v, want unexpected EOF", err)
			}
		})
	}
}

func TestPullProgressSurvivesGarbage(t *testing.T) {
	progress := &pullProgress{}
	_, _ = io.WriteString(progress, "not json\r\n{\"status\":\r\n")
	_, _ = progress.Write([]byte(strings.Repeat("x", maxProgressLine+1)))
	_, _ = io.WriteString(progress, "\n"+`{"status":"Already exists","id":"a"}`+"\n")
	progress.finish()
	if s := progress.snapshot(); s.layersDone != 1 || s.layersTotal != 1 || progress.streamError() != nil {
		t.Fatalf("after garbage: %+v, %v", s, progress.streamError())
	}
}
