package main

import (
	"slices"
	"strings"
	"testing"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestClosestSetting(t *testing.T) {
	known := knownSettingNames()
	for name, want := range map[string]string{
		"EXECUTOR_SIDECAR_MAX_FAIL":      "EXECUTOR_SIDECAR_MAX_FAILS",
		"EXECUTOR_ALOW_PRIVILEGED":       "EXECUTOR_ALLOW_PRIVILEGED",
		"EXECUTOR_KILLTASK_TIMEOUT":      "EXECUTOR_KILL_TASK_TIMEOUT",
		"EXECUTOR_SIDECAR_URI":           "EXECUTOR_SIDECAR_URL",
		"EXECUTOR_MAX_FAILS_SIDECAR":     "EXECUTOR_SIDECAR_MAX_FAILS",
		"executor_debug":                 "EXECUTOR_DEBUG",
		"EXECUTOR_ALLOWED_CAPABILITY":    "EXECUTOR_ALLOWED_CAPABILITIES",
		"EXECUTOR_SEED_SIDCAR":           "EXECUTOR_SEED_SIDECAR",
		"EXECUTOR_COMPLETELY_UNRELATED":  "",
		"EXECUTOR_X":                     "",
		"EXECUTOR_PULL_TIMEOUT_SECONDS":  "",
		"EXECUTOR_DOCKER_UNREACHABLE_TO": "",
	} {
		if got := closestSetting(name, known); got != want {
			t.Errorf("closestSetting(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"FAIL", "FAILS", 1}, {"ab", "ba", 2}} {
		if got := editDistance(c.a, c.b); got != c.want || editDistance(c.b, c.a) != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d both ways", c.a, c.b, got, c.want)
		}
	}
}

// TestUnknownSettingsFromEverySource: the task's environment and both
// operator files are checked, each variable named with where it is set.
func TestUnknownSettingsFromEverySource(t *testing.T) {
	env := testSettingsEnv(map[string]string{
		"EXECUTOR_ALOW_PRIVILEGED": "true", "EXECUTOR_DEBUG": "true", "VAULT_ADDR": "https://v", "EXECUTOR_LOGS_SINCE_X": "1m",
	}, "EXECUTOR_SIDECAR_MAX_FAIL=5", "EXECUTOR_KILL_TASK_TIMEOUT=3", "PATH=/bin", "EXECUTOR_PLACEHOLDER=")
	env.operatorPath = "/etc/sidecar-executor/environment"
	env.operatorOrigin = map[string]string{"EXECUTOR_LOGS_SINCE_X": upstreamEnvFile}
	got := env.unknownSettings(knownSettingNames())
	want := []unknownSetting{
		{name: "EXECUTOR_ALOW_PRIVILEGED", where: "/etc/sidecar-executor/environment", suggestion: "EXECUTOR_ALLOW_PRIVILEGED"},
		{name: "EXECUTOR_LOGS_SINCE_X", where: upstreamEnvFile, suggestion: "EXECUTOR_LOGS_SINCE"},
		{name: "EXECUTOR_PLACEHOLDER", where: "the task's environment"},
		{name: "EXECUTOR_SIDECAR_MAX_FAIL", where: "the task's environment", suggestion: "EXECUTOR_SIDECAR_MAX_FAILS"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("unknown\n got %+v\nwant %+v", got, want)
	}
}

// TestUnimplementedUpstreamSettingsAreSaidToBe: an upstream setting that is
// no setting here is reported as upstream's, not as a misspelling. The
// known list is cut down to make one so.
func TestUnimplementedUpstreamSettingsAreSaidToBe(t *testing.T) {
	known := slices.DeleteFunc(knownSettingNames(), func(name string) bool { return name == "EXECUTOR_SEED_SIDECAR" })
	got := testSettingsEnv(nil, "EXECUTOR_SEED_SIDECAR=true").unknownSettings(known)
	if len(got) != 1 || !got[0].upstream || !strings.Contains(got[0].message(), "a setting of upstream sidecar-executor that this executor does not implement") {
		t.Fatalf("got %+v", got)
	}
	// Every upstream setting this tree implements is known by its
	// upstream name.
	for _, u := range testSettingsEnv(nil, prefixed(upstreamSettingNames)...).unknownSettings(knownSettingNames()) {
		if !u.upstream {
			t.Errorf("%s is not marked as upstream's", u.name)
		}
	}
}

func prefixed(names []string) []string {
	var out []string
	for _, name := range names {
		out = append(out, envPrefix+"_"+name+"=1")
	}
	return out
}

func TestUnknownSettingsLogged(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	testSettingsEnv(nil, "EXECUTOR_SIDECAR_MAX_FAIL=secret-looking-value", "EXECUTOR_DEBUG=true").logUnknownSettings(log.NewEntry(logger))
	message, line := onlyWarning(t, hook)
	if !strings.Contains(message, "EXECUTOR_SIDECAR_MAX_FAIL (the task's environment) is not a setting of this executor and has no effect; did you mean EXECUTOR_SIDECAR_MAX_FAILS?") {
		t.Errorf("message %q", message)
	}
	if strings.Contains(line, "secret-looking-value") {
		t.Errorf("%q shows the value", line)
	}
	hook.Reset()
	testSettingsEnv(map[string]string{"EXECUTOR_DEBUG": "true"}, "EXECUTOR_KILL_TASK_TIMEOUT=3").logUnknownSettings(log.NewEntry(logger))
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("%d entries with only known settings", n)
	}
}
