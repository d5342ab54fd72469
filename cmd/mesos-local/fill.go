package main

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fillSettings is what filling in a task needs to know about this machine.
type fillSettings struct {
	source       string    // the task file's path, "-" for stdin
	hostname     string    // the agent's hostname: TASK_HOST unless the task sets it
	executorPath string    // the executor mesos-local runs
	now          time.Time // for generated task IDs
	suffix       string    // random text that keeps generated IDs unique
	// pickPort returns a port that is free on this machine for the
	// protocols of a port mapping ("tcp", "udp" or "tcp,udp").
	pickPort func(protocols string) (uint32, error)
}

// filledTask is a task as a scheduler would have sent it: IDs and
// executor set, host ports assigned, the executor environment completed.
type filledTask struct {
	task                             mesos.TaskInfo
	agentID, frameworkID, executorID string
	notes                            []string        // what was filled in, for the operator
	published                        []publishedPort // ports assigned to port mappings
}

type publishedPort struct {
	containerPort, hostPort uint32
	protocols               string
}

var unsafeIDRunes = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// fillTask fills in what a scheduler and the master would (IDs, the
// executor, host ports from the offer, Singularity's PORTn and TASK_HOST
// variables), leaving whatever the file sets alone.
func fillTask(task mesos.TaskInfo, s fillSettings) (filledTask, error) {
	f := filledTask{task: task}
	note := func(format string, args ...any) { f.notes = append(f.notes, fmt.Sprintf(format, args...)) }
	t := &f.task

	base := "task"
	if s.source != "-" {
		base = strings.TrimSuffix(filepath.Base(s.source), filepath.Ext(s.source))
	}
	if t.Name == "" {
		t.Name = unsafeIDRunes.ReplaceAllString(base, "-")
		note("name %s (from the file name)", t.Name)
	}
	if t.TaskID.Value == "" {
		t.TaskID.Value = fmt.Sprintf("%s-%d-%s", unsafeIDRunes.ReplaceAllString(t.Name, "-"), s.now.UnixMilli(), s.suffix)
		note("task_id %s", t.TaskID.Value)
	}
	var generatedIDs []string
	if t.AgentID.Value == "" {
		t.AgentID.Value = uuid.NewString() + "-S0"
		generatedIDs = append(generatedIDs, "agent_id")
	}
	f.agentID = t.AgentID.Value

	if t.Executor == nil {
		t.Executor = &mesos.ExecutorInfo{
			Type:       mesos.ExecutorInfo_CUSTOM,
			ExecutorID: mesos.ExecutorID{Value: "mesos-local-" + t.TaskID.Value},
			Name:       ptr("sidecar-executor"),
			Source:     ptr(t.TaskID.Value),
			Command:    &mesos.CommandInfo{Value: ptr(s.executorPath), Shell: ptr(false)},
		}
		note("executor: a CUSTOM ExecutorInfo running %s", s.executorPath)
	} else {
		executor := *t.Executor
		t.Executor = &executor
	}
	executor := t.Executor
	if executor.ExecutorID.Value == "" {
		executor.ExecutorID.Value = "mesos-local-" + t.TaskID.Value
		generatedIDs = append(generatedIDs, "executor.executor_id")
	}
	f.executorID = executor.ExecutorID.Value
	if executor.FrameworkID != nil && executor.FrameworkID.Value != "" {
		f.frameworkID = executor.FrameworkID.Value
	} else {
		f.frameworkID = uuid.NewString() + "-0000"
		executor.FrameworkID = &mesos.FrameworkID{Value: f.frameworkID}
		generatedIDs = append(generatedIDs, "executor.framework_id")
	}
	if len(generatedIDs) > 0 {
		note("%s (generated)", strings.Join(generatedIDs, ", "))
	}
	if executor.Command == nil {
		executor.Command = &mesos.CommandInfo{Value: ptr(s.executorPath), Shell: ptr(false)}
	} else {
		command := *executor.Command
		executor.Command = &command
	}

	if err := f.assignHostPorts(s.pickPort, note); err != nil {
		return f, err
	}
	f.completeEnvironment(s.hostname, note)
	return f, nil
}

