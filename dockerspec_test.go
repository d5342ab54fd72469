package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/gogo/protobuf/proto"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// dockerNamePattern is the daemon's rule for container names.
var dockerNamePattern = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ownerHash is the suffix containerName appends: 12 hex digits of the
// SHA-256 over the length-prefixed framework ID and the task ID.
func ownerHash(frameworkID, taskID string) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s%s", len(frameworkID), frameworkID, taskID)))
	return hex.EncodeToString(sum[:])[:12]
}

func TestContainerName(t *testing.T) {
	long := strings.Repeat("x", 200)
	const framework = "F1"
	tests := []struct {
		name   string
		taskID string
		prefix string // the readable part before the '_' and the hash
	}{
		{name: "plain ID is kept", taskID: "web-1_a", prefix: "mesos-web-1_a_"},
		{name: "dot is replaced", taskID: "a.b", prefix: "mesos-a_b_"},
		{name: "slash and space are replaced", taskID: "x/y z", prefix: "mesos-x_y_z_"},
		{name: "multi-byte rune becomes one underscore", taskID: "café", prefix: "mesos-caf__"},
		{name: "long ID is truncated", taskID: long, prefix: "mesos-" + strings.Repeat("x", 128-6-13) + "_"},
		// "mesos-<uuid>" would look like the Docker containerizer's own.
		{name: "UUID task ID", taskID: "5b7c1f4e-8f0a-4f7e-9d55-0c7d1f2a9b31", prefix: "mesos-5b7c1f4e-8f0a-4f7e-9d55-0c7d1f2a9b31_"},
		{name: "hex UUID task ID", taskID: "5b7c1f4e8f0a4f7e9d550c7d1f2a9b31", prefix: "mesos-5b7c1f4e8f0a4f7e9d550c7d1f2a9b31_"},
		// With a '-' before the hash this would make "mesos-<uuid>".
		{name: "UUID head task ID", taskID: "5b7c1f4e-8f0a-4f7e-9d55", prefix: "mesos-5b7c1f4e-8f0a-4f7e-9d55_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := containerName(framework, tt.taskID)
			if want := tt.prefix + ownerHash(framework, tt.taskID); got != want {
				t.Fatalf("containerName(%q, %q) = %q, want %q", framework, tt.taskID, got, want)
			}
			if len(got) > maxContainerNameLength || !dockerNamePattern.MatchString(got) {
				t.Fatalf("containerName(%q, %q) = %q is not a valid Docker name of at most %d characters", framework, tt.taskID, got, maxContainerNameLength)
			}
			rest := strings.TrimPrefix(got, containerNamePrefix)
			if uuid.Validate(rest) == nil || strings.Contains(rest, ".") {
				t.Fatalf("containerName(%q, %q) = %q could be taken for the Docker containerizer's mesos-<uuid>", framework, tt.taskID, got)
			}
		})
	}
	if got := containerName(framework, ""); got != "" {
		t.Fatalf("containerName of an empty task ID = %q, want none", got)
	}
}

func TestContainerNameIsCollisionFree(t *testing.T) {
	owners := []struct{ framework, task string }{
		{"F1", "a.b"}, {"F1", "a_b"}, {"F1", "a/b"}, {"F1", "a b"},
		// Same task ID, other frameworks: two frameworks on one agent.
		{"F2", "a.b"}, {"F2", "a_b"},
		// The framework/task boundary moves.
		{"F1a", "_b"}, {"F", "1a_b"},
		{"F1", strings.Repeat("y", 150) + "A"}, {"F1", strings.Repeat("y", 150) + "B"},
	}
	seen := map[string]string{}
	for _, o := range owners {
		name := containerName(o.framework, o.task)
		key := o.framework + " / " + o.task
		if other, ok := seen[name]; ok {
			t.Fatalf("%q and %q share the container name %q", other, key, name)
		}
		seen[name] = key
	}
}

func TestSplitShellCommand(t *testing.T) {
	tests := []struct {
		line    string
		want    []string
		wantErr string
	}{
		{line: "", want: []string{}},
		{line: "   ", want: []string{}},
		{line: "/app/server --port 8080", want: []string{"/app/server", "--port", "8080"}},
		{line: `sh -c "echo hello world"`, want: []string{"sh", "-c", "echo hello world"}},
		{line: `echo 'single $HOME' "double"`, want: []string{"echo", "single $HOME", "double"}},
		{line: `echo ''`, want: []string{"echo", ""}},
		{line: `echo a\ b`, want: []string{"echo", "a b"}},
		{line: `echo $HOME ${PATH}`, want: []string{"echo", "$HOME", "${PATH}"}},
		{line: "echo `date`", want: []string{"echo", "`date`"}},
		{line: `echo "a;b" 'c|d'`, want: []string{"echo", "a;b", "c|d"}},
		{line: `echo "unbalanced`, wantErr: "unbalanced quote"},
		{line: `echo 'unbalanced`, wantErr: "unbalanced quote"},
		{line: `echo trailing\`, wantErr: "trailing backslash"},
		{line: `echo (x)`, wantErr: "parenthesis"},
		{line: `echo a; rm -rf /`, wantErr: `unquoted shell operator ";"`},
		{line: `server | tee log`, wantErr: `unquoted shell operator "|"`},
		{line: `server 2>err`, wantErr: `unquoted shell operator ">"`},
		{line: `server && other`, wantErr: `unquoted shell operator "&"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := splitShellCommand(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("splitShellCommand(%q) = %q, %v; want error containing %q", tt.line, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("splitShellCommand(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
			}
		})
	}
}

// quoteShellWord quotes a word so that a shell reads it back unchanged.
func quoteShellWord(word string) string {
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

func FuzzSplitShellCommand(f *testing.F) {
	for _, seed := range []string{"", "a b", `"a b" 'c'`, `a\ b`, "a;b", "`x`", "$(x)", `'it'\''s'`, "a\tb\nc"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := splitShellCommand(line)
		if err != nil {
			if words != nil {
				t.Fatalf("splitShellCommand(%q) returned words %q with error %v", line, words, err)
			}
			return
		}
		// Quoting the words and splitting again must give them back.
		quoted := make([]string, len(words))
		for i, word := range words {
			if !utf8.ValidString(word) {
				return // the parser reads runes, so invalid bytes become U+FFFD
			}
			quoted[i] = quoteShellWord(word)
		}
		again, err := splitShellCommand(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-splitting the quoted words %q of %q: %v", quoted, line, err)
		}
		if !reflect.DeepEqual(again, words) {
			t.Fatalf("splitShellCommand(%q) = %q, but its quoted form splits into %q", line, words, again)
		}
	})
}

func TestParseImageReference(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		image       string
		wantVersion string
		wantErr     string
	}{
		{image: "nginx", wantVersion: "latest"},
		{image: "nginx:1.25-alpine", wantVersion: "1.25-alpine"},
		{image: "library/nginx:1.25", wantVersion: "1.25"},
		{image: "registry.example.com:5000/team/web-api:v2.3.1", wantVersion: "v2.3.1"},
		{image: "localhost:5000/app", wantVersion: "latest"},
		{image: "[::1]:5000/app:dev", wantVersion: "dev"},
		{image: "Registry.Example.com/app:1", wantVersion: "1"},
		{image: "app@" + digest, wantVersion: digest},
		{image: "app:1.0@" + digest, wantVersion: "1.0"},
		{image: "my_org/my__app/a-b--c:x", wantVersion: "x"},
		{image: "app:" + strings.Repeat("t", 128), wantVersion: strings.Repeat("t", 128)},
		{image: "", wantErr: "image is empty"},
		{image: "Nginx", wantErr: `image "Nginx" is not a valid`},
		{image: "team/Web", wantErr: "not a valid Docker image reference"},
		{image: "nginx latest", wantErr: "not a valid Docker image reference"},
		{image: "nginx:", wantErr: "not a valid Docker image reference"},
		{image: "nginx:-x", wantErr: "not a valid Docker image reference"},
		{image: "app:" + strings.Repeat("t", 129), wantErr: "not a valid Docker image reference"},
		{image: "00_0.0/app", wantErr: `"00_0.0" looks like a registry host`},
		{image: "app@sha256:abc", wantErr: "not a valid Docker image reference"},
		{image: "app@md5:" + strings.Repeat("a", 32), wantErr: "not a valid Docker image reference"},
		{image: "/app", wantErr: "not a valid Docker image reference"},
		{image: "app/", wantErr: "not a valid Docker image reference"},
		{image: "a..b", wantErr: "not a valid Docker image reference"},
		{image: "host:port/app", wantErr: "not a valid Docker image reference"},
		{image: strings.Repeat("a", 256), wantErr: "more than 255 characters"},
		// Found by fuzzing: names a hand-written grammar let through and
		// Docker refuses.
		{image: "[0]/x", wantErr: "not a valid Docker image reference"},
		{image: strings.Repeat("ab", 32), wantErr: "64-byte hexadecimal"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			ref, err := parseImageReference(tt.image)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseImageReference(%q) = %+v, %v; want error containing %q", tt.image, ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseImageReference(%q): %v", tt.image, err)
			}
			if got := ref.version(); got != tt.wantVersion {
				t.Fatalf("parseImageReference(%q).version() = %q, want %q", tt.image, got, tt.wantVersion)
			}
		})
	}
}

