package main

// End-to-end pulls from a real registry: distribution v3 with htpasswd on
// 127.0.0.1 (internal/registrytest), images built and pushed here through
// the Docker API, then removed locally so that the executor binary has to
// pull them with the credentials it finds.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/registrytest"
	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

const registryUser = "alice"

// registryFixture is a registry with one user, and cleans up every local
// image of that registry when the test ends. It has a Docker client of its
// own: go-dockerclient's first StartContainer records the server version
// without a lock, so parallel tests must not share one client for it.
type registryFixture struct {
	reg      *registrytest.Server
	password string
	docker   *docker.Client
}

func newRegistryFixture(t *testing.T) *registryFixture {
	t.Helper()
	requireDocker(t)
	// A password unique to the test makes the leak checks meaningful.
	password := "pw-" + randomHex(t, 8)
	client, err := docker.NewClientFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	f := &registryFixture{reg: registrytest.NewServer(t, map[string]string{registryUser: password}), password: password, docker: client}
	t.Cleanup(func() { removeLocalImagesOf(t, f.addr()) })
	return f
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// homeWithCredentials is a new home directory whose .docker/config.json
// holds password for registryUser on the fixture's registry.
func (f *registryFixture) homeWithCredentials(t *testing.T, password string) string {
	t.Helper()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".docker", "config.json"), configJSON(pair(f.addr(), authEntry(registryUser, password))))
	return home
}

func (f *registryFixture) addr() string { return f.reg.Addr() }

// assertManifestServed checks the registry served team/app's manifest to
// registryUser (an authenticated pull, not an anonymous one).
func (f *registryFixture) assertManifestServed(t *testing.T) {
	t.Helper()
	accepted := false
	for _, req := range f.reg.Requests() {
		if strings.HasPrefix(req.Path, "/v2/team/app/manifests/") && req.User == registryUser && req.Status == http.StatusOK {
			accepted = true
		}
	}
	if !accepted {
		t.Errorf("the registry never served the manifest to %s", registryUser)
	}
}

func (f *registryFixture) auth() docker.AuthConfiguration {
	return docker.AuthConfiguration{Username: registryUser, Password: f.password, ServerAddress: f.addr()}
}

