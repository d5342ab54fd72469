package main

// End-to-end tests, against the real Docker engine, of what TASK_RUNNING
// carries (Docker's inspect answer in data, the container's addresses per
// network) and of max_completion_time.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// runningData decodes TASK_RUNNING's data: a JSON array of one object.
func runningData(t *testing.T, running mesos.TaskStatus) map[string]any {
	t.Helper()
	var data []map[string]any
	if err := json.Unmarshal(running.GetData(), &data); err != nil || len(data) != 1 {
		t.Fatalf("TASK_RUNNING data is not a JSON array of one object (%v): %.300q", err, running.GetData())
	}
	return data[0]
}

// cliInspect is `docker inspect` of the container, as the docker CLI
// prints it.
func cliInspect(t *testing.T, id string) map[string]any {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "--type=container", id).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
	var data []map[string]any
	if err := json.Unmarshal(out, &data); err != nil || len(data) != 1 {
		t.Fatalf("docker inspect printed %.300q: %v", out, err)
	}
	return data[0]
}

func TestRunningCarriesDockersInspectAndTheBridgeAddress(t *testing.T) {
	agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand("sleep 60"),
		withEnv("DB_PASSWORD", "hunter2-in-the-environment"),
		func(task *mesos.TaskInfo) {
			task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
		},
	})
	running := waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
	container := inspectTaskContainer(t, task.TaskID.Value)
	if container == nil {
		t.Fatal("no container")
	}

	data := runningData(t, running)
	if data["Id"] != container.ID {
		t.Errorf("data[0].Id = %v, want the container's ID %s", data["Id"], container.ID)
	}
	// Docker's own answer, not a re-encoding of go-dockerclient's struct
	// (which drops the fields it does not know and the zero values it
	// marks omitempty): HostConfig does not change once the container
	// runs, so it is what the docker CLI prints.
	cli := cliInspect(t, container.ID)
	if !reflect.DeepEqual(data["HostConfig"], cli["HostConfig"]) {
		t.Errorf("data[0].HostConfig differs from docker inspect's:\n%v\n%v", data["HostConfig"], cli["HostConfig"])
	}
	if strings.Contains(string(running.GetData()), "hunter2-in-the-environment") {
		t.Error("TASK_RUNNING's data carries the value of DB_PASSWORD")
	}

	ip := container.NetworkSettings.Networks["bridge"].IPAddress
	infos := running.GetContainerStatus().GetNetworkInfos()
	if ip == "" || len(infos) != 1 || infos[0].GetName() != "bridge" || len(infos[0].IPAddresses) != 1 ||
		infos[0].IPAddresses[0].GetIPAddress() != ip || infos[0].IPAddresses[0].GetProtocol() != mesos.IPv4 {
		t.Errorf("network infos %v, want one named bridge with the container's address %q", infos, ip)
	}

	mustKill(t, agent, task.TaskID.Value, nil)
	if final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final state %s %q, want TASK_KILLED", final.GetState(), final.GetMessage())
	}
	assertNoContainer(t, task.TaskID.Value)
}

func TestRunningOnTheHostNetworkHasDataButNoAddress(t *testing.T) {
	agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand("sleep 60")})
	running := waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
	container := inspectTaskContainer(t, task.TaskID.Value)
	if container == nil {
		t.Fatal("no container")
	}
	if data := runningData(t, running); data["Id"] != container.ID {
		t.Errorf("data[0].Id = %v, want %s", data["Id"], container.ID)
	}
	if infos := running.GetContainerStatus().GetNetworkInfos(); len(infos) != 0 {
		t.Errorf("network infos %v on the host network, which gives the container no address", infos)
	}
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

func TestMaxCompletionTimeEndsALongTask(t *testing.T) {
	const limit, grace = 2 * time.Second, time.Second
	// A framework that understands TASK_KILLING, which must still not get one.
	agent := newAgent(t, mesostest.Config{Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}})
	// sleep as PID 1 ignores the stop signal: SIGKILL after the grace ends it.
	task := newDockerTask(t, agent, testImage, withShellCommand("sleep 60"), withKillPolicy(grace), withMaxCompletion(limit))
	launched := time.Now()
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)
	final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	took := time.Since(launched)

	if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_MAX_COMPLETION_TIME_REACHED {
		t.Fatalf("final %s %s %q, want TASK_FAILED REASON_MAX_COMPLETION_TIME_REACHED", final.GetState(), final.GetReason(), final.GetMessage())
	}
	if msg := final.GetMessage(); !strings.Contains(msg, "max_completion_time of 2s reached") || !strings.Contains(msg, "SIGKILL") {
		t.Errorf("message %q, want the limit and the SIGKILL after the grace", msg)
	}
	// Not before the limit; and, as a deadline with room for a loaded
	// machine, long before the 60 s the task would otherwise run.
	if took < limit || took > limit+grace+20*time.Second {
		t.Errorf("the task ended %s after its launch, want within %s plus the grace %s (and a margin)", took, limit, grace)
	}
	for _, s := range states(agent, task.TaskID.Value) {
		if s == mesos.TASK_KILLING {
			t.Error("TASK_KILLING sent for a max_completion_time stop")
		}
	}
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)
}

func TestRunningNamesTheUserNetwork(t *testing.T) {
	client := requireDocker(t)
	// Registered before the task's, this cleanup runs after the
	// container is gone.
	name := fmt.Sprintf("sidecar-exec-test-%d", time.Now().UnixNano())
	network, err := client.CreateNetwork(docker.CreateNetworkOptions{Name: name, Driver: "bridge"})
	if err != nil {
		t.Fatalf("create the network %s: %v", name, err)
	}
	t.Cleanup(func() { client.RemoveNetwork(network.ID) }) //nolint:errcheck
	agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand("sleep 60"),
		func(task *mesos.TaskInfo) {
			task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_USER.Enum()
			task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: strPtr(name)}}
		},
	})
	running := waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
	container := inspectTaskContainer(t, task.TaskID.Value)
	if container == nil {
		t.Fatal("no container")
	}
	ip := container.NetworkSettings.Networks[name].IPAddress
	infos := running.GetContainerStatus().GetNetworkInfos()
	if ip == "" || len(infos) != 1 || infos[0].GetName() != name || len(infos[0].IPAddresses) != 1 || infos[0].IPAddresses[0].GetIPAddress() != ip {
		t.Errorf("network infos %v, want one named %s with the container's address %q", infos, name, ip)
	}
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}