const (
	specTestImage   = "registry.example.com/team/web:1.2.3"
	testHostSandbox = "/var/lib/mesos/slaves/S1/frameworks/F1/executors/E1/runs/R1"
	testAgentHost   = "agent-1.example.com"
)

func stringPtr(s string) *string { return &s }
func boolPtr(b bool) *bool       { return &b }

// testTask is the smallest task the mapping accepts.
func testTask() *mesos.TaskInfo {
	return &mesos.TaskInfo{
		Name:    "web",
		TaskID:  mesos.TaskID{Value: "web-1"},
		AgentID: mesos.AgentID{Value: "S1"},
		Container: &mesos.ContainerInfo{
			Type:   mesos.ContainerInfo_DOCKER.Enum(),
			Docker: &mesos.ContainerInfo_DockerInfo{Image: specTestImage},
		},
	}
}

func testInput() specInput {
	return specInput{
		Task:          testTask(),
		HostSandbox:   testHostSandbox,
		AgentHostname: testAgentHost,
		Settings:      &Config{},
	}
}

func withNetwork(in *specInput, network mesos.ContainerInfo_DockerInfo_Network) {
	in.Task.Container.Docker.Network = network.Enum()
}

func withPortMappings(in *specInput, mappings ...mesos.ContainerInfo_DockerInfo_PortMapping) {
	withNetwork(in, mesos.ContainerInfo_DockerInfo_BRIDGE)
	in.Task.Container.Docker.PortMappings = mappings
}

func portMapping(hostPort, containerPort uint32, protocol string) mesos.ContainerInfo_DockerInfo_PortMapping {
	mapping := mesos.ContainerInfo_DockerInfo_PortMapping{HostPort: hostPort, ContainerPort: containerPort}
	if protocol != "" {
		mapping.Protocol = stringPtr(protocol)
	}
	return mapping
}

func portsResource(ranges ...mesos.Value_Range) mesos.Resource {
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: ranges}}
}

func scalarResource(name string, value float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: value}}
}

func withParameters(in *specInput, keyValues ...string) {
	for i := 0; i+1 < len(keyValues); i += 2 {
		in.Task.Container.Docker.Parameters = append(in.Task.Container.Docker.Parameters, mesos.Parameter{Key: keyValues[i], Value: keyValues[i+1]})
	}
}

func withLabels(in *specInput, keyValues ...string) {
	if in.Task.Labels == nil {
		in.Task.Labels = &mesos.Labels{}
	}
	for i := 0; i+1 < len(keyValues); i += 2 {
		in.Task.Labels.Labels = append(in.Task.Labels.Labels, mesos.Label{Key: keyValues[i], Value: stringPtr(keyValues[i+1])})
	}
}

func valueVariables(keyValues ...string) *mesos.Environment {
	environment := &mesos.Environment{}
	for i := 0; i+1 < len(keyValues); i += 2 {
		environment.Variables = append(environment.Variables, mesos.Environment_Variable{
			Name: keyValues[i], Type: mesos.Environment_Variable_VALUE.Enum(), Value: stringPtr(keyValues[i+1]),
		})
	}
	return environment
}

func withExecutorEnvironment(in *specInput, keyValues ...string) {
	in.Task.Executor = &mesos.ExecutorInfo{
		ExecutorID:  mesos.ExecutorID{Value: "E1"},
		FrameworkID: &mesos.FrameworkID{Value: "F1"},
		Command:     &mesos.CommandInfo{Value: stringPtr("sidecar-executor"), Environment: valueVariables(keyValues...)},
	}
}

func withVolume(in *specInput, volume mesos.Volume) {
	in.Task.Container.Volumes = append(in.Task.Container.Volumes, volume)
}

func hostVolume(hostPath, containerPath string, mode mesos.Volume_Mode) mesos.Volume {
	return mesos.Volume{HostPath: stringPtr(hostPath), ContainerPath: containerPath, Mode: mode.Enum()}
}

func dockerVolume(name, driver, containerPath string, mode mesos.Volume_Mode) mesos.Volume {
	volume := &mesos.Volume_Source_DockerVolume{Name: name}
	if driver != "" {
		volume.Driver = stringPtr(driver)
	}
	return mesos.Volume{
		ContainerPath: containerPath,
		Mode:          mode.Enum(),
		Source:        &mesos.Volume_Source{Type: mesos.Volume_Source_DOCKER_VOLUME, DockerVolume: volume},
	}
}

func mustBuild(t *testing.T, in specInput) *containerSpec {
	t.Helper()
	spec, err := buildContainerSpec(in)
	if err != nil {
		t.Fatalf("buildContainerSpec: %v", err)
	}
	return spec
}

func TestBuildContainerSpecMinimalTask(t *testing.T) {
	spec := mustBuild(t, testInput())
	options := spec.Options
	if want := "mesos-web-1_" + ownerHash("", "web-1"); spec.Name != want || options.Name != spec.Name {
		t.Errorf("Name = %q, Options.Name = %q; want %s for both", spec.Name, options.Name, want)
	}
	if spec.Image != specTestImage || options.Config.Image != specTestImage {
		t.Errorf("Image = %q, Config.Image = %q; want %q", spec.Image, options.Config.Image, specTestImage)
	}
	if spec.ForcePull {
		t.Error("ForcePull = true without force_pull_image")
	}
	wantEnv := []string{
		"MESOS_HOSTNAME=" + testAgentHost,
		"SERVICE_VERSION=1.2.3",
		"MESOS_TASK_ID=web-1",
		"MESOS_SANDBOX=/mnt/mesos/sandbox",
	}
	if !reflect.DeepEqual(options.Config.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", options.Config.Env, wantEnv)
	}
	if want := map[string]string{taskIDLabel: "web-1"}; !reflect.DeepEqual(options.Config.Labels, want) {
		t.Errorf("Config.Labels = %v, want %v", options.Config.Labels, want)
	}
	if options.Config.Cmd != nil || options.Config.Entrypoint != nil {
		t.Errorf("Cmd = %q, Entrypoint = %q; want both nil (the image's own)", options.Config.Cmd, options.Config.Entrypoint)
	}
	if options.Config.Tty || options.Config.AttachStdout || options.Config.AttachStderr || options.Config.AttachStdin {
		t.Error("Tty or Attach* set; want all false")
	}
	host := options.HostConfig
	if host.NetworkMode != "host" {
		t.Errorf("NetworkMode = %q, want host (the Mesos default)", host.NetworkMode)
	}
	if options.NetworkingConfig != nil {
		t.Errorf("NetworkingConfig = %+v, want nil for a host network", options.NetworkingConfig)
	}
	if want := []string{testHostSandbox + ":/mnt/mesos/sandbox:rw"}; !reflect.DeepEqual(host.Binds, want) {
		t.Errorf("Binds = %q, want %q", host.Binds, want)
	}
	if host.RestartPolicy.Name != "no" || host.AutoRemove {
		t.Errorf("RestartPolicy = %+v, AutoRemove = %v; want no and false", host.RestartPolicy, host.AutoRemove)
	}
	if host.Privileged || host.CPUShares != 0 || host.CPUQuota != 0 || host.CPUPeriod != 0 || host.Memory != 0 || host.MemorySwap != 0 {
		t.Errorf("unexpected limits or privilege: %+v", host)
	}
	if len(options.Config.ExposedPorts) != 0 || len(host.PortBindings) != 0 {
		t.Errorf("ExposedPorts = %v, PortBindings = %v; want none", options.Config.ExposedPorts, host.PortBindings)
	}
	if len(spec.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", spec.Warnings)
	}
}

func TestBuildContainerSpecErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(in *specInput)
		wantErr string
	}{
		{"nil task", func(in *specInput) { in.Task = nil }, "no task given"},
		{"empty task ID", func(in *specInput) { in.Task.TaskID.Value = "" }, "task_id is empty"},
		{"NUL in task ID", func(in *specInput) { in.Task.TaskID.Value = "a\x00b" }, "task_id \"a\\x00b\" contains a NUL byte"},
		{"no container", func(in *specInput) { in.Task.Container = nil }, "task has no container info"},
		{"container type missing", func(in *specInput) { in.Task.Container.Type = nil }, "container.type is not set"},
		{"MESOS container", func(in *specInput) { in.Task.Container.Type = mesos.ContainerInfo_MESOS.Enum() }, "container.type is MESOS"},
		{"no docker info", func(in *specInput) { in.Task.Container.Docker = nil }, "container.docker is missing"},
		{"empty image", func(in *specInput) { in.Task.Container.Docker.Image = "" }, "container.docker.image: image is empty"},
		{"uppercase image", func(in *specInput) { in.Task.Container.Docker.Image = "team/Web:1" }, `container.docker.image: image "team/Web:1" is not a valid Docker image reference`},
		{"image with space", func(in *specInput) { in.Task.Container.Docker.Image = "web 1" }, `image "web 1" is not a valid`},

		{"SECRET variable", func(in *specInput) {
			withExecutorEnvironment(in)
			in.Task.Executor.Command.Environment.Variables = []mesos.Environment_Variable{{Name: "DB_PASSWORD", Type: mesos.Environment_Variable_SECRET.Enum()}}
		}, `executor.command.environment.variables[0] "DB_PASSWORD": SECRET environment variables are not supported`},
		{"UNKNOWN variable type", func(in *specInput) {
			withExecutorEnvironment(in)
			in.Task.Executor.Command.Environment.Variables = []mesos.Environment_Variable{{Name: "X", Type: mesos.Environment_Variable_UNKNOWN.Enum(), Value: stringPtr("1")}}
		}, `variables[0] "X": environment variable type UNKNOWN is not supported`},
		{"VALUE variable without value", func(in *specInput) {
			withExecutorEnvironment(in)
			in.Task.Executor.Command.Environment.Variables = []mesos.Environment_Variable{{Name: "X"}}
		}, `variables[0] "X": VALUE environment variable has no value`},
		{"empty variable name", func(in *specInput) { withExecutorEnvironment(in, "", "x") }, `executor.command.environment.variables[0] "": environment variable name is empty`},
		{"variable name with =", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false), Environment: valueVariables("A=B", "x")}
		}, `command.environment.variables[0] "A=B": environment variable name "A=B" contains '='`},
		{"NUL in variable value", func(in *specInput) { withExecutorEnvironment(in, "A", "x\x00y") }, `environment variable "A" contains a NUL byte`},
		{"NUL in variable name", func(in *specInput) { withExecutorEnvironment(in, "A\x00", "x") }, "contains a NUL byte"},
		{"environment over 1 MiB", func(in *specInput) {
			withExecutorEnvironment(in, "BIG1", strings.Repeat("x", 600_000), "BIG2", strings.Repeat("y", 600_000))
		}, "the container environment is 1200"},
		{"env parameter without =", func(in *specInput) { withParameters(in, "env", "FOO") }, `container.docker.parameters[0] "env": "FOO" is not NAME=VALUE`},
		{"env parameter with empty name", func(in *specInput) { withParameters(in, "env", "=x") }, `container.docker.parameters[0] "env": environment variable name is empty`},

		{"label parameter with an empty key", func(in *specInput) { withParameters(in, "label", "=x") }, `container.docker.parameters[0] "label": "=x" has an empty key`},
		{"label parameter with empty key", func(in *specInput) { withParameters(in, "label", "=x") }, `"label": "=x" has an empty key`},
		{"NUL in parameter", func(in *specInput) { withParameters(in, "label", "a=\x00") }, `container.docker.parameters[0] "label": contains a NUL byte`},
		{"NUL in task label", func(in *specInput) { withLabels(in, "team", "a\x00") }, `labels[0] "team": contains a NUL byte`},
		{"empty cap-add", func(in *specInput) { withParameters(in, "cap-add", " ") }, `parameters[0] "cap-add": value is empty`},
		{"empty cap-drop", func(in *specInput) { withParameters(in, "cap-drop", "") }, `parameters[0] "cap-drop": value is empty`},
		{"empty user", func(in *specInput) { withParameters(in, "user", "") }, `parameters[0] "user": value is empty`},
		{"relative workdir", func(in *specInput) { withParameters(in, "workdir", "app") }, `parameters[0] "workdir": "app" is not an absolute path`},
		{"empty log-driver", func(in *specInput) { withParameters(in, "log-driver", "") }, `parameters[0] "log-driver": value is empty`},
		{"log-opt without =", func(in *specInput) { withParameters(in, "log-opt", "max-size") }, `parameters[0] "log-opt": "max-size" is not KEY=VALUE`},
		{"add-host without address", func(in *specInput) { withParameters(in, "add-host", "db") }, `parameters[0] "add-host": "db" is not HOSTNAME:IP`},
		{"dns not an IP", func(in *specInput) { withParameters(in, "dns", "resolver.local") }, `parameters[0] "dns": "resolver.local" is not an IP address`},
		{"init not a bool", func(in *specInput) { withParameters(in, "init", "maybe") }, `parameters[0] "init": "maybe" is not true or false`},
		{"empty stop-signal", func(in *specInput) { withParameters(in, "--stop-signal", "") }, `parameters[0] "--stop-signal": value is empty`},

		{"unknown protocol", func(in *specInput) {
			withPortMappings(in, portMapping(31000, 80, "tcp"), portMapping(31001, 81, "sctp"))
		}, `invalid TaskInfo: container.docker.port_mappings[1]: protocol "sctp" is not one of tcp, udp, "tcp,udp"`},
		{"protocol listed twice", func(in *specInput) { withPortMappings(in, portMapping(31000, 80, "tcp,tcp")) }, `protocol "tcp,tcp" is not one of`},
		{"protocol of spaces", func(in *specInput) { withPortMappings(in, portMapping(31000, 80, "  ")) }, `protocol "  " is not one of`},
		{"protocol with empty part", func(in *specInput) { withPortMappings(in, portMapping(31000, 80, "tcp,")) }, `protocol "tcp," is not one of`},
		{"container port 0", func(in *specInput) { withPortMappings(in, portMapping(31000, 0, "")) }, "port_mappings[0]: container_port 0 is not between 1 and 65535"},
		{"container port too big", func(in *specInput) { withPortMappings(in, portMapping(31000, 65536, "")) }, "container_port 65536 is not between 1 and 65535"},
		{"host port 0", func(in *specInput) { withPortMappings(in, portMapping(0, 80, "")) }, "port_mappings[0]: host_port 0 is not between 1 and 65535"},
		{"host port too big", func(in *specInput) { withPortMappings(in, portMapping(70000, 80, "")) }, "host_port 70000 is not between 1 and 65535"},
		{"duplicate host port", func(in *specInput) {
			withPortMappings(in, portMapping(31000, 80, "tcp"), portMapping(31000, 81, "TCP"))
		}, "port_mappings[1]: host port 31000/tcp is already mapped by container.docker.port_mappings[0]"},
		{"duplicate host port through tcp,udp", func(in *specInput) {
			withPortMappings(in, portMapping(31000, 53, "udp"), portMapping(31000, 54, "tcp,udp"))
		}, "port_mappings[1]: host port 31000/udp is already mapped by container.docker.port_mappings[0]"},
		{"duplicate container port", func(in *specInput) {
			withPortMappings(in, portMapping(31000, 80, ""), portMapping(31001, 80, "tcp"))
		}, "port_mappings[1]: container port 80/tcp is already mapped by container.docker.port_mappings[0]"},
		{"host port outside ports resources", func(in *specInput) {
			withPortMappings(in, portMapping(31005, 80, ""))
			in.Task.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31004})}
		}, "port_mappings[0]: host port 31005 is not in the task's ports resources [31000-31004]"},
		{"host port outside several ranges", func(in *specInput) {
			withPortMappings(in, portMapping(31005, 80, ""))
			in.Task.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31004}), portsResource(mesos.Value_Range{Begin: 31010, End: 31010})}
		}, "host port 31005 is not in the task's ports resources [31000-31004, 31010]"},
		{"port mapping on host network", func(in *specInput) {
			withPortMappings(in, portMapping(31000, 80, ""))
			in.Task.Container.Docker.Network = nil
		}, "container.docker.port_mappings: port mappings are only supported for bridge and user-defined networks, not HOST"},
		{"port mapping on none network", func(in *specInput) {
			withPortMappings(in, portMapping(31000, 80, ""))
			withNetwork(in, mesos.ContainerInfo_DockerInfo_NONE)
		}, "port mappings are only supported for bridge and user-defined networks, not NONE"},

		{"unknown network", func(in *specInput) { withNetwork(in, mesos.ContainerInfo_DockerInfo_Network(9)) }, "container.docker.network 9 is not one of HOST, BRIDGE, NONE, USER"},
		{"USER network without network_infos", func(in *specInput) { withNetwork(in, mesos.ContainerInfo_DockerInfo_USER) }, "container.network_infos: a USER network needs exactly one network_info naming the Docker network, found 0"},
		{"USER network with two network_infos", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
			in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("a")}, {Name: stringPtr("b")}}
		}, "found 2"},
		{"USER network without name", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
			in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{}}
		}, "container.network_infos[0].name is empty"},
		{"USER network named host", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
			in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("host")}}
		}, `container.network_infos[0].name "host" is a Docker network mode`},
		{"USER network naming another container", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
			in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("container:db")}}
		}, `"container:db" is a Docker network mode`},
		{"hostname with host network", func(in *specInput) { in.Task.Container.Hostname = stringPtr("web") }, `container.hostname "web" cannot be set with HOST networking`},

		{"volume without source", func(in *specInput) { withVolume(in, mesos.Volume{ContainerPath: "/data", Mode: mesos.RW.Enum()}) }, `container.volumes[0] (container_path "/data") has neither host_path nor source.docker_volume`},
		{"volume with a sandbox_path source", func(in *specInput) {
			withVolume(in, mesos.Volume{ContainerPath: "/data", Mode: mesos.RW.Enum(), Source: &mesos.Volume_Source{Type: mesos.Volume_Source_SANDBOX_PATH}})
		}, `container.volumes[0] (container_path "/data") has neither host_path nor source.docker_volume`},
		{"empty container path", func(in *specInput) { withVolume(in, hostVolume("/srv", "", mesos.RW)) }, "container.volumes[0].container_path is empty"},
		{"empty host path", func(in *specInput) { withVolume(in, hostVolume("", "/srv", mesos.RW)) }, "container.volumes[0].host_path is empty"},
		{"dot-dot in container path", func(in *specInput) { withVolume(in, hostVolume("/srv", "/data/../etc", mesos.RW)) }, `container.volumes[0].container_path "/data/../etc" contains a '..' element`},
		{"dot-dot in relative host path", func(in *specInput) { withVolume(in, hostVolume("../other", "/data", mesos.RW)) }, `container.volumes[0].host_path "../other" contains a '..' element`},
		{"colon in host path", func(in *specInput) { withVolume(in, hostVolume("/srv:/etc", "/data", mesos.RW)) }, `host_path "/srv:/etc" contains ':'`},
		{"NUL in container path", func(in *specInput) { withVolume(in, hostVolume("/srv", "/da\x00ta", mesos.RW)) }, "container_path \"/da\\x00ta\" contains a NUL byte"},
		{"both paths relative", func(in *specInput) { withVolume(in, hostVolume("cache", "cache", mesos.RW)) }, `container.volumes[0]: host_path "cache" and container_path "cache" are both relative`},
		{"relative host path without sandbox", func(in *specInput) {
			in.HostSandbox = ""
			withVolume(in, hostVolume("cache", "/cache", mesos.RW))
		}, `container.volumes[0].host_path "cache" is relative to the sandbox, but the sandbox directory is unknown`},
		{"volume mode out of range", func(in *specInput) {
			withVolume(in, hostVolume("/srv", "/srv", mesos.Volume_Mode(7)))
		}, "container.volumes[0].mode 7 is not RW or RO"},
		{"docker volume named like a path", func(in *specInput) { withVolume(in, dockerVolume("/etc", "", "/data", mesos.RW)) }, `container.volumes[0].source.docker_volume.name "/etc" is not a valid Docker volume name`},
		{"two volume drivers", func(in *specInput) {
			withVolume(in, dockerVolume("a1", "rexray", "/a", mesos.RW))
			withVolume(in, dockerVolume("b1", "flocker", "/b", mesos.RW))
		}, `container.volumes[1].source.docker_volume.driver "flocker" differs from driver "rexray" of container.volumes[0].source.docker_volume.driver`},
		{"volume over the sandbox", func(in *specInput) { withVolume(in, hostVolume("/srv", "/mnt/mesos/sandbox/", mesos.RW)) }, `container.volumes[0]: container path "/mnt/mesos/sandbox" is already mounted by the task sandbox`},
		{"two volumes on one path", func(in *specInput) {
			withVolume(in, hostVolume("/a", "/data", mesos.RW))
			withVolume(in, dockerVolume("b1", "", "/data", mesos.RO))
		}, `container.volumes[1]: container path "/data" is already mounted by container.volumes[0]`},
		{"relative sandbox directory", func(in *specInput) { in.HostSandbox = "sandbox" }, `MESOS_DIRECTORY="sandbox" is not an absolute path`},
		{"NUL in the agent's hostname", func(in *specInput) { in.AgentHostname = "a\x00" }, `the agent's hostname "a\x00" contains a NUL byte`},

		{"negative cpus", func(in *specInput) { in.Task.Resources = []mesos.Resource{scalarResource("cpus", -1)} }, "resources[0] (cpus) is -1; it must be a finite number not below zero"},
		{"NaN mem", func(in *specInput) {
			in.Task.Resources = []mesos.Resource{scalarResource("cpus", 1), scalarResource("mem", math.NaN())}
		}, "resources[1] (mem) is NaN"},
		{"infinite cpus", func(in *specInput) { in.Task.Resources = []mesos.Resource{scalarResource("cpus", math.Inf(1))} }, "resources[0] (cpus) is +Inf"},
		{"cpus without a scalar", func(in *specInput) { in.Task.Resources = []mesos.Resource{{Name: "cpus"}} }, "resources[0] (cpus) has no scalar value"},
		{"absurd mem", func(in *specInput) { in.Task.Resources = []mesos.Resource{scalarResource("mem", 1e300)} }, "resources: mem 1e+300 MB is more than"},
		{"absurd cpus", func(in *specInput) { in.Task.Resources = []mesos.Resource{scalarResource("cpus", 1e12)} }, "resources: cpus 1e+12 is more than"},

		{"shell without value", func(in *specInput) { in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(true)} }, "command.value is empty but command.shell is true"},
		{"arguments with default shell and no value", func(in *specInput) { in.Task.Command = &mesos.CommandInfo{Arguments: []string{"x"}} }, "command.value is empty but command.shell is true"},
		{"NUL in shell command", func(in *specInput) { in.Task.Command = &mesos.CommandInfo{Value: stringPtr("echo \x00")} }, "command.value contains a NUL byte"},
		{"NUL in argument", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false), Arguments: []string{"ok", "b\x00d"}}
		}, `command: argument 1 "b\x00d" contains a NUL byte`},
		{"unbalanced quote in ShellCommand", func(in *specInput) { withLabels(in, "executor.ShellCommand", `/app/server "--name`) }, `label executor.ShellCommand "/app/server \"--name": unbalanced quote`},
		{"shell operator in ShellCommand", func(in *specInput) { withLabels(in, "executor.ShellCommand", "/app/server; reboot") }, `label executor.ShellCommand "/app/server; reboot": unquoted shell operator ";"`},
		{"NUL in framework ID", func(in *specInput) { in.Owner.FrameworkID = "F\x00" }, "label sidecar-executor.framework-id \"F\\x00\" contains a NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.mutate(&in)
			spec, err := buildContainerSpec(in)
			if err == nil {
				t.Fatalf("buildContainerSpec succeeded (%+v); want error containing %q", spec, tt.wantErr)
			}
			if spec != nil {
				t.Errorf("buildContainerSpec returned a spec with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			// Only the executor's own inputs (sandbox, agent) give other errors.
			fromTask := !strings.Contains(err.Error(), "MESOS_DIRECTORY") && !strings.Contains(err.Error(), "agent's hostname")
			if fromTask && !strings.HasPrefix(err.Error(), "invalid TaskInfo: ") {
				t.Errorf("error %q does not start with \"invalid TaskInfo: \"", err)
			}
		})
	}
}

