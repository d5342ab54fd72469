package main

// End-to-end tests of the trust boundary between the operator's file and
// the task's environment: settings that loosen the admission policy or
// choose where the host's credentials go are the operator's alone.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

func withPrivileged() taskOption {
	return func(task *mesos.TaskInfo) { task.Container.Docker.Privileged = boolPtr(true) }
}

// withTaskSetting puts a setting in the task's executor environment the
// way a scheduler does (ExecutorInfo.command.environment), which the agent
// hands to the executor's process; startExecutor must be given the same
// setting.
func withTaskSetting(setting string) taskOption {
	name, value, _ := strings.Cut(setting, "=")
	return withEnv(name, value)
}

// ignoredSettingsLines returns the log lines that report operator-only
// settings set by the task.
func ignoredSettingsLines(output string) []string {
	var lines []string
	for _, line := range strings.Split(output, "\n") {
		if strings.Contains(line, "operator-only settings") {
			lines = append(lines, line)
		}
	}
	return lines
}

// assertIgnoredOnce checks that one start-up line names every variable and
// that none of values appears anywhere in the output.
func assertIgnoredOnce(t *testing.T, proc *executorProcess, names []string, values ...string) {
	t.Helper()
	lines := ignoredSettingsLines(proc.output())
	if len(lines) != 1 {
		t.Fatalf("%d log lines about ignored operator-only settings, want 1: %q", len(lines), lines)
	}
	for _, name := range names {
		if !strings.Contains(lines[0], name) {
			t.Errorf("the line %q does not name %s", lines[0], name)
		}
	}
	for _, value := range values {
		if strings.Contains(proc.output(), value) {
			t.Errorf("the value of an ignored setting appears in the output")
		}
	}
}

// TestTaskCannotAllowItselfPrivileged: EXECUTOR_ALLOW_PRIVILEGED in the
// task's environment, prefixed or bare (envconfig once read both), does
// not let its privileged container through, and the log names it.
func TestTaskCannotAllowItselfPrivileged(t *testing.T) {
	t.Parallel()
	const decoyPassword = "task-set-vault-password-6021"
	settings := []string{"EXECUTOR_ALLOW_PRIVILEGED=true", "ALLOW_PRIVILEGED=true", "VAULT_PASSWORD=" + decoyPassword}
	agent := newAgent(t, mesostest.Config{})
	opts := []taskOption{withShellCommand("true"), withPrivileged()}
	for _, setting := range settings {
		opts = append(opts, withTaskSetting(setting))
	}
	task := newDockerTask(t, agent, testImage, opts...)
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, settings...)

	final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	if final.GetState() != mesos.TASK_FAILED || !strings.Contains(strings.ToLower(final.GetMessage()), "privileged") {
		t.Fatalf("final %s %q, want TASK_FAILED refusing the privileged container", final.GetState(), final.GetMessage())
	}
	proc.waitExit(t, 30*time.Second)
	if strings.Contains(proc.output(), "creating the container") {
		t.Errorf("the executor asked Docker for the container")
	}
	assertNoContainer(t, task.TaskID.Value)
	assertIgnoredOnce(t, proc, []string{"EXECUTOR_ALLOW_PRIVILEGED", "VAULT_PASSWORD"}, decoyPassword)
}

