package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// plantedSecrets are distinct values that must never leave the container.
var plantedSecrets = map[string]string{
	"VAULT_TOKEN":       "hvs.planted-vault-token-31337",
	"vault secret":      "planted-vault-value-27182",
	"registry password": "planted-registry-password-16180",
	"DB_PASSWORD":       "planted-db-password-14142",
	"APP_SECRET":        "planted-app-secret-17320",
	"SESSION_TOKEN":     "planted-session-token-22360",
	"STRIPE_API_KEY":    "planted-api-key-26457",
}

// secretsEnvironment prepares Vault, a Docker config holding a registry
// password, and the executor settings that make them reachable.
func secretsEnvironment(t *testing.T) (settings []string, taskOpts []taskOption) {
	t.Helper()
	vault := vaulttest.NewServer(t)
	vault.MountKV("secret/", 2)
	vault.PutSecret("secret/app/config", map[string]any{"value": plantedSecrets["vault secret"]})
	vault.AddToken(plantedSecrets["VAULT_TOKEN"], time.Hour, "read:secret/app/")

	home := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("deployer:" + plantedSecrets["registry password"]))
	config, err := json.Marshal(map[string]any{"auths": map[string]any{
		"127.0.0.1:1":                 map[string]string{"auth": auth},
		"https://index.docker.io/v1/": map[string]string{"auth": auth},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), config, 0o600); err != nil {
		t.Fatal(err)
	}
	settings = []string{"VAULT_ADDR=" + vault.Addr(), "VAULT_TOKEN=" + plantedSecrets["VAULT_TOKEN"], "VAULT_MAX_RETRIES=0", "HOME=" + home}
	taskOpts = []taskOption{
		withEnv("FROM_VAULT", "vault://secret/app/config"),
		withEnv("DB_PASSWORD", plantedSecrets["DB_PASSWORD"]),
		withEnv("APP_SECRET", plantedSecrets["APP_SECRET"]),
		withDockerParameter("env", "SESSION_TOKEN="+plantedSecrets["SESSION_TOKEN"]),
		withDockerParameter("env", "STRIPE_API_KEY="+plantedSecrets["STRIPE_API_KEY"]),
	}
	return settings, taskOpts
}

// TestSecretsNeverLeak runs tasks through every path with debug logging
// on, in both log formats, and looks for every planted secret in the
// executor's output and in every status message the agent received.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	paths := map[string]struct {
		image   string
		command string
		kill    bool
		force   bool
		want    mesos.TaskState
	}{
		"success":              {command: "true", want: mesos.TASK_FINISHED},
		"failure-logs-copied":  {command: `sh -c 'echo the app failed; echo it says so on stderr >&2; exit 4'`, want: mesos.TASK_FAILED},
		"kill":                 {command: termRespecting, kill: true, want: mesos.TASK_KILLED},
		"registry-pull-failed": {image: "127.0.0.1:1/private/app:1", force: true, want: mesos.TASK_FAILED},
	}
	for name, path := range paths {
		for _, format := range []string{"text", "json"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				t.Parallel()
				settings, taskOpts := secretsEnvironment(t)
				settings = append(settings, "EXECUTOR_DEBUG=true", "EXECUTOR_LOG_FORMAT="+format)
				agent := newAgent(t, mesostest.Config{})
				image := testImage
				if path.image != "" {
					image = path.image
				}
				opts := append(taskOpts, withShellCommand(path.command), func(task *mesos.TaskInfo) {
					task.Container.Docker.ForcePullImage = &path.force
				})
				task := newDockerTask(t, agent, image, opts...)
				mustLaunch(t, agent, task)
				proc := startExecutor(t, agent, settings...)
				if path.kill {
					waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
					mustKill(t, agent, task.TaskID.Value, nil)
				}
				final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
				if final.GetState() != path.want {
					t.Fatalf("final %s %q, want %s", final.GetState(), final.GetMessage(), path.want)
				}
				proc.waitExit(t, 30*time.Second)

				output := proc.output()
				for what, secret := range plantedSecrets {
					if strings.Contains(output, secret) {
						t.Errorf("the %s appeared in the executor's output", what)
					}
					for _, u := range agent.Updates() {
						if strings.Contains(u.Status.GetMessage(), secret) || strings.Contains(string(u.Status.Data), secret) {
							t.Errorf("the %s appeared in a %s status update", what, u.Status.GetState())
						}
					}
				}
				if path.want == mesos.TASK_FAILED && path.image == "" && !strings.Contains(output, "the app failed") {
					t.Errorf("the container's own output was not copied")
				}
			})
		}
	}
}

// TestSecretsInURLsAndHeadersNeverLogged plants secrets whose variable
// names say nothing (a proxy URL, VAULT_ADDR, VAULT_HEADERS, the Sidecar
// URL) in the executor's environment, logged at start-up, and in the
// container's, logged at launch.
func TestSecretsInURLsAndHeadersNeverLogged(t *testing.T) {
	t.Parallel()
	secrets := []string{"hunter2", "vault-pw-planted", "abc-planted-bearer", "sidecar-pw-planted"}
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand("true"),
		withEnv("HTTP_PROXY", "http://user:hunter2@proxy:3128"),
		withEnv("VAULT_ADDR", "https://u:vault-pw-planted@vault"),
		withEnv("VAULT_HEADERS", `{"Authorization":"Bearer abc-planted-bearer"}`))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent,
		"HTTP_PROXY=http://user:hunter2@proxy:3128",
		`VAULT_HEADERS={"Authorization":"Bearer abc-planted-bearer"}`,
		"EXECUTOR_SIDECAR_URL=http://admin:sidecar-pw-planted@127.0.0.1:1/state.json",
		"EXECUTOR_DEBUG=true")
	if final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second); final.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("final %s %q, want TASK_FINISHED", final.GetState(), final.GetMessage())
	}
	proc.waitExit(t, 30*time.Second)
	output := proc.output()
	for _, secret := range secrets {
		if strings.Contains(output, secret) {
			t.Errorf("%q appeared in the executor's output", secret)
		}
	}
	// The values are logged, with only their secret parts hidden.
	for _, want := range []string{"http://user:" + redactedValue + "@proxy:3128", "https://u:" + redactedValue + "@vault", "Docker environment of the container"} {
		if !strings.Contains(output, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
}
