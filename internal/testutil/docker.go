package testutil

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

// RequireDockerEnv names the variable that, set to a true value, makes a
// missing Docker engine fail the tests that need one instead of skipping
// them. make test sets it; CI=true, which CI sets, counts the same.
const RequireDockerEnv = "SIDECAR_EXECUTOR_REQUIRE_DOCKER"

// DockerRequired reports whether a test that needs Docker must fail, rather
// than skip, when there is no engine or no test image.
func DockerRequired() bool {
	for _, name := range []string{"CI", RequireDockerEnv} {
		if required, err := strconv.ParseBool(os.Getenv(name)); err == nil && required {
			return true
		}
	}
	return false
}

// pingTimeout bounds the one check that an engine answers, so that a hung
// daemon fails the check instead of the test binary's timeout.
const pingTimeout = 15 * time.Second

var (
	engineOnce   sync.Once
	engineClient *docker.Client
	engineErr    error

	imagesMu    sync.Mutex
	imageErrors = map[string]error{} // image → the result of its one check
)

// RequireDocker returns a client for the Docker engine the environment names
// (DOCKER_HOST and friends) once it has checked, a single time per test
// binary, that the engine answers and that image is present. Otherwise it
// ends the test with one line saying what is missing and how to get it: a
// skip, so that go test ./... runs anywhere, or a failure when
// DockerRequired. Every test that needs Docker calls it (directly or through
// a helper) before anything else touches Docker, the way Nomad's Docker
// tests begin with DockerCompatible(t).
func RequireDocker(t testing.TB, image string) *docker.Client {
	t.Helper()
	engineOnce.Do(func() {
		engineClient, engineErr = docker.NewClientFromEnv()
		if engineErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
			defer cancel()
			engineErr = engineClient.PingWithContext(ctx)
		}
	})
	if engineErr != nil {
		missing(t, "needs a Docker engine, and none answers (%v); start one, e.g. with scripts/ensure-docker.sh", engineErr)
	}
	if image == "" {
		return engineClient
	}
	imagesMu.Lock()
	imageErr, checked := imageErrors[image]
	if !checked {
		_, imageErr = engineClient.InspectImage(image)
		imageErrors[image] = imageErr
	}
	imagesMu.Unlock()
	if imageErr != nil {
		missing(t, "needs the test image %s (%v); build it with: make test-image", image, imageErr)
	}
	return engineClient
}

// missing skips or fails t, and says which and why.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	message := fmt.Sprintf(format, args...)
	if DockerRequired() {
		t.Fatalf("%s (a failure, not a skip: CI=true or %s=1)", message, RequireDockerEnv)
	} else {
		t.Skipf("%s; CI=true makes this a failure", message)
	}
}