// TestOperatorFileAllowsPrivileged: the same task passes admission when
// the operator's file allows privileged containers, even though the task
// says otherwise. This engine may refuse to start a privileged container
// (no capabilities to grant), so the test checks what the executor asked
// Docker to create; where the container does start, it inspects it.
func TestOperatorFileAllowsPrivileged(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting), withPrivileged(),
		withTaskSetting("EXECUTOR_ALLOW_PRIVILEGED=false"))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, "EXECUTOR_ALLOW_PRIVILEGED=false", "EXECUTOR_DEBUG=true", "EXECUTOR_LOG_FORMAT=json",
		withOperatorFile(t, "# this host runs privileged containers", "", "export EXECUTOR_ALLOW_PRIVILEGED='true'"))

	update, err := agent.WaitForUpdate(testContext(t, 60*time.Second), func(u mesostest.Update) bool {
		state := u.Status.GetState()
		return u.Status.TaskID.Value == task.TaskID.Value && u.Dropped == "" && (state == mesos.TASK_RUNNING || isTerminal(state))
	})
	if err != nil {
		t.Fatalf("no TASK_RUNNING nor terminal update: %v", err)
	}
	if update.Status.GetState() == mesos.TASK_RUNNING {
		container := inspectTaskContainer(t, task.TaskID.Value)
		if container == nil || !container.HostConfig.Privileged {
			t.Errorf("the running container is not privileged")
		}
		waitForTrap(t, task.TaskID.Value, 30*time.Second)
		mustKill(t, agent, task.TaskID.Value, nil)
	}
	waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	proc.waitExit(t, 30*time.Second)

	var asked *docker.CreateContainerOptions
	var allowPrivileged string
	for _, line := range strings.Split(proc.stdout.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		switch entry["msg"] {
		case "container configuration":
			asked = &docker.CreateContainerOptions{}
			if err := json.Unmarshal([]byte(entry["container_config"].(string)), asked); err != nil {
				t.Fatalf("container configuration: %v", err)
			}
		case "executor settings":
			allowPrivileged, _ = entry["AllowPrivileged"].(string)
		}
	}
	if asked == nil || asked.HostConfig == nil || !asked.HostConfig.Privileged {
		t.Fatalf("the executor did not ask Docker for a privileged container (asked %+v)", asked)
	}
	if !strings.Contains(proc.output(), "creating the container") {
		t.Errorf("the executor never created the container")
	}
	if allowPrivileged != "true (operator)" {
		t.Errorf("settings log AllowPrivileged=%q, want \"true (operator)\"", allowPrivileged)
	}
	assertIgnoredOnce(t, proc, []string{"EXECUTOR_ALLOW_PRIVILEGED"})
}

// TestMalformedOperatorFileFailsTheTask: a broken operator file fails the
// task with a message naming the file and the line, not the value.
func TestMalformedOperatorFileFailsTheTask(t *testing.T) {
	t.Parallel()
	const password = "operator-password-never-shown-7741"
	operatorFile := withOperatorFile(t, "VAULT_ADDR=http://127.0.0.1:1", "VAULT_PASSWORD="+password+" oops")
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand("true")}, operatorFile)
	final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED)
	path := strings.TrimPrefix(operatorFile, testOperatorEnvVar+"=")
	for _, want := range []string{path, "line 2", "VAULT_PASSWORD"} {
		if !strings.Contains(final.GetMessage(), want) {
			t.Errorf("message %q does not name %q", final.GetMessage(), want)
		}
	}
	proc.waitExit(t, 30*time.Second)
	if strings.Contains(proc.output()+final.GetMessage(), password) {
		t.Errorf("the value on the malformed line was shown")
	}
	assertNoContainer(t, task.TaskID.Value)
}

// hostVaultFixture is the operator's Vault, which the host's userpass
// login may reach, and a Vault of the task's choosing, which must never
// see the host's password or tokens.
type hostVaultFixture struct {
	host, task  *vaulttest.Server
	password    string
	cachedToken string
	tokenFile   string
	operatorEnv string
}

func newHostVaultFixture(t *testing.T) *hostVaultFixture {
	t.Helper()
	f := &hostVaultFixture{
		host: vaulttest.NewServer(t), task: vaulttest.NewServer(t),
		password: "host-vault-password-8086", cachedToken: "hvs.host-cached-token-6502",
		tokenFile: filepath.Join(t.TempDir(), "vault-token"),
	}
	for _, server := range []*vaulttest.Server{f.host, f.task} {
		server.MountKV("secret/", 2)
		server.Watch(f.password, f.cachedToken)
	}
	f.host.PutSecret("secret/app/config", map[string]any{"value": "from-the-host-vault"})
	f.task.PutSecret("secret/app/config", map[string]any{"value": "from-the-task-vault"})
	f.host.AddUserpass("executor", f.password, "read:secret/app/")
	f.operatorEnv = withOperatorFile(t,
		"VAULT_ADDR="+f.host.URL(), "VAULT_USERNAME=executor", `VAULT_PASSWORD="`+f.password+`"`,
		"VAULT_MAX_RETRIES=0", "VAULT_TOKEN_FILE="+f.tokenFile)
	return f
}

