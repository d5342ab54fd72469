package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// TestVaultSecretReachesContainerButNoLog resolves vault:// values through
// the real binary and checks the container holds the secrets while no
// output of the executor does, with debug logging on, in both log formats.
func TestVaultSecretReachesContainerButNoLog(t *testing.T) {
	requireDocker(t) // once for all subtests
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			const (
				token      = "hvs.token-never-logged-4711"
				dbPassword = "db-password-never-logged-8812"
				apiKey     = "api-value-never-logged-9923"
			)
			vault := vaulttest.NewServer(t)
			vault.MountKV("secret/", 2)
			vault.MountKV("legacy/", 1)
			vault.PutSecret("secret/billing/db", map[string]any{"password": dbPassword})
			vault.PutSecret("legacy/billing/api", map[string]any{"value": apiKey})
			vault.AddToken(token, time.Hour, "read:secret/billing/", "read:legacy/billing/")

			agent := newAgent(t, mesostest.Config{})
			task := newDockerTask(t, agent, testImage,
				withShellCommand(termRespecting),
				withEnv("DB_PASSWORD", "vault://secret/billing/db?key=password"),
				withEnv("BILLING_API", "vault://legacy/billing/api"),
				withEnv("PLAIN", "not-a-secret"))
			mustLaunch(t, agent, task)
			proc := startExecutor(t, agent, "VAULT_ADDR="+vault.URL(), "VAULT_TOKEN="+token, "VAULT_MAX_RETRIES=0",
				"EXECUTOR_DEBUG=true", "EXECUTOR_LOG_FORMAT="+format)
			waitRunning(t, agent, task, 60*time.Second)

			container := inspectTaskContainer(t, task.TaskID.Value)
			for _, want := range []string{"DB_PASSWORD=" + dbPassword, "BILLING_API=" + apiKey, "PLAIN=not-a-secret"} {
				if !slices.Contains(container.Config.Env, want) {
					t.Errorf("container environment lacks %s", strings.SplitN(want, "=", 2)[0])
				}
			}
			mustKill(t, agent, task.TaskID.Value, nil)
			waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
			proc.waitExit(t, 20*time.Second)

			output := proc.output()
			for _, secret := range []string{token, dbPassword, apiKey} {
				if strings.Contains(output, secret) {
					t.Errorf("a secret appeared in the executor's output")
				}
				for _, u := range agent.Updates() {
					if strings.Contains(u.Status.GetMessage(), secret) {
						t.Errorf("a secret appeared in a status message")
					}
				}
			}
			if !strings.Contains(output, "DB_PASSWORD") || !strings.Contains(output, "resolved from Vault") {
				t.Errorf("the log does not say which variables came from Vault")
			}
		})
	}
}

func TestVaultFailureFailsTheLaunch(t *testing.T) {
	t.Parallel()
	vault := vaulttest.NewServer(t)
	vault.MountKV("secret/", 2)
	vault.AddToken("hvs.reader", time.Hour, "read:secret/")
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand("true"),
		withEnv("DB_PASSWORD", "vault://secret/missing/db?key=password"))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, "VAULT_ADDR="+vault.URL(), "VAULT_TOKEN=hvs.reader", "VAULT_MAX_RETRIES=0",
		"VAULT_TOKEN_FILE="+filepath.Join(t.TempDir(), "token"))
	final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
		t.Fatalf("final %s/%s, want TASK_FAILED/REASON_CONTAINER_LAUNCH_FAILED", final.GetState(), final.GetReason())
	}
	for _, want := range []string{"DB_PASSWORD", "secret/missing/db"} {
		if !strings.Contains(final.GetMessage(), want) {
			t.Errorf("message %q does not name %s", final.GetMessage(), want)
		}
	}
	if code := proc.waitExit(t, 20*time.Second); code == 0 {
		t.Errorf("executor exited 0 after a failed launch")
	}
	assertNoContainer(t, task.TaskID.Value)
}
