package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// countingServer stands in for both the image's registry and Vault: any
// request at all means the executor went past admission.
type countingServer struct {
	*httptest.Server
	requests atomic.Int64
}

func newCountingServer(t *testing.T) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		http.Error(w, "the admission policy should have stopped this request", http.StatusForbidden)
	}))
	t.Cleanup(s.Close)
	return s
}

// mesosLayoutSandbox makes MESOS_DIRECTORY the way an agent lays it out,
// <work_dir>/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<run>, plus
// the sandbox of another task under the same agent.
func mesosLayoutSandbox(t *testing.T) (sandbox, otherTask string) {
	t.Helper()
	workDir := t.TempDir()
	sandbox = filepath.Join(workDir, "slaves/agent-1/frameworks/fw-1/executors/ex-1/runs/run-1")
	otherTask = filepath.Join(workDir, "slaves/agent-1/frameworks/fw-1/executors/ex-2/runs/run-2")
	for _, dir := range []string{sandbox, otherTask} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return sandbox, otherTask
}

func withHostPathVolume(hostPath, containerPath string) taskOption {
	return func(task *mesos.TaskInfo) {
		task.Container.Volumes = append(task.Container.Volumes, mesos.Volume{HostPath: strPtr(hostPath), ContainerPath: containerPath, Mode: mesos.RW.Enum()})
	}
}

func withDockerVolume(name, driver string) taskOption {
	return func(task *mesos.TaskInfo) {
		dockerVolume := &mesos.Volume_Source_DockerVolume{Name: name}
		if driver != "" {
			dockerVolume.Driver = strPtr(driver)
		}
		task.Container.Volumes = append(task.Container.Volumes, mesos.Volume{ContainerPath: "/data", Mode: mesos.RW.Enum(),
			Source: &mesos.Volume_Source{Type: mesos.Volume_Source_DOCKER_VOLUME, DockerVolume: dockerVolume}})
	}
}

func privileged(task *mesos.TaskInfo) { task.Container.Docker.Privileged = boolPtr(true) }

// assertNoTaskContainer checks by name and by the executor's task-id label
// that Docker never got a container for the task.
func assertNoTaskContainer(t *testing.T, taskID string) {
	t.Helper()
	assertNoContainer(t, taskID)
	containers, err := dockerClient.ListContainers(docker.ListContainersOptions{All: true, Filters: map[string][]string{"label": {taskIDLabel + "=" + taskID}}})
	if err != nil {
		t.Fatalf("list containers of %s: %v", taskID, err)
	}
	if len(containers) > 0 {
		t.Fatalf("Docker holds %d containers labelled with task %s: %v", len(containers), taskID, containers[0].Names)
	}
}