// run launches a task whose FROM_VAULT must resolve to want, with the
// given task settings, and waits for it to finish.
// cacheHostToken makes the operator's token file hold a token the host's
// Vault accepts, as a previous login would have left it.
func (f *hostVaultFixture) cacheHostToken(t *testing.T) {
	t.Helper()
	f.host.AddToken(f.cachedToken, time.Hour, "read:secret/app/")
	if err := os.WriteFile(f.tokenFile, []byte(f.cachedToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *hostVaultFixture) run(t *testing.T, want string, taskSettings ...string) *executorProcess {
	t.Helper()
	agent := newAgent(t, mesostest.Config{})
	opts := []taskOption{withEnv("FROM_VAULT", "vault://secret/app/config"), withShellCommand(`sh -c 'test "$FROM_VAULT" = ` + want + `'`)}
	for _, setting := range taskSettings {
		opts = append(opts, withTaskSetting(setting))
	}
	task := newDockerTask(t, agent, testImage, opts...)
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, append(taskSettings, f.operatorEnv)...)
	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	proc.waitExit(t, 30*time.Second)
	for _, secret := range []string{f.password, f.cachedToken} {
		if strings.Contains(proc.output(), secret) {
			t.Errorf("a host Vault credential appears in the executor's output")
		}
	}
	return proc
}

// assertNoHostCredential checks that server never received a request
// carrying the host's password or cached token.
func assertNoHostCredential(t *testing.T, server *vaulttest.Server, which string) {
	t.Helper()
	for _, r := range server.Requests() {
		if r.CarriedWatched {
			t.Errorf("%s received %s %s carrying a host Vault credential", which, r.Method, r.Path)
		}
	}
}

func TestHostVaultCredentialsOnlyGoToTheOperatorsVault(t *testing.T) {
	t.Parallel()

	t.Run("task names its own Vault without a token", func(t *testing.T) {
		t.Parallel()
		f := newHostVaultFixture(t)
		taskTokenFile := filepath.Join(t.TempDir(), "task-chosen-token")
		proc := f.run(t, "from-the-host-vault", "VAULT_ADDR="+f.task.URL(), "VAULT_TOKEN_FILE="+taskTokenFile, "VAULT_USERNAME=task-user")
		if n := len(f.task.Requests()); n != 0 {
			t.Errorf("the task's Vault received %d requests", n)
		}
		if f.host.Logins() != 1 {
			t.Errorf("the operator's Vault saw %d logins, want 1", f.host.Logins())
		}
		if _, err := os.Stat(taskTokenFile); !os.IsNotExist(err) {
			t.Errorf("the executor wrote the token file the task named (%v)", err)
		}
		if _, err := os.Stat(f.tokenFile); err != nil {
			t.Errorf("the operator's token file was not written: %v", err)
		}
		assertIgnoredOnce(t, proc, []string{"VAULT_ADDR", "VAULT_TOKEN_FILE", "VAULT_USERNAME"})
	})

	t.Run("task brings its own token and Vault", func(t *testing.T) {
		t.Parallel()
		f := newHostVaultFixture(t)
		// A valid host token is cached: it must not be sent either.
		f.cacheHostToken(t)
		f.task.AddToken("hvs.task-own-token", time.Hour, "read:secret/app/")
		f.run(t, "from-the-task-vault", "VAULT_ADDR="+f.task.URL(), "VAULT_TOKEN=hvs.task-own-token")
		if len(f.task.Requests()) == 0 {
			t.Errorf("the task's Vault received no request")
		}
		assertNoHostCredential(t, f.task, "the task's Vault")
		if n := len(f.host.Requests()); n != 0 {
			t.Errorf("the operator's Vault received %d requests for a task with its own Vault", n)
		}
	})

	t.Run("task brings its own token for the operator's Vault", func(t *testing.T) {
		t.Parallel()
		f := newHostVaultFixture(t)
		f.cacheHostToken(t)
		f.host.AddToken("hvs.task-own-token", time.Hour, "read:secret/app/")
		f.run(t, "from-the-host-vault", "VAULT_TOKEN=hvs.task-own-token")
		if f.host.Logins() != 0 {
			t.Errorf("the host logged in for a task that brought its own token")
		}
		assertNoHostCredential(t, f.host, "the operator's Vault, for the task's own token,")
	})
}

// TestTaskCannotChooseWhereHostDockerCredentialsGo: the task's
// EXECUTOR_DOCKER_REPOSITORY, HOME and DOCKER_CONFIG do not select the
// host's Docker credentials; only the operator's file does.
func TestTaskCannotChooseWhereHostDockerCredentialsGo(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	// Credentials for the registry, stored where the task would like the
	// executor to look, and under another registry's name.
	taskHome := f.homeWithCredentials(t, f.password)
	mirrorConfig := t.TempDir()
	writeFile(t, filepath.Join(mirrorConfig, "config.json"), configJSON(pair("https://mirror.example/v1/", authEntry(registryUser, f.password))))
	emptyConfig := t.TempDir()

	cases := []struct {
		name     string
		operator []string
		task     []string
		ignored  []string
	}{
		{"task EXECUTOR_DOCKER_REPOSITORY", []string{"DOCKER_CONFIG=" + mirrorConfig}, []string{"EXECUTOR_DOCKER_REPOSITORY=mirror.example"}, []string{"EXECUTOR_DOCKER_REPOSITORY"}},
		// No operator DOCKER_CONFIG: the executor user's home comes from
		// the user database, not from HOME.
		{"task HOME", nil, []string{"HOME=" + taskHome}, nil},
		{"task DOCKER_CONFIG", []string{"DOCKER_CONFIG=" + emptyConfig}, []string{"DOCKER_CONFIG=" + filepath.Join(taskHome, ".docker")}, []string{"DOCKER_CONFIG"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newAgent(t, mesostest.Config{})
			// Forced: an earlier case that wrongly pulled must not hide a
			// later one behind a local copy.
			task := newDockerTask(t, agent, image, withShellCommand(markerCheck("one")), withForcePull())
			mustLaunch(t, agent, task)
			before := len(f.reg.Requests()) // the fixture's own push carried them
			sandbox := t.TempDir()
			settings := append(append([]string{}, pullTestSettings...), tc.task...)
			settings = append(settings, withOperatorFile(t, tc.operator...))
			proc := startExecutorIn(t, agent, sandbox, executorBinary, executorEnv(agent, sandbox, settings...))
			assertLaunchFailed(t, agent, task.TaskID.Value)
			proc.waitExit(t, 30*time.Second)
			f.assertNoCredentialsSince(t, before, "the credentials")
			assertOutput(t, proc, "pulling anonymously")
			if strings.Contains(proc.output(), "matched EXECUTOR_DOCKER_REPOSITORY") {
				t.Errorf("the task's EXECUTOR_DOCKER_REPOSITORY was used")
			}
			assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
			if tc.ignored != nil {
				assertIgnoredOnce(t, proc, tc.ignored)
			}
		})
	}
}

// TestSandboxCredentialLinkNotFollowed: an archive the fetcher unpacked
// into the sandbox links .docker to the host's Docker config; the
// executor refuses the link and pulls anonymously.
func TestSandboxCredentialLinkNotFollowed(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	hostHome := f.homeWithCredentials(t, f.password)
	sandbox := t.TempDir()
	mustSymlink(t, filepath.Join(hostHome, ".docker"), filepath.Join(sandbox, ".docker"))

	// The operator's own Docker config holds nothing for this registry.
	before := len(f.reg.Requests()) // the fixture's own push carried them
	agent, task, proc := launchPull(t, image, markerCheck("one"), sandbox, t.TempDir(), nil)
	assertLaunchFailed(t, agent, task.TaskID.Value)
	proc.waitExit(t, 30*time.Second)
	assertOutput(t, proc, "symbolic link", "pulling anonymously")
	f.assertNoCredentialsSince(t, before, "the host's credentials through the sandbox link")
}

// assertNoCredentialsSince fails the test if one of the registry's requests
// from the before-th on carried registryUser's credentials; what names them
// in the message.
func (f *registryFixture) assertNoCredentialsSince(t *testing.T, before int, what string) {
	t.Helper()
	for _, req := range f.reg.Requests()[before:] {
		if req.User == registryUser {
			t.Fatalf("the registry received %s (%s %s)", what, req.Method, req.Path)
		}
	}
}
