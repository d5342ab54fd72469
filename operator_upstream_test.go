package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// upstreamAssignments are lines the drop-in file reader accepts, with the
// value bash assigns.
var upstreamAssignments = []struct{ line, name, value string }{
	{`EXECUTOR_DEBUG=true`, "EXECUTOR_DEBUG", "true"},
	{`export VAULT_ADDR=https://vault.example:8200`, "VAULT_ADDR", "https://vault.example:8200"},
	{"export\tVAULT_ADDR=https://v", "VAULT_ADDR", "https://v"},
	{`  export EXECUTOR_SIDECAR_URL="http://localhost:7777/state.json"  # the local Sidecar`, "EXECUTOR_SIDECAR_URL", "http://localhost:7777/state.json"},
	{`VAULT_PASSWORD='p$ss "w0rd" $(not run)'`, "VAULT_PASSWORD", `p$ss "w0rd" $(not run)`},
	{`GREETING="say \"hi\" for \$5 \` + "`" + `x\` + "`" + ` a\b"`, "GREETING", "say \"hi\" for $5 `x` a\\b"},
	{`MIXED=a'b c'"d"\ e`, "MIXED", "ab cd e"},
	{`EMPTY=`, "EMPTY", ""},
	{`EMPTY_QUOTED=""`, "EMPTY_QUOTED", ""},
	{`HASH=a#b`, "HASH", "a#b"},
	{`PATHS=/a:/b/*.d,c=d`, "PATHS", "/a:/b/*.d,c=d"},
	{"CRLF=value\r", "CRLF", "value"},
	{`TILDE_INSIDE=a~b`, "TILDE_INSIDE", "a~b"},
}

func TestParseUpstreamLineAssignments(t *testing.T) {
	for _, c := range upstreamAssignments {
		name, value, ok, problem := parseUpstreamLine(c.line)
		if !ok || problem != "" || name != c.name || value != c.value {
			t.Errorf("%q: got %q=%q ok=%t problem %q; want %q=%q", c.line, name, value, ok, problem, c.name, c.value)
		}
	}
}

// TestParseUpstreamLineAgreesWithBash: every accepted line means to bash
// what it means here.
func TestParseUpstreamLineAgreesWithBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("this test compares the reader with bash, which is not installed")
	}
	for _, c := range upstreamAssignments {
		script := strings.TrimSuffix(c.line, "\r") + "\nprintf %s \"$" + c.name + "\""
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", script).Output()
		if err != nil {
			t.Errorf("bash on %q: %v", c.line, err)
			continue
		}
		if string(out) != c.value {
			t.Errorf("%q: bash assigns %q, the reader %q", c.line, out, c.value)
		}
	}
}

