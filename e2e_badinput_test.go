package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// TestBadInputFailsTheTask runs the real executor on inputs an operator can
// get wrong. Each must end in one TASK_FAILED that names the problem, with
// no panic, no container left behind and a non-zero executor exit.
func TestBadInputFailsTheTask(t *testing.T) {
	requireDocker(t) // once for all subtests
	t.Parallel()
	bridge := func(task *mesos.TaskInfo) {
		task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
	}
	cases := []struct {
		name     string
		image    string
		task     []taskOption
		settings []string
		operator []string // lines of the operator's file, when not empty
		reason   mesos.TaskStatus_Reason
		message  []string // every fragment must appear in the TASK_FAILED message
	}{
		{
			name:    "no container info",
			task:    []taskOption{func(task *mesos.TaskInfo) { task.Container = nil }},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"container"},
		},
		{
			name:    "no docker info",
			task:    []taskOption{func(task *mesos.TaskInfo) { task.Container.Docker = nil }},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"docker"},
		},
		{
			name:    "empty image",
			image:   "-",
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"image"},
		},
		{
			name:    "invalid image reference",
			image:   "Not A/Valid Image",
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"Not A/Valid Image"},
		},
		{
			name: "unknown network",
			task: []taskOption{func(task *mesos.TaskInfo) {
				task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_USER.Enum()
				task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: strPtr("no-such-network-for-sidecar-executor")}}
			}},
			reason:  mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message: []string{"no-such-network-for-sidecar-executor"},
		},
		{
			name: "bad port protocol",
			task: []taskOption{bridge, func(task *mesos.TaskInfo) {
				task.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{{HostPort: 31000, ContainerPort: 8080, Protocol: strPtr("sctp")}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"sctp"},
		},
		{
			name: "volume without host path",
			task: []taskOption{func(task *mesos.TaskInfo) {
				task.Container.Volumes = []mesos.Volume{{ContainerPath: "/data", Mode: mesos.RW.Enum()}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"/data"},
		},
		{
			name:    "env parameter without =",
			task:    []taskOption{withDockerParameter("env", "JUST_A_NAME")},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"JUST_A_NAME"},
		},
		{
			name:    "label parameter with an empty key",
			task:    []taskOption{withDockerParameter("label", "=lonely-value")},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"=lonely-value", "empty key"},
		},
		{
			name:    "image missing and not pullable",
			image:   "127.0.0.1:1/missing/image:1",
			reason:  mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message: []string{"127.0.0.1:1/missing/image:1"},
		},
		{
			name:     "docker unreachable",
			operator: []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"},
			reason:   mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message:  []string{"Docker", "unreachable"},
		},
		{
			name:     "invalid executor setting",
			settings: []string{"EXECUTOR_SIDECAR_POLL_INTERVAL=soon"},
			reason:   mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message:  []string{"EXECUTOR_SIDECAR_POLL_INTERVAL", "soon"},
		},
		{
			name: "duplicate port mappings",
			task: []taskOption{bridge, func(task *mesos.TaskInfo) {
				task.Resources = append(task.Resources, portsResource(mesos.Value_Range{Begin: 31000, End: 31010}))
				task.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{
					{HostPort: 31000, ContainerPort: 8080}, {HostPort: 31000, ContainerPort: 8081}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"31000"},
		},
		{
			name: "host port outside the ports resource",
			task: []taskOption{bridge, func(task *mesos.TaskInfo) {
				task.Resources = append(task.Resources, portsResource(mesos.Value_Range{Begin: 31000, End: 31004}))
				task.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{{HostPort: 31005, ContainerPort: 8080}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"31005"},
		},
		{
			name: "host port out of range",
			task: []taskOption{bridge, func(task *mesos.TaskInfo) {
				task.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{{HostPort: 70000, ContainerPort: 8080}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"70000"},
		},
		{
			name: "container port 0",
			task: []taskOption{bridge, func(task *mesos.TaskInfo) {
				task.Resources = append(task.Resources, portsResource(mesos.Value_Range{Begin: 31000, End: 31000}))
				task.Container.Docker.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{{HostPort: 31000, ContainerPort: 0}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"container_port"},
		},
		{
			name: "negative resources",
			task: []taskOption{func(task *mesos.TaskInfo) {
				task.Resources = []mesos.Resource{scalarResource("cpus", -1), scalarResource("mem", 64)}
			}},
			settings: []string{"EXECUTOR_FORCE_CPU_LIMIT=true"},
			reason:   mesos.REASON_TASK_INVALID,
			message:  []string{"cpus"},
		},
		{
			name:    "huge environment",
			task:    []taskOption{withEnv("HUGE", strings.Repeat("x", 2<<20))},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"environment", "MiB"},
		},
		{
			name:    "NUL byte in an environment value",
			task:    []taskOption{withEnv("WITH_NUL", "before\x00after")},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"WITH_NUL", "NUL"},
		},
		{
			name:    "NUL byte in a label",
			task:    []taskOption{withDockerParameter("label", "team=pay\x00ments")},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"NUL"},
		},
		{
			name: "path traversal in a volume",
			task: []taskOption{func(task *mesos.TaskInfo) {
				task.Container.Volumes = []mesos.Volume{{HostPath: strPtr("/tmp/../etc"), ContainerPath: "/data", Mode: mesos.RO.Enum()}}
			}},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{".."},
		},
		{
			name: "privileged while not allowed",
			task: []taskOption{func(task *mesos.TaskInfo) {
				task.Container.Docker.Privileged = boolPtr(true)
			}},
			reason:  mesos.REASON_TASK_UNAUTHORIZED,
			message: []string{"container.docker.privileged", "EXECUTOR_ALLOW_PRIVILEGED"},
		},
		{
			name:    "unterminated quote in executor.ShellCommand",
			task:    []taskOption{withShellCommand(`sh -c 'echo unbalanced`)},
			reason:  mesos.REASON_TASK_INVALID,
			message: []string{"executor.ShellCommand"},
		},
		{
			name:     "negative kill timeout",
			settings: []string{"EXECUTOR_KILL_TASK_TIMEOUT=-1"},
			reason:   mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message:  []string{"EXECUTOR_KILL_TASK_TIMEOUT"},
		},
		{
			name:     "zero poll interval",
			settings: []string{"EXECUTOR_SIDECAR_POLL_INTERVAL=0s"},
			reason:   mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message:  []string{"EXECUTOR_SIDECAR_POLL_INTERVAL"},
		},
		{
			name:     "malformed sidecar url",
			settings: []string{"EXECUTOR_SIDECAR_URL=localhost:7777"},
			reason:   mesos.REASON_CONTAINER_LAUNCH_FAILED,
			message:  []string{"EXECUTOR_SIDECAR_URL"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := newAgent(t, mesostest.Config{})
			image := testImage
			switch tc.image {
			case "":
			case "-":
				image = ""
			default:
				image = tc.image
			}
			task := newDockerTask(t, agent, image, append([]taskOption{withShellCommand("true")}, tc.task...)...)
			task = withoutDuplicateCommandLabel(task)
			mustLaunch(t, agent, task)
			settings := tc.settings
			if len(tc.operator) > 0 {
				settings = append(slices.Clone(settings), withOperatorFile(t, tc.operator...))
			}
			proc := startExecutor(t, agent, settings...)
			final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED)
			if final.GetReason() != tc.reason {
				t.Errorf("reason %s, want %s", final.GetReason(), tc.reason)
			}
			for _, fragment := range tc.message {
				if !strings.Contains(final.GetMessage(), fragment) {
					t.Errorf("message %q does not mention %q", final.GetMessage(), fragment)
				}
			}
			if code := proc.waitExit(t, 20*time.Second); code == 0 {
				t.Errorf("executor exited 0 after failing to launch the task")
			}
			if out := proc.output(); strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
				t.Errorf("the executor panicked:\n%s", out)
			}
			if !strings.Contains(proc.stdout.String(), "could not be launched") {
				t.Errorf("no log line explains the launch failure")
			}
			assertNoContainer(t, task.TaskID.Value)
		})
	}
}

func TestMissingMesosEnvironmentExitsClearly(t *testing.T) {
	t.Parallel()
	proc := startExecutorIn(t, nil, t.TempDir(), executorBinary, []string{"PATH=/usr/bin:/bin"})
	if code := proc.waitExit(t, 10*time.Second); code != exitBadEnvironment {
		t.Fatalf("exit code %d, want %d", code, exitBadEnvironment)
	}
	if !strings.Contains(proc.output(), "MESOS_FRAMEWORK_ID") {
		t.Fatalf("the error does not name the missing variables:\n%s", proc.output())
	}
}

// withoutDuplicateCommandLabel keeps only the last executor.ShellCommand
// label, so a case can replace the default command.
func withoutDuplicateCommandLabel(task mesos.TaskInfo) mesos.TaskInfo {
	var kept []mesos.Label
	last := -1
	for i, l := range task.Labels.Labels {
		if l.Key == "executor.ShellCommand" {
			last = i
		}
	}
	for i, l := range task.Labels.Labels {
		if l.Key != "executor.ShellCommand" || i == last {
			kept = append(kept, l)
		}
	}
	task.Labels.Labels = kept
	return task
}