func TestBuildContainerSpecEnvironmentOrder(t *testing.T) {
	in := testInput()
	withPortMappings(&in, portMapping(31000, 8080, ""))
	withLabels(&in, "ServiceName", "web", "Environment", "prod")
	withExecutorEnvironment(&in,
		"TASK_HOST", "node7.example.com",
		"PORT0", "31000",
		"SERVICE_VERSION", "from-executor",
		"EXECUTOR_KILL_TASK_TIMEOUT", "9",
		"VAULT_TOKEN", "s.secret",
		"VAULT_USERNAME", "u",
		"VAULT_PASSWORD", "p",
		"VAULT_TOKEN_FILE", "/f",
		"MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "jwt",
		"SIDECAR_EXECUTOR_PATH", "/usr/bin/sidecar-executor",
		"MESOS_SANDBOX", "/elsewhere",
		"SHARED", "executor",
	)
	in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false), Environment: valueVariables("SHARED", "command", "ONLY_COMMAND", "1")}
	withParameters(&in, "env", "SHARED=parameter", "--env", "MESOS_TASK_ID=override", "env", "EMPTY=")
	spec := mustBuild(t, in)
	want := []string{
		"MESOS_PORT_8080=31000",
		"MESOS_HOSTNAME=node7.example.com",
		"SERVICE_NAME=web",
		"ENVIRONMENT=prod",
		"SERVICE_VERSION=from-executor",
		"MESOS_TASK_ID=override",
		"TASK_HOST=node7.example.com",
		"PORT0=31000",
		"MESOS_SANDBOX=/mnt/mesos/sandbox",
		"SHARED=parameter",
		"ONLY_COMMAND=1",
		"EMPTY=",
	}
	if got := spec.Options.Config.Env; !reflect.DeepEqual(got, want) {
		t.Fatalf("Env =\n%q\nwant\n%q", got, want)
	}
	if len(spec.Warnings) != 0 {
		t.Fatalf("Warnings = %q, want none", spec.Warnings)
	}
}

