package main

// End to end: where settings come from. Upstream's drop-in file,
// /opt/mesos/executor-environment.sh, through executor.sh and the real
// binary on the real Docker engine: its assignments are the operator's,
// its commands are never run. And no EXECUTOR_* variable is ignored
// without a warning.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

func TestUpstreamDropInFileOnRealDocker(t *testing.T) {
	t.Parallel()
	markers := t.TempDir()
	commandMarker := filepath.Join(markers, "command-ran")
	substitutionMarker := filepath.Join(markers, "substitution-ran")
	taskFileMarker := filepath.Join(markers, "task-file-sourced")
	dropIn := filepath.Join(t.TempDir(), "executor-environment.sh")
	if err := os.WriteFile(dropIn, []byte(strings.Join([]string{
		"#!/bin/bash",
		"# the operator's upstream settings",
		"export EXECUTOR_ALLOWED_CAPABILITIES=NET_ADMIN",
		"touch " + commandMarker,
		"export EXECUTOR_DEBUG=$(touch " + substitutionMarker + ")",
	}, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Upstream's variable for another file, set by the task: ignored.
	taskFile := filepath.Join(t.TempDir(), "task-environment.sh")
	if err := os.WriteFile(taskFile, []byte("touch "+taskFileMarker+"\nexport EXECUTOR_ALLOW_PRIVILEGED=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	agent := newAgent(t, mesostest.Config{})
	// Admitted only with the drop-in file's capability exception.
	task := newDockerTask(t, agent, testImage, withShellCommand("true"), withDockerParameter("cap-add", "NET_ADMIN"))
	mustLaunch(t, agent, task)
	proc := startWrapper(t, agent, testWrapper(t, requireExecutorBinary(t)),
		testOperatorEnvVar+"_UPSTREAM="+dropIn, "SIDECAR_EXECUTOR_CUSTOM_ENV_PATH="+taskFile)
	expectFinal(t, agent, task.TaskID.Value, 90*time.Second, mesos.TASK_FINISHED)
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)

	for _, marker := range []string{commandMarker, substitutionMarker, taskFileMarker} {
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("%s exists: a command was run", filepath.Base(marker))
		}
	}
	out := proc.output()
	for _, want := range []string{
		dropIn + " line 4 is skipped: it is not a NAME=value assignment",
		dropIn + " line 5 is skipped: the value of EXECUTOR_DEBUG runs a command",
		"SIDECAR_EXECUTOR_CUSTOM_ENV_PATH is ignored",
		"AllowedCapabilities=\"NET_ADMIN (operator)\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the executor's log lacks %q", want)
		}
	}
	if strings.Contains(out, substitutionMarker) {
		t.Error("the log quotes a skipped line")
	}
}

// TestUnknownSettingsWarnedOnRealDocker: a misspelt setting in the task's
// environment and one in the operator's file are each named in a warning
// with the setting they were probably meant to be, and the task runs.
func TestUnknownSettingsWarnedOnRealDocker(t *testing.T) {
	t.Parallel()
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand("true")},
		"EXECUTOR_SIDECAR_MAX_FAIL=5", withOperatorFile(t, "EXECUTOR_ALOW_PRIVILEGED=true"))
	expectFinal(t, agent, task.TaskID.Value, 90*time.Second, mesos.TASK_FINISHED)
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)
	out := proc.output()
	for _, want := range []string{
		"EXECUTOR_SIDECAR_MAX_FAIL (the task's environment) is not a setting of this executor and has no effect; did you mean EXECUTOR_SIDECAR_MAX_FAILS?",
		"is not a setting of this executor and has no effect; did you mean EXECUTOR_ALLOW_PRIVILEGED?",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the executor's log lacks %q:\n%s", want, out)
		}
	}
}
