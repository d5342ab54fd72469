package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestOperatorLineQuotesForTheExecutorsParser(t *testing.T) {
	cases := map[string]string{
		"plain":                   `V="plain"`,
		`a "quoted" $HOME and \ `: `V="a \"quoted\" \$HOME and \\ "`,
		"back`tick's":             "V=\"back\\`tick's\"",
		"":                        `V=""`,
	}
	for value, want := range cases {
		got, err := operatorLine("V", value)
		if err != nil || got != want {
			t.Errorf("operatorLine(%q) = %q, %v; want %q", value, got, err, want)
		}
	}
	_, err := operatorLine("VAULT_TOKEN", "hvs.first\nsecond")
	if err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") || strings.Contains(err.Error(), "hvs.first") {
		t.Errorf("a value over two lines: error %v, want one naming the variable, not the value", err)
	}
}

func TestWriteOperatorFileHoldsTheHostSettingsOnly(t *testing.T) {
	own := []string{"PATH=/bin", "HOME=/root", "DOCKER_HOST=unix:///d.sock", "VAULT_TOKEN=hvs.x", "EXECUTOR_ALLOWED_CAPABILITIES=NET_ADMIN", "USER=root"}
	f, err := writeOperatorFile(own, []string{"EXECUTOR_MESOS_MASTER_PORT=4242"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(f.path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the operator's file has mode %v (%v), want 0600", info.Mode().Perm(), err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")[1:] // after the comment
	want := []string{`DOCKER_HOST="unix:///d.sock"`, `VAULT_TOKEN="hvs.x"`, `EXECUTOR_ALLOWED_CAPABILITIES="NET_ADMIN"`, `EXECUTOR_MESOS_MASTER_PORT="4242"`}
	if !slices.Equal(lines, want) {
		t.Errorf("operator's file lines %q, want %q", lines, want)
	}
	f.remove()
	if _, err := os.Stat(f.dir); !os.IsNotExist(err) {
		t.Errorf("the operator file's directory is still there after remove (%v)", err)
	}
}

func TestExecutorEnvironmentWithTheOperatorFile(t *testing.T) {
	own := []string{"PATH=/bin", "DOCKER_HOST=unix:///d.sock", "VAULT_TOKEN=hvs.x", "EXECUTOR_DEBUG=true", "SIDECAR_EXECUTOR_PPROF_ADDR=127.0.0.1:0"}
	task := mesos.TaskInfo{Executor: &mesos.ExecutorInfo{Command: &mesos.CommandInfo{Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
		{Name: "EXECUTOR_SYSLOG_ADDR", Value: ptr("127.0.0.1:514")},
	}}}}}
	env := executorEnvironment(own, nil, task, envExtras{
		sidecarURL: "http://127.0.0.1:1/state.json", syslogAddr: "127.0.0.1:5514",
		operatorVar: "TEST_OPERATOR_ENV", operatorFile: "/tmp/x/environment",
	})
	want := []string{
		"EXECUTOR_SIDECAR_BACKOFF=1s",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=1s",
		"EXECUTOR_SIDECAR_DRAINING_DURATION=1s",
		"PATH=/bin",
		"SIDECAR_EXECUTOR_PPROF_ADDR=127.0.0.1:0",
		"EXECUTOR_SYSLOG_ADDR=127.0.0.1:5514",
		"EXECUTOR_SIDECAR_URL=http://127.0.0.1:1/state.json",
		"TEST_OPERATOR_ENV=/tmp/x/environment",
	}
	if !slices.Equal(env, want) {
		t.Errorf("environment\n got: %s\nwant: %s", strings.Join(env, "\n      "), strings.Join(want, "\n      "))
	}
}
