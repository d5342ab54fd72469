package main

// End-to-end pulls with Docker credential helpers: the host's Docker config
// names a docker-credential-<name> script the test writes into a directory
// of the operator's EXECUTOR_REGISTRY_HELPER_PATH, which hands the executor
// the login of the real test registry (internal/registrytest).

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// helperDir is a new directory holding one helper script, name, whose body
// is body; the operator's helper path is it, then the system's directories
// for the commands the script runs.
func helperDir(t *testing.T, name, body string) (dir, pathSetting string) {
	t.Helper()
	dir = t.TempDir()
	helperScript(t, dir, name, body)
	return dir, "EXECUTOR_REGISTRY_HELPER_PATH=" + dir + ":/usr/bin:/bin"
}

// homeWithHelper is a new home directory whose .docker/config.json has
// the fixture's registry served by the helper called name.
func (f *registryFixture) homeWithHelper(t *testing.T, name string) string {
	t.Helper()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".docker", "config.json"), `{"auths": {}, "credHelpers": {"`+f.addr()+`": "`+name+`"}}`)
	return home
}

// markingHelperDir is helperDir for a helper, name, that answers with the
// fixture's login and leaves the file marker behind when it is run, for
// tests that the executor must not run it.
func (f *registryFixture) markingHelperDir(t *testing.T, name string) (dir, pathSetting, marker string) {
	t.Helper()
	marker = filepath.Join(t.TempDir(), "helper-ran")
	dir, pathSetting = helperDir(t, name, "touch "+marker+`
echo '{"Username":"`+registryUser+`","Secret":"`+f.password+`"}'`)
	return dir, pathSetting, marker
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestPullWithCredentialHelper(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	asked := filepath.Join(t.TempDir(), "asked")
	_, helperPath := helperDir(t, "testlogin", `[ "$1" = get ] || exit 2
read -r server
printf '%s' "$server" > `+asked+`
printf '{"ServerURL":"%s","Username":"`+registryUser+`","Secret":"`+f.password+`"}\n' "$server"`)

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), f.homeWithHelper(t, "testlogin"), nil, helperPath)
	assertFinished(t, agent, task.TaskID.Value)
	assertOutput(t, proc, "asking the credential helper for the registry's credentials",
		"credential helper docker-credential-testlogin (credHelpers of ", `msg="image pulled"`)
	if server, err := os.ReadFile(asked); err != nil || string(server) != f.addr() {
		t.Errorf("the helper was asked about %q (%v), want %q", server, err, f.addr())
	}
	f.assertManifestServed(t)
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
}

func TestHangingCredentialHelperFailsTheLaunch(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	_, helperPath := helperDir(t, "hang", "exec sleep 600")

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), f.homeWithHelper(t, "hang"), nil,
		helperPath, "EXECUTOR_REGISTRY_HELPER_TIMEOUT=1s")
	assertLaunchFailed(t, agent, task.TaskID.Value, "docker-credential-hang", "registry "+f.addr(),
		"did not answer within 1s (EXECUTOR_REGISTRY_HELPER_TIMEOUT); it was killed")
	proc.waitExit(t, 10*time.Second)
	if n := pullAttempts(proc); n != 0 {
		t.Errorf("%d pull attempts without the credentials", n)
	}
}

func TestFailingCredentialHelperFailsTheLaunch(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	// The helper prints the secret before failing: it must not be shown.
	_, helperPath := helperDir(t, "broken", `echo '{"Username":"`+registryUser+`","Secret":"`+f.password+`"}'
echo "no session for this account" >&2
exit 4`)

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), f.homeWithHelper(t, "broken"), nil, helperPath)
	assertLaunchFailed(t, agent, task.TaskID.Value, "docker-credential-broken", "registry "+f.addr(),
		"it exited with status 4: no session for this account")
	proc.waitExit(t, 10*time.Second)
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
}

// A task's Docker config (fetched into the sandbox, written by the task
// author) naming a helper must not make the host run it, even one that is
// installed in the operator's helper path.
func TestSandboxDockerConfigCannotRunAHelper(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	_, helperPath, marker := f.markingHelperDir(t, "planted")
	sandbox := t.TempDir()
	writeFile(t, filepath.Join(sandbox, ".docker", "config.json"), `{"credsStore": "planted", "credHelpers": {"`+f.addr()+`": "planted"}}`)

	agent, task, proc := launchPull(t, image, markerCheck("one"), sandbox, f.homeWithCredentials(t, f.password), nil, helperPath)
	assertFinished(t, agent, task.TaskID.Value)
	if fileExists(marker) {
		t.Fatal("the host ran the credential helper a task's Docker config named")
	}
	assertOutput(t, proc, "names credential helpers; ignored", "using Docker credentials for the registry")
}

// The executor's PATH is the task's: a helper is looked for in the
// operator's helper path only.
func TestCredentialHelperIsNotLookedUpInTheTasksPATH(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	taskDir, _, marker := f.markingHelperDir(t, "testlogin")
	operatorDir := t.TempDir()

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), f.homeWithHelper(t, "testlogin"), nil,
		"PATH="+taskDir+":"+os.Getenv("PATH"), "EXECUTOR_REGISTRY_HELPER_PATH="+operatorDir)
	assertLaunchFailed(t, agent, task.TaskID.Value, "no executable docker-credential-testlogin in EXECUTOR_REGISTRY_HELPER_PATH ("+operatorDir+")")
	proc.waitExit(t, 10*time.Second)
	if fileExists(marker) {
		t.Fatal("the host ran a credential helper found through the task's PATH")
	}
}

// A KILL while the helper runs ends the launch at once and the helper with
// it.
func TestKillWhileTheCredentialHelperRuns(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	started := filepath.Join(t.TempDir(), "helper-pid")
	_, helperPath := helperDir(t, "slow", "echo $$ > "+started+".tmp; mv "+started+".tmp "+started+"; exec sleep 600")

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), f.homeWithHelper(t, "slow"), nil,
		helperPath, "EXECUTOR_REGISTRY_HELPER_TIMEOUT=10m")
	eventually(t, 60*time.Second, "the helper to start", func() bool { return fileExists(started) })
	mustKill(t, agent, task.TaskID.Value, nil)
	final := waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	if final.GetState() != mesos.TASK_KILLED || final.GetReason() != mesos.REASON_TASK_KILLED_DURING_LAUNCH {
		t.Fatalf("final %s/%s %q, want TASK_KILLED/REASON_TASK_KILLED_DURING_LAUNCH", final.GetState(), final.GetReason(), final.GetMessage())
	}
	proc.waitExit(t, 30*time.Second)
	assertNoContainer(t, task.TaskID.Value)
	data, err := os.ReadFile(started)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("the helper (pid %d) still runs after the executor exited", pid)
	}
}
