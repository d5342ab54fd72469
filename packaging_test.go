package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// environmentSample is the operator's file shipped in the release tarball.
const environmentSample = "packaging/environment.sample"

// sampleAssignments returns the sample's commented-out assignments
// ("# NAME=value" lines) as the operator's file they make once uncommented.
func sampleAssignments(t *testing.T) (lines []string, names []string) {
	t.Helper()
	data, err := os.ReadFile(environmentSample)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
			t.Errorf("%s: %q is not commented out: the sample must change nothing as shipped", environmentSample, line)
		}
		rest, ok := strings.CutPrefix(line, "# ")
		if !ok {
			continue
		}
		name, _, isAssignment := strings.Cut(rest, "=")
		if !isAssignment || !validVariableName(name) || strings.ToUpper(name) != name {
			continue
		}
		lines = append(lines, rest)
		names = append(names, name)
	}
	return lines, names
}

// TestEnvironmentSampleListsEverySetting keeps packaging/environment.sample
// in step with Config: every setting appears once, commented out, at its
// default, and uncommenting every line changes nothing. A new setting
// fails this test until the sample shows it.
func TestEnvironmentSampleListsEverySetting(t *testing.T) {
	lines, names := sampleAssignments(t)
	seen := map[string]int{}
	for _, name := range names {
		seen[name]++
	}
	var cfg Config
	settings := configSettings(&cfg)
	known := map[string]bool{}
	for _, setting := range settings {
		known[setting.name] = true
		if seen[setting.name] != 1 {
			t.Errorf("%s appears %d times in %s, want once, commented out at its default", setting.name, seen[setting.name], environmentSample)
			continue
		}
		// EXECUTOR_DOCKER_REPOSITORY is shown empty: setting it to its
		// built-in value would make it a fallback for every registry.
		if setting.name == envPrefix+"_DOCKER_REPOSITORY" {
			continue
		}
		want := "# " + setting.name + "=" + setting.defaultValue
		if !slices.Contains(sampleLines(t), want) {
			t.Errorf("%s does not show %q", environmentSample, want)
		}
	}
	for _, name := range operatorOnlyNames {
		if name != "HOME" && seen[name] == 0 {
			t.Errorf("the operator-only %s is missing from %s", name, environmentSample)
		}
	}
	for name := range seen {
		if !known[name] && !isOperatorOnly(name) {
			t.Errorf("%s sets %s, which is neither a setting nor an operator-only variable", environmentSample, name)
		}
	}

	// Each stands in its section: operator-only first, then task-tunable.
	taskSection := false
	for _, line := range sampleLines(t) {
		if strings.HasPrefix(line, "## Task-tunable") {
			taskSection = true
		}
		rest, ok := strings.CutPrefix(line, "# ")
		name, _, isAssignment := strings.Cut(rest, "=")
		if ok && isAssignment && seen[name] > 0 && isOperatorOnly(name) == taskSection {
			t.Errorf("%s stands in the wrong section of %s (operator-only: %v)", name, environmentSample, isOperatorOnly(name))
		}
	}

	// Uncommented, the sample is a valid operator's file that gives
	// exactly the defaults.
	path := filepath.Join(t.TempDir(), "environment")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	operator, err := loadOperatorEnv(path)
	if err != nil {
		t.Fatalf("the uncommented sample is not a valid operator's file: %v", err)
	}
	uncommented, err := loadConfigFrom(newSettingsEnv(path, operator, nil))
	if err != nil {
		t.Fatalf("the uncommented sample is not valid: %v", err)
	}
	defaults, err := loadConfigFrom(newSettingsEnv("", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withoutSources(uncommented), withoutSources(defaults)) {
		t.Errorf("uncommenting the sample changes the settings:\n got %+v\nwant %+v", withoutSources(uncommented), withoutSources(defaults))
	}
}

func sampleLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(environmentSample)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}
