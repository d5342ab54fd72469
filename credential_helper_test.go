package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// noHelper is a credentialHelper for searches that must not run one.
type noHelper struct{ t *testing.T }

func (h noHelper) get(_ context.Context, name, serverURL string) (helperCredentials, error) {
	h.t.Errorf("credential helper %q run for %s, want none run", name, serverURL)
	return helperCredentials{}, errors.New("no helper expected")
}

// findInlineCredentials is findCredentials for files that name no helper
// the search may run.
func findInlineCredentials(t *testing.T, files []credentialFile, registry, fallback string, logger *log.Entry) registryCredentials {
	t.Helper()
	creds, err := findCredentials(context.Background(), files, registry, fallback, noHelper{t}, logger)
	if err != nil {
		t.Fatalf("findCredentials: %v", err)
	}
	return creds
}

// fakeHelpers answers as the helpers named in answers, and records the
// calls as "name serverURL".
type fakeHelpers struct {
	answers map[string]helperCredentials
	errs    map[string]error
	calls   []string
}

func (f *fakeHelpers) get(_ context.Context, name, serverURL string) (helperCredentials, error) {
	f.calls = append(f.calls, name+" "+serverURL)
	if err := f.errs[name]; err != nil {
		return helperCredentials{}, err
	}
	return f.answers[name], nil
}