func TestBuildContainerSpecEnvironmentSources(t *testing.T) {
	subscribed := &mesos.ExecutorInfo{
		ExecutorID:  mesos.ExecutorID{Value: "E0"},
		FrameworkID: &mesos.FrameworkID{Value: "F0"},
		Command:     &mesos.CommandInfo{Environment: valueVariables("FROM", "subscribed", "TASK_HOST", "")},
	}
	tests := []struct {
		name     string
		mutate   func(in *specInput)
		wantEnv  []string // must appear, in this order
		notInEnv []string // variable names that must be absent
	}{
		{
			name:     "SUBSCRIBED executor info when the task has none; empty TASK_HOST falls back to the agent",
			mutate:   func(in *specInput) { in.ExecutorInfo = subscribed },
			wantEnv:  []string{"MESOS_HOSTNAME=" + testAgentHost, "FROM=subscribed", "TASK_HOST="},
			notInEnv: nil,
		},
		{
			name: "the task's executor info wins over SUBSCRIBED's",
			mutate: func(in *specInput) {
				in.ExecutorInfo = subscribed
				withExecutorEnvironment(in, "FROM", "task")
			},
			wantEnv: []string{"FROM=task"},
		},
		{
			name:     "no hostname at all",
			mutate:   func(in *specInput) { in.AgentHostname = "" },
			wantEnv:  []string{"SERVICE_VERSION=1.2.3"},
			notInEnv: []string{"MESOS_HOSTNAME"},
		},
		{
			name:     "image without tag is latest",
			mutate:   func(in *specInput) { in.Task.Container.Docker.Image = "busybox" },
			wantEnv:  []string{"SERVICE_VERSION=latest"},
			notInEnv: []string{"SERVICE_NAME", "ENVIRONMENT"},
		},
		{
			name:    "image by digest reports the digest",
			mutate:  func(in *specInput) { in.Task.Container.Docker.Image = "busybox@sha256:" + strings.Repeat("0f", 32) },
			wantEnv: []string{"SERVICE_VERSION=sha256:" + strings.Repeat("0f", 32)},
		},
		{
			name: "label parameters feed SERVICE_NAME",
			mutate: func(in *specInput) {
				withLabels(in, "ServiceName", "task")
				withParameters(in, "label", "ServiceName=param")
			},
			wantEnv: []string{"SERVICE_NAME=param"},
		},
		{
			name: "withheld SECRET variables are dropped, not refused",
			mutate: func(in *specInput) {
				withExecutorEnvironment(in, "KEEP", "1")
				in.Task.Executor.Command.Environment.Variables = append(in.Task.Executor.Command.Environment.Variables,
					mesos.Environment_Variable{Name: "VAULT_TOKEN", Type: mesos.Environment_Variable_SECRET.Enum()})
			},
			wantEnv:  []string{"KEEP=1"},
			notInEnv: []string{"VAULT_TOKEN"},
		},
		{
			name: "an environment just under 1 MiB is accepted",
			mutate: func(in *specInput) {
				withExecutorEnvironment(in, "BIG", strings.Repeat("x", 1<<20-200))
			},
			wantEnv: []string{"MESOS_SANDBOX=/mnt/mesos/sandbox"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.mutate(&in)
			env := mustBuild(t, in).Options.Config.Env
			position := -1
			for _, entry := range tt.wantEnv {
				found := -1
				for i, got := range env {
					if got == entry {
						found = i
					}
				}
				if found < 0 || found < position {
					t.Fatalf("Env %q lacks %q, or has it out of order", env, entry)
				}
				position = found
			}
			for _, name := range tt.notInEnv {
				for _, got := range env {
					if strings.HasPrefix(got, name+"=") {
						t.Fatalf("Env %q has %s", env, got)
					}
				}
			}
			if !slices.Contains(env, "MESOS_SANDBOX=/mnt/mesos/sandbox") {
				t.Fatalf("Env %q lacks MESOS_SANDBOX=/mnt/mesos/sandbox", env)
			}
		})
	}
}

func TestBuildContainerSpecPorts(t *testing.T) {
	binding := func(hostPort string) []docker.PortBinding { return []docker.PortBinding{{HostPort: hostPort}} }
	tests := []struct {
		name         string
		mutate       func(in *specInput)
		wantBindings map[docker.Port][]docker.PortBinding
		wantEnv      []string
	}{
		{
			name:         "protocol defaults to tcp",
			mutate:       func(in *specInput) { withPortMappings(in, portMapping(31000, 8080, "")) },
			wantBindings: map[docker.Port][]docker.PortBinding{"8080/tcp": binding("31000")},
			wantEnv:      []string{"MESOS_PORT_8080=31000"},
		},
		{
			name:         "udp",
			mutate:       func(in *specInput) { withPortMappings(in, portMapping(31053, 53, "udp")) },
			wantBindings: map[docker.Port][]docker.PortBinding{"53/udp": binding("31053")},
			wantEnv:      []string{"MESOS_PORT_53=31053"},
		},
		{
			name:         "tcp,udp in any order, case and spacing",
			mutate:       func(in *specInput) { withPortMappings(in, portMapping(31053, 53, " UDP , tcp ")) },
			wantBindings: map[docker.Port][]docker.PortBinding{"53/tcp": binding("31053"), "53/udp": binding("31053")},
			wantEnv:      []string{"MESOS_PORT_53=31053"},
		},
		{
			name: "one port per protocol may share numbers",
			mutate: func(in *specInput) {
				withPortMappings(in, portMapping(31000, 53, "tcp"), portMapping(31000, 53, "udp"))
			},
			wantBindings: map[docker.Port][]docker.PortBinding{"53/tcp": binding("31000"), "53/udp": binding("31000")},
			wantEnv:      []string{"MESOS_PORT_53=31000"},
		},
		{
			name: "host ports inside the task's ports resources",
			mutate: func(in *specInput) {
				withPortMappings(in, portMapping(31000, 80, ""), portMapping(31010, 443, "tcp"))
				in.Task.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31004}), portsResource(mesos.Value_Range{Begin: 31010, End: 31010})}
			},
			wantBindings: map[docker.Port][]docker.PortBinding{"80/tcp": binding("31000"), "443/tcp": binding("31010")},
			wantEnv:      []string{"MESOS_PORT_80=31000", "MESOS_PORT_443=31010"},
		},
		{
			name: "USER network",
			mutate: func(in *specInput) {
				withPortMappings(in, portMapping(31000, 8080, ""))
				withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
				in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("overlay-1")}}
			},
			wantBindings: map[docker.Port][]docker.PortBinding{"8080/tcp": binding("31000")},
			wantEnv:      []string{"MESOS_PORT_8080=31000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.mutate(&in)
			spec := mustBuild(t, in)
			if got := spec.Options.HostConfig.PortBindings; !reflect.DeepEqual(got, tt.wantBindings) {
				t.Errorf("PortBindings = %v, want %v", got, tt.wantBindings)
			}
			wantExposed := map[docker.Port]struct{}{}
			for port := range tt.wantBindings {
				wantExposed[port] = struct{}{}
			}
			if got := spec.Options.Config.ExposedPorts; !reflect.DeepEqual(got, wantExposed) {
				t.Errorf("ExposedPorts = %v, want %v", got, wantExposed)
			}
			env := spec.Options.Config.Env
			if len(env) < len(tt.wantEnv) || !reflect.DeepEqual(env[:len(tt.wantEnv)], tt.wantEnv) {
				t.Errorf("Env = %q, want it to start with %q", env, tt.wantEnv)
			}
		})
	}
}

func TestBuildContainerSpecNetwork(t *testing.T) {
	tests := []struct {
		name          string
		mutate        func(in *specInput)
		wantMode      string
		wantEndpoints []string // nil: no NetworkingConfig
		wantHostname  string
	}{
		{"unset is host", func(in *specInput) {}, "host", nil, ""},
		{"HOST", func(in *specInput) { withNetwork(in, mesos.ContainerInfo_DockerInfo_HOST) }, "host", nil, ""},
		{"BRIDGE with hostname", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_BRIDGE)
			in.Task.Container.Hostname = stringPtr("web-1")
		}, "bridge", nil, "web-1"},
		{"NONE with hostname", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_NONE)
			in.Task.Container.Hostname = stringPtr("isolated")
		}, "none", nil, "isolated"},
		{"USER", func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
			in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("backend")}}
			in.Task.Container.Hostname = stringPtr("api")
		}, "backend", []string{"backend"}, "api"},
		{"empty hostname is no hostname", func(in *specInput) { in.Task.Container.Hostname = stringPtr("") }, "host", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.mutate(&in)
			options := mustBuild(t, in).Options
			if options.HostConfig.NetworkMode != tt.wantMode {
				t.Errorf("NetworkMode = %q, want %q", options.HostConfig.NetworkMode, tt.wantMode)
			}
			if options.Config.Hostname != tt.wantHostname {
				t.Errorf("Hostname = %q, want %q", options.Config.Hostname, tt.wantHostname)
			}
			if tt.wantEndpoints == nil {
				if options.NetworkingConfig != nil {
					t.Errorf("NetworkingConfig = %+v, want nil", options.NetworkingConfig)
				}
				return
			}
			var endpoints []string
			if options.NetworkingConfig != nil {
				for name, endpoint := range options.NetworkingConfig.EndpointsConfig {
					if endpoint == nil {
						t.Errorf("EndpointsConfig[%q] is nil", name)
					}
					endpoints = append(endpoints, name)
				}
			}
			if !reflect.DeepEqual(endpoints, tt.wantEndpoints) {
				t.Errorf("EndpointsConfig networks = %q, want %q", endpoints, tt.wantEndpoints)
			}
		})
	}
}

