package main

import (
	"slices"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestExecutorEnvironmentLayers(t *testing.T) {
	own := []string{
		"PATH=/usr/bin:/bin",
		"HOME=/root",
		"DOCKER_HOST=unix:///run/docker.sock",
		"VAULT_ADDR=http://127.0.0.1:8200",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=2s",      // overrides the demo setting
		"EXECUTOR_SIDECAR_URL=http://elsewhere/", // always replaced
		"SIDECAR_EXECUTOR_PPROF_ADDR=127.0.0.1:0",
		"AWS_SECRET_ACCESS_KEY=not-for-the-executor",
		"USER=root",
		"MESOS_SANDBOX=/wrong", // the agent's value wins
	}
	agentEnv := []string{"MESOS_SANDBOX=/sandbox", "MESOS_FRAMEWORK_ID=fw", "MESOS_EXECUTOR_ID=ex"}
	task := mesos.TaskInfo{Executor: &mesos.ExecutorInfo{Command: &mesos.CommandInfo{Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
		{Name: "TASK_HOST", Value: ptr("box1")},
		{Name: "EXECUTOR_SIDECAR_BACKOFF", Value: ptr("30s")}, // the task's setting wins
		{Name: "MESOS_EXECUTOR_ID", Value: ptr("from-task")},  // applied on top, as an agent does
		{Name: "SECRETLY", Type: mesos.Environment_Variable_SECRET.Enum()},
	}}}}}
	env := executorEnvironment(own, agentEnv, task, envExtras{sidecarURL: "http://127.0.0.1:4000/state.json"})

	want := []string{
		"EXECUTOR_SIDECAR_BACKOFF=30s",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=2s",
		"EXECUTOR_SIDECAR_DRAINING_DURATION=1s",
		"PATH=/usr/bin:/bin",
		"HOME=/root",
		"DOCKER_HOST=unix:///run/docker.sock",
		"VAULT_ADDR=http://127.0.0.1:8200",
		"EXECUTOR_SIDECAR_URL=http://127.0.0.1:4000/state.json",
		"SIDECAR_EXECUTOR_PPROF_ADDR=127.0.0.1:0",
		"MESOS_SANDBOX=/sandbox",
		"MESOS_FRAMEWORK_ID=fw",
		"MESOS_EXECUTOR_ID=from-task",
		"TASK_HOST=box1",
	}
	if !slices.Equal(env, want) {
		t.Errorf("environment\n got: %s\nwant: %s", strings.Join(env, "\n      "), strings.Join(want, "\n      "))
	}
}

func TestExecutorEnvironmentDemoDefaults(t *testing.T) {
	env := executorEnvironment(nil, []string{"MESOS_SANDBOX=/s"}, mesos.TaskInfo{}, envExtras{sidecarURL: "http://127.0.0.1:1/state.json"})
	want := []string{
		"EXECUTOR_SIDECAR_BACKOFF=1s",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=1s",
		"EXECUTOR_SIDECAR_DRAINING_DURATION=1s",
		"MESOS_SANDBOX=/s",
		"EXECUTOR_SIDECAR_URL=http://127.0.0.1:1/state.json",
	}
	if !slices.Equal(env, want) {
		t.Errorf("environment %q, want %q", env, want)
	}
}