func TestCredentialHelperSelection(t *testing.T) {
	const registry = "registry.local:5000"
	const mirror = "mirror.example"
	found := func(user, secret string) helperCredentials {
		return helperCredentials{found: true, username: user, secret: secret}
	}
	inline := pair(registry, authEntry("inline", "pw-inline"))
	cases := []struct {
		name          string
		image         string // registryForImage of it; registry when empty
		sandbox, host string // config.json contents; "" for none
		fallback      string
		answers       map[string]helperCredentials
		wantCalls     string
		wantUser      string
		wantToken     string
		wantDescribe  string
		wantFallback  bool
		wantWarning   string
	}{
		{name: "credHelpers entry for the registry", host: `{"credHelpers": {"` + registry + `": "ecr"}}`,
			answers: map[string]helperCredentials{"ecr": found("AWS", "pw-ecr")}, wantCalls: "ecr " + registry,
			wantUser: "AWS", wantDescribe: "credential helper docker-credential-ecr (credHelpers of "},
		{name: "credsStore for a registry without a credHelpers entry",
			host:    `{"credsStore": "store", "credHelpers": {"other.example": "ecr"}}`,
			answers: map[string]helperCredentials{"store": found("bob", "pw-store")}, wantCalls: "store " + registry,
			wantUser: "bob", wantDescribe: "(credsStore of "},
		{name: "credHelpers beats credsStore and the inline entry",
			host:      `{"auths": {` + inline + `}, "credsStore": "store", "credHelpers": {"` + registry + `": "ecr"}}`,
			answers:   map[string]helperCredentials{"ecr": found("AWS", "pw-ecr"), "store": found("bob", "pw-store")},
			wantCalls: "ecr " + registry, wantUser: "AWS"},
		{name: "credHelpers key spelt as a URL",
			host:    `{"credHelpers": {"https://` + registry + `/v1/": "ecr"}}`,
			answers: map[string]helperCredentials{"ecr": found("AWS", "pw-ecr")}, wantCalls: "ecr " + registry, wantUser: "AWS"},
		{name: "a helper without credentials hides the inline entry, as for the docker CLI",
			host:      `{"auths": {` + inline + `}, "credsStore": "store"}`,
			answers:   map[string]helperCredentials{"store": {}},
			wantCalls: "store " + registry},
		{name: "an empty credHelpers entry means the inline entry",
			host:      `{"auths": {` + inline + `}, "credsStore": "store", "credHelpers": {"` + registry + `": ""}}`,
			wantCalls: "", wantUser: "inline", wantDescribe: `entry "` + registry + `"`},
		{name: "helper without credentials, then the fallback's helper",
			host:      `{"credHelpers": {"` + registry + `": "ecr", "` + mirror + `": "mirrorhelper"}}`,
			fallback:  mirror,
			answers:   map[string]helperCredentials{"ecr": {}, "mirrorhelper": found("m", "pw-m")},
			wantCalls: "ecr " + registry + ",mirrorhelper " + mirror, wantUser: "m", wantFallback: true,
			wantDescribe: "credential helper docker-credential-mirrorhelper (credHelpers of "},
		{name: "Docker Hub is asked for by its legacy key", image: "team/app:1",
			host:    `{"credHelpers": {"index.docker.io": "hub"}}`,
			answers: map[string]helperCredentials{"hub": found("hubuser", "pw-hub")}, wantCalls: "hub " + hubKey, wantUser: "hubuser"},
		{name: "identity token", host: `{"credsStore": "oauth"}`,
			answers:   map[string]helperCredentials{"oauth": found(identityTokenUsername, "refresh-token-1")},
			wantCalls: "oauth " + registry, wantToken: "refresh-token-1"},
		{name: "a sandbox file never runs a helper; its inline entry still counts",
			sandbox:   `{"auths": {` + pair(registry, authEntry("task", "pw-task")) + `}, "credsStore": "evil", "credHelpers": {"` + registry + `": "evil"}}`,
			host:      `{"credsStore": "store"}`,
			answers:   map[string]helperCredentials{"store": found("bob", "pw-store")},
			wantCalls: "", wantUser: "task", wantWarning: "only the host's Docker config may make the executor run a program"},
		{name: "a sandbox file naming only helpers is passed over for the host's",
			sandbox: `{"credsStore": "evil"}`, host: `{"credsStore": "store"}`,
			answers:   map[string]helperCredentials{"store": found("bob", "pw-store")},
			wantCalls: "store " + registry, wantUser: "bob", wantWarning: "names credential helpers; ignored"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sandbox, configDir := filepath.Join(dir, "sandbox"), filepath.Join(dir, "docker")
			if tc.sandbox != "" {
				writeFile(t, filepath.Join(sandbox, ".docker", "config.json"), tc.sandbox)
			}
			if tc.host != "" {
				writeFile(t, filepath.Join(configDir, "config.json"), tc.host)
			}
			target := registry
			if tc.image != "" {
				var err error
				if target, err = registryForImage(tc.image); err != nil {
					t.Fatal(err)
				}
			}
			helpers := &fakeHelpers{answers: tc.answers}
			logger, hook := logtest.NewNullLogger()
			files := credentialFiles(sandbox, hostDockerLocation{configDir: configDir})
			got, err := findCredentials(context.Background(), files, target, tc.fallback, helpers, log.NewEntry(logger))
			if err != nil {
				t.Fatal(err)
			}
			if calls := strings.Join(helpers.calls, ","); calls != tc.wantCalls {
				t.Errorf("helpers run: %q, want %q", calls, tc.wantCalls)
			}
			wantFound := tc.wantUser != "" || tc.wantToken != ""
			if got.found != wantFound || got.auth.Username != tc.wantUser || got.auth.IdentityToken != tc.wantToken {
				t.Fatalf("found %v user %q token %q (%s); want user %q token %q", got.found, got.auth.Username, got.auth.IdentityToken, got.describe(), tc.wantUser, tc.wantToken)
			}
			if tc.wantToken != "" && got.auth.Password != "" {
				t.Errorf("an identity token was also sent as a password")
			}
			if wantFound && got.auth.ServerAddress != target {
				t.Errorf("ServerAddress %q, want %q", got.auth.ServerAddress, target)
			}
			if got.viaFallback != tc.wantFallback {
				t.Errorf("viaFallback %v, want %v", got.viaFallback, tc.wantFallback)
			}
			if !strings.Contains(got.describe(), tc.wantDescribe) {
				t.Errorf("describe() = %q, want it to contain %q", got.describe(), tc.wantDescribe)
			}
			if got.found && strings.Contains(got.describe(), "pw-") {
				t.Errorf("describe() shows a secret: %q", got.describe())
			}
			warned := false
			for _, entry := range hook.AllEntries() {
				if entry.Level == log.WarnLevel && tc.wantWarning != "" && strings.Contains(entry.Message, tc.wantWarning) {
					warned = true
				}
			}
			if tc.wantWarning != "" && !warned {
				t.Errorf("no warning containing %q", tc.wantWarning)
			}
		})
	}
}