// build commits an image of this registry, name "repo:tag", made of the
// test image plus a layer whose /marker holds marker. It returns the
// image ID. The layer also holds a nonce: the engine shares one download
// among concurrent pulls of the same layer digest, which would tie
// parallel tests together.
func (f *registryFixture) build(t *testing.T, name, marker string) string {
	t.Helper()
	script := "echo " + marker + " > /marker; echo " + randomHex(t, 16) + " > /nonce"
	container, err := f.docker.CreateContainer(docker.CreateContainerOptions{
		Config: &docker.Config{Image: testImage, Cmd: []string{"sh", "-c", script}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer removeContainerNamed(container.ID)
	if err := f.docker.StartContainer(container.ID, nil); err != nil {
		t.Fatal(err)
	}
	if code, err := f.docker.WaitContainer(container.ID); err != nil || code != 0 {
		t.Fatalf("writing the marker: exit %d, %v", code, err)
	}
	repository, tag, _ := strings.Cut(name, ":")
	image, err := f.docker.CommitContainer(docker.CommitContainerOptions{Container: container.ID, Repository: f.addr() + "/" + repository, Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	return image.ID
}

// push pushes the local "repo:tag" with the right credentials and returns
// the digest the registry knows it by.
func (f *registryFixture) push(t *testing.T, name string) string {
	t.Helper()
	repository, tag, _ := strings.Cut(name, ":")
	opts := docker.PushImageOptions{Name: f.addr() + "/" + repository, Tag: tag, OutputStream: &syncBuffer{}}
	if err := f.docker.PushImage(opts, f.auth()); err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
	image, err := f.docker.InspectImage(f.addr() + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	for _, repoDigest := range image.RepoDigests {
		if named, digest, ok := strings.Cut(repoDigest, "@"); ok && named == f.addr()+"/"+repository {
			return digest
		}
	}
	t.Fatalf("no digest of %s after the push: %v", name, image.RepoDigests)
	return ""
}

// publish builds, pushes and removes locally an image, so that running it
// needs a pull. It returns the image's full name.
func (f *registryFixture) publish(t *testing.T, name, marker string) string {
	t.Helper()
	id := f.build(t, name, marker)
	f.push(t, name)
	removeLocalImage(t, id)
	return f.addr() + "/" + name
}

func removeLocalImage(t *testing.T, id string) {
	t.Helper()
	if err := dockerClient.RemoveImageExtended(id, docker.RemoveImageOptions{Force: true}); err != nil {
		t.Fatalf("remove image %s: %v", id, err)
	}
}

// removeLocalImagesOf removes every local image named after the registry.
func removeLocalImagesOf(t *testing.T, registry string) {
	images, err := dockerClient.ListImages(docker.ListImagesOptions{Digests: true})
	if err != nil {
		t.Errorf("list images to clean up: %v", err)
		return
	}
	for _, image := range images {
		for _, name := range append(image.RepoTags, image.RepoDigests...) {
			if strings.HasPrefix(name, registry+"/") {
				err := dockerClient.RemoveImageExtended(image.ID, docker.RemoveImageOptions{Force: true})
				if err != nil && !errors.Is(err, docker.ErrNoSuchImage) {
					t.Errorf("clean up image %s: %v", name, err)
				}
				break
			}
		}
	}
}

// markerCheck is a command that succeeds only in the image whose /marker
// holds marker.
func markerCheck(marker string) string {
	return `sh -c 'test "$(cat /marker)" = ` + marker + `'`
}

// pullTestSettings log pull progress often enough to be seen in a test
// (executorEnv already keeps the retries short).
var pullTestSettings = []string{"EXECUTOR_PULL_PROGRESS_INTERVAL=500ms"}

// startPullExecutor starts the executor in sandbox with the host's Docker
// credentials under home (the operator's DOCKER_CONFIG is home/.docker), so
// that no credentials of the machine running the tests count. Settings
// only the operator may set go to the operator's file, the others to the
// executor's environment.
func startPullExecutor(t *testing.T, agent *mesostest.Agent, sandbox, home string, settings ...string) *executorProcess {
	t.Helper()
	operator := []string{"DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	env := append([]string{"HOME=" + home}, pullTestSettings...)
	for _, setting := range settings {
		if name, _, _ := strings.Cut(setting, "="); isOperatorOnly(name) {
			operator = append(operator, setting)
		} else {
			env = append(env, setting)
		}
	}
	env = append(env, withOperatorFile(t, operator...))
	return startExecutorIn(t, agent, sandbox, executorBinary, executorEnv(agent, sandbox, env...))
}

// launchPull launches a task running image with command and starts the
// executor for it.
func launchPull(t *testing.T, image, command, sandbox, home string, opts []taskOption, settings ...string) (*mesostest.Agent, mesos.TaskInfo, *executorProcess) {
	t.Helper()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, image, append([]taskOption{withShellCommand(command)}, opts...)...)
	if err := agent.Launch(task); err != nil {
		t.Fatal(err)
	}
	return agent, task, startPullExecutor(t, agent, sandbox, home, settings...)
}

func withForcePull() taskOption {
	return func(task *mesos.TaskInfo) {
		force := true
		task.Container.Docker.ForcePullImage = &force
	}
}

// assertNoCredentialLeak checks the executor's output and every status
// message for the passwords and their base64 forms.
func assertNoCredentialLeak(t *testing.T, proc *executorProcess, agent *mesostest.Agent, taskID string, passwords ...string) {
	t.Helper()
	texts := []string{proc.output()}
	for _, update := range agent.Accepted(taskID) {
		texts = append(texts, update.Status.GetMessage())
	}
	for _, password := range passwords {
		plain := []byte(registryUser + ":" + password)
		for _, secret := range []string{password, base64.StdEncoding.EncodeToString(plain), base64.RawStdEncoding.EncodeToString(plain)} {
			for _, text := range texts {
				if strings.Contains(text, secret) {
					t.Errorf("credential %q appears in the executor's output or a status message", secret)
				}
			}
		}
	}
}

func assertFinished(t *testing.T, agent *mesostest.Agent, taskID string) {
	t.Helper()
	expectFinal(t, agent, taskID, 90*time.Second, mesos.TASK_FINISHED)
}

// assertLaunchFailed waits for the pull failure and checks its message.
func assertLaunchFailed(t *testing.T, agent *mesostest.Agent, taskID string, wants ...string) string {
	t.Helper()
	final := waitTerminal(t, agent, taskID, 90*time.Second)
	if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
		t.Fatalf("final %s/%s %q, want TASK_FAILED/REASON_CONTAINER_LAUNCH_FAILED", final.GetState(), final.GetReason(), final.GetMessage())
	}
	for _, want := range wants {
		if !strings.Contains(final.GetMessage(), want) {
			t.Errorf("message %q lacks %q", final.GetMessage(), want)
		}
	}
	assertNoContainer(t, taskID)
	return final.GetMessage()
}

func assertOutput(t *testing.T, proc *executorProcess, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(proc.output(), want) {
			t.Errorf("executor output lacks %q", want)
		}
	}
}

func TestPullWithHostCredentials(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	home := f.homeWithCredentials(t, f.password)
	sandbox := t.TempDir()
	writeFile(t, filepath.Join(sandbox, ".docker", "config.json"), "{not json")

	agent, task, proc := launchPull(t, image, markerCheck("one"), sandbox, home, nil)
	assertFinished(t, agent, task.TaskID.Value)
	assertOutput(t, proc, "cannot parse the Docker credentials file", "using Docker credentials for the registry",
		`msg="image pulled"`, "layers=2/2")
	f.assertManifestServed(t)
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
}

func TestPullWithSandboxDockercfgBeforeHostConfig(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	home := f.homeWithCredentials(t, "pw-host-wrong")
	// What the Mesos fetcher leaves in the sandbox for a .dockercfg URI.
	sandbox := t.TempDir()
	writeFile(t, filepath.Join(sandbox, ".dockercfg"), legacyDockercfg(pair("https://"+f.addr()+"/v1/", authEntry(registryUser, f.password))))

	agent, task, proc := launchPull(t, image, markerCheck("one"), sandbox, home, nil)
	assertFinished(t, agent, task.TaskID.Value)
	assertOutput(t, proc, filepath.Join(sandbox, ".dockercfg"))
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password, "pw-host-wrong")
}

func TestPullWithDockerRepositoryFallback(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	configDir := t.TempDir()
	writeFile(t, filepath.Join(configDir, "config.json"), configJSON(pair("https://mirror.example/v1/", authEntry(registryUser, f.password))))

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), t.TempDir(), nil,
		"DOCKER_CONFIG="+configDir, "EXECUTOR_DOCKER_REPOSITORY=mirror.example")
	assertFinished(t, agent, task.TaskID.Value)
	assertOutput(t, proc, "matched EXECUTOR_DOCKER_REPOSITORY", "sending those of EXECUTOR_DOCKER_REPOSITORY (mirror.example)")
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
}

// pullAttempts counts the pull attempts the executor logged.
func pullAttempts(proc *executorProcess) int {
	return strings.Count(proc.output(), `msg="pulling the image"`)
}

func TestPullWithWrongCredentialsFailsWithoutRetrying(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	home := f.homeWithCredentials(t, "pw-wrong-one")

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), home, nil, "EXECUTOR_PULL_RETRIES=3")
	assertLaunchFailed(t, agent, task.TaskID.Value, "unauthorized", image, "registry "+f.addr(), "credentials used")
	proc.waitExit(t, 10*time.Second)
	if n := pullAttempts(proc); n != 1 {
		t.Errorf("%d pull attempts, want 1: a refused login is not retried", n)
	}
	// Docker asks for the manifest at most twice per attempt (HEAD, GET).
	if n := f.reg.ManifestRequests("team/app"); n < 1 || n > 2 {
		t.Errorf("the registry saw %d manifest requests, want those of one attempt", n)
	}
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, "pw-wrong-one", f.password)
}

