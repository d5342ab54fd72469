package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReportKeepsTheHandWrittenPart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := writeReport(path, "# first run\n"+generatedEnd+"\n"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(data, []byte("\n## Analysis\nkept by hand\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(path, "# second run\n"+generatedEnd+"\n"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	got := string(data)
	if !strings.HasPrefix(got, "# second run\n") || strings.Contains(got, "first run") {
		t.Errorf("the generated part was not replaced:\n%s", got)
	}
	if !strings.HasSuffix(got, generatedEnd+"\n\n## Analysis\nkept by hand\n") {
		t.Errorf("the hand-written part was not kept:\n%s", got)
	}
}

func TestNormalisePath(t *testing.T) {
	cases := []struct{ in, path, container string }{
		{"/v1.41/containers/abc123/json", "/containers/{id}/json", "abc123"},
		{"/containers/create", "/containers/create", ""},
		{"/v1.41/containers/json", "/containers/json", ""},
		{"/images/sidecar-executor/busybox:1.35/json", "/images/{name}/json", ""},
		{"/_ping", "/_ping", ""},
	}
	for _, c := range cases {
		path, container := normalisePath(c.in)
		if path != c.path || container != c.container {
			t.Errorf("normalisePath(%q) = %q, %q; want %q, %q", c.in, path, container, c.path, c.container)
		}
	}
}

func TestParseIdleConfigs(t *testing.T) {
	got, err := parseIdleConfigs("30s:1000, 1s:10000")
	if err != nil || len(got) != 2 || got[0].Services != 1000 || got[1].Interval.Seconds() != 1 {
		t.Fatalf("parseIdleConfigs = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "30s", "x:1", "30s:0", "-1s:5"} {
		if _, err := parseIdleConfigs(bad); err == nil {
			t.Errorf("parseIdleConfigs(%q) accepted", bad)
		}
	}
}

func TestParseStatPPID(t *testing.T) {
	// The command name may hold spaces and parentheses: fields are counted
	// from the last ')'.
	line := []byte("4242 (sh (x) y) S 17 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
	if ppid, err := parseStatPPID(line); err != nil || ppid != 17 {
		t.Fatalf("parseStatPPID = %d, %v; want 17", ppid, err)
	}
	if _, err := parseStatPPID([]byte("4242 sh S")); err == nil {
		t.Error("a stat line without ')' was accepted")
	}
}

// TestContainerNameMatchesTheExecutor holds the bench's container names to
// the executor's (dockerspec.go containerName): the same vector is checked
// against the executor in container_name_bench_test.go.
func TestContainerNameMatchesTheExecutor(t *testing.T) {
	const framework, task = "ae9002ae-cde7-43fb-8abd-9a1b8757f5c0-0000", "bench-0dd36acb-kill-3"
	if got, want := containerNameFor(framework, task), "mesos-bench-0dd36acb-kill-3_6d8f0be089bf"; got != want {
		t.Fatalf("containerNameFor = %q, want %q", got, want)
	}
}