func TestCredentialHelperFailureNamesHelperAndRegistry(t *testing.T) {
	configDir := t.TempDir()
	path := filepath.Join(configDir, "config.json")
	writeFile(t, path, `{"auths": {`+pair("registry.local", authEntry("inline", "pw-inline"))+`}, "credHelpers": {"registry.local": "ecr-login"}}`)
	helpers := &fakeHelpers{errs: map[string]error{"ecr-login": errors.New("it exited with status 1: no region")}}
	logger, _ := logtest.NewNullLogger()
	_, err := credentialsFor(context.Background(), "registry.local", credentialFiles("", hostDockerLocation{configDir: configDir}), "", helpers, log.NewEntry(logger))
	if err == nil {
		t.Fatal("a failed helper gave no error")
	}
	for _, want := range []string{"docker-credential-ecr-login", "registry registry.local", "credHelpers in " + path, "exited with status 1: no region"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// helperScript writes a docker-credential-<name> shell script into dir.
func helperScript(t *testing.T, dir, name, body string) {
	t.Helper()
	path := filepath.Join(dir, helperProgramPrefix+name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// testHelperRunner runs helpers from dir (then the system's directories,
// for the commands the scripts use).
func testHelperRunner(dir string, timeout time.Duration) *helperRunner {
	logger, _ := logtest.NewNullLogger()
	settings := RegistryHelperSettings{RegistryHelperTimeout: timeout, RegistryHelperPath: dir + ":/usr/bin:/bin"}
	return newHelperRunner(settings, newSettingsEnv("", nil, nil), log.NewEntry(logger))
}

func TestHelperRunnerProtocol(t *testing.T) {
	dir := t.TempDir()
	stdinFile := filepath.Join(dir, "stdin")
	helperScript(t, dir, "good", `[ "$1" = get ] || exit 9
cat > `+stdinFile+`
echo '{"ServerURL":"registry.local","Username":"alice","Secret":"pw-good-1234"}'`)
	helperScript(t, dir, "none", `echo "credentials not found in native keychain"; exit 1`)
	helperScript(t, dir, "empty", `echo '{"ServerURL":"registry.local","Username":"","Secret":""}'`)
	helperScript(t, dir, "failing", `echo '{"Username":"alice","Secret":"pw-leaked-5678"}'
printf 'debug line\n\033[31maccount has no access\033[0m\n\n' >&2
exit 3`)
	helperScript(t, dir, "garbage", `echo 'Secret pw-garbage-999 not json'`)
	helperScript(t, dir, "huge", `yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 2000000`)
	helperScript(t, dir, "noisy", `echo "Authorization: Bearer tok-abcdef-123456 $(head -c 400 /dev/zero | tr '\0' x)" >&2; exit 1`)
	if err := os.WriteFile(filepath.Join(dir, helperProgramPrefix+"notexec"), []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runner := testHelperRunner(dir, 20*time.Second)

	t.Run("answer", func(t *testing.T) {
		got, err := runner.get(context.Background(), "good", "registry.local")
		if err != nil {
			t.Fatal(err)
		}
		if !got.found || got.username != "alice" || got.secret != "pw-good-1234" {
			t.Fatalf("got %+v", got)
		}
		if stdin, err := os.ReadFile(stdinFile); err != nil || string(stdin) != "registry.local" {
			t.Fatalf("the helper read %q (%v) on its standard input, want the server URL", stdin, err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		got, err := runner.get(context.Background(), "none", "registry.local")
		if err != nil || got.found {
			t.Fatalf("got %+v, %v; want no credentials and no error", got, err)
		}
	})
	t.Run("empty secret", func(t *testing.T) {
		got, err := runner.get(context.Background(), "empty", "registry.local")
		if err != nil || got.found {
			t.Fatalf("got %+v, %v; want no credentials and no error", got, err)
		}
	})
	failures := []struct {
		name, want, secret string
	}{
		{"failing", "it exited with status 3: [31maccount has no access[0m", "pw-leaked-5678"},
		{"garbage", "not the JSON of the credential-helper protocol", "pw-garbage-999"},
		{"huge", "larger than 1048576 bytes", "aaaaaaaaaaaaaaaaaaaa"},
		{"noisy", "it exited with status 1: Authorization: [REDACTED]", "tok-abcdef-123456"},
		{"missing", "no executable docker-credential-missing in EXECUTOR_REGISTRY_HELPER_PATH (" + dir + ":/usr/bin:/bin)", ""},
		{"notexec", "no executable docker-credential-notexec", ""},
		{"../good", "is not a credential helper name", ""},
		{"a/b", "is not a credential helper name", ""},
		{"-rf", "is not a credential helper name", ""},
		{"", "is not a credential helper name", ""},
	}
	for _, tc := range failures {
		t.Run("failure "+tc.name, func(t *testing.T) {
			_, err := runner.get(context.Background(), tc.name, "registry.local")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q shows the helper's output %q", err, tc.secret)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error of %d bytes: the helper's output is not cut", len(err.Error()))
			}
			if strings.ContainsRune(err.Error(), '\033') {
				t.Errorf("error %q keeps control characters", err)
			}
		})
	}
}

// A helper that does not answer in time is killed with everything it
// started, and the error says so.
func TestHelperRunnerTimeoutKillsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	helperScript(t, dir, "hang", `sleep 600 &
echo $! > `+pids+`.tmp
echo $$ >> `+pids+`.tmp
mv `+pids+`.tmp `+pids+`
wait`)
	runner := testHelperRunner(dir, 2*time.Second)
	_, err := runner.get(context.Background(), "hang", "registry.local")
	if err == nil || !strings.Contains(err.Error(), "did not answer within 2s (EXECUTOR_REGISTRY_HELPER_TIMEOUT); it was killed") {
		t.Fatalf("error %v, want a timeout naming the setting", err)
	}
	data, readErr := os.ReadFile(pids)
	if readErr != nil {
		t.Fatalf("the helper never started: %v", readErr)
	}
	for _, field := range strings.Fields(string(data)) {
		pid, convErr := strconv.Atoi(field)
		if convErr != nil {
			t.Fatal(convErr)
		}
		eventually(t, 10*time.Second, "process "+field+" of the helper to be gone", func() bool {
			return syscall.Kill(pid, 0) != nil
		})
	}
}

func TestHelperRunnerAbandonedWithTheLaunch(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	helperScript(t, dir, "slow", "touch "+started+"; exec sleep 600")
	runner := testHelperRunner(dir, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runner.get(ctx, "slow", "registry.local")
		done <- err
	}()
	eventually(t, 10*time.Second, "the helper to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "abandoned") {
			t.Fatalf("error %v, want the run abandoned", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the helper run did not end when its context was cancelled")
	}
}

// The helper sees PATH (the helper search path), HOME and the variables
// the operator passes it, nothing of the task's environment.
func TestHelperRunnerEnvironment(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	helperScript(t, dir, "env", "env > "+envFile+`
echo '{"Username":"u","Secret":"s"}'`)
	operator := map[string]string{"AWS_REGION": "eu-west-1", "VAULT_TOKEN": "hvs.operator-token", settingRegistryHelperEnv: "AWS_REGION, AWS_PROFILE"}
	env := newSettingsEnv("/etc/sidecar-executor/environment", operator, []string{"AWS_PROFILE=task-profile", "PATH=/task/bin", "TASK_SECRET=x", "MESOS_SANDBOX=/sb"})
	cfg, err := loadConfigFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RegistryHelperPath = dir + ":/usr/bin:/bin"
	logger, _ := logtest.NewNullLogger()
	runner := newHelperRunner(cfg.RegistryHelperSettings, env, log.NewEntry(logger))
	if _, err := runner.get(context.Background(), "env", "registry.local"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, value, _ := strings.Cut(line, "=")
		seen[name] = value
	}
	want := map[string]string{"PATH": dir + ":/usr/bin:/bin", "HOME": executorHomeDir(), "AWS_REGION": "eu-west-1"}
	for name, value := range want {
		if seen[name] != value {
			t.Errorf("the helper saw %s=%q, want %q", name, seen[name], value)
		}
	}
	// The shell adds PWD, SHLVL and _ of its own.
	for name := range seen {
		if _, ok := want[name]; !ok && name != "PWD" && name != "SHLVL" && name != "_" {
			t.Errorf("the helper saw %s, which it was not given", name)
		}
	}
}

func TestRegistryHelperSettings(t *testing.T) {
	for _, name := range []string{settingRegistryHelperTimeout, settingRegistryHelperPath, settingRegistryHelperEnv} {
		if !isOperatorOnly(name) {
			t.Errorf("%s is not operator-only: a task could choose the program the host runs or what it is given", name)
		}
	}
	env := newSettingsEnv("", nil, []string{settingRegistryHelperPath + "=/mnt/mesos/sandbox", settingRegistryHelperTimeout + "=1h"})
	cfg, err := loadConfigFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RegistryHelperPath != "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" || cfg.RegistryHelperTimeout != 10*time.Second {
		t.Errorf("the task's values were used: %q %s", cfg.RegistryHelperPath, cfg.RegistryHelperTimeout)
	}
	bad := []struct{ line, want string }{
		{settingRegistryHelperTimeout + "=0s", "EXECUTOR_REGISTRY_HELPER_TIMEOUT must be greater than zero"},
		{settingRegistryHelperPath + "=/usr/bin:bin", "must list absolute directories"},
		{settingRegistryHelperPath + "=/usr/bin::/bin", "must list absolute directories"},
		{settingRegistryHelperEnv + "=AWS_REGION,AWS-PROFILE", `got "AWS-PROFILE"`},
	}
	for _, tc := range bad {
		name, value, _ := strings.Cut(tc.line, "=")
		_, err := loadConfigFrom(newSettingsEnv("", map[string]string{name: value}, nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.line, err, tc.want)
		}
	}
}