func TestBuildContainerSpecVolumes(t *testing.T) {
	sandboxBind := testHostSandbox + ":/mnt/mesos/sandbox:rw"
	tests := []struct {
		name             string
		mutate           func(in *specInput)
		wantBinds        []string
		wantVolumeDriver string
		wantWarnings     int
	}{
		{"RW host path", func(in *specInput) { withVolume(in, hostVolume("/srv/data", "/data", mesos.RW)) },
			[]string{sandboxBind, "/srv/data:/data:rw"}, "", 0},
		{"RO host path, cleaned", func(in *specInput) { withVolume(in, hostVolume("/etc/ssl/", "/etc/ssl//certs/", mesos.RO)) },
			[]string{sandboxBind, "/etc/ssl:/etc/ssl/certs:ro"}, "", 0},
		{"mode unset is RW", func(in *specInput) { withVolume(in, mesos.Volume{HostPath: stringPtr("/srv"), ContainerPath: "/srv"}) },
			[]string{sandboxBind, "/srv:/srv:rw"}, "", 0},
		{"relative container path is in the sandbox", func(in *specInput) { withVolume(in, hostVolume("/srv/cache", "cache", mesos.RW)) },
			[]string{sandboxBind, "/srv/cache:/mnt/mesos/sandbox/cache:rw"}, "", 0},
		{"relative host path is in the host sandbox", func(in *specInput) { withVolume(in, hostVolume("conf/app.yml", "/etc/app.yml", mesos.RO)) },
			[]string{sandboxBind, testHostSandbox + "/conf/app.yml:/etc/app.yml:ro"}, "", 0},
		{"docker volume keeps its mode", func(in *specInput) { withVolume(in, dockerVolume("pgdata", "", "/var/lib/postgresql", mesos.RO)) },
			[]string{sandboxBind, "pgdata:/var/lib/postgresql:ro"}, "", 0},
		{"docker volume driver", func(in *specInput) {
			withVolume(in, dockerVolume("v1", "rexray", "/a", mesos.RW))
			withVolume(in, dockerVolume("v2", "rexray", "/b", mesos.RW))
		}, []string{sandboxBind, "v1:/a:rw", "v2:/b:rw"}, "rexray", 0},
		{"deprecated docker.volume_driver", func(in *specInput) {
			in.Task.Container.Docker.VolumeDriver = stringPtr("flocker")
			withVolume(in, dockerVolume("v1", "", "/a", mesos.RW))
		}, []string{sandboxBind, "v1:/a:rw"}, "flocker", 0},
		{"driver options are ignored with a warning", func(in *specInput) {
			volume := dockerVolume("v1", "", "/a", mesos.RW)
			volume.Source.DockerVolume.DriverOptions = &mesos.Parameters{Parameter: []mesos.Parameter{{Key: "size", Value: "10"}}}
			withVolume(in, volume)
		}, []string{sandboxBind, "v1:/a:rw"}, "", 1},
		{"host_path wins over a source", func(in *specInput) {
			volume := dockerVolume("v1", "", "/a", mesos.RW)
			volume.HostPath = stringPtr("/srv")
			withVolume(in, volume)
		}, []string{sandboxBind, "/srv:/a:rw"}, "", 0},
		{"no sandbox, no sandbox bind", func(in *specInput) {
			in.HostSandbox = ""
			withVolume(in, hostVolume("/srv", "/srv", mesos.RW))
		}, []string{"/srv:/srv:rw"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.mutate(&in)
			spec := mustBuild(t, in)
			host := spec.Options.HostConfig
			if !reflect.DeepEqual(host.Binds, tt.wantBinds) {
				t.Errorf("Binds = %q, want %q", host.Binds, tt.wantBinds)
			}
			if host.VolumeDriver != tt.wantVolumeDriver {
				t.Errorf("VolumeDriver = %q, want %q", host.VolumeDriver, tt.wantVolumeDriver)
			}
			if len(spec.Warnings) != tt.wantWarnings {
				t.Errorf("Warnings = %q, want %d", spec.Warnings, tt.wantWarnings)
			}
		})
	}
}

func TestBuildContainerSpecParameters(t *testing.T) {
	in := testInput()
	withParameters(&in,
		"cap-add", "NET_ADMIN",
		"--cap-add", "SYS_PTRACE",
		"cap-drop", "MKNOD",
		"user", "nobody",
		"--user", "app:app",
		"workdir", "/srv/app",
		"log-driver", "json-file",
		"log-opt", "max-size=10m",
		"--log-opt", "labels=a=b",
		"add-host", "db.local:10.0.0.5",
		"add-host", "v6.local:::1",
		"dns", "10.0.0.2",
		"dns", "fd00::53",
		"init", "",
		"stop-signal", "SIGINT",
		"memory-swappiness", "0",
		"--privileged", "false",
	)
	spec := mustBuild(t, in)
	config, host := spec.Options.Config, spec.Options.HostConfig
	checks := []struct {
		field     string
		got, want any
	}{
		{"CapAdd", host.CapAdd, []string{"NET_ADMIN", "SYS_PTRACE"}},
		{"CapDrop", host.CapDrop, []string{"MKNOD"}},
		{"User (last wins)", config.User, "app:app"},
		{"WorkingDir", config.WorkingDir, "/srv/app"},
		{"LogConfig", host.LogConfig, docker.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "labels": "a=b"}}},
		{"ExtraHosts", host.ExtraHosts, []string{"db.local:10.0.0.5", "v6.local:::1"}},
		{"DNS", host.DNS, []string{"10.0.0.2", "fd00::53"}},
		{"Init (bare flag)", host.Init, true},
		{"StopSignal", config.StopSignal, "SIGINT"},
		{"Privileged (parameter false)", host.Privileged, false},
		{"MemorySwappiness", host.MemorySwappiness, int64Ptr(0)},
	}
	for _, check := range checks {
		if !reflect.DeepEqual(check.got, check.want) {
			t.Errorf("%s = %#v, want %#v", check.field, check.got, check.want)
		}
	}
	if len(spec.Warnings) != 0 {
		t.Fatalf("Warnings = %q, want none: every parameter is mapped or refused", spec.Warnings)
	}

	for _, value := range []string{"false", "0"} {
		in := testInput()
		withParameters(&in, "init", "true", "init", value)
		if mustBuild(t, in).Options.HostConfig.Init {
			t.Errorf("init=%q after init=true left Init on", value)
		}
	}
}

func TestBuildContainerSpecLabels(t *testing.T) {
	in := testInput()
	withLabels(&in, "ServiceName", "task-name", "team", "payments", "", "ignored")
	withParameters(&in, "label", "ServiceName=web", "label", "HealthCheck=HttpGet", "label", "sidecar-executor.task-id=forged",
		"label", "empty=", "label", "sidecar-executor.agent-id=forged")
	withExecutorEnvironment(&in)
	in.Owner = containerOwner{FrameworkID: "F-agent", ExecutorID: "E1", AgentID: "A1", Instance: "I1"}
	spec := mustBuild(t, in)

	wantLookup := map[string]string{
		"ServiceName": "web",
		"team":        "payments",
		"HealthCheck": "HttpGet",
		taskIDLabel:   "forged",
		agentIDLabel:  "forged",
		"empty":       "",
	}
	if !reflect.DeepEqual(spec.Labels, wantLookup) {
		t.Errorf("lookup Labels = %v, want %v", spec.Labels, wantLookup)
	}
	if value, ok := spec.Label("ServiceName"); !ok || value != "web" {
		t.Errorf(`Label("ServiceName") = %q, %v; want "web", true`, value, ok)
	}
	if value, ok := spec.Label("missing"); ok || value != "" {
		t.Errorf(`Label("missing") = %q, %v; want "", false`, value, ok)
	}
	wantContainer := map[string]string{
		"ServiceName": "web",
		"HealthCheck": "HttpGet",
		"empty":       "",
		// The owner labels come from the executor's environment (the
		// agent's word), never from the TaskInfo (F1 there).
		taskIDLabel:      "web-1",
		frameworkIDLabel: "F-agent",
		executorIDLabel:  "E1",
		agentIDLabel:     "A1",
		instanceLabel:    "I1",
	}
	if got := spec.Options.Config.Labels; !reflect.DeepEqual(got, wantContainer) {
		t.Errorf("Config.Labels = %v, want %v", got, wantContainer)
	}
	if len(spec.Warnings) != 3 || !strings.Contains(spec.Warnings[0], `labels[2] "": label with an empty key ignored`) ||
		!strings.Contains(spec.Warnings[1], "label sidecar-executor.task-id ignored: labels starting with \"sidecar-executor.\" are set by the executor only") ||
		!strings.Contains(spec.Warnings[2], "label sidecar-executor.agent-id ignored") {
		t.Errorf("Warnings = %q, want the empty key and the two forged owner labels", spec.Warnings)
	}

	var nilSpec *containerSpec
	if _, ok := nilSpec.Label("x"); ok {
		t.Error("Label on a nil spec found something")
	}

	// Without an agent ID in the environment there is no agent-id label,
	// and a task cannot supply one.
	in = testInput()
	withParameters(&in, "label", "sidecar-executor.agent-id=forged")
	in.Owner = containerOwner{FrameworkID: "F-agent", ExecutorID: "E1"}
	if got, ok := mustBuild(t, in).Options.Config.Labels[agentIDLabel]; ok {
		t.Errorf("agent-id label = %q without an agent ID", got)
	}
}

