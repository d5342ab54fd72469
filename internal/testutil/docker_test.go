package testutil

import (
	"fmt"
	"strings"
	"testing"
)

func TestDockerRequired(t *testing.T) {
	for _, c := range []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"false", "0", false},
		{"true", "", true},
		{"", "1", true},
		{"1", "", true},
		{"yes", "", false}, // not a boolean: the default, a skip
	} {
		t.Setenv("CI", c.ci)
		t.Setenv(RequireDockerEnv, c.require)
		if got := DockerRequired(); got != c.want {
			t.Errorf("CI=%q %s=%q: DockerRequired() = %v, want %v", c.ci, RequireDockerEnv, c.require, got, c.want)
		}
	}
}

// recorder is a testing.TB that records how the test was ended.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestMissingSkipsUnlessRequired(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv(RequireDockerEnv, "")
	var r recorder
	missing(&r, "needs a Docker engine (%s)", "no socket")
	if r.failed != "" || !strings.HasPrefix(r.skipped, "needs a Docker engine (no socket)") || !strings.Contains(r.skipped, "CI=true makes this a failure") {
		t.Errorf("skipped %q, failed %q", r.skipped, r.failed)
	}

	t.Setenv("CI", "true")
	r = recorder{}
	missing(&r, "needs a Docker engine (%s)", "no socket")
	if r.skipped != "" || !strings.HasPrefix(r.failed, "needs a Docker engine (no socket)") {
		t.Errorf("under CI=true: skipped %q, failed %q", r.skipped, r.failed)
	}
}
