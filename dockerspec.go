package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/distribution/reference"
	"math"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	shellwords "github.com/mattn/go-shellwords"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// containerSandboxPath is where the task sandbox is mounted inside the
// container (Mesos' default --sandbox_directory).
const containerSandboxPath = "/mnt/mesos/sandbox"

const (
	// containerNamePrefix marks containers started for Mesos tasks, as the
	// Docker containerizer does, so that operators recognise them.
	containerNamePrefix = "mesos-"
	// maxContainerNameLength keeps names short enough for every tool that
	// shows them; Docker itself has no documented limit.
	maxContainerNameLength = 128
	// containerNameHashLength is how many hex digits of the owner hash end
	// every name.
	containerNameHashLength = 12
)

// containerName is the Docker container name of a task:
// "mesos-", the task ID with every character outside [a-zA-Z0-9_-] replaced
// by '_' (cut so the whole name stays within 128 characters), then '_' and
// the first 12 hex digits of a SHA-256 over the framework ID and the task ID.
// It returns "" for an empty task ID.
//
// The hash makes the name collision-free: task IDs are unique only within a
// framework, so two frameworks may both run "web-1" on one agent, and
// distinct task IDs such as "a.b" and "a_b" sanitise to the same text.
//
// '.' is replaced, and the hash is joined with '_', on purpose: Mesos'
// Docker containerizer parses names of the form "mesos-<agentID>.<containerID>"
// and "mesos-<containerID>" as containers it launched itself when the
// container ID is a UUID, and on agent recovery it may stop or kill such a
// container as an orphan. No UUID contains '_' or '.', so no name made here
// can ever be taken for one of its own, whatever the task ID.
func containerName(frameworkID, taskID string) string {
	if taskID == "" {
		return ""
	}
	var sanitized strings.Builder
	for _, r := range taskID {
		if isContainerNameRune(r) {
			sanitized.WriteRune(r)
		} else {
			sanitized.WriteByte('_')
		}
	}
	// Length-prefixing the framework ID keeps ("ab", "c") and ("a", "bc")
	// apart.
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s%s", len(frameworkID), frameworkID, taskID)))
	suffix := "_" + hex.EncodeToString(sum[:])[:containerNameHashLength]
	name := containerNamePrefix + sanitized.String()
	if len(name)+len(suffix) > maxContainerNameLength {
		// Every byte of the sanitized name is ASCII, so cutting at any byte
		// keeps it valid.
		name = name[:maxContainerNameLength-len(suffix)]
	}
	return name + suffix
}

func isContainerNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// shellOperators are the characters at which go-shellwords stops parsing
// silently; splitShellCommand turns that into an error.
const shellOperators = ";&|<>"

// splitShellCommand splits a command line into words the way a POSIX shell
// would, respecting single quotes, double quotes and backslash escapes, but
// without running anything: no variable expansion, no command substitution
// (backticks and $(...) stay literal text), no globbing. Operators that only
// a shell understands (; & | < >) are an error rather than being dropped with
// the rest of the line.
func splitShellCommand(s string) ([]string, error) {
	parser := shellwords.NewParser()
	parser.ParseEnv = false
	parser.ParseBacktick = false
	parser.ParseComment = false
	words, err := parser.Parse(s)
	if err != nil {
		return nil, errors.New("unbalanced quote, trailing backslash or unquoted parenthesis")
	}
	if parser.Position >= 0 {
		operator := ";"
		runes := []rune(s)
		for i := parser.Position; i >= 0 && i < len(runes); i++ {
			if strings.ContainsRune(shellOperators, runes[i]) {
				operator = string(runes[i])
				break
			}
		}
		return nil, fmt.Errorf("unquoted shell operator %q: the command is not run by a shell; quote the operator, or run the command as /bin/sh -c '...'", operator)
	}
	return words, nil
}

// imageReference is the tag and digest of a Docker image reference.
type imageReference struct {
	Tag    string // "" when absent
	Digest string // "sha256:<hex>", "" when absent
}

// parseImageReference checks image with Docker's own reference grammar
// (github.com/distribution/reference), so that what passes here is what the
// engine accepts.
func parseImageReference(image string) (imageReference, error) {
	if image == "" {
		return imageReference{}, errors.New("image is empty")
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return imageReference{}, fmt.Errorf("image %q is not a valid Docker image reference ([registry[:port]/]lowercase/path[:tag][@sha256:<64 hex digits>]): %v", image, err)
	}
	var ref imageReference
	if tagged, ok := named.(reference.Tagged); ok {
		ref.Tag = tagged.Tag()
	}
	if digested, ok := named.(reference.Digested); ok {
		ref.Digest = digested.Digest().String()
	}
	return ref, nil
}

// version is what the image says about the version of the service: its tag,
// else its digest, else "latest" (what Docker pulls for an untagged name).
func (r imageReference) version() string {
	switch {
	case r.Tag != "":
		return r.Tag
	case r.Digest != "":
		return r.Digest
	default:
		return "latest"
	}
}

