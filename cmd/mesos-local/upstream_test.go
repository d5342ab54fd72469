package main

// End to end: examples/upstream-deploy.json, a deploy as an operator
// migrating from upstream sidecar-executor has it (every upstream setting
// in its executor environment), runs unchanged through the built
// mesos-local and the built executor, with the real Docker engine, a real
// rsyslogd as the relay's collector, the emulated Vault (KV and the AWS
// engine) and mesos-local's embedded Mesos master and Sidecar.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/syslogtest"
	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// testOperatorEnvVar is the variable from which the test build of the
// executor reads the path of its operator's file (as in the root
// package's harness_test.go).
const testOperatorEnvVar = "SIDECAR_EXECUTOR_TEST_OPERATOR_ENV"

// upstreamSettings are upstream sidecar-executor's settings; the example
// must set every one (parity.md §1.2 and the README's Settings table).
var upstreamSettings = []string{
	"KILL_TASK_TIMEOUT", "HTTP_TIMEOUT", "SIDECAR_RETRY_COUNT", "SIDECAR_RETRY_DELAY", "SIDECAR_URL",
	"SIDECAR_BACKOFF", "SIDECAR_POLL_INTERVAL", "SIDECAR_MAX_FAILS", "SIDECAR_DRAINING_DURATION", "SEED_SIDECAR",
	"MESOS_MASTER_PORT", "DOCKER_REPOSITORY", "LOGS_SINCE", "FORCE_CPU_LIMIT", "FORCE_MEMORY_LIMIT", "USE_CPU_SHARES",
	"RELAY_SYSLOG", "RELAY_SYSLOG_STARTUP_ONLY", "RELAY_SYSLOG_STARTUP_TIME", "SYSLOG_ADDR", "CONTAINER_LOGS_STDOUT",
	"SEND_DOCKER_LABELS", "LOG_HOSTNAME", "AWS_ROLE", "AWS_ROLE_TTL", "AWS_ROLE_MAX_TTL", "DEBUG",
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestUpstreamDeployExampleSetsEveryUpstreamSetting: the example is what
// it claims to be, without running anything.
func TestUpstreamDeployExampleSetsEveryUpstreamSetting(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "examples", "upstream-deploy.json"))
	if err != nil {
		t.Fatal(err)
	}
	task, err := parseTaskFile("upstream-deploy.json", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range upstreamSettings {
		if _, ok := taskEnv(task, "EXECUTOR_"+name); !ok {
			t.Errorf("the example does not set EXECUTOR_%s", name)
		}
	}
	if addr, _ := taskEnv(task, "EXECUTOR_SYSLOG_ADDR"); addr != "127.0.0.1:514" {
		t.Errorf("EXECUTOR_SYSLOG_ADDR is %q, want upstream's default 127.0.0.1:514", addr)
	}
	if port, _ := taskEnv(task, "EXECUTOR_MESOS_MASTER_PORT"); port != "5050" {
		t.Errorf("EXECUTOR_MESOS_MASTER_PORT is %q, want upstream's default 5050", port)
	}
	var keys []string
	for _, p := range task.Container.Docker.Parameters {
		keys = append(keys, p.Key)
	}
	for _, want := range []string{"volume-driver", "env", "label", "cap-add", "cap-drop"} {
		if !slices.Contains(keys, want) {
			t.Errorf("the example has no %s Docker parameter", want)
		}
	}
}

// relayed is one datagram of the relay, decoded.
type relayed struct {
	raw    string
	fields map[string]string
}

// parseRelayed decodes a datagram as upstream's JSON object of string
// fields, and checks that its keys come sorted, as logrus writes them.
func parseRelayed(t *testing.T, raw string) relayed {
	t.Helper()
	fields := map[string]string{}
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatalf("a relayed line is not a JSON object of strings: %v: %s", err, raw)
	}
	var keys []string
	for _, m := range regexp.MustCompile(`(?:^\{|,)"([^"]+)":`).FindAllStringSubmatch(raw, -1) {
		keys = append(keys, m[1])
	}
	if len(keys) != len(fields) || !sort.StringsAreSorted(keys) {
		t.Errorf("a relayed line's keys %q are not upstream's sorted keys: %s", keys, raw)
	}
	return relayed{raw: raw, fields: fields}
}

