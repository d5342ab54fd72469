package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runFixture is a directory with a stand-in executor that leaves a mark if
// it is ever started, and a sandbox path that must not be created.
type runFixture struct {
	dir, executor, marker, sandbox string
}

func newRunFixture(t *testing.T) runFixture {
	t.Helper()
	dir := t.TempDir()
	f := runFixture{
		dir:      dir,
		executor: filepath.Join(dir, "fake-executor"),
		marker:   filepath.Join(dir, "executor-was-started"),
		sandbox:  filepath.Join(dir, "sandbox"),
	}
	script := "#!/bin/sh\ntouch " + f.marker + "\n"
	if err := os.WriteFile(f.executor, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f runFixture) writeTask(t *testing.T, name, doc string) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertNothingStarted checks that neither a sandbox nor an executor came
// to be.
func (f runFixture) assertNothingStarted(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(f.sandbox); !os.IsNotExist(err) {
		t.Errorf("the sandbox %s was created (stat: %v)", f.sandbox, err)
	}
	if _, err := os.Stat(f.marker); !os.IsNotExist(err) {
		t.Errorf("the executor was started")
	}
}

func TestRunRefusesBadInputBeforeStartingAnything(t *testing.T) {
	f := newRunFixture(t)
	good := f.writeTask(t, "good.json", minimalTask)
	noImage := f.writeTask(t, "no-image.json", `{"container": {"type": "DOCKER", "docker": {"network": "BRIDGE"}}}`)
	wrongEnum := f.writeTask(t, "wrong-enum.json", `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "bridge"}}}`)
	notJSON := f.writeTask(t, "not-json.json", "container:\n  type: DOCKER\n")
	notExecutable := f.writeTask(t, "not-executable", "#!/bin/sh\n")
	base := []string{"-executor", f.executor, "-sandbox", f.sandbox}

	cases := []struct {
		name  string
		args  []string
		stdin string
		want  string // in stderr
	}{
		{"no task file", base, "", "name the task file (or - for standard input)"},
		{"two task files", append(base, good, good), "", "one task file only, got 2 arguments"},
		{"unknown flag", append([]string{"-bogus"}, good), "", "flag provided but not defined: -bogus"},
		{"negative timeout", append(base, "-timeout", "-1s", good), "", "-timeout must not be negative"},
		{"-timeout-ok alone", append(base, "-timeout-ok", good), "", "-timeout-ok needs -timeout"},
		{"-unhealthy-after with a real Sidecar", append(base, "-unhealthy-after", "1s", "-sidecar-url", "http://127.0.0.1:7777/state.json", good), "",
			"-unhealthy-after scripts the embedded Sidecar; it cannot be used with -sidecar-url"},
		{"bad Sidecar URL", append(base, "-sidecar-url", "localhost:7777", good), "", `-sidecar-url "localhost:7777" is not an http(s) URL`},
		{"-master without the operator's file", append(base, "-master", good), "", "-master needs -operator-env-var"},
		{"-master-agents without -master", append(base, "-master-agents", "a", good), "", "-master-agents names the agents of the embedded master: it needs -master"},
		{"bad -master-agents", append(base, "-master", "-operator-env-var", "X", "-master-agents", "a,b c", good), "", `-master-agents: "b c" is not a host name`},
		{"bad -operator-env-var", append(base, "-operator-env-var", "1X", good), "", `-operator-env-var "1X" is not a variable name`},
		{"bad -syslog-addr", append(base, "-syslog-addr", "127.0.0.1", good), "", `-syslog-addr "127.0.0.1" is not a UDP host:port`},
		{"missing executor", []string{"-executor", filepath.Join(f.dir, "nope"), "-sandbox", f.sandbox, good}, "", "-executor " + filepath.Join(f.dir, "nope") + ": stat"},
		{"executor not executable", []string{"-executor", notExecutable, "-sandbox", f.sandbox, good}, "", "is not executable"},
		{"missing task file", append(base, filepath.Join(f.dir, "missing.json")), "", "cannot read the task file: open " + filepath.Join(f.dir, "missing.json")},
		{"no image", append(base, noImage), "", noImage + ": container.docker.image: missing or empty"},
		{"unknown enum name", append(base, wrongEnum), "", wrongEnum + `: container.docker.network: "bridge" is not a known value; one of HOST, BRIDGE, NONE, USER`},
		{"not JSON", append(base, notJSON), "", notJSON + ": not valid JSON"},
		{"bad task on stdin", append(base, "-"), `{"container": {}}`, `standard input: container.type: missing; set it to "DOCKER"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
			f.assertNothingStarted(t)
		})
	}
}

func TestRunRefusesANonEmptySandbox(t *testing.T) {
	f := newRunFixture(t)
	if err := os.MkdirAll(filepath.Join(f.sandbox, "old-run"), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-executor", f.executor, "-sandbox", f.sandbox, f.writeTask(t, "t.json", minimalTask)}, nil, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "-sandbox "+f.sandbox+" is not empty") {
		t.Errorf("exit code %d, stderr %s", code, stderr.String())
	}
	if _, err := os.Stat(f.marker); !os.IsNotExist(err) {
		t.Error("the executor was started")
	}
}

func TestRunHelpListsExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, nil, &stdout, &stderr); code != 0 {
		t.Errorf("exit code %d", code)
	}
	for _, want := range []string{"Usage: mesos-local", "-timeout-ok", "-unhealthy-after", "host_port 0", "TASK_HOST, PORT, PORT0..PORTn", "EXECUTOR_SIDECAR_BACKOFF=1s", "Exit codes:", "124"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestRunCheckPrintsTheFilledInTaskAndStartsNothing(t *testing.T) {
	f := newRunFixture(t)
	doc := `{"name": "web", "container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [{"host_port": 0, "container_port": 80}]}}}`
	var stdout, stderr bytes.Buffer
	code := run([]string{"-check", "-sandbox", f.sandbox, "-"}, strings.NewReader(doc), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"standard input is a TaskInfo mesos-local can launch", "filled in: task_id web-", `"task_id": {`, `"name": "PORT0"`, `"name": "ports"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// What -check prints is itself a task file mesos-local accepts.
	body := out[strings.Index(out, "\n{")+1:]
	if _, err := parseTaskFile("check output", []byte(body)); err != nil {
		t.Errorf("the printed TaskInfo does not parse: %v", err)
	}
	f.assertNothingStarted(t)
}