func TestBuildContainerSpecResources(t *testing.T) {
	resources := func(cpus, mem float64) []mesos.Resource {
		return []mesos.Resource{scalarResource("cpus", cpus), scalarResource("mem", mem), scalarResource("disk", 100)}
	}
	const mib = 1 << 20
	tests := []struct {
		name                   string
		settings               Config
		resources              []mesos.Resource
		wantShares, wantPeriod int64
		wantQuota, wantMemory  int64
		wantWarnings           int
	}{
		{"no force settings, no limits", Config{}, resources(1.5, 256), 0, 0, 0, 0, 0},
		{"cpu quota", Config{ForceCpuLimit: true}, resources(1.5, 256), 0, 100000, 150000, 0, 0},
		{"cpu quota minimum", Config{ForceCpuLimit: true}, resources(0.001, 256), 0, 100000, 1000, 0, 0},
		{"cpu quota rounds", Config{ForceCpuLimit: true}, resources(0.123456, 256), 0, 100000, 12346, 0, 0},
		{"cpu shares", Config{ForceCpuLimit: true, UseCpuShares: true}, resources(0.5, 256), 512, 0, 0, 0, 0},
		{"cpu shares minimum", Config{ForceCpuLimit: true, UseCpuShares: true}, resources(0, 256), 2, 0, 0, 0, 0},
		{"cpu shares alone do nothing", Config{UseCpuShares: true}, resources(2, 256), 0, 0, 0, 0, 0},
		{"cpus summed across resources", Config{ForceCpuLimit: true, UseCpuShares: true},
			[]mesos.Resource{scalarResource("cpus", 0.25), scalarResource("cpus", 0.75)}, 1024, 0, 0, 0, 0},
		{"memory", Config{ForceMemoryLimit: true}, resources(1, 256), 0, 0, 0, 256 * mib, 0},
		{"fractional memory", Config{ForceMemoryLimit: true}, resources(1, 0.5), 0, 0, 0, mib / 2, 0},
		{"both", Config{ForceCpuLimit: true, ForceMemoryLimit: true}, resources(2, 1024), 0, 100000, 200000, 1024 * mib, 0},
		{"force without resources warns", Config{ForceCpuLimit: true, ForceMemoryLimit: true}, nil, 0, 0, 0, 0, 2},
		{"zero mem warns", Config{ForceMemoryLimit: true}, resources(1, 0), 0, 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			settings := tt.settings
			in.Settings = &settings
			in.Task.Resources = tt.resources
			spec := mustBuild(t, in)
			host := spec.Options.HostConfig
			got := [5]int64{host.CPUShares, host.CPUPeriod, host.CPUQuota, host.Memory, host.MemorySwap}
			want := [5]int64{tt.wantShares, tt.wantPeriod, tt.wantQuota, tt.wantMemory, tt.wantMemory}
			if got != want {
				t.Errorf("[CPUShares CPUPeriod CPUQuota Memory MemorySwap] = %v, want %v", got, want)
			}
			if len(spec.Warnings) != tt.wantWarnings {
				t.Errorf("Warnings = %q, want %d", spec.Warnings, tt.wantWarnings)
			}
		})
	}
}

// TestBuildContainerSpecPrivileged: the mapping carries privileged through
// whatever the settings; admitting it is the policy's job (policy_test.go).
func TestBuildContainerSpecPrivileged(t *testing.T) {
	for _, privileged := range []bool{true, false} {
		in := testInput()
		in.Task.Container.Docker.Privileged = boolPtr(privileged)
		if got := mustBuild(t, in).Options.HostConfig.Privileged; got != privileged {
			t.Errorf("privileged=%v: HostConfig.Privileged = %v", privileged, got)
		}
	}
}

// TestBuildContainerSpecVolumeDriverParameter: `volume-driver` maps to
// HostConfig.VolumeDriver as docker run does (the last one wins) and must
// agree with the driver the TaskInfo names elsewhere.
func TestBuildContainerSpecVolumeDriverParameter(t *testing.T) {
	in := testInput()
	withParameters(&in, "volume-driver", "convoy", "--volume-driver", "rexray")
	if got := mustBuild(t, in).Options.HostConfig.VolumeDriver; got != "rexray" {
		t.Errorf("VolumeDriver = %q, want the last parameter's rexray", got)
	}

	in = testInput()
	withParameters(&in, "volume-driver", "rexray")
	in.Task.Container.Docker.VolumeDriver = stringPtr("rexray")
	if got := mustBuild(t, in).Options.HostConfig.VolumeDriver; got != "rexray" {
		t.Errorf("VolumeDriver = %q with agreeing parameter and volume_driver", got)
	}

	in = testInput()
	withParameters(&in, "volume-driver", "rexray")
	in.Task.Container.Docker.VolumeDriver = stringPtr("convoy")
	if _, err := buildContainerSpec(in); err == nil || !strings.Contains(err.Error(), `container.docker.volume_driver "convoy" differs from driver "rexray"`) ||
		!strings.Contains(err.Error(), "Only one volume driver per task is supported") {
		t.Errorf("conflicting drivers: err = %v", err)
	}

	in = testInput()
	withParameters(&in, "volume-driver", " ")
	if _, err := buildContainerSpec(in); err == nil || !strings.Contains(err.Error(), `"volume-driver": value is empty`) {
		t.Errorf("empty driver: err = %v", err)
	}
}

func TestBuildContainerSpecCommand(t *testing.T) {
	tests := []struct {
		name           string
		mutate         func(in *specInput)
		wantEntrypoint []string
		wantCmd        []string
		wantWarnings   int
	}{
		{"no command runs the image", func(in *specInput) {}, nil, nil, 0},
		{"shell command by default", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Value: stringPtr("exec /app/server --port $PORT0")}
		}, []string{"/bin/sh"}, []string{"-c", "exec /app/server --port $PORT0"}, 0},
		{"shell command ignores arguments", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(true), Value: stringPtr("run"), Arguments: []string{"x"}}
		}, []string{"/bin/sh"}, []string{"-c", "run"}, 1},
		{"plain command keeps the entrypoint", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false), Value: stringPtr("serve"), Arguments: []string{"--port", "8080"}}
		}, nil, []string{"serve", "--port", "8080"}, 0},
		{"plain command without value", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false), Arguments: []string{"--verbose"}}
		}, nil, []string{"--verbose"}, 0},
		{"empty plain command runs the image", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false)}
		}, nil, nil, 0},
		{"ShellCommand label", func(in *specInput) {
			withLabels(in, "executor.ShellCommand", `/app/server --name "my app" --opt='a b'`)
		}, nil, []string{"/app/server", "--name", "my app", "--opt=a b"}, 0},
		{"ShellCommand from a label parameter wins", func(in *specInput) {
			withLabels(in, "executor.ShellCommand", "task")
			withParameters(in, "label", "executor.ShellCommand=param run")
		}, nil, []string{"param", "run"}, 0},
		{"environment-only CommandInfo falls through to the label", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Environment: valueVariables("A", "1")}
			withLabels(in, "executor.ShellCommand", "from label")
		}, nil, []string{"from", "label"}, 0},
		{"CommandInfo wins over the label", func(in *specInput) {
			in.Task.Command = &mesos.CommandInfo{Shell: boolPtr(false), Value: stringPtr("from-command")}
			withLabels(in, "executor.ShellCommand", "from label")
		}, nil, []string{"from-command"}, 0},
		{"empty ShellCommand runs the image", func(in *specInput) {
			withLabels(in, "executor.ShellCommand", "  ")
		}, nil, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.mutate(&in)
			spec := mustBuild(t, in)
			config := spec.Options.Config
			if !reflect.DeepEqual(config.Entrypoint, tt.wantEntrypoint) {
				t.Errorf("Entrypoint = %q, want %q", config.Entrypoint, tt.wantEntrypoint)
			}
			if !reflect.DeepEqual(config.Cmd, tt.wantCmd) {
				t.Errorf("Cmd = %q, want %q", config.Cmd, tt.wantCmd)
			}
			if len(spec.Warnings) != tt.wantWarnings {
				t.Errorf("Warnings = %q, want %d", spec.Warnings, tt.wantWarnings)
			}
		})
	}
}