// TestAdmissionPolicyRefusesOnRealDocker launches escalation attempts
// through the real binary. Each must end in one TASK_FAILED with
// REASON_TASK_UNAUTHORIZED whose message names the field and the operator
// setting, with no container, no pull and no Vault request: the image
// lives on a counting server that is also the Vault address, and the task
// carries a vault:// variable, so anything past admission would show.
func TestAdmissionPolicyRefusesOnRealDocker(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	symlinkDir := t.TempDir()
	socketLink := filepath.Join(symlinkDir, "innocent")
	if err := os.Symlink("/var/run/docker.sock", socketLink); err != nil {
		t.Fatal(err)
	}
	altDockerSocket := filepath.Join(t.TempDir(), "docker.sock")
	cases := []struct {
		name     string
		task     []taskOption
		settings []string
		// sandbox prepares the sandbox before the executor starts; it gets
		// the sandbox and the sandbox of another task.
		sandbox func(t *testing.T, sandbox, otherTask string) taskOption
		message []string // every fragment must appear in the TASK_FAILED message
	}{
		{name: "privileged", task: []taskOption{privileged},
			message: []string{"container.docker.privileged=true", "EXECUTOR_ALLOW_PRIVILEGED=true"}},
		{name: "cap-add SYS_ADMIN", task: []taskOption{withDockerParameter("cap-add", "SYS_ADMIN")},
			message: []string{"parameter cap-add=SYS_ADMIN", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN"}},
		{name: "cap-add in lower case with CAP_ prefix", task: []taskOption{withDockerParameter("--cap-add", "cap_sys_module")},
			message: []string{"parameter cap-add=cap_sys_module", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_MODULE"}},
		{name: "cap-add ALL", task: []taskOption{withDockerParameter("cap-add", "ALL")},
			message: []string{"parameter cap-add=ALL", "adds every capability", "EXECUTOR_ALLOWED_CAPABILITIES=ALL"}},
		{name: "cap-add outside the operator's list", task: []taskOption{withDockerParameter("cap-add", "SYS_ADMIN")},
			settings: []string{"EXECUTOR_ALLOWED_CAPABILITIES=SYS_PTRACE"},
			message:  []string{"parameter cap-add=SYS_ADMIN", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN"}},
		{name: "the Docker socket", task: []taskOption{withHostPathVolume("/var/run/docker.sock", "/var/run/docker.sock")},
			message: []string{"container.volumes[0].host_path=/var/run/docker.sock", "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS="}},
		{name: "the Docker socket under /run", task: []taskOption{withHostPathVolume("/run/docker.sock", "/sock")},
			message: []string{"container.volumes[0].host_path=/run/docker.sock", "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=/run/docker.sock"}},
		{name: "the Docker socket with a trailing slash", task: []taskOption{withHostPathVolume("/run/docker.sock/", "/sock")},
			message: []string{"host_path=/run/docker.sock/", "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=/run/docker.sock"}},
		{name: "the Docker socket through a symlink", task: []taskOption{withHostPathVolume(socketLink, "/sock")},
			message: []string{"host_path=" + socketLink, "resolves to", "docker.sock", "EXECUTOR_ALLOWED_HOST_PATHS="}},
		{name: "the socket named by DOCKER_HOST", task: []taskOption{withHostPathVolume(altDockerSocket, "/sock")},
			// Admission precedes every Docker call: this DOCKER_HOST
			// answers nothing, yet the refusal, not Docker, ends the task.
			settings: []string{"DOCKER_HOST=unix://" + altDockerSocket},
			message:  []string{"host_path=" + altDockerSocket, "DOCKER_HOST", "EXECUTOR_ALLOWED_HOST_PATHS=" + altDockerSocket}},
		{name: "the root filesystem", task: []taskOption{withHostPathVolume("/", "/host")},
			message: []string{"container.volumes[0].host_path=/ ", "root filesystem", "EXECUTOR_ALLOWED_HOST_PATHS=/"}},
		{name: "a path containing Docker's storage", task: []taskOption{withHostPathVolume("/var", "/host-var")},
			message: []string{"host_path=/var ", "contains", "EXECUTOR_ALLOWED_HOST_PATHS=/var"}},
		{name: "inside Docker's storage", task: []taskOption{withHostPathVolume("/var/lib/docker/volumes", "/volumes")},
			message: []string{"host_path=/var/lib/docker/volumes", "is inside /var/lib/docker", "EXECUTOR_ALLOWED_HOST_PATHS=/var/lib/docker/volumes"}},
		{name: "/proc", task: []taskOption{withHostPathVolume("/proc", "/host-proc")},
			message: []string{"host_path=/proc", "EXECUTOR_ALLOWED_HOST_PATHS=/proc"}},
		{name: "/sys/fs/cgroup", task: []taskOption{withHostPathVolume("/sys/fs/cgroup", "/cgroup")},
			message: []string{"host_path=/sys/fs/cgroup", "is inside /sys", "EXECUTOR_ALLOWED_HOST_PATHS="}},
		{name: "/dev", task: []taskOption{withHostPathVolume("/dev", "/host-dev")},
			message: []string{"host_path=/dev", "EXECUTOR_ALLOWED_HOST_PATHS=/dev"}},
		{name: "/etc", task: []taskOption{withHostPathVolume("/etc", "/host-etc")},
			message: []string{"host_path=/etc", "contains /etc/sidecar-executor", "EXECUTOR_ALLOWED_HOST_PATHS=/etc"}},
		{name: "root's home", task: []taskOption{withHostPathVolume("/root/.ssh", "/ssh")},
			message: []string{"host_path=/root/.ssh", "is inside /root", "EXECUTOR_ALLOWED_HOST_PATHS=/root/.ssh"}},
		{name: "a sandbox symlink out of the sandbox",
			sandbox: func(t *testing.T, sandbox, _ string) taskOption {
				if err := os.Symlink("/var/lib/docker", filepath.Join(sandbox, "evil")); err != nil {
					t.Fatal(err)
				}
				return withHostPathVolume("evil", "/evil")
			},
			message: []string{"container.volumes[0].host_path=evil", "resolves to /var/lib/docker", "EXECUTOR_ALLOWED_HOST_PATHS=/var/lib/docker"}},
		{name: "another task's sandbox",
			sandbox: func(t *testing.T, _, otherTask string) taskOption { return withHostPathVolume(otherTask, "/other") },
			message: []string{"host_path=", "ex-2/runs/run-2", "Mesos agent's work directory", "EXECUTOR_ALLOWED_HOST_PATHS="}},
		{name: "the agent work directory",
			sandbox: func(t *testing.T, sandbox, _ string) taskOption {
				return withHostPathVolume(strings.TrimSuffix(sandbox, "/slaves/agent-1/frameworks/fw-1/executors/ex-1/runs/run-1"), "/work")
			},
			message: []string{"Mesos agent's work directory", "EXECUTOR_ALLOWED_HOST_PATHS="}},
		{name: "another team's named volume", task: []taskOption{withDockerVolume("payments-data", "")},
			message: []string{"container.volumes[0].source.docker_volume.name=payments-data", "EXECUTOR_ALLOWED_NAMED_VOLUMES=payments-data"}},
		{name: "a named volume outside the operator's patterns", task: []taskOption{withDockerVolume("payments-data", "")},
			settings: []string{"EXECUTOR_ALLOWED_NAMED_VOLUMES=billing-*"},
			message:  []string{"docker_volume.name=payments-data", "EXECUTOR_ALLOWED_NAMED_VOLUMES=payments-data"}},
		{name: "volume-driver parameter", task: []taskOption{withDockerParameter("volume-driver", "rexray")},
			message: []string{"parameter volume-driver=rexray", "EXECUTOR_ALLOWED_VOLUME_DRIVERS=rexray"}},
		{name: "DockerInfo.volume_driver", task: []taskOption{func(task *mesos.TaskInfo) { task.Container.Docker.VolumeDriver = strPtr("convoy") }},
			message: []string{"container.docker.volume_driver=convoy", "EXECUTOR_ALLOWED_VOLUME_DRIVERS=convoy"}},
		{name: "a Docker volume's driver", task: []taskOption{withDockerVolume("scratch", "nfs")},
			message: []string{"container.volumes[0].source.docker_volume.driver=nfs", "EXECUTOR_ALLOWED_VOLUME_DRIVERS=nfs"}},
		{name: "every violation at once", task: []taskOption{privileged, withDockerParameter("cap-add", "NET_ADMIN"), withHostPathVolume("/var/run/docker.sock", "/sock")},
			message: []string{"(3 violations)", "container.docker.privileged=true", "parameter cap-add=NET_ADMIN", "host_path=/var/run/docker.sock",
				"EXECUTOR_ALLOW_PRIVILEGED=true", "EXECUTOR_ALLOWED_CAPABILITIES=NET_ADMIN", "EXECUTOR_ALLOWED_HOST_PATHS="}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := newCountingServer(t)
			serverHost := strings.TrimPrefix(server.URL, "http://")
			sandbox, otherTask := mesosLayoutSandbox(t)
			options := append([]taskOption{withShellCommand("true"), withEnv("DB_PASSWORD", "vault://secret/app/db?key=password")}, tc.task...)
			if tc.sandbox != nil {
				options = append(options, tc.sandbox(t, sandbox, otherTask))
			}
			agent := newAgent(t, mesostest.Config{})
			image := fmt.Sprintf("%s/policy/never-pulled-%d:1", serverHost, i)
			task := newDockerTask(t, agent, image, options...)
			mustLaunch(t, agent, task)
			settings := []string{"VAULT_ADDR=" + server.URL, "VAULT_TOKEN=s.policy-test"}
			if len(tc.settings) > 0 {
				settings = append(settings, withOperatorFile(t, tc.settings...))
			}
			proc := startExecutorIn(t, agent, sandbox, executorBinary, executorEnv(agent, sandbox, settings...))

			final := waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
			if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_TASK_UNAUTHORIZED {
				t.Fatalf("final %s (%s) %q, want TASK_FAILED (REASON_TASK_UNAUTHORIZED)", final.GetState(), final.GetReason(), final.GetMessage())
			}
			message := final.GetMessage()
			for _, fragment := range append([]string{"refused by the admission policy", "/etc/sidecar-executor/environment"}, tc.message...) {
				if !strings.Contains(message, fragment) {
					t.Errorf("message %q does not mention %q", message, fragment)
				}
			}
			if code := proc.waitExit(t, 20*time.Second); code == 0 {
				t.Errorf("executor exited 0 after refusing the task")
			}
			if n := server.requests.Load(); n != 0 {
				t.Errorf("%d requests reached the registry/Vault: the refused task was pulled or resolved", n)
			}
			for _, step := range []string{"Resolving environment variable from Vault", "pulling", "creating the container"} {
				if strings.Contains(proc.stdout.String(), step) {
					t.Errorf("the executor logged %q for a refused task", step)
				}
			}
			assertNoTaskContainer(t, task.TaskID.Value)
		})
	}
}

// containerConfigLogged returns the HostConfig the executor logged at debug
// level before creating the container: what it asked Docker for.
func containerConfigLogged(t *testing.T, proc *executorProcess) docker.HostConfig {
	t.Helper()
	match := regexp.MustCompile(`container_config="((?:[^"\\]|\\.)*)"`).FindStringSubmatch(proc.stdout.String())
	if match == nil {
		t.Fatalf("the executor did not log the container configuration")
	}
	var raw string
	if err := json.Unmarshal([]byte(`"`+match[1]+`"`), &raw); err != nil {
		t.Fatalf("unquote the logged configuration: %v", err)
	}
	var options struct{ HostConfig docker.HostConfig }
	if err := json.Unmarshal([]byte(raw), &options); err != nil {
		t.Fatalf("decode the logged configuration %s: %v", raw, err)
	}
	return options.HostConfig
}

// TestAdmissionOperatorSettingsAdmit runs what the policy refuses by
// default with the operator setting that admits it, and checks what the
// executor asked Docker for.
func TestAdmissionOperatorSettingsAdmit(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	volumeName := fmt.Sprintf("sidecar-policy-test-%d", time.Now().UnixNano())
	// Registered first, so it runs after the container is removed.
	t.Cleanup(func() { _ = dockerClient.RemoveVolume(volumeName) })

	t.Run("a capability the operator allows", func(t *testing.T) {
		t.Parallel()
		agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage,
			[]taskOption{withShellCommand(termRespecting), withDockerParameter("cap-add", "cap_sys_ptrace"), withDockerParameter("cap-add", "NET_BIND_SERVICE")},
			withOperatorFile(t, "EXECUTOR_ALLOWED_CAPABILITIES=SYS_PTRACE"))
		container := inspectTaskContainer(t, task.TaskID.Value)
		if container == nil {
			t.Fatal("no container")
		}
		found := false
		for _, capability := range container.HostConfig.CapAdd {
			found = found || normalizeCapability(capability) == "SYS_PTRACE"
		}
		if !found {
			t.Errorf("CapAdd %v lacks SYS_PTRACE", container.HostConfig.CapAdd)
		}
		mustKill(t, agent, task.TaskID.Value, nil)
		waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	})

	t.Run("another task's sandbox the operator allows", func(t *testing.T) {
		t.Parallel()
		sandbox, otherTask := mesosLayoutSandbox(t)
		agent := newAgent(t, mesostest.Config{})
		task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting), withHostPathVolume(otherTask, "/other"))
		mustLaunch(t, agent, task)
		startExecutorIn(t, agent, sandbox, executorBinary, executorEnv(agent, sandbox, withOperatorFile(t, "EXECUTOR_ALLOWED_HOST_PATHS="+filepath.Dir(otherTask))))
		waitRunning(t, agent, task, 60*time.Second)
		container := inspectTaskContainer(t, task.TaskID.Value)
		if container == nil {
			t.Fatal("no container")
		}
		if want := otherTask + ":/other:rw"; !slices.Contains(container.HostConfig.Binds, want) {
			t.Errorf("Binds %v lack %s", container.HostConfig.Binds, want)
		}
		mustKill(t, agent, task.TaskID.Value, nil)
		waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	})

	t.Run("a named volume the operator allows", func(t *testing.T) {
		t.Parallel()
		agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage,
			[]taskOption{withShellCommand(termRespecting), withDockerVolume(volumeName, "local")},
			withOperatorFile(t, "EXECUTOR_ALLOWED_NAMED_VOLUMES=sidecar-policy-test-*"))
		container := inspectTaskContainer(t, task.TaskID.Value)
		if container == nil {
			t.Fatal("no container")
		}
		if want := volumeName + ":/data:rw"; !slices.Contains(container.HostConfig.Binds, want) || container.HostConfig.VolumeDriver != "local" {
			t.Errorf("Binds %v, VolumeDriver %q; want %s with the local driver", container.HostConfig.Binds, container.HostConfig.VolumeDriver, want)
		}
		mustKill(t, agent, task.TaskID.Value, nil)
		waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	})

	// This engine cannot start privileged containers or cap-add ALL, so
	// the start may fail; what matters is that admission let them through
	// and the executor asked Docker for exactly that.
	for _, tc := range []struct {
		name    string
		task    []taskOption
		setting string
		check   func(docker.HostConfig) bool
	}{
		{"privileged with EXECUTOR_ALLOW_PRIVILEGED", []taskOption{privileged}, "EXECUTOR_ALLOW_PRIVILEGED=true",
			func(h docker.HostConfig) bool { return h.Privileged }},
		{"cap-add ALL with EXECUTOR_ALLOWED_CAPABILITIES=ALL", []taskOption{withDockerParameter("cap-add", "ALL")}, "EXECUTOR_ALLOWED_CAPABILITIES=ALL",
			func(h docker.HostConfig) bool { return slices.Contains(h.CapAdd, "ALL") }},
		{"the Docker socket with EXECUTOR_ALLOWED_HOST_PATHS", []taskOption{withHostPathVolume("/var/run/docker.sock", "/sock")}, "EXECUTOR_ALLOWED_HOST_PATHS=/var/run/docker.sock",
			func(h docker.HostConfig) bool { return slices.Contains(h.Binds, "/var/run/docker.sock:/sock:rw") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent, task, proc := startTask(t, mesostest.Config{}, testImage, append([]taskOption{withShellCommand(termRespecting)}, tc.task...),
				withOperatorFile(t, tc.setting), "EXECUTOR_DEBUG=true")
			update, err := agent.WaitForUpdate(testContext(t, 60*time.Second), func(u mesostest.Update) bool {
				state := u.Status.GetState()
				return u.Status.TaskID.Value == task.TaskID.Value && (state == mesos.TASK_RUNNING || isTerminal(state))
			})
			if err != nil {
				t.Fatalf("the task neither ran nor ended: %v", err)
			}
			if update.Status.GetReason() == mesos.REASON_TASK_UNAUTHORIZED {
				t.Fatalf("refused despite %s: %q", tc.setting, update.Status.GetMessage())
			}
			if update.Status.GetState() == mesos.TASK_RUNNING {
				waitForTrap(t, task.TaskID.Value, 30*time.Second)
				mustKill(t, agent, task.TaskID.Value, nil)
				waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
			}
			if hostConfig := containerConfigLogged(t, proc); !tc.check(hostConfig) {
				t.Errorf("the executor asked Docker for %+v", hostConfig)
			}
			if !strings.Contains(proc.stdout.String(), "creating the container") {
				t.Errorf("the executor never created the container")
			}
		})
	}
}
