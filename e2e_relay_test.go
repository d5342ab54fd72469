package main

// End-to-end tests of the log relay: the real executor, a real container's
// output, a real rsyslogd as the collector (internal/syslogtest).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/syslogtest"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// relayedOf are the received messages whose Stream is stream, in order.
func relayedOf(messages []string, stream string) []string {
	var out []string
	for _, m := range messages {
		if strings.Contains(m, `"Stream":"`+stream+`"`) {
			out = append(out, m)
		}
	}
	return out
}

// containerFromLog is the short container ID the executor's log names.
var containerFromLog = regexp.MustCompile(`container=([0-9a-f]{12})\b`)

func TestRelayE2EPayloadsLabelsAndLevels(t *testing.T) {
	t.Parallel()
	collector := syslogtest.NewServer(t)
	from := time.Now()
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(`sh -c 'echo "hello <stdout>"; echo "an ERROR on stderr" >&2; echo "a warning" >&2; printf "no newline at end"'`),
		withDockerParameter("label", "ServiceName=billing"),
		withDockerParameter("label", "team=pay&co"),
		withDockerParameter("label", "Level=shadowed"),
		withLabel("region", "eu"), // TaskInfo.labels: not relayed
	}, "EXECUTOR_RELAY_SYSLOG=true", "EXECUTOR_SYSLOG_ADDR="+collector.Addr(), "EXECUTOR_LOG_HOSTNAME=agent-e2e",
		"EXECUTOR_SEND_DOCKER_LABELS=ServiceName,team,region,sidecar-executor.task-id,Level,absent", "EXECUTOR_CONTAINER_LOGS_STDOUT=true")
	taskID := task.TaskID.Value
	expectFinal(t, agent, taskID, 60*time.Second, mesos.TASK_FINISHED)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("executor exit code %d", code)
	}
	to := time.Now()

	match := containerFromLog.FindStringSubmatch(proc.stdout.String())
	if match == nil {
		t.Fatal("the executor's log names no container")
	}
	fields := func(level, payload, stream string) string {
		object := `{"Hostname":"agent-e2e","Level":"` + level + `","Payload":"` + payload + `","ServiceName":"billing",`
		if stream != "" {
			object += `"Stream":"` + stream + `",`
		}
		return object + `"Timestamp":"T","fields.Level":"shadowed","sidecar-executor.task-id":"` + taskID + `","team":"pay\u0026co"}`
	}
	wantStdout := []string{fields("info", `hello \u003cstdout\u003e`, "stdout"), fields("info", "no newline at end", "stdout")}
	wantStderr := []string{fields("error", "an ERROR on stderr", "stderr"), fields("info", "a warning", "stderr")}
	eventually(t, 20*time.Second, "rsyslogd to write every line", func() bool { return len(collector.Messages()) >= 5 })
	messages := collector.Messages()
	if len(messages) != 5 {
		t.Fatalf("rsyslogd received %d messages, want 5: %q", len(messages), messages)
	}
	for i := range messages {
		messages[i] = withoutTimestamp(t, messages[i], from, to)
	}
	if want := fields("info", "sidecar-executor starting log pump for '"+match[1]+"'", ""); messages[0] != want {
		t.Errorf("first message\n got %s\nwant %s", messages[0], want)
	}
	if got := relayedOf(messages, "stdout"); !slices.Equal(got, wantStdout) {
		t.Errorf("stdout lines\n got %q\nwant %q", got, wantStdout)
	}
	if got := relayedOf(messages, "stderr"); !slices.Equal(got, wantStderr) {
		t.Errorf("stderr lines\n got %q\nwant %q", got, wantStderr)
	}
	out := proc.output()
	if n := strings.Count(out, "EXECUTOR_CONTAINER_LOGS_STDOUT is set"); n != 1 {
		t.Errorf("EXECUTOR_CONTAINER_LOGS_STDOUT logged %d times, want once", n)
	}
	report := regexp.MustCompile(`msg="log relay finished" .*`).FindString(out)
	for _, count := range []string{" dropped=0 ", " failed=0 ", " relayed=5 "} {
		if !strings.Contains(report, count) {
			t.Errorf("the final report %q lacks %s", report, count)
		}
	}
	// The relay does not replace the sandbox: the raw lines are there too.
	if !strings.Contains(proc.stdout.String(), "hello <stdout>\n") || !strings.Contains(proc.stderr.String(), "an ERROR on stderr\n") {
		t.Errorf("the container's raw output is missing from the sandbox")
	}
}

// sandboxGate is a shell loop that waits until the test creates the file
// go in the sandbox.
const sandboxGate = `while [ ! -f /mnt/mesos/sandbox/go ]; do sleep 0.05; done`