func TestPullWithoutCredentialsFailsWithoutRetrying(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), t.TempDir(), nil, "EXECUTOR_PULL_RETRIES=3")
	assertLaunchFailed(t, agent, task.TaskID.Value, "unauthorized", "no basic auth credentials", image)
	proc.waitExit(t, 10*time.Second)
	assertOutput(t, proc, "no Docker credentials for registry "+f.addr())
	if n := pullAttempts(proc); n != 1 {
		t.Errorf("%d pull attempts, want 1", n)
	}
}

func TestPullOfMissingTagFailsWithoutRetrying(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	f.publish(t, "team/app:1", "one")
	home := f.homeWithCredentials(t, f.password)

	agent, task, proc := launchPull(t, f.addr()+"/team/app:2", markerCheck("one"), t.TempDir(), home, nil, "EXECUTOR_PULL_RETRIES=3")
	assertLaunchFailed(t, agent, task.TaskID.Value, "manifest unknown", f.addr()+"/team/app:2")
	proc.waitExit(t, 10*time.Second)
	if n := pullAttempts(proc); n != 1 {
		t.Errorf("%d pull attempts, want 1", n)
	}
}

func TestForcePullGetsTheRepushedImage(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	f := newRegistryFixture(t)
	first := f.build(t, "team/app:1", "one")
	f.push(t, "team/app:1")
	f.build(t, "team/app:1", "two")
	f.push(t, "team/app:1")
	// The engine still has the first image under the tag, as a machine that
	// ran the task before the re-push would.
	if err := dockerClient.TagImage(first, docker.TagImageOptions{Repo: f.addr() + "/team/app", Tag: "1", Force: true}); err != nil {
		t.Fatal(err)
	}
	home := f.homeWithCredentials(t, f.password)
	image := f.addr() + "/team/app:1"

	t.Run("without force_pull_image the local image runs", func(t *testing.T) {
		agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), home, nil)
		assertFinished(t, agent, task.TaskID.Value)
		if n := pullAttempts(proc); n != 0 {
			t.Errorf("%d pull attempts for an image present locally", n)
		}
	})
	t.Run("with force_pull_image the re-pushed image runs", func(t *testing.T) {
		agent, task, proc := launchPull(t, image, markerCheck("two"), t.TempDir(), home, []taskOption{withForcePull()})
		assertFinished(t, agent, task.TaskID.Value)
		assertOutput(t, proc, "force_pull_image is set", `msg="image pulled"`)
		assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
	})
}