// specInput is everything the mapping from a Mesos task to a Docker
// container depends on.
type specInput struct {
	Task          *mesos.TaskInfo
	ExecutorInfo  *mesos.ExecutorInfo // from SUBSCRIBED; used when Task.Executor is nil
	HostSandbox   string              // MESOS_DIRECTORY: the sandbox on the host
	AgentHostname string              // from SUBSCRIBED AgentInfo; fallback for MESOS_HOSTNAME
	Settings      *Config
	// Owner names the executor that creates the container, from the
	// environment the agent gave it; it becomes the owner labels and part
	// of the container name.
	Owner containerOwner
}

// containerOwner identifies the executor that owns a container. Its IDs
// come from the MESOS_* environment the agent sets, the same place
// `sidecar-executor cleanup` reads them from, so a cleanup after a crash
// finds exactly the containers this executor created.
type containerOwner struct {
	FrameworkID, ExecutorID, AgentID string
	// Instance is the random ID executor.sh gives each executor it runs
	// (SIDECAR_EXECUTOR_INSTANCE). Unlike the MESOS_* IDs, which the
	// task's environment can override, nobody but executor.sh chooses it,
	// so a cleanup can never be pointed at another executor's containers.
	Instance string
}

// containerSpec is the container to create for a task.
type containerSpec struct {
	Name      string            // container name
	Image     string            // DockerInfo.image as given
	ForcePull bool              // DockerInfo.force_pull_image
	Labels    map[string]string // lookup labels: TaskInfo.labels overlaid by docker `label` parameters (docker wins)
	Options   docker.CreateContainerOptions
	Warnings  []string // things ignored on the way, each naming the field
}

// Label looks a key up in the task's labels and the container's `label`
// parameters, the parameters winning.
func (s *containerSpec) Label(key string) (string, bool) {
	if s == nil {
		return "", false
	}
	value, ok := s.Labels[key]
	return value, ok
}

const (
	// shellCommandLabel holds the command line of tasks that carry no
	// CommandInfo (custom-executor tasks cannot: Mesos allows a task either
	// a command or an executor).
	shellCommandLabel = "executor.ShellCommand"
	// The owner labels trace a container back to its task and let the
	// executor find its containers again: cleanup after a crash lists them
	// by framework, executor and agent, and a same-named container is only
	// removed when its framework and task match. A container's workload
	// cannot change its labels, and a task cannot set labels with this
	// prefix, so they are trusted where the sandbox is not.
	ownerLabelPrefix = "sidecar-executor."
	taskIDLabel      = ownerLabelPrefix + "task-id"
	frameworkIDLabel = ownerLabelPrefix + "framework-id"
	executorIDLabel  = ownerLabelPrefix + "executor-id"
	agentIDLabel     = ownerLabelPrefix + "agent-id"
	instanceLabel    = ownerLabelPrefix + "instance"
	// maxEnvironmentBytes bounds the container's environment, counted as
	// the kernel does (each "K=V" plus its terminating NUL); the kernel's
	// own limits are not much higher and a task failing at exec is harder
	// to diagnose than one refused here.
	maxEnvironmentBytes = 1 << 20
	// cfsPeriod is the CFS period in microseconds (the kernel default);
	// minCFSQuota and minCPUShares are the minimums Mesos applies.
	cfsPeriod    = 100000
	minCFSQuota  = 1000
	minCPUShares = 2
	// maxTaskCPUs and maxTaskMemoryMB keep the Docker values far from
	// int64 overflow; no machine comes close to them.
	maxTaskCPUs     = 1 << 20
	maxTaskMemoryMB = 1 << 40
)

// withheldVariables are never copied from the task environment into the
// container: they configure or authenticate the executor itself.
var withheldVariables = map[string]bool{
	"VAULT_TOKEN":                         true,
	"VAULT_USERNAME":                      true,
	"VAULT_PASSWORD":                      true,
	"VAULT_TOKEN_FILE":                    true,
	"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": true,
	"SIDECAR_EXECUTOR_PATH":               true,
	"SIDECAR_EXECUTOR_INSTANCE":           true,
}

func isWithheldVariable(name string) bool {
	return withheldVariables[name] || strings.HasPrefix(name, envPrefix+"_")
}

// dockerVolumeNamePattern is Docker's rule for named volumes; anything else
// in the first part of a bind (notably a leading '/') would be taken for a
// host path.
var dockerVolumeNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// reservedNetworkNames are Docker network modes that a USER network must not
// name: they would bypass the checks made for HOST and NONE networks.
var reservedNetworkNames = map[string]bool{"host": true, "bridge": true, "none": true, "default": true}

func taskErrorf(format string, args ...any) error {
	return fmt.Errorf("invalid TaskInfo: "+format, args...)
}