func TestBuildContainerSpecMisc(t *testing.T) {
	in := testInput()
	in.Settings = nil
	in.Task.Container.Docker.ForcePullImage = boolPtr(true)
	in.Task.TaskID.Value = "web.2024-01-01.abc"
	spec := mustBuild(t, in)
	if !spec.ForcePull {
		t.Error("ForcePull = false with force_pull_image=true")
	}
	if want := containerName("", "web.2024-01-01.abc"); spec.Name != want || spec.Options.Name != want || !strings.HasPrefix(want, "mesos-web_2024-01-01_abc_") {
		t.Errorf("Name = %q, Options.Name = %q; want %q", spec.Name, spec.Options.Name, want)
	}
	if got := spec.Options.Config.Labels[taskIDLabel]; got != "web.2024-01-01.abc" {
		t.Errorf("task-id label = %q, want the unsanitised task ID", got)
	}
}

func FuzzBuildContainerSpec(f *testing.F) {
	seeds := []func(in *specInput){
		func(in *specInput) {},
		func(in *specInput) {
			withPortMappings(in, portMapping(31000, 8080, "tcp,udp"))
			in.Task.Resources = []mesos.Resource{portsResource(mesos.Value_Range{Begin: 31000, End: 31010}), scalarResource("cpus", 1), scalarResource("mem", 128)}
			withLabels(in, "ServiceName", "web", "executor.ShellCommand", `run "a b"`)
			withParameters(in, "env", "A=1", "label", "k=v", "log-opt", "max-size=1m", "init", "true")
			withExecutorEnvironment(in, "TASK_HOST", "h", "VAULT_TOKEN", "t")
			withVolume(in, hostVolume("data", "/data", mesos.RO))
			withVolume(in, dockerVolume("vol", "local", "cache", mesos.RW))
		},
		func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
			in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("backend")}}
			in.Task.Container.Hostname = stringPtr("api")
			in.Task.Command = &mesos.CommandInfo{Value: stringPtr("echo hi"), Environment: valueVariables("B", "2")}
		},
		func(in *specInput) {
			withNetwork(in, mesos.ContainerInfo_DockerInfo_BRIDGE)
			in.Task.Resources = []mesos.Resource{scalarResource("cpus", 1), scalarResource("mem", 128)}
			in.Task.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: 2}, "mem": {Value: math.Inf(1)}}
			withParameters(in, "ulimit", "nofile=1024:2048", "shm-size", "128m", "memory-reservation", "64m", "tmpfs", "/run:size=1m",
				"sysctl", "net.ipv4.tcp_syncookies=1", "pids-limit", "100", "oom-score-adj", "-5", "read-only", "true", "hostname", "h",
				"entrypoint", "/bin/sh", "group-add", "audio", "dns-search", "example.com", "dns-opt", "ndots:2", "mac-address", "92:d0:c6:0a:29:33",
				"stop-timeout", "5", "security-opt", "no-new-privileges", "device", "/dev/fuse", "ipc", "host", "pid", "container:x",
				"privileged", "true", "runtime", "runsc", "cgroup-parent", "/x", "health-cmd", "true", "expose", "80")
		},
	}
	for _, mutate := range seeds {
		in := testInput()
		mutate(&in)
		if _, err := buildContainerSpec(in); err != nil {
			f.Fatalf("seed task is refused: %v", err)
		}
		data, err := proto.Marshal(in.Task)
		if err != nil {
			f.Fatalf("marshal seed: %v", err)
		}
		f.Add(data, uint8(0xff))
	}
	f.Fuzz(func(t *testing.T, data []byte, settingBits uint8) {
		task := &mesos.TaskInfo{}
		// A message missing required fields still decodes the rest, and the
		// mapping must cope with whatever arrives: keep going on error.
		_ = proto.Unmarshal(data, task)
		settings := &Config{
			ForceCpuLimit:     settingBits&1 != 0,
			ForceMemoryLimit:  settingBits&2 != 0,
			UseCpuShares:      settingBits&4 != 0,
			AdmissionSettings: AdmissionSettings{AllowPrivileged: settingBits&8 != 0},
		}
		in := specInput{Task: task, HostSandbox: testHostSandbox, AgentHostname: testAgentHost, Settings: settings}
		if settingBits&16 != 0 {
			in.HostSandbox = ""
		}
		spec, err := buildContainerSpec(in)
		if err != nil {
			if spec != nil {
				t.Fatalf("spec %+v returned with error %v", spec, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid TaskInfo: ") {
				t.Fatalf("error %q does not say the TaskInfo is invalid", err)
			}
			return
		}
		options := spec.Options
		if options.Config == nil || options.HostConfig == nil {
			t.Fatal("spec without Config or HostConfig")
		}
		if spec.Name != options.Name || len(spec.Name) > maxContainerNameLength || !dockerNamePattern.MatchString(spec.Name) {
			t.Fatalf("container name %q (options %q) is not a valid Docker name of at most %d characters", spec.Name, options.Name, maxContainerNameLength)
		}
		if options.Config.Image != task.GetContainer().GetDocker().GetImage() {
			t.Fatalf("Config.Image %q is not the task's image", options.Config.Image)
		}
		if !slices.Contains(options.Config.Env, "MESOS_SANDBOX=/mnt/mesos/sandbox") {
			t.Fatalf("Env %q lacks MESOS_SANDBOX", options.Config.Env)
		}
		size := 0
		for _, entry := range options.Config.Env {
			name, _, ok := strings.Cut(entry, "=")
			if !ok || name == "" || strings.ContainsRune(entry, 0) {
				t.Fatalf("invalid Env entry %q", entry)
			}
			size += len(entry) + 1
		}
		if size > maxEnvironmentBytes {
			t.Fatalf("Env is %d bytes", size)
		}
		if options.Config.Labels[taskIDLabel] != task.TaskID.Value {
			t.Fatalf("task-id label %q, task ID %q", options.Config.Labels[taskIDLabel], task.TaskID.Value)
		}
		wantPrivileged := task.GetContainer().GetDocker().GetPrivileged()
		for _, parameter := range task.GetContainer().GetDocker().GetParameters() {
			if strings.TrimLeft(parameter.Key, "-") == "privileged" {
				parsed, err := strconv.ParseBool(parameter.Value)
				wantPrivileged = parameter.Value == "" || (err == nil && parsed)
			}
		}
		if options.HostConfig.Privileged != wantPrivileged {
			t.Fatalf("HostConfig.Privileged %v, want %v from DockerInfo.privileged and the privileged parameter", options.HostConfig.Privileged, wantPrivileged)
		}
		if admit(admissionInput{Options: options, Task: task, HostSandbox: in.HostSandbox}) == nil {
			checkBaselineAdmitted(t, options)
		}
		if options.HostConfig.Privileged && admit(admissionInput{Options: options, Task: task, HostSandbox: in.HostSandbox}) == nil {
			t.Fatal("the default admission policy admitted a privileged container")
		}
		if options.HostConfig.RestartPolicy.Name != "no" || options.HostConfig.AutoRemove {
			t.Fatalf("RestartPolicy %+v, AutoRemove %v", options.HostConfig.RestartPolicy, options.HostConfig.AutoRemove)
		}
		for _, bind := range options.HostConfig.Binds {
			if parts := strings.Split(bind, ":"); len(parts) != 3 || (parts[2] != "rw" && parts[2] != "ro") || !strings.HasPrefix(parts[1], "/") {
				t.Fatalf("malformed bind %q", bind)
			}
		}
	})
}

// checkBaselineAdmitted is the fuzz oracle for the default admission
// policy: whatever it admits asks for nothing beyond the baseline.
func checkBaselineAdmitted(t *testing.T, options docker.CreateContainerOptions) {
	t.Helper()
	h := options.HostConfig
	for _, mode := range []string{h.PidMode, h.IpcMode, h.UTSMode, h.UsernsMode, h.CgroupnsMode, h.NetworkMode} {
		if strings.HasPrefix(mode, "container:") {
			t.Fatalf("admitted another container's namespace: %+v", h)
		}
	}
	for _, mode := range []string{h.PidMode, h.IpcMode, h.UTSMode, h.UsernsMode, h.CgroupnsMode} {
		if mode == "host" {
			t.Fatalf("admitted a host namespace: %+v", h)
		}
	}
	if h.Privileged || len(h.Devices) > 0 || h.CgroupParent != "" || (h.Runtime != "" && h.Runtime != "runc") || h.OomScoreAdj < 0 ||
		(h.OOMKillDisable != nil && *h.OOMKillDisable) {
		t.Fatalf("admitted beyond the baseline: %+v", h)
	}
	for name := range h.Sysctls {
		if !slices.Contains(safeSysctls, name) {
			t.Fatalf("admitted sysctl %s", name)
		}
	}
	for _, option := range h.SecurityOpt {
		if strings.Contains(option, "unconfined") || strings.Contains(option, "disable") || strings.HasPrefix(option, "seccomp={") {
			t.Fatalf("admitted security option %q", option)
		}
	}
	if h.RestartPolicy.Name != "no" {
		t.Fatalf("restart policy %+v", h.RestartPolicy)
	}
}