func openGate(t *testing.T, proc *executorProcess) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(proc.sandbox, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRelayE2EStartupWindow: with RELAY_SYSLOG_STARTUP_ONLY alone, lines
// are relayed during the window only; the container is held until the
// executor has logged the window's end, then writes more, which reach the
// sandbox and not the collector.
func TestRelayE2EStartupWindow(t *testing.T) {
	t.Parallel()
	collector := syslogtest.NewServer(t)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(`sh -c 'echo early; ` + sandboxGate + `; echo late'`),
	}, "EXECUTOR_RELAY_SYSLOG_STARTUP_ONLY=true", "EXECUTOR_RELAY_SYSLOG_STARTUP_TIME=5s", "EXECUTOR_SYSLOG_ADDR="+collector.Addr())
	eventually(t, 60*time.Second, "the early line at rsyslogd", func() bool {
		return len(relayedOf(collector.Messages(), "stdout")) == 1
	})
	eventually(t, 30*time.Second, "the end of the startup window", func() bool {
		return strings.Contains(proc.output(), "the startup window is over; the relay stopped")
	})
	openGate(t, proc)
	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	proc.waitExit(t, 20*time.Second)
	if !strings.Contains(proc.stdout.String(), "late\n") {
		t.Fatal("the late line is missing from the sandbox")
	}
	got := relayedOf(collector.Messages(), "stdout")
	if len(got) != 1 || !strings.Contains(got[0], `"Payload":"early"`) {
		t.Errorf("relayed %q, want the early line only", got)
	}
}

// TestRelayE2ECollectorStopsMidTask: rsyslogd stops while the container
// writes; the task runs to its normal end, the sandbox has every line,
// and the executor's log counts the failed sends without showing a line.
func TestRelayE2ECollectorStopsMidTask(t *testing.T) {
	t.Parallel()
	collector := syslogtest.NewServer(t)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(`sh -c 'i=0; while [ ! -f /mnt/mesos/sandbox/go ]; do echo "line $i"; i=$((i+1)); sleep 0.02; done; echo "last $i"'`),
	}, "EXECUTOR_RELAY_SYSLOG=true", "EXECUTOR_SYSLOG_ADDR="+collector.Addr())
	eventually(t, 60*time.Second, "lines at rsyslogd", func() bool { return len(relayedOf(collector.Messages(), "stdout")) >= 5 })
	collector.Stop()
	eventually(t, 30*time.Second, "a failed send in the executor's log", func() bool {
		return strings.Contains(proc.output(), "a send to the log collector failed")
	})
	openGate(t, proc)
	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("executor exit code %d", code)
	}

	// Every line, in order, up to the last, is in the sandbox.
	var numbers []int
	last := -1
	for _, line := range strings.Split(proc.stdout.String(), "\n") {
		if n, ok := strings.CutPrefix(line, "line "); ok {
			v, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("bad line %q", line)
			}
			numbers = append(numbers, v)
		} else if n, ok := strings.CutPrefix(line, "last "); ok {
			last, _ = strconv.Atoi(n)
		}
	}
	if last < 0 || len(numbers) != last {
		t.Fatalf("sandbox has %d numbered lines, last %d: the output is incomplete", len(numbers), last)
	}
	for i, n := range numbers {
		if n != i {
			t.Fatalf("sandbox line %d is %d: lines lost or reordered", i, n)
		}
	}
	out := proc.output()
	report := regexp.MustCompile(`msg="log relay finished; some lines did not reach the log collector" .*failed=(\d+)`).FindStringSubmatch(out)
	if report == nil {
		t.Fatal("no final report of the failed sends")
	}
	if failed, _ := strconv.Atoi(report[1]); failed == 0 {
		t.Errorf("final report counts no failure: %s", report[0])
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "log relay") && strings.Contains(line, "line ") {
			t.Errorf("a relayed line reached a report: %s", line)
		}
	}
}

// TestRelayE2EMasksValuesFromVault: a container that prints the secret it
// got from Vault. The secret is the container's output: the sandbox has it
// as written. The relay masks it, and the executor's own log lines never
// hold it.
func TestRelayE2EMasksValuesFromVault(t *testing.T) {
	t.Parallel()
	const token, dbPassword = "hvs.relay-token-5813", "relay-db-password-2134"
	vault := vaulttest.NewServer(t)
	vault.MountKV("secret/", 2)
	vault.PutSecret("secret/billing/db", map[string]any{"password": dbPassword})
	vault.AddToken(token, time.Hour, "read:secret/billing/")
	collector := syslogtest.NewServer(t)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(`sh -c 'echo "connecting with $DB_PASSWORD"'`),
		withEnv("DB_PASSWORD", "vault://secret/billing/db?key=password"),
	}, "VAULT_ADDR="+vault.URL(), "VAULT_TOKEN="+token, "VAULT_MAX_RETRIES=0",
		"EXECUTOR_RELAY_SYSLOG=true", "EXECUTOR_SYSLOG_ADDR="+collector.Addr())
	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	proc.waitExit(t, 20*time.Second)

	eventually(t, 20*time.Second, "the relayed line", func() bool { return len(relayedOf(collector.Messages(), "stdout")) == 1 })
	if got := relayedOf(collector.Messages(), "stdout")[0]; !strings.Contains(got, `"Payload":"connecting with [REDACTED]"`) {
		t.Errorf("relayed %s: the value from Vault must be masked", got)
	}
	for _, m := range collector.Messages() {
		if strings.Contains(m, dbPassword) {
			t.Errorf("the collector received the secret: %s", m)
		}
	}
	if !strings.Contains(proc.stdout.String(), fmt.Sprintf("connecting with %s\n", dbPassword)) {
		t.Errorf("the sandbox must hold the container's output as written")
	}
	for _, line := range strings.Split(proc.output(), "\n") {
		if strings.Contains(line, "msg=") && (strings.Contains(line, dbPassword) || strings.Contains(line, token)) {
			t.Errorf("an executor log line holds a secret: %s", line)
		}
	}
}