// buildContainerSpec translates a Mesos task into the options of the Docker
// container that runs it. It does no I/O. Errors describe the offending
// TaskInfo field for the operator who reads them in the Mesos UI.
func buildContainerSpec(in specInput) (*containerSpec, error) {
	b := &specBuilder{in: in}
	if in.Settings != nil {
		b.settings = *in.Settings
	}
	steps := []func() error{
		b.validateTask,
		b.applyParameters,
		b.collectLookupLabels,
		b.applyNetwork,
		b.applyPortMappings,
		b.applyVolumes,
		b.applyResources,
		b.applyPrivileged,
		b.applyCommand,
		b.applyEnvironment,
		b.applyContainerLabels,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	name := containerName(b.in.Owner.FrameworkID, b.taskID)
	return &containerSpec{
		Name:      name,
		Image:     b.dockerInfo.Image,
		ForcePull: b.dockerInfo.GetForcePullImage(),
		Labels:    b.lookupLabels,
		Options: docker.CreateContainerOptions{
			Name:             name,
			Config:           &b.config,
			HostConfig:       &b.hostConfig,
			NetworkingConfig: b.networkingConfig,
		},
		Warnings: b.warnings,
	}, nil
}

// specBuilder carries the mapping's state from one step to the next.
type specBuilder struct {
	in         specInput
	settings   Config
	task       *mesos.TaskInfo
	taskID     string
	container  *mesos.ContainerInfo
	dockerInfo *mesos.ContainerInfo_DockerInfo
	image      imageReference

	config           docker.Config
	hostConfig       docker.HostConfig
	networkingConfig *docker.NetworkingConfig

	lookupLabels    map[string]string
	parameterLabels []keyValue // `label` parameters, in order
	parameterEnv    []keyValue // `env` parameters, in order
	portEnv         []keyValue // MESOS_PORT_<containerPort>, in mapping order
	// volumeDriverField names the field that chose HostConfig.VolumeDriver.
	volumeDriverField string
	warnings          []string
}

// keyValue is one NAME=VALUE setting and the field it came from.
type keyValue struct {
	field, key, value string
}

// executorInfo is the task's ExecutorInfo, else the one the agent sent
// with SUBSCRIBED.
func (b *specBuilder) executorInfo() *mesos.ExecutorInfo {
	if b.task.Executor != nil {
		return b.task.Executor
	}
	return b.in.ExecutorInfo
}

func (b *specBuilder) warnf(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

func (b *specBuilder) validateTask() error {
	b.task = b.in.Task
	if b.task == nil {
		return errors.New("invalid TaskInfo: no task given")
	}
	b.taskID = b.task.TaskID.Value
	if b.taskID == "" {
		return taskErrorf("task_id is empty")
	}
	if strings.ContainsRune(b.taskID, 0) {
		return taskErrorf("task_id %q contains a NUL byte", b.taskID)
	}
	b.container = b.task.Container
	if b.container == nil {
		return taskErrorf("task has no container info; this executor runs Docker containers only (set container.type=DOCKER and container.docker.image)")
	}
	if b.container.Type == nil {
		return taskErrorf("container.type is not set; it must be DOCKER")
	}
	if containerType := *b.container.Type; containerType != mesos.ContainerInfo_DOCKER {
		return taskErrorf("container.type is %s; this executor runs DOCKER containers only", containerType)
	}
	b.dockerInfo = b.container.Docker
	if b.dockerInfo == nil {
		return taskErrorf("container.docker is missing; a DOCKER container needs docker.image")
	}
	image, err := parseImageReference(b.dockerInfo.Image)
	if err != nil {
		return taskErrorf("container.docker.image: %v", err)
	}
	b.image = image
	b.config = docker.Config{
		Image:        b.dockerInfo.Image,
		AttachStdin:  false,
		AttachStdout: false,
		AttachStderr: false,
		Tty:          false,
	}
	b.hostConfig = docker.HostConfig{
		// The executor owns the container's life: Docker must neither
		// restart it nor remove it before its exit state is read.
		RestartPolicy: docker.NeverRestart(),
		AutoRemove:    false,
	}
	return nil
}

// applyParameters maps the `docker run` flags given in
// container.docker.parameters. Keys may carry leading dashes.
func (b *specBuilder) applyParameters() error {
	for i, parameter := range b.dockerInfo.Parameters {
		field := fmt.Sprintf("container.docker.parameters[%d] %q", i, parameter.Key)
		key := strings.TrimLeft(parameter.Key, "-")
		value := parameter.Value
		if strings.ContainsRune(value, 0) {
			return taskErrorf("%s: value contains a NUL byte", field)
		}
		nonEmpty := func() error {
			if strings.TrimSpace(value) == "" {
				return taskErrorf("%s: value is empty", field)
			}
			return nil
		}
		switch key {
		case "env":
			name, envValue, ok := strings.Cut(value, "=")
			if !ok {
				return taskErrorf("%s: %q is not NAME=VALUE", field, value)
			}
			b.parameterEnv = append(b.parameterEnv, keyValue{field: field, key: name, value: envValue})
		case "label":
			name, labelValue, ok := strings.Cut(value, "=")
			if !ok {
				return taskErrorf("%s: %q is not KEY=VALUE", field, value)
			}
			if name == "" {
				return taskErrorf("%s: %q has an empty key", field, value)
			}
			b.parameterLabels = append(b.parameterLabels, keyValue{field: field, key: name, value: labelValue})
		case "cap-add":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.CapAdd = append(b.hostConfig.CapAdd, value)
		case "cap-drop":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.CapDrop = append(b.hostConfig.CapDrop, value)
		case "user":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.config.User = value
		case "workdir":
			if !path.IsAbs(value) {
				return taskErrorf("%s: %q is not an absolute path", field, value)
			}
			b.config.WorkingDir = value
		case "log-driver":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.LogConfig.Type = value
		case "log-opt":
			name, optionValue, ok := strings.Cut(value, "=")
			if !ok || name == "" {
				return taskErrorf("%s: %q is not KEY=VALUE", field, value)
			}
			if b.hostConfig.LogConfig.Config == nil {
				b.hostConfig.LogConfig.Config = map[string]string{}
			}
			b.hostConfig.LogConfig.Config[name] = optionValue
		case "add-host":
			hostname, address, ok := strings.Cut(value, ":")
			if !ok || hostname == "" || address == "" {
				return taskErrorf("%s: %q is not HOSTNAME:ADDRESS", field, value)
			}
			b.hostConfig.ExtraHosts = append(b.hostConfig.ExtraHosts, value)
		case "dns":
			if net.ParseIP(value) == nil {
				return taskErrorf("%s: %q is not an IP address", field, value)
			}
			b.hostConfig.DNS = append(b.hostConfig.DNS, value)
		case "init":
			enabled := true // a bare --init flag
			if value != "" {
				parsed, err := strconv.ParseBool(value)
				if err != nil {
					return taskErrorf("%s: %q is not true or false", field, value)
				}
				enabled = parsed
			}
			// HostConfig.Init is sent only when true, so "false" leaves the
			// daemon's default (off unless the daemon runs with --init).
			b.hostConfig.Init = enabled
		case "stop-signal":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.config.StopSignal = value
		case "volume-driver":
			// As docker run: the last one wins. The admission policy
			// judges the driver.
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.VolumeDriver = value
			b.volumeDriverField = field
		default:
			b.warnf("%s: unsupported docker parameter ignored (supported: env, label, cap-add, cap-drop, user, workdir, log-driver, log-opt, add-host, dns, init, stop-signal, volume-driver)", field)
		}
	}
	return nil
}

// collectLookupLabels merges TaskInfo.labels with the `label` parameters;
// the parameters win because they are what the container will carry.
func (b *specBuilder) collectLookupLabels() error {
	b.lookupLabels = map[string]string{}
	for i, label := range b.task.GetLabels().GetLabels() {
		field := fmt.Sprintf("labels[%d] %q", i, label.Key)
		if label.Key == "" {
			b.warnf("%s: label with an empty key ignored", field)
			continue
		}
		if strings.ContainsRune(label.Key, 0) || strings.ContainsRune(label.GetValue(), 0) {
			return taskErrorf("%s: contains a NUL byte", field)
		}
		b.lookupLabels[label.Key] = label.GetValue()
	}
	// applyParameters has refused NUL bytes in the parameters.
	for _, label := range b.parameterLabels {
		b.lookupLabels[label.key] = label.value
	}
	return nil
}

func (b *specBuilder) applyNetwork() error {
	network := b.dockerInfo.GetNetwork()
	switch network {
	case mesos.ContainerInfo_DockerInfo_HOST:
		b.hostConfig.NetworkMode = "host"
	case mesos.ContainerInfo_DockerInfo_BRIDGE:
		b.hostConfig.NetworkMode = "bridge"
	case mesos.ContainerInfo_DockerInfo_NONE:
		b.hostConfig.NetworkMode = "none"
	case mesos.ContainerInfo_DockerInfo_USER:
		networkInfos := b.container.NetworkInfos
		if len(networkInfos) != 1 {
			return taskErrorf("container.network_infos: a USER network needs exactly one network_info naming the Docker network, found %d", len(networkInfos))
		}
		name := networkInfos[0].GetName()
		switch {
		case name == "":
			return taskErrorf("container.network_infos[0].name is empty; a USER network needs the name of the Docker network")
		case strings.ContainsRune(name, 0):
			return taskErrorf("container.network_infos[0].name %q contains a NUL byte", name)
		case reservedNetworkNames[name] || strings.HasPrefix(name, "container:"):
			return taskErrorf("container.network_infos[0].name %q is a Docker network mode, not a user-defined network; use container.docker.network HOST, BRIDGE or NONE instead", name)
		}
		b.hostConfig.NetworkMode = name
		b.networkingConfig = &docker.NetworkingConfig{
			EndpointsConfig: map[string]*docker.EndpointConfig{name: {}},
		}
	default:
		return taskErrorf("container.docker.network %d is not one of HOST, BRIDGE, NONE, USER", int32(network))
	}
	if hostname := b.container.GetHostname(); hostname != "" {
		if network == mesos.ContainerInfo_DockerInfo_HOST {
			return taskErrorf("container.hostname %q cannot be set with HOST networking (the container shares the agent's hostname)", hostname)
		}
		if strings.ContainsRune(hostname, 0) {
			return taskErrorf("container.hostname %q contains a NUL byte", hostname)
		}
		b.config.Hostname = hostname
	}
	return nil
}

// portProtocols parses a port mapping's protocol: "tcp" (also when unset),
// "udp", or both separated by a comma, in any order, case or spacing.
func portProtocols(protocol string) ([]string, bool) {
	if protocol == "" {
		return []string{"tcp"}, true
	}
	var tcp, udp bool
	for _, part := range strings.Split(protocol, ",") {
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "tcp":
			if tcp {
				return nil, false
			}
			tcp = true
		case "udp":
			if udp {
				return nil, false
			}
			udp = true
		default:
			return nil, false
		}
	}
	var protocols []string
	if tcp {
		protocols = append(protocols, "tcp")
	}
	if udp {
		protocols = append(protocols, "udp")
	}
	return protocols, true
}

// taskPortRanges returns the ranges of the task's "ports" resources and
// whether it has any.
func taskPortRanges(taskResources []mesos.Resource) (mesos.Ranges, bool) {
	var ranges mesos.Ranges
	found := false
	for _, resource := range taskResources {
		if resource.Name != "ports" {
			continue
		}
		found = true
		ranges = append(ranges, resource.GetRanges().GetRange()...)
	}
	return ranges, found
}

func rangesContain(ranges mesos.Ranges, port uint64) bool {
	for _, r := range ranges {
		if r.Begin <= port && port <= r.End {
			return true
		}
	}
	return false
}

func formatRanges(ranges mesos.Ranges) string {
	parts := make([]string, 0, len(ranges))
	for _, r := range ranges {
		if r.Begin == r.End {
			parts = append(parts, strconv.FormatUint(r.Begin, 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.Begin, r.End))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (b *specBuilder) applyPortMappings() error {
	mappings := b.dockerInfo.PortMappings
	if len(mappings) == 0 {
		return nil
	}
	switch network := b.dockerInfo.GetNetwork(); network {
	case mesos.ContainerInfo_DockerInfo_HOST, mesos.ContainerInfo_DockerInfo_NONE:
		return taskErrorf("container.docker.port_mappings: port mappings are only supported for bridge and user-defined networks, not %s", network)
	}
	portRanges, havePortResources := taskPortRanges(b.task.Resources)
	type portKey struct {
		port     uint32
		protocol string
	}
	hostPortUsers := map[portKey]int{}
	containerPortUsers := map[portKey]int{}
	b.config.ExposedPorts = map[docker.Port]struct{}{}
	b.hostConfig.PortBindings = map[docker.Port][]docker.PortBinding{}
	for i, mapping := range mappings {
		field := fmt.Sprintf("container.docker.port_mappings[%d]", i)
		if mapping.ContainerPort == 0 || mapping.ContainerPort > 65535 {
			return taskErrorf("%s: container_port %d is not between 1 and 65535", field, mapping.ContainerPort)
		}
		if mapping.HostPort == 0 || mapping.HostPort > 65535 {
			return taskErrorf("%s: host_port %d is not between 1 and 65535 (it must be one of the task's ports resources)", field, mapping.HostPort)
		}
		protocols, ok := portProtocols(mapping.GetProtocol())
		if !ok {
			return taskErrorf(`%s: protocol %q is not one of tcp, udp, "tcp,udp"`, field, mapping.GetProtocol())
		}
		if havePortResources && !rangesContain(portRanges, uint64(mapping.HostPort)) {
			return taskErrorf("%s: host port %d is not in the task's ports resources %s", field, mapping.HostPort, formatRanges(portRanges))
		}
		for _, protocol := range protocols {
			hostKey := portKey{mapping.HostPort, protocol}
			if other, taken := hostPortUsers[hostKey]; taken {
				return taskErrorf("%s: host port %d/%s is already mapped by container.docker.port_mappings[%d]", field, mapping.HostPort, protocol, other)
			}
			hostPortUsers[hostKey] = i
			containerKey := portKey{mapping.ContainerPort, protocol}
			if other, taken := containerPortUsers[containerKey]; taken {
				return taskErrorf("%s: container port %d/%s is already mapped by container.docker.port_mappings[%d]", field, mapping.ContainerPort, protocol, other)
			}
			containerPortUsers[containerKey] = i
			port := docker.Port(fmt.Sprintf("%d/%s", mapping.ContainerPort, protocol))
			b.config.ExposedPorts[port] = struct{}{}
			b.hostConfig.PortBindings[port] = []docker.PortBinding{{HostPort: strconv.FormatUint(uint64(mapping.HostPort), 10)}}
		}
		b.portEnv = append(b.portEnv, keyValue{
			key:   fmt.Sprintf("MESOS_PORT_%d", mapping.ContainerPort),
			value: strconv.FormatUint(uint64(mapping.HostPort), 10),
		})
	}
	return nil
}

// checkMountPath refuses paths that would be misread in a Docker bind
// ("source:target:mode") or that climb out of where they point.
func checkMountPath(field, mountPath string) error {
	switch {
	case strings.ContainsRune(mountPath, 0):
		return taskErrorf("%s %q contains a NUL byte", field, mountPath)
	case strings.ContainsRune(mountPath, ':'):
		return taskErrorf("%s %q contains ':', which Docker binds cannot carry", field, mountPath)
	}
	for _, element := range strings.Split(mountPath, "/") {
		if element == ".." {
			return taskErrorf("%s %q contains a '..' element", field, mountPath)
		}
	}
	return nil
}

func (b *specBuilder) applyVolumes() error {
	mountedAt := map[string]string{} // container path -> field that mounts it
	if sandbox := b.in.HostSandbox; sandbox != "" {
		if !path.IsAbs(sandbox) || strings.ContainsAny(sandbox, ":\x00") {
			return fmt.Errorf("the task sandbox MESOS_DIRECTORY=%q is not an absolute path usable in a Docker bind", sandbox)
		}
		b.hostConfig.Binds = append(b.hostConfig.Binds, sandbox+":"+containerSandboxPath+":rw")
		mountedAt[containerSandboxPath] = "the task sandbox"
	}
	volumeDriverField := b.volumeDriverField
	if driver := b.dockerInfo.GetVolumeDriver(); driver != "" {
		if b.hostConfig.VolumeDriver != "" && b.hostConfig.VolumeDriver != driver {
			return taskErrorf("container.docker.volume_driver %q differs from driver %q of %s; a container can use one volume driver only", driver, b.hostConfig.VolumeDriver, volumeDriverField)
		}
		b.hostConfig.VolumeDriver = driver
		volumeDriverField = "container.docker.volume_driver"
	}
	for i, volume := range b.container.Volumes {
		field := fmt.Sprintf("container.volumes[%d]", i)
		var mode string
		switch volume.GetMode() {
		case mesos.RW:
			mode = "rw"
		case mesos.RO:
			mode = "ro"
		default:
			return taskErrorf("%s.mode %d is not RW or RO", field, int32(volume.GetMode()))
		}
		containerPath := volume.ContainerPath
		if containerPath == "" {
			return taskErrorf("%s.container_path is empty", field)
		}
		if err := checkMountPath(field+".container_path", containerPath); err != nil {
			return err
		}
		target := path.Clean(containerPath)
		if !path.IsAbs(containerPath) {
			target = path.Join(containerSandboxPath, containerPath)
		}

		var source string
		switch dockerVolume := volume.GetSource().GetDockerVolume(); {
		case volume.HostPath != nil:
			hostPath := *volume.HostPath
			if hostPath == "" {
				return taskErrorf("%s.host_path is empty", field)
			}
			if err := checkMountPath(field+".host_path", hostPath); err != nil {
				return err
			}
			source = path.Clean(hostPath)
			if !path.IsAbs(hostPath) {
				// As Mesos: a relative host path is in the sandbox, and
				// mapping it to a relative container path (also in the
				// sandbox) is refused.
				if !path.IsAbs(containerPath) {
					return taskErrorf("%s: host_path %q and container_path %q are both relative", field, hostPath, containerPath)
				}
				if b.in.HostSandbox == "" {
					return taskErrorf("%s.host_path %q is relative to the sandbox, but the sandbox directory is unknown", field, hostPath)
				}
				source = path.Join(b.in.HostSandbox, hostPath)
			}
		case dockerVolume != nil:
			if !dockerVolumeNamePattern.MatchString(dockerVolume.Name) {
				return taskErrorf("%s.source.docker_volume.name %q is not a valid Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)", field, dockerVolume.Name)
			}
			if driver := dockerVolume.GetDriver(); driver != "" {
				if b.hostConfig.VolumeDriver != "" && b.hostConfig.VolumeDriver != driver {
					return taskErrorf("%s.source.docker_volume.driver %q differs from driver %q of %s; a container can use one volume driver only", field, driver, b.hostConfig.VolumeDriver, volumeDriverField)
				}
				b.hostConfig.VolumeDriver = driver
				volumeDriverField = field + ".source.docker_volume.driver"
			}
			if len(dockerVolume.GetDriverOptions().GetParameter()) > 0 {
				b.warnf("%s.source.docker_volume.driver_options ignored: Docker applies driver options only when a volume is created with `docker volume create`", field)
			}
			source = dockerVolume.Name
		default:
			return taskErrorf("%s (container_path %q) has neither host_path nor source.docker_volume; only host paths and Docker volumes can be mounted", field, volume.ContainerPath)
		}
		if other, taken := mountedAt[target]; taken {
			return taskErrorf("%s: container path %q is already mounted by %s", field, target, other)
		}
		mountedAt[target] = field
		b.hostConfig.Binds = append(b.hostConfig.Binds, source+":"+target+":"+mode)
	}
	return nil
}

// taskScalar sums the task's scalar resources of one name.
func taskScalar(taskResources []mesos.Resource, name string) (float64, bool, error) {
	total := 0.0
	found := false
	for i, resource := range taskResources {
		if resource.Name != name {
			continue
		}
		if resource.Scalar == nil {
			return 0, false, taskErrorf("resources[%d] (%s) has no scalar value", i, name)
		}
		value := resource.Scalar.Value
		if math.IsNaN(value) || math.IsInf(value, 0) || value < 0 {
			return 0, false, taskErrorf("resources[%d] (%s) is %v; it must be a finite number not below zero", i, name, value)
		}
		total += value
		found = true
	}
	return total, found, nil
}

func (b *specBuilder) applyResources() error {
	cpus, haveCPUs, err := taskScalar(b.task.Resources, "cpus")
	if err != nil {
		return err
	}
	memoryMB, haveMemory, err := taskScalar(b.task.Resources, "mem")
	if err != nil {
		return err
	}
	if cpus > maxTaskCPUs {
		return taskErrorf("resources: cpus %v is more than %d", cpus, maxTaskCPUs)
	}
	if memoryMB > maxTaskMemoryMB {
		return taskErrorf("resources: mem %v MB is more than %d MB", memoryMB, int64(maxTaskMemoryMB))
	}
	if b.settings.ForceCpuLimit {
		switch {
		case !haveCPUs:
			b.warnf("resources: the task has no cpus resource; no CPU limit applied despite %s_FORCE_CPU_LIMIT", envPrefix)
		case b.settings.UseCpuShares:
			b.hostConfig.CPUShares = max(int64(math.Round(cpus*1024)), minCPUShares)
		default:
			b.hostConfig.CPUPeriod = cfsPeriod
			b.hostConfig.CPUQuota = max(int64(math.Round(cpus*cfsPeriod)), minCFSQuota)
		}
	}
	if b.settings.ForceMemoryLimit {
		memoryBytes := int64(math.Round(memoryMB * (1 << 20)))
		if !haveMemory || memoryBytes == 0 {
			b.warnf("resources: the task's mem resource is missing or zero; no memory limit applied despite %s_FORCE_MEMORY_LIMIT", envPrefix)
		} else {
			b.hostConfig.Memory = memoryBytes
			// Equal to Memory: no swap, so a task over its limit is
			// OOM-killed rather than swapping.
			b.hostConfig.MemorySwap = memoryBytes
		}
	}
	return nil
}

// applyPrivileged maps DockerInfo.privileged; whether it is admitted is the
// admission policy's decision (policy.go).
func (b *specBuilder) applyPrivileged() error {
	b.hostConfig.Privileged = b.dockerInfo.GetPrivileged()
	return nil
}

// applyCommand chooses what the container runs, as Mesos' Docker
// containerizer does since 0.20.1: a shell command replaces the image's
// ENTRYPOINT with /bin/sh; a plain command is passed as arguments to the
// image's ENTRYPOINT; no command runs the image as built.
func (b *specBuilder) applyCommand() error {
	command := b.task.Command
	// A CommandInfo that only carries environment or URIs says nothing
	// about what to run.
	if command != nil && (command.Value != nil || command.Shell != nil || len(command.Arguments) > 0) {
		value := command.GetValue()
		if command.GetShell() {
			if value == "" {
				return taskErrorf("command.value is empty but command.shell is true; give a value, or set shell=false to run the image's own command")
			}
			if strings.ContainsRune(value, 0) {
				return taskErrorf("command.value contains a NUL byte")
			}
			if len(command.Arguments) > 0 {
				b.warnf("command.arguments ignored: a shell command (command.shell=true) runs command.value only")
			}
			b.config.Entrypoint = []string{"/bin/sh"}
			b.config.Cmd = []string{"-c", value}
			return nil
		}
		var args []string
		if value != "" {
			args = append(args, value)
		}
		args = append(args, command.Arguments...)
		for i, arg := range args {
			if strings.ContainsRune(arg, 0) {
				return taskErrorf("command: argument %d %q contains a NUL byte", i, arg)
			}
		}
		b.config.Cmd = args
		return nil
	}
	line, ok := b.lookupLabels[shellCommandLabel]
	if !ok {
		return nil
	}
	words, err := splitShellCommand(line)
	if err != nil {
		return taskErrorf("label %s %q: %v", shellCommandLabel, line, err)
	}
	if len(words) == 0 {
		b.warnf("label %s is empty; the image's own command runs", shellCommandLabel)
		return nil
	}
	b.config.Cmd = words
	return nil
}

// environment is an ordered set of variables: a variable keeps the position
// where it was first set and the value it was last set to.
type environment struct {
	names  []string
	values map[string]string
}

// setChecked sets a variable after checking that the container can carry
// it; field names its source for the error.
func (e *environment) setChecked(field, name, value string) error {
	switch {
	case name == "":
		return taskErrorf("%s: environment variable name is empty", field)
	case strings.ContainsRune(name, '='):
		return taskErrorf("%s: environment variable name %q contains '='", field, name)
	case strings.ContainsRune(name, 0) || strings.ContainsRune(value, 0):
		return taskErrorf("%s: environment variable %q contains a NUL byte", field, name)
	}
	e.set(name, value)
	return nil
}

func (e *environment) set(name, value string) {
	if e.values == nil {
		e.values = map[string]string{}
	}
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *environment) get(name string) string {
	return e.values[name]
}

func (e *environment) list() []string {
	entries := make([]string, 0, len(e.names))
	for _, name := range e.names {
		entries = append(entries, name+"="+e.values[name])
	}
	return entries
}

// taskEnvironment is what the scheduler asked the task to see: the
// executor's command environment (where Singularity puts TASK_HOST, PORT0…)
// and then the task command's, without the executor's own settings and
// credentials.
func (b *specBuilder) taskEnvironment() (*environment, error) {
	executorInfo := b.executorInfo()
	sources := []struct {
		field     string
		variables []mesos.Environment_Variable
	}{
		{"executor.command.environment", executorInfo.GetCommand().GetEnvironment().GetVariables()},
		{"command.environment", b.task.GetCommand().GetEnvironment().GetVariables()},
	}
	taskEnv := &environment{}
	for _, source := range sources {
		for i, variable := range source.variables {
			field := fmt.Sprintf("%s.variables[%d] %q", source.field, i, variable.Name)
			if isWithheldVariable(variable.Name) {
				continue
			}
			switch variableType := variable.GetType(); variableType {
			case mesos.Environment_Variable_VALUE:
			case mesos.Environment_Variable_SECRET:
				return nil, taskErrorf("%s: SECRET environment variables are not supported; pass a VALUE", field)
			default:
				return nil, taskErrorf("%s: environment variable type %s is not supported; pass a VALUE", field, variableType)
			}
			if variable.Value == nil {
				return nil, taskErrorf("%s: VALUE environment variable has no value", field)
			}
			if err := taskEnv.setChecked(field, variable.Name, *variable.Value); err != nil {
				return nil, err
			}
		}
	}
	return taskEnv, nil
}

// applyEnvironment assembles the container's environment; later sources
// override earlier ones: derived defaults, the task environment, `env`
// parameters, and finally MESOS_SANDBOX.
func (b *specBuilder) applyEnvironment() error {
	taskEnv, err := b.taskEnvironment()
	if err != nil {
		return err
	}
	// The derived defaults are built from values checked earlier (ports,
	// labels, task ID, image), except the agent's hostname.
	containerEnv := &environment{}
	for _, portVariable := range b.portEnv {
		containerEnv.set(portVariable.key, portVariable.value)
	}
	if taskHost := taskEnv.get("TASK_HOST"); taskHost != "" {
		containerEnv.set("MESOS_HOSTNAME", taskHost)
	} else if agentHostname := b.in.AgentHostname; agentHostname != "" {
		if strings.ContainsRune(agentHostname, 0) {
			return fmt.Errorf("the agent's hostname %q contains a NUL byte", agentHostname)
		}
		containerEnv.set("MESOS_HOSTNAME", agentHostname)
	}
	for _, derived := range []struct{ label, variable string }{{"ServiceName", "SERVICE_NAME"}, {"Environment", "ENVIRONMENT"}} {
		if value, ok := b.lookupLabels[derived.label]; ok {
			containerEnv.set(derived.variable, value)
		}
	}
	containerEnv.set("SERVICE_VERSION", b.image.version())
	containerEnv.set("MESOS_TASK_ID", b.taskID)
	for _, name := range taskEnv.names {
		containerEnv.set(name, taskEnv.values[name]) // checked by taskEnvironment
	}
	for _, variable := range b.parameterEnv {
		if err := containerEnv.setChecked(variable.field, variable.key, variable.value); err != nil {
			return err
		}
	}
	containerEnv.set("MESOS_SANDBOX", containerSandboxPath)

	entries := containerEnv.list()
	size := 0
	for _, entry := range entries {
		size += len(entry) + 1
	}
	if size > maxEnvironmentBytes {
		return taskErrorf("the container environment is %d bytes, more than the limit of %d bytes (1 MiB)", size, maxEnvironmentBytes)
	}
	b.config.Env = entries
	return nil
}

// applyContainerLabels sets the labels the container carries: the `label`
// parameters and the executor's owner labels. Parameters cannot set a label
// under the owner prefix: those are the executor's to set.
func (b *specBuilder) applyContainerLabels() error {
	labels := map[string]string{}
	for _, label := range b.parameterLabels {
		if strings.HasPrefix(label.key, ownerLabelPrefix) {
			b.warnf("%s: label %s ignored: labels starting with %q are set by the executor only", label.field, label.key, ownerLabelPrefix)
			continue
		}
		labels[label.key] = label.value
	}
	owner := b.in.Owner
	for _, label := range []keyValue{
		{key: taskIDLabel, value: b.taskID},
		{key: frameworkIDLabel, value: owner.FrameworkID},
		{key: executorIDLabel, value: owner.ExecutorID},
		{key: agentIDLabel, value: owner.AgentID},
		{key: instanceLabel, value: owner.Instance},
	} {
		if label.value == "" {
			continue
		}
		if strings.ContainsRune(label.value, 0) {
			return taskErrorf("label %s %q contains a NUL byte", label.key, label.value)
		}
		labels[label.key] = label.value
	}
	b.config.Labels = labels
	return nil
}
