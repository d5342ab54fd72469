package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// freePorts returns n TCP ports that are free on 127.0.0.1 right now.
func freePorts(t *testing.T, n int) []uint32 {
	t.Helper()
	var ports []uint32
	var listeners []net.Listener
	for len(ports) < n {
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		ports = append(ports, uint32(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range listeners {
		l.Close()
	}
	return ports
}

// exactPorts is a ports resource holding exactly these ports.
func exactPorts(ports ...uint32) mesos.Resource {
	var ranges []mesos.Value_Range
	for _, p := range ports {
		ranges = append(ranges, mesos.Value_Range{Begin: uint64(p), End: uint64(p)})
	}
	return portsResource(ranges...)
}

// TestTaskInfoMappingOnRealDocker launches one task that uses every mapped
// TaskInfo feature and checks the result with docker inspect and from
// inside the container.
func TestTaskInfoMappingOnRealDocker(t *testing.T) {
	t.Parallel()
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "greeting"), []byte("hello from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage,
		withShellCommand(`sh -c 'env > $MESOS_SANDBOX/env.txt; cat /data/greeting > $MESOS_SANDBOX/volume.txt; touch /data/written 2>/dev/null && echo rw > $MESOS_SANDBOX/mode.txt || echo ro > $MESOS_SANDBOX/mode.txt; exec sleep 600'`),
		withEnv("TASK_HOST", "agent-7.example.com"),
		withEnv("PORT0", strconv.Itoa(int(ports[0]))),
		withEnv("APP_GREETING", "from executor environment"),
		withEnv("EXECUTOR_SIDECAR_BACKOFF", "5m"),
		withEnv("VAULT_TOKEN", "s.do-not-pass-me"),
		withLabel("ServiceName", "billing"),
		withLabel("Environment", "staging"),
		withDockerParameter("env", "APP_MODE=blue"),
		withDockerParameter("env", "APP_GREETING=from docker parameters"),
		withDockerParameter("label", "team=payments"),
		withDockerParameter("cap-add", "NET_ADMIN"),
		withDockerParameter("cap-drop", "MKNOD"),
		func(task *mesos.TaskInfo) {
			task.Resources = append(task.Resources, exactPorts(ports...))
			d := task.Container.Docker
			d.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
			d.PortMappings = []mesos.ContainerInfo_DockerInfo_PortMapping{
				{HostPort: ports[0], ContainerPort: 8080},
				{HostPort: ports[1], ContainerPort: 5353, Protocol: strPtr("tcp,udp")},
			}
			task.Container.Volumes = []mesos.Volume{{HostPath: strPtr(hostDir), ContainerPath: "/data", Mode: mesos.RO.Enum()}}
		},
	)
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent, "EXECUTOR_FORCE_CPU_LIMIT=true", "EXECUTOR_FORCE_MEMORY_LIMIT=true",
		// NET_ADMIN is outside Docker's default set: the admission policy
		// needs the operator's word for it.
		withOperatorFile(t, "EXECUTOR_ALLOWED_CAPABILITIES=NET_ADMIN"))
	running := waitRunning(t, agent, task, 60*time.Second)

	container := inspectTaskContainer(t, task.TaskID.Value)
	if container == nil {
		t.Fatal("no container")
	}
	if want := "/" + containerName(agent.Config().FrameworkID, task.TaskID.Value); container.Name != want || !strings.HasPrefix(want, "/mesos-") {
		t.Errorf("container name %q, want %q", container.Name, want)
	}

	// Bridge networking: the container's IP goes to Mesos.
	ip := container.NetworkSettings.Networks["bridge"].IPAddress
	if ip == "" {
		t.Fatal("container has no bridge IP")
	}
	gotIPs := running.GetContainerStatus().GetNetworkInfos()
	if len(gotIPs) != 1 || len(gotIPs[0].IPAddresses) != 1 || gotIPs[0].IPAddresses[0].GetIPAddress() != ip {
		t.Errorf("TASK_RUNNING container_status %v does not carry the container IP %s", gotIPs, ip)
	}
	if container.HostConfig.NetworkMode != "bridge" {
		t.Errorf("network mode %q, want bridge", container.HostConfig.NetworkMode)
	}

	env := container.Config.Env
	for _, want := range []string{
		"MESOS_HOSTNAME=agent-7.example.com",
		"TASK_HOST=agent-7.example.com",
		fmt.Sprintf("PORT0=%d", ports[0]),
		fmt.Sprintf("MESOS_PORT_8080=%d", ports[0]),
		fmt.Sprintf("MESOS_PORT_5353=%d", ports[1]),
		"SERVICE_NAME=billing",
		"ENVIRONMENT=staging",
		"SERVICE_VERSION=1.35",
		"MESOS_SANDBOX=/mnt/mesos/sandbox",
		"APP_MODE=blue",
		"APP_GREETING=from docker parameters",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("container environment lacks %s", want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "EXECUTOR_") || strings.HasPrefix(kv, "VAULT_TOKEN=") {
			t.Errorf("executor-only variable leaked into the container: %s", kv)
		}
	}
	if container.Config.Labels["team"] != "payments" {
		t.Errorf("labels %v lack team=payments", container.Config.Labels)
	}

	for _, port := range []docker.Port{"8080/tcp", "5353/tcp", "5353/udp"} {
		if _, ok := container.Config.ExposedPorts[port]; !ok {
			t.Errorf("port %s not exposed", port)
		}
	}
	wantBindings := map[docker.Port]string{"8080/tcp": fmt.Sprint(ports[0]), "5353/tcp": fmt.Sprint(ports[1]), "5353/udp": fmt.Sprint(ports[1])}
	for port, hostPort := range wantBindings {
		bindings := container.HostConfig.PortBindings[port]
		if len(bindings) != 1 || bindings[0].HostPort != hostPort {
			t.Errorf("binding of %s is %v, want host port %s", port, bindings, hostPort)
		}
	}
	if !slices.Contains(container.HostConfig.CapAdd, "NET_ADMIN") || !slices.Contains(container.HostConfig.CapDrop, "MKNOD") {
		t.Errorf("capabilities add %v drop %v", container.HostConfig.CapAdd, container.HostConfig.CapDrop)
	}
	if container.HostConfig.Memory != 64<<20 || container.HostConfig.MemorySwap != 64<<20 {
		t.Errorf("memory %d swap %d, want 64 MiB and no swap", container.HostConfig.Memory, container.HostConfig.MemorySwap)
	}
	if container.HostConfig.CPUQuota != 10000 || container.HostConfig.CPUPeriod != 100000 {
		t.Errorf("cpu quota %d period %d, want 10000/100000 for 0.1 cpus", container.HostConfig.CPUQuota, container.HostConfig.CPUPeriod)
	}
	if want := []string{"sh", "-c"}; len(container.Config.Cmd) != 3 || !slices.Equal(container.Config.Cmd[:2], want) {
		t.Errorf("command %q, want the shell-split executor.ShellCommand label", container.Config.Cmd)
	}

	// From inside: the sandbox is mounted and the volume is read-only.
	readSandbox := func(name string) string {
		data, err := os.ReadFile(filepath.Join(proc.sandbox, name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(data))
	}
	eventually(t, 20*time.Second, "the container to write to the sandbox", func() bool { return readSandbox("mode.txt") != "" })
	if got := readSandbox("volume.txt"); got != "hello from the host" {
		t.Errorf("volume content seen in the container: %q", got)
	}
	if got := readSandbox("mode.txt"); got != "ro" {
		t.Errorf("the RO volume was writable from the container (%s)", got)
	}
	if !strings.Contains(readSandbox("env.txt"), "SERVICE_NAME=billing") {
		t.Errorf("the environment seen in the container lacks SERVICE_NAME")
	}

	// The Docker environment is logged at start with secrets redacted.
	if !strings.Contains(proc.stdout.String(), "APP_MODE=blue") {
		t.Errorf("the container's Docker environment was not logged")
	}
	if strings.Contains(proc.output(), "s.do-not-pass-me") {
		t.Errorf("the Vault token appeared in the executor's output")
	}

	mustKill(t, agent, task.TaskID.Value, &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{}})
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
}

func TestProcessTitleShowsContainerAndImage(t *testing.T) {
	t.Parallel()
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting)})
	container := inspectTaskContainer(t, task.TaskID.Value)
	want := fmt.Sprintf("sidecar-executor %s %s", shortID(container.ID), testImage)
	eventually(t, 5*time.Second, "the process title", func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", proc.cmd.Process.Pid))
		return err == nil && strings.HasPrefix(string(cmdline), want)
	})
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
}
