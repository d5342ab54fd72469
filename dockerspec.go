package main

// dockerspec.go owns the mapping from a Mesos TaskInfo to the Docker
// container that runs it: the entry point (buildContainerSpec), the spec
// types, the validation of the task, container names and labels. The other
// steps live in dockerspec_*.go. Nothing here does I/O.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	docker "github.com/fsouza/go-dockerclient"
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
	named, err := parseNormalizedImage(image)
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

// parseNormalizedImage parses an image reference as Docker does, and
// refuses one whose first component Docker would take for a registry host
// (it holds a "." or a ":") while it is not a valid one ("00_0.0/app"): the
// reference library then parses the whole name as a path on no registry,
// so which registry would be asked, and get credentials, is unclear.
func parseNormalizedImage(image string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, err
	}
	if reference.Domain(named) == "" {
		first, _, _ := strings.Cut(image, "/")
		return nil, fmt.Errorf("%q looks like a registry host (it has a . or a :) but is not a valid one", first)
	}
	return named, nil
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
	// HostMemoryBytes is the agent's total memory, for the OOM score of a
	// task whose mem limit is above its request; 0 when unknown.
	HostMemoryBytes int64
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
)

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
		b.applyParameterOverrides,
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
	optionParameters
	warnings []string
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