// assignHostPorts gives every port mapping with host_port 0 a free port of
// this machine and adds it to the task's ports resource, as Singularity does
// for a FROM_OFFER host port.
func (f *filledTask) assignHostPorts(pickPort func(string) (uint32, error), note func(string, ...any)) error {
	docker := f.task.Container.Docker
	if len(docker.PortMappings) == 0 {
		return nil
	}
	mappings := append([]mesos.ContainerInfo_DockerInfo_PortMapping(nil), docker.PortMappings...)
	dockerCopy := *docker
	dockerCopy.PortMappings = mappings
	containerCopy := *f.task.Container
	containerCopy.Docker = &dockerCopy
	f.task.Container = &containerCopy

	var assigned []uint64
	for i := range mappings {
		mapping := &mappings[i]
		protocols := mapping.GetProtocol()
		if protocols == "" {
			protocols = "tcp"
		}
		if mapping.HostPort == 0 {
			port, err := pickPort(protocols)
			if err != nil {
				return fmt.Errorf("container.docker.port_mappings[%d]: no free %s port on this machine: %w", i, protocols, err)
			}
			mapping.HostPort = port
			assigned = append(assigned, uint64(port))
			note("container.docker.port_mappings[%d].host_port %d (a free port of this machine, added to the ports resource)", i, port)
		}
		f.published = append(f.published, publishedPort{containerPort: mapping.ContainerPort, hostPort: mapping.HostPort, protocols: protocols})
	}
	if len(assigned) == 0 {
		return nil
	}
	resources := append([]mesos.Resource(nil), f.task.Resources...)
	f.task.Resources = resources
	for i := range resources {
		if resources[i].Name == "ports" && resources[i].Ranges != nil {
			ranges := &mesos.Value_Ranges{Range: append(append([]mesos.Value_Range(nil), resources[i].Ranges.Range...), portRanges(assigned)...)}
			resources[i].Ranges = ranges
			return nil
		}
	}
	f.task.Resources = append(resources, mesos.Resource{
		Name:   "ports",
		Type:   mesos.RANGES.Enum(),
		Ranges: &mesos.Value_Ranges{Range: portRanges(assigned)},
	})
	return nil
}

func portRanges(ports []uint64) []mesos.Value_Range {
	ranges := make([]mesos.Value_Range, 0, len(ports))
	for _, port := range ports {
		ranges = append(ranges, mesos.Value_Range{Begin: port, End: port})
	}
	return ranges
}

// maxPortVariables bounds the PORTn variables made from a ports resource:
// a scheduler hands a task a few ports, not a whole range.
const maxPortVariables = 100

// completeEnvironment adds Singularity's TASK_HOST, PORT and PORT0..PORTn
// to the executor's environment when the task does not set them.
func (f *filledTask) completeEnvironment(hostname string, note func(string, ...any)) {
	command := f.task.Executor.Command
	var variables []mesos.Environment_Variable
	if command.Environment != nil {
		variables = append(variables, command.Environment.Variables...)
	}
	set := make(map[string]bool, len(variables))
	for _, v := range variables {
		set[v.Name] = true
	}
	var added []string
	add := func(name, value string) {
		if set[name] {
			return
		}
		set[name] = true
		variables = append(variables, mesos.Environment_Variable{Name: name, Type: mesos.Environment_Variable_VALUE.Enum(), Value: ptr(value)})
		added = append(added, name+"="+value)
	}
	add("TASK_HOST", hostname)
	ports := taskPorts(f.task.Resources)
	if len(ports) > 0 {
		add("PORT", strconv.FormatUint(ports[0], 10))
	}
	for i, port := range ports {
		add("PORT"+strconv.Itoa(i), strconv.FormatUint(port, 10))
	}
	if len(added) == 0 {
		return
	}
	command.Environment = &mesos.Environment{Variables: variables}
	note("executor.command.environment %s", strings.Join(added, " "))
}

// taskPorts lists the ports of the task's ports resources in order.
func taskPorts(resources []mesos.Resource) []uint64 {
	var ports []uint64
	for _, resource := range resources {
		if resource.Name != "ports" || resource.Ranges == nil {
			continue
		}
		for _, r := range resource.Ranges.Range {
			for port := r.Begin; port <= r.End && len(ports) < maxPortVariables; port++ {
				ports = append(ports, port)
			}
		}
	}
	return ports
}

// taskEnv returns a variable of the executor's environment.
func taskEnv(task mesos.TaskInfo, name string) (string, bool) {
	for _, v := range task.GetExecutor().GetCommand().GetEnvironment().GetVariables() {
		if v.Name == name && v.Value != nil {
			return *v.Value, true
		}
	}
	return "", false
}

// portPicker finds free ports and holds them until release, so that no two
// mappings get the same one.
type portPicker struct {
	held []interface{ Close() error }
}

func (p *portPicker) pick(protocols string) (uint32, error) {
	const attempts = 20
	for range attempts {
		listener, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, err
		}
		port := listener.Addr().(*net.TCPAddr).Port
		p.held = append(p.held, listener)
		if !strings.Contains(protocols, "udp") {
			return uint32(port), nil
		}
		conn, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
		if err != nil {
			continue // taken for UDP: try another
		}
		p.held = append(p.held, conn)
		return uint32(port), nil
	}
	return 0, fmt.Errorf("no port free for both tcp and udp after %d attempts", attempts)
}

func (p *portPicker) release() {
	for _, h := range p.held {
		_ = h.Close()
	}
	p.held = nil
}

func ptr[T any](v T) *T { return &v }