func TestPullByDigest(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	f := newRegistryFixture(t)
	id := f.build(t, "team/app:1", "one")
	digest := f.push(t, "team/app:1")
	f.build(t, "team/app:1", "two")
	f.push(t, "team/app:1") // the tag moves on; the digest still names "one"
	removeLocalImagesOf(t, f.addr())
	if _, err := dockerClient.InspectImage(id); !errors.Is(err, docker.ErrNoSuchImage) {
		t.Fatalf("the image is still present locally (%v)", err)
	}
	home := f.homeWithCredentials(t, f.password)

	agent, task, proc := launchPull(t, f.addr()+"/team/app@"+digest, markerCheck("one"), t.TempDir(), home, nil)
	assertFinished(t, agent, task.TaskID.Value)
	assertOutput(t, proc, `msg="image pulled"`, digest)
}

// closedPort is an address that refuses connections for the whole test
// (see testutil.RefusedAddr).
func closedPort(t *testing.T) string {
	t.Helper()
	return testutil.RefusedAddr(t)
}

func TestPullRetriesWhileTheRegistryIsDown(t *testing.T) {
	t.Parallel()
	image := closedPort(t) + "/team/app:1"
	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), t.TempDir(), nil,
		"EXECUTOR_PULL_RETRIES=2", "EXECUTOR_PULL_BACKOFF=300ms", "EXECUTOR_PULL_TIMEOUT=1m")
	assertLaunchFailed(t, agent, task.TaskID.Value, "connection refused", "after 3 attempts", image)
	proc.waitExit(t, 10*time.Second)
	if n := pullAttempts(proc); n != 3 {
		t.Errorf("%d pull attempts, want 3", n)
	}
	assertOutput(t, proc, "retry_in=300ms", "retry_in=600ms")
}

func TestHangingRegistryIsCutByThePullDeadline(t *testing.T) {
	t.Parallel()
	image := hangingRegistry(t) + "/stuck/image:1"
	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), t.TempDir(), nil,
		"EXECUTOR_PULL_TIMEOUT=2s", "EXECUTOR_PULL_RETRIES=3")
	waitState(t, agent, task.TaskID.Value, mesos.TASK_STARTING, 30*time.Second)
	start := time.Now()
	assertLaunchFailed(t, agent, task.TaskID.Value, "timed out after 2s (EXECUTOR_PULL_TIMEOUT)", image)
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("a 2s pull deadline took %s to fail the task", elapsed)
	}
	proc.waitExit(t, 10*time.Second)
}

func TestStalledDownloadIsRetriedUntilTheDeadline(t *testing.T) {
	t.Parallel()
	f := newRegistryFixture(t)
	image := f.publish(t, "team/app:1", "one")
	f.reg.StallBlobDownloads()
	home := f.homeWithCredentials(t, f.password)

	agent, task, proc := launchPull(t, image, markerCheck("one"), t.TempDir(), home, nil,
		"EXECUTOR_PULL_INACTIVITY_TIMEOUT=1s", "EXECUTOR_PULL_TIMEOUT=4s", "EXECUTOR_PULL_RETRIES=20")
	assertLaunchFailed(t, agent, task.TaskID.Value, "timed out after 4s (EXECUTOR_PULL_TIMEOUT)", image)
	proc.waitExit(t, 10*time.Second)
	if n := pullAttempts(proc); n < 2 {
		t.Errorf("%d pull attempts, want the stalled attempt cut and retried", n)
	}
	assertOutput(t, proc, "no progress for 1s (EXECUTOR_PULL_INACTIVITY_TIMEOUT)", `msg="pull in progress"`)
	if f.reg.StalledDownloads() < 2 {
		t.Errorf("%d stalled downloads, want one per attempt at least", f.reg.StalledDownloads())
	}
	assertNoCredentialLeak(t, proc, agent, task.TaskID.Value, f.password)
}
