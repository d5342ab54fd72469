package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fakePorts hands out 40001, 40002, … and records the protocols asked for.
type fakePorts struct {
	next      uint32
	protocols []string
}

func (p *fakePorts) pick(protocols string) (uint32, error) {
	p.protocols = append(p.protocols, protocols)
	if p.next == 0 {
		p.next = 40001
	}
	p.next++
	return p.next - 1, nil
}

func testSettings(ports *fakePorts) fillSettings {
	return fillSettings{
		source:       "examples/web-server.json",
		hostname:     "box1",
		executorPath: "/opt/bin/sidecar-executor",
		now:          time.UnixMilli(1700000000123),
		suffix:       "ab12",
		pickPort:     ports.pick,
	}
}

func mustParse(t *testing.T, doc string) mesos.TaskInfo {
	t.Helper()
	task, err := parseTaskFile("test.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func envOf(task mesos.TaskInfo) map[string]string {
	env := map[string]string{}
	for _, v := range task.GetExecutor().GetCommand().GetEnvironment().GetVariables() {
		env[v.Name] = v.GetValue()
	}
	return env
}

func TestFillGeneratesWhatTheFileLeavesOut(t *testing.T) {
	f, err := fillTask(mustParse(t, minimalTask), testSettings(&fakePorts{}))
	if err != nil {
		t.Fatal(err)
	}
	task := f.task
	if task.Name != "web-server" {
		t.Errorf("name %q, want the file's name", task.Name)
	}
	if want := "web-server-1700000000123-ab12"; task.TaskID.Value != want {
		t.Errorf("task_id %q, want %q", task.TaskID.Value, want)
	}
	if task.AgentID.Value == "" || task.AgentID.Value != f.agentID {
		t.Errorf("agent_id %q, agent's %q", task.AgentID.Value, f.agentID)
	}
	executor := task.Executor
	if executor == nil {
		t.Fatal("no executor filled in")
	}
	if executor.Type != mesos.ExecutorInfo_CUSTOM || executor.ExecutorID.Value != "mesos-local-"+task.TaskID.Value || executor.ExecutorID.Value != f.executorID {
		t.Errorf("executor type %v id %q (agent's %q)", executor.Type, executor.ExecutorID.Value, f.executorID)
	}
	if executor.GetFrameworkID().GetValue() == "" || executor.GetFrameworkID().GetValue() != f.frameworkID {
		t.Errorf("framework_id %q, agent's %q", executor.GetFrameworkID().GetValue(), f.frameworkID)
	}
	if got := executor.GetCommand().GetValue(); got != "/opt/bin/sidecar-executor" || executor.GetCommand().GetShell() {
		t.Errorf("executor command %q shell %t", got, executor.GetCommand().GetShell())
	}
	if env := envOf(task); len(env) != 1 || env["TASK_HOST"] != "box1" {
		t.Errorf("environment %v, want only TASK_HOST=box1 (no ports)", env)
	}
	joined := strings.Join(f.notes, "\n")
	for _, want := range []string{"name web-server", "task_id web-server-1700000000123-ab12", "executor: a CUSTOM ExecutorInfo running /opt/bin/sidecar-executor", "agent_id, executor.framework_id (generated)", "TASK_HOST=box1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
}

func TestFillKeepsWhatTheFileSets(t *testing.T) {
	doc := `{"name": "billing", "task_id": {"value": "billing-7"}, "agent_id": {"value": "agent-9"},
		"executor": {"executor_id": {"value": "exec-3"}, "framework_id": {"value": "fw-2"},
		             "command": {"value": "/opt/mesos/executor.sh", "environment": {"variables": [
		                 {"name": "TASK_HOST", "value": "agent9.example.com"}, {"name": "PORT0", "value": "1234"}]}}},
		"resources": [{"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}}],
		"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE",
		              "port_mappings": [{"host_port": 31001, "container_port": 80}]}}}`
	original := mustParse(t, doc)
	ports := &fakePorts{}
	f, err := fillTask(original, testSettings(ports))
	if err != nil {
		t.Fatal(err)
	}
	task := f.task
	if task.Name != "billing" || task.TaskID.Value != "billing-7" || f.agentID != "agent-9" || f.executorID != "exec-3" || f.frameworkID != "fw-2" {
		t.Errorf("IDs changed: name %q task %q agent %q executor %q framework %q", task.Name, task.TaskID.Value, f.agentID, f.executorID, f.frameworkID)
	}
	if got := task.Executor.GetCommand().GetValue(); got != "/opt/mesos/executor.sh" {
		t.Errorf("executor command %q, want the file's", got)
	}
	if len(ports.protocols) != 0 {
		t.Errorf("picked ports %v for a mapping that names its host port", ports.protocols)
	}
	if got := task.Container.Docker.PortMappings[0].HostPort; got != 31001 {
		t.Errorf("host port %d", got)
	}
	env := envOf(task)
	want := map[string]string{"TASK_HOST": "agent9.example.com", "PORT0": "1234", "PORT": "31000", "PORT1": "31001"}
	if fmt.Sprint(env) != fmt.Sprint(want) {
		t.Errorf("environment %v, want %v", env, want)
	}
	if len(f.notes) != 1 || f.notes[0] != "executor.command.environment PORT=31000 PORT1=31001" {
		t.Errorf("notes %q", f.notes)
	}
	// The parsed task is left as it was.
	if len(envOf(original)) != 2 || original.Executor.GetCommand().GetEnvironment() == task.Executor.GetCommand().GetEnvironment() {
		t.Error("filling in changed the parsed task")
	}
}

func TestFillAssignsHostPorts(t *testing.T) {
	doc := `{"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
		                  {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31000}]}}],
		"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [
			{"host_port": 0, "container_port": 80},
			{"host_port": 31000, "container_port": 81, "protocol": "udp"},
			{"host_port": 0, "container_port": 53, "protocol": "tcp,udp"}]}}}`
	original := mustParse(t, doc)
	ports := &fakePorts{}
	f, err := fillTask(original, testSettings(ports))
	if err != nil {
		t.Fatal(err)
	}
	mappings := f.task.Container.Docker.PortMappings
	if mappings[0].HostPort != 40001 || mappings[1].HostPort != 31000 || mappings[2].HostPort != 40002 {
		t.Errorf("host ports %d %d %d, want 40001 31000 40002", mappings[0].HostPort, mappings[1].HostPort, mappings[2].HostPort)
	}
	if fmt.Sprint(ports.protocols) != "[tcp tcp,udp]" {
		t.Errorf("asked for protocols %v", ports.protocols)
	}
	if got := taskPorts(f.task.Resources); fmt.Sprint(got) != "[31000 40001 40002]" {
		t.Errorf("ports resource %v, want the existing range plus the assigned ports", got)
	}
	if n := len(f.task.Resources); n != 2 {
		t.Errorf("%d resources, want the assigned ports in the existing ports resource", n)
	}
	env := envOf(f.task)
	if env["PORT"] != "31000" || env["PORT0"] != "31000" || env["PORT1"] != "40001" || env["PORT2"] != "40002" {
		t.Errorf("environment %v", env)
	}
	want := []publishedPort{{80, 40001, "tcp"}, {81, 31000, "udp"}, {53, 40002, "tcp,udp"}}
	if fmt.Sprint(f.published) != fmt.Sprint(want) {
		t.Errorf("published %v, want %v", f.published, want)
	}
	if original.Container.Docker.PortMappings[0].HostPort != 0 || len(original.Resources) != 2 || len(original.Resources[1].Ranges.Range) != 1 {
		t.Error("filling in changed the parsed task")
	}
}

func TestFillAddsAPortsResourceWhenThereIsNone(t *testing.T) {
	doc := `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [{"host_port": 0, "container_port": 8080}]}}}`
	f, err := fillTask(mustParse(t, doc), testSettings(&fakePorts{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.task.Resources) != 1 {
		t.Fatalf("resources %v", f.task.Resources)
	}
	r := f.task.Resources[0]
	if r.Name != "ports" || r.GetType() != mesos.RANGES || fmt.Sprint(taskPorts(f.task.Resources)) != "[40001]" {
		t.Errorf("resource %v", r)
	}
	if env := envOf(f.task); env["PORT0"] != "40001" || env["PORT"] != "40001" {
		t.Errorf("environment %v", env)
	}
}

func TestFillReportsNoFreePort(t *testing.T) {
	doc := `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [{"host_port": 0, "container_port": 8080}]}}}`
	s := testSettings(&fakePorts{})
	s.pickPort = func(string) (uint32, error) { return 0, errors.New("address already in use") }
	_, err := fillTask(mustParse(t, doc), s)
	if err == nil || err.Error() != "container.docker.port_mappings[0]: no free tcp port on this machine: address already in use" {
		t.Errorf("error %v", err)
	}
}

func TestFillNamesStdinTasks(t *testing.T) {
	s := testSettings(&fakePorts{})
	s.source = "-"
	f, err := fillTask(mustParse(t, minimalTask), s)
	if err != nil {
		t.Fatal(err)
	}
	if f.task.Name != "task" || f.task.TaskID.Value != "task-1700000000123-ab12" {
		t.Errorf("name %q task_id %q", f.task.Name, f.task.TaskID.Value)
	}
}

func TestTaskPortsBoundsTheVariables(t *testing.T) {
	resources := []mesos.Resource{{Name: "ports", Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 32000}}}}}
	if got := taskPorts(resources); len(got) != maxPortVariables || got[0] != 31000 || got[maxPortVariables-1] != 31000+maxPortVariables-1 {
		t.Errorf("%d ports from %d to %d", len(got), got[0], got[len(got)-1])
	}
}

func TestPortPickerHoldsDistinctFreePorts(t *testing.T) {
	picker := &portPicker{}
	var picked []uint32
	for _, protocols := range []string{"tcp", "tcp,udp", "udp", "tcp"} {
		port, err := picker.pick(protocols)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(picked, port) {
			t.Fatalf("port %d handed out twice", port)
		}
		picked = append(picked, port)
	}
	// Held: nobody else gets them until release.
	if l, err := net.Listen("tcp", fmt.Sprintf(":%d", picked[0])); err == nil {
		l.Close()
		t.Fatalf("port %d was not held", picked[0])
	}
	picker.release()
	for _, port := range picked {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			t.Fatalf("port %d not free after release: %v", port, err)
		}
		l.Close()
	}
}