func TestParseUpstreamLineSkipsWhatNeedsAShell(t *testing.T) {
	for _, c := range []struct{ line, says string }{
		{`touch /tmp/marker`, "not a NAME=value assignment"},
		{`source /etc/other.sh`, "not a NAME=value assignment"},
		{`VAULT_TOKEN=$(cat /root/token)`, "runs a command ($(...))"},
		{"VAULT_TOKEN=`cat /root/token`", "runs a command"},
		{`X="$(id)"`, "runs a command ($(...))"},
		{`export PATH=$PATH:/opt/bin`, "expands a variable ($...)"},
		{`X="${HOME}/x"`, "expands a variable (${...})"},
		{`X=$((1+2))`, "arithmetic expansion"},
		{`X=~/certs`, "starts with ~"},
		{`X=a; rm -rf /tmp/x`, `shell operator ';'`},
		{`X=a && touch /tmp/y`, "followed by more text"},
		{`X=a b`, "followed by more text"},
		{`X=a|b`, `shell operator '|'`},
		{`X='unterminated`, "no closing single quote"},
		{`X="unterminated`, "no closing double quote"},
		{`X=continued\`, "continues on the next line"},
		{`1X=a`, "not a NAME=value assignment"},
		{`X =a`, "not a NAME=value assignment"},
		{`if true; then X=1; fi`, "not a NAME=value assignment"},
		{"X=a\x00b", "NUL byte"},
	} {
		_, _, ok, problem := parseUpstreamLine(c.line)
		if ok || !strings.Contains(problem, c.says) {
			t.Errorf("%q: ok=%t problem %q; want skipped because %q", c.line, ok, problem, c.says)
		}
		if strings.Contains(problem, "/tmp") || strings.Contains(problem, "/root/token") {
			t.Errorf("%q: the problem %q quotes the line", c.line, problem)
		}
	}
	for _, line := range []string{"", "   ", "# a comment", "  # export X=1", "export VAULT_ADDR"} {
		if _, _, ok, problem := parseUpstreamLine(line); ok || problem != "" {
			t.Errorf("%q: ok=%t problem %q; want nothing", line, ok, problem)
		}
	}
}

func writeUpstreamFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "executor-environment.sh")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUpstreamFileValuesAreTheOperators: the drop-in file's values count as
// the operator's (operator-only settings included), the /etc file wins
// where both set a variable, and skipped lines are warnings naming the
// file and line, not their content.
func TestUpstreamFileValuesAreTheOperators(t *testing.T) {
	upstream := writeUpstreamFile(t, strings.Join([]string{
		"#!/bin/bash",
		"export EXECUTOR_ALLOW_PRIVILEGED=true",
		"export EXECUTOR_KILL_TASK_TIMEOUT=9",
		"export VAULT_TOKEN=$(cat /secret/vault-token)",
		"EXECUTOR_LOGS_SINCE=7m",
	}, "\n")+"\n")
	operator := writeOperatorFile(t, "EXECUTOR_KILL_TASK_TIMEOUT=3\n")
	env, err := loadSettingsEnv(operator, upstream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustLoadConfig(t, env)
	if !cfg.AllowPrivileged || cfg.KillTaskTimeout != 3 || cfg.LogsSince.String() != "7m0s" {
		t.Errorf("privileged %t, kill timeout %d, logs since %s; want true (drop-in), 3 (/etc wins), 7m (drop-in)",
			cfg.AllowPrivileged, cfg.KillTaskTimeout, cfg.LogsSince)
	}
	if cfg.sources["EXECUTOR_ALLOW_PRIVILEGED"] != sourceOperator {
		t.Errorf("source %q, want operator", cfg.sources["EXECUTOR_ALLOW_PRIVILEGED"])
	}
	if got := env.operatorFileOf("EXECUTOR_LOGS_SINCE"); got != upstream {
		t.Errorf("EXECUTOR_LOGS_SINCE from %q, want the drop-in file", got)
	}
	if got := env.operatorFileOf("EXECUTOR_KILL_TASK_TIMEOUT"); got != operator {
		t.Errorf("EXECUTOR_KILL_TASK_TIMEOUT from %q, want the operator's file", got)
	}
	if _, set := env.operator["VAULT_TOKEN"]; set {
		t.Error("the command substitution's line was read")
	}
	if len(env.fileWarnings) != 1 || !strings.Contains(env.fileWarnings[0], upstream+" line 4 is skipped: the value of VAULT_TOKEN runs a command") ||
		strings.Contains(env.fileWarnings[0], "/secret/vault-token") {
		t.Errorf("warnings %q, want one naming line 4 and not quoting it", env.fileWarnings)
	}
}

func TestUpstreamFileMissingOrUnreadable(t *testing.T) {
	values, warnings, err := loadUpstreamEnv(filepath.Join(t.TempDir(), "missing.sh"))
	if err != nil || len(values) != 0 || len(warnings) != 0 {
		t.Errorf("missing file: %v %v %v; want nothing", values, warnings, err)
	}
	if values, _, err := loadUpstreamEnv(""); err != nil || len(values) != 0 {
		t.Errorf("no file: %v %v", values, err)
	}
	dir := t.TempDir()
	if _, _, err := loadUpstreamEnv(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a directory: error %v, want one naming it", err)
	}
	if _, err := loadSettingsEnv(filepath.Join(t.TempDir(), "missing"), dir); err == nil {
		t.Error("an unreadable drop-in file did not fail the settings")
	}
}

// TestUpstreamEnvPathIsFixedInProductionBuilds: without the link-time hook
// no environment, upstream's variable included, moves the drop-in file.
func TestUpstreamEnvPathIsFixedInProductionBuilds(t *testing.T) {
	t.Setenv("SIDECAR_EXECUTOR_TEST_OPERATOR_ENV", "/tmp/elsewhere")
	t.Setenv("SIDECAR_EXECUTOR_TEST_OPERATOR_ENV_UPSTREAM", "/tmp/elsewhere.sh")
	t.Setenv(upstreamEnvPathVariable, "/tmp/task-chosen.sh")
	if got := upstreamEnvPath(); got != "/opt/mesos/executor-environment.sh" {
		t.Fatalf("drop-in file %q, want /opt/mesos/executor-environment.sh", got)
	}
}

func TestCustomEnvPathIsIgnoredWithANote(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	env := testSettingsEnv(nil, upstreamEnvPathVariable+"=/mnt/mesos/sandbox/env.sh")
	env.fileWarnings = []string{"/opt/mesos/executor-environment.sh line 2 is skipped: it is not a NAME=value assignment"}
	env.logOperatorFileNotes(log.NewEntry(logger))
	entries := hook.AllEntries()
	if len(entries) != 2 || entries[0].Message != env.fileWarnings[0] ||
		!strings.Contains(entries[1].Message, "SIDECAR_EXECUTOR_CUSTOM_ENV_PATH is ignored") || entries[1].Level != log.WarnLevel {
		t.Fatalf("entries %v, want the file's warning and the note", entries)
	}
	hook.Reset()
	testSettingsEnv(nil).logOperatorFileNotes(log.NewEntry(logger))
	if len(hook.AllEntries()) != 0 {
		t.Errorf("%d entries with nothing to say", len(hook.AllEntries()))
	}
}

// FuzzParseUpstreamLine: any line is read, skipped with a reason, or
// ignored; an accepted value reads back the same from single quotes.
func FuzzParseUpstreamLine(f *testing.F) {
	for _, c := range upstreamAssignments {
		f.Add(c.line)
	}
	f.Add(`X=$(touch /tmp/x)`)
	f.Add(`export X="a\"b"`)
	f.Fuzz(func(t *testing.T, line string) {
		name, value, ok, problem := parseUpstreamLine(line)
		if ok && problem != "" {
			t.Fatalf("%q: accepted with a problem %q", line, problem)
		}
		if !ok {
			return
		}
		if !validVariableName(name) || strings.ContainsRune(value, 0) {
			t.Fatalf("%q: accepted %q=%q", line, name, value)
		}
		if strings.ContainsRune(value, '\'') || strings.ContainsAny(value, "\r\n") {
			return
		}
		again, valueAgain, okAgain, _ := parseUpstreamLine(name + "='" + value + "'")
		if !okAgain || again != name || valueAgain != value {
			t.Fatalf("%q: %q=%q does not read back from single quotes", line, name, value)
		}
	})
}

// TestInvalidDropInValueNamesTheFile: an invalid value names the file it
// came from, not just "the operator's".
func TestInvalidDropInValueNamesTheFile(t *testing.T) {
	upstream := writeUpstreamFile(t, "export EXECUTOR_KILL_TASK_TIMEOUT=soon\n")
	env, err := loadSettingsEnv(filepath.Join(t.TempDir(), "missing"), upstream)
	if err != nil {
		t.Fatal(err)
	}
	_, err = loadConfigFrom(env)
	if err == nil || !strings.Contains(err.Error(), "EXECUTOR_KILL_TASK_TIMEOUT=\"soon\" in "+upstream) {
		t.Fatalf("error %v, want one naming the drop-in file", err)
	}
}
