package main

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/registrytest"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// plantedSecrets are distinct values that must never leave the container,
// and the host's credentials, which must never reach a server the task
// chose either.
var plantedSecrets = map[string]string{
	"VAULT_TOKEN":         "hvs.planted-vault-token-31337",
	"host Vault password": "planted-host-vault-password-11235",
	"vault secret":        "planted-vault-value-27182",
	"registry password":   "planted-registry-password-16180",
	"DB_PASSWORD":         "planted-db-password-14142",
	"APP_SECRET":          "planted-app-secret-17320",
	"SESSION_TOKEN":       "planted-session-token-22360",
	"STRIPE_API_KEY":      "planted-api-key-26457",
}

// secretsFixture holds the servers the task chose; the host's
// credentials must never reach them.
type secretsFixture struct {
	taskVault    *vaulttest.Server
	taskRegistry *registrytest.Server
	// hostVault is the operator's, which issues the task's AWS keys.
	hostVault *vaulttest.Server
}

// secretsEnvironment prepares the operator's Vault (a userpass login, and
// an expired token cached in the token file), a host Docker config holding
// a registry password, the operator file that makes them reachable, and a
// task environment that points Vault, the credential fallback and the
// Docker config at places of the task's choosing.
func secretsEnvironment(t *testing.T) (settings []string, taskOpts []taskOption, chosen secretsFixture) {
	t.Helper()
	vault := vaulttest.NewServer(t)
	vault.MountKV("secret/", 2)
	vault.PutSecret("secret/app/config", map[string]any{"value": plantedSecrets["vault secret"]})
	// The task's AWS credentials come from the host's Vault too, with a
	// session token (an STS role), and are revoked at the task's end.
	vault.AddAWSRole("app", vaulttest.AWSRole{CredentialType: vaulttest.AWSAssumedRole})
	vault.AddUserpass("executor", plantedSecrets["host Vault password"], "read:secret/app/", "read:aws/creds/app", "update:sys/leases/revoke")
	chosen.hostVault = vault
	// The cached token has expired: the executor tries it, then logs in.
	vault.AddToken(plantedSecrets["VAULT_TOKEN"], time.Hour, "read:secret/app/")
	vault.ExpireToken(plantedSecrets["VAULT_TOKEN"])
	tokenFile := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(tokenFile, []byte(plantedSecrets["VAULT_TOKEN"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	chosen.taskVault = vaulttest.NewServer(t)
	chosen.taskVault.MountKV("secret/", 2)
	chosen.taskVault.PutSecret("secret/app/config", map[string]any{"value": "the-task-vault-answered"})
	chosen.taskVault.Watch(plantedSecrets["VAULT_TOKEN"], plantedSecrets["host Vault password"])
	chosen.taskRegistry = registrytest.NewServer(t, map[string]string{"task-user": "task-password"})

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
	settings = []string{
		withOperatorFile(t, "VAULT_ADDR="+vault.URL(), "VAULT_USERNAME=executor",
			"VAULT_PASSWORD='"+plantedSecrets["host Vault password"]+"'", "VAULT_TOKEN_FILE="+tokenFile,
			"VAULT_MAX_RETRIES=0", "DOCKER_CONFIG="+filepath.Join(home, ".docker")),
		// What the task would like: its own Vault without a token (so the
		// host's login would go there), Docker Hub's credentials sent to
		// any registry, and the host's Docker config under its HOME.
		"VAULT_ADDR=" + chosen.taskVault.URL(), "EXECUTOR_DOCKER_REPOSITORY=https://index.docker.io/v1/", "HOME=" + home,
		"EXECUTOR_AWS_ROLE=app",
	}
	taskOpts = []taskOption{
		withEnv("FROM_VAULT", "vault://secret/app/config"),
		withEnv("DB_PASSWORD", plantedSecrets["DB_PASSWORD"]),
		withEnv("APP_SECRET", plantedSecrets["APP_SECRET"]),
		withDockerParameter("env", "SESSION_TOKEN="+plantedSecrets["SESSION_TOKEN"]),
		withDockerParameter("env", "STRIPE_API_KEY="+plantedSecrets["STRIPE_API_KEY"]),
	}
	return settings, taskOpts, chosen
}

// TestSecretsNeverLeak runs tasks through every path with debug logging
// on, in both log formats, and looks for every planted secret in the
// executor's output and in every status message the agent received. It
// also checks that the host's Vault and registry credentials never reached
// the Vault or the registry the task chose.
func TestSecretsNeverLeak(t *testing.T) {
	requireDocker(t) // once for all subtests
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
		// The task's own registry, which has no credentials in the host's
		// config: only the ignored EXECUTOR_DOCKER_REPOSITORY would send
		// Docker Hub's there.
		"task-registry": {image: "task-registry", force: true, want: mesos.TASK_FAILED},
	}
	for name, path := range paths {
		for _, format := range []string{"text", "json"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				t.Parallel()
				settings, taskOpts, chosen := secretsEnvironment(t)
				settings = append(settings, "EXECUTOR_DEBUG=true", "EXECUTOR_LOG_FORMAT="+format)
				agent := newAgent(t, mesostest.Config{})
				image := testImage
				switch path.image {
				case "":
				case "task-registry":
					image = chosen.taskRegistry.Addr() + "/private/app:1"
				default:
					image = path.image
				}
				opts := append(taskOpts, withShellCommand(path.command), func(task *mesos.TaskInfo) {
					task.Container.Docker.ForcePullImage = &path.force
				})
				task := newDockerTask(t, agent, image, opts...)
				mustLaunch(t, agent, task)
				proc := startExecutor(t, agent, settings...)
				if path.kill {
					waitRunning(t, agent, task, 60*time.Second)
					mustKill(t, agent, task.TaskID.Value, nil)
				}
				final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
				if final.GetState() != path.want {
					t.Fatalf("final %s %q, want %s", final.GetState(), final.GetMessage(), path.want)
				}
				proc.waitExit(t, 30*time.Second)

				output := proc.output()
				secrets := maps.Clone(plantedSecrets)
				leases := chosen.hostVault.AWSLeases()
				if len(leases) != 1 {
					t.Fatalf("%d AWS leases issued, want 1", len(leases))
				}
				secrets["AWS access key"] = leases[0].AccessKey
				secrets["AWS secret key"] = leases[0].SecretKey
				secrets["AWS session token"] = leases[0].SessionToken
				if !leases[0].Revoked {
					t.Errorf("the AWS lease was not revoked at the task's end")
				}
				for what, secret := range secrets {
					if strings.Contains(output, secret) {
						t.Errorf("the %s appeared in the executor's output", what)
					}
					for _, u := range agent.Updates() {
						if strings.Contains(u.Status.GetMessage(), secret) || strings.Contains(string(u.Status.Data), secret) {
							t.Errorf("the %s appeared in a %s status update", what, u.Status.GetState())
						}
					}
				}
				for _, r := range chosen.taskVault.Requests() {
					t.Errorf("the Vault the task chose received %s %s (carrying a host credential: %v)", r.Method, r.Path, r.CarriedWatched)
				}
				for _, r := range chosen.taskRegistry.Requests() {
					if r.User != "" {
						t.Errorf("the registry the task chose received credentials of %q (%s %s)", r.User, r.Method, r.Path)
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