func TestUpstreamDeployExample(t *testing.T) {
	t.Parallel()
	const (
		token    = "hvs.upstream-host-token-8841"
		password = "upstream-db-password-never-printed"
		logHost  = "mesos-agent-1.example.com"
	)
	vault := vaulttest.NewServer(t)
	vault.MountKV("secret/", 2)
	vault.PutSecret("secret/upstream-web/db", map[string]any{"password": password})
	vault.AddAWSRole("upstream-web", vaulttest.AWSRole{TTL: 2 * time.Hour})
	vault.AddToken(token, 2*time.Hour, "read:secret/upstream-web/", "read:aws/creds/", "update:sys/leases/revoke")
	collector := syslogtest.NewServer(t)

	r := startLocal(t, []string{
		"-master", "-master-agents", "agent-2.example.com",
		"-syslog-addr", collector.Addr(),
		"-operator-env-var", testOperatorEnvVar,
		"-timeout", "45s", "-timeout-ok",
		"examples/upstream-deploy.json",
	}, "VAULT_ADDR="+vault.URL(), "VAULT_TOKEN="+token, "VAULT_MAX_RETRIES=0")
	operatorPath := r.waitForLine(t, 30*time.Second, `^  operator file +(\S+) \(in `+testOperatorEnvVar+`; `)[1]
	r.waitForLine(t, 90*time.Second, `TASK_RUNNING .*healthy=true`)
	if code := r.wait(t, 120*time.Second); code != exitFinished {
		t.Errorf("exit code %d, want %d (a healthy service stopped by -timeout, with -timeout-ok)", code, exitFinished)
	}
	output := r.output.String()
	assertLinesInOrder(t, output,
		`^  master +embedded, http://127\.0\.0\.1:\d+/slaves \(master_hostname localhost\), agents `,
		`^  syslog +EXECUTOR_SYSLOG_ADDR=`+regexp.QuoteMeta(collector.Addr())+` \(-syslog-addr\)$`,
		`^ +\+\d+\.\d{3}s  TASK_STARTING `,
		`^ +\+\d+\.\d{3}s  TASK_RUNNING +message="container [0-9a-f]{12} is running"$`,
		`^ +\+\d+\.\d{3}s  TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=true  message="service [0-9a-f]{12} on Sidecar host `,
		`^ +\+\d+\.\d{3}s  kill +-timeout 45s reached: sending KILL`,
		`^ +\+\d+\.\d{3}s  TASK_KILLED +message="killed by the scheduler`,
		`^  exit code +0 `,
	)
	if _, err := os.Stat(operatorPath); !os.IsNotExist(err) {
		t.Errorf("the operator's file %s is still there after the run (%v)", operatorPath, err)
	}

	// The AWS engine issued one lease, and the executor revoked it at the
	// task's end.
	leases := vault.AWSLeases()
	if len(leases) != 1 {
		t.Fatalf("the AWS engine issued %d leases, want 1", len(leases))
	}
	lease := leases[0]
	if !lease.Revoked {
		t.Error("the AWS lease was not revoked at the task's end")
	}

	// What the container saw, from its relayed output: digests only.
	hostname, _ := os.Hostname()
	seeds := []string{hostname, "agent-2.example.com"}
	sort.Strings(seeds)
	wantPayloads := map[string]string{
		"SIDECAR_SEEDS=" + strings.Join(seeds, ","):                  "info",
		"AWS_ACCESS_KEY_ID sha256=" + sha256Hex(lease.AccessKey):     "info",
		"AWS_SECRET_ACCESS_KEY sha256=" + sha256Hex(lease.SecretKey): "info",
		"DB_PASSWORD sha256=" + sha256Hex(password):                  "info",
		"error: no cache configured, running without one":            "error",
		"starting upstream-web in production on " + hostname:         "info",
	}
	var messages []relayed
	testutil.Eventually(t, 20*time.Second, "the relayed lines at rsyslogd", func() bool {
		messages = messages[:0]
		for _, raw := range collector.Messages() {
			messages = append(messages, parseRelayed(t, raw))
		}
		found := 0
		for payload := range wantPayloads {
			if slices.ContainsFunc(messages, func(m relayed) bool { return strings.HasPrefix(m.fields["Payload"], payload) }) {
				found++
			}
		}
		return found == len(wantPayloads)
	})
	if len(messages) == 0 || !strings.HasPrefix(messages[0].fields["Payload"], "sidecar-executor starting log pump for '") {
		t.Errorf("the first relayed line is not upstream's log pump line: %+v", messages)
	}
	for _, m := range messages {
		for key, want := range map[string]string{"Hostname": logHost, "ServiceName": "upstream-web", "Environment": "prod"} {
			if m.fields[key] != want {
				t.Errorf("relayed line has %s=%q, want %q: %s", key, m.fields[key], want, m.raw)
			}
		}
		if _, err := time.Parse(time.RFC3339, m.fields["Timestamp"]); err != nil {
			t.Errorf("relayed line's Timestamp is not RFC 3339: %s", m.raw)
		}
		for payload, level := range wantPayloads {
			if strings.HasPrefix(m.fields["Payload"], payload) && m.fields["Level"] != level {
				t.Errorf("relayed line %q has Level %q, want %q", payload, m.fields["Level"], level)
			}
		}
	}

	// Every upstream setting is known: none is reported unknown or
	// unimplemented. The two that only the operator's file may set are
	// named as ignored, and taken from that file.
	executorLog := r.sandboxFile(t, "stdout") + r.sandboxFile(t, "stderr")
	for _, name := range upstreamSettings {
		for _, line := range strings.Split(executorLog, "\n") {
			if strings.Contains(line, "EXECUTOR_"+name+" (") && strings.Contains(line, "has no effect") {
				t.Errorf("the executor warned about an upstream setting: %s", line)
			}
		}
	}
	if strings.Contains(executorLog, "has no effect") {
		t.Errorf("the executor reported a setting without effect:\n%s", regexp.MustCompile(`(?m)^.*has no effect.*$`).FindAllString(executorLog, -1))
	}
	ignored := regexp.MustCompile(`operator-only settings; they are ignored.*variables="([^"]*)"`).FindStringSubmatch(executorLog)
	if ignored == nil || ignored[1] != "EXECUTOR_DOCKER_REPOSITORY EXECUTOR_MESOS_MASTER_PORT" {
		t.Errorf("the executor's note on ignored operator-only settings is %q, want EXECUTOR_DOCKER_REPOSITORY and EXECUTOR_MESOS_MASTER_PORT", ignored)
	}

	// No secret anywhere mesos-local or the executor wrote.
	for where, text := range map[string]string{"mesos-local's output": output, "the executor's log": executorLog} {
		for name, secret := range map[string]string{"the Vault token": token, "the password from Vault": password,
			"the AWS access key": lease.AccessKey, "the AWS secret key": lease.SecretKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s", where, name)
			}
		}
	}
	assertNoContainerLeft(t, r)
}
