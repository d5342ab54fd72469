package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// minimalTask is the smallest task file mesos-local accepts; bad documents
// in the tests below are variations of it.
const minimalTask = `{"container": {"type": "DOCKER", "docker": {"image": "sidecar-executor/busybox:1.35"}}}`

func TestParseTaskFileRejectsBadDocuments(t *testing.T) {
	cases := []struct {
		name, doc string
		want      string // the whole message after "file.json: "
	}{
		{"empty", "  \n", "the file is empty; it should hold one TaskInfo as a JSON object"},
		{"not JSON", "name: web\n", "not valid JSON: invalid character 'a' in literal null (expecting 'u') at line 1, column 2"},
		{"syntax error on a later line", "{\n  \"name\": \"web\",\n}", "not valid JSON: invalid character '}' looking for beginning of object key string at line 3, column 1"},
		{"unclosed", `{"name": "web"`, "not valid JSON: the document ends too early (an unclosed object, array or string)"},
		{"trailing data", minimalTask + "\n{}", "not valid JSON: more data after the TaskInfo object at line 2, column 1"},
		{"an array", `[` + minimalTask + `]`, "the file holds a JSON array, not a TaskInfo object"},
		{"a string", `"web"`, `the file holds the string "web", not a TaskInfo object`},
		{"wrong type: string", `{"name": 5}`, "name: expected a string, found the number 5"},
		{"wrong type: nested number", `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [{"host_port": "80", "container_port": 80}]}}}`,
			`container.docker.port_mappings[0].host_port: expected a number, found the string "80"`},
		{"negative port", `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [{"host_port": -1, "container_port": 80}]}}}`,
			"container.docker.port_mappings[0].host_port: -1 is not a whole number from 0 to 4294967295"},
		{"fractional port", `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE", "port_mappings": [{"host_port": 0, "container_port": 80.5}]}}}`,
			"container.docker.port_mappings[0].container_port: 80.5 is not a whole number from 0 to 4294967295"},
		{"wrong type: object", `{"container": "DOCKER"}`, `container: expected a JSON object, found the string "DOCKER"`},
		{"wrong type: array", `{"resources": {"name": "cpus"}}`, "resources: expected a JSON array, found a JSON object"},
		{"wrong type: bool", `{"container": {"type": "DOCKER", "docker": {"image": "i", "privileged": "yes"}}}`,
			`container.docker.privileged: expected true or false, found the string "yes"`},
		{"wrong type: scalar", `{"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": "0.5"}}]}`,
			`resources[0].scalar.value: expected a number, found the string "0.5"`},
		{"unknown enum name", `{"container": {"type": "DOKER"}}`, `container.type: "DOKER" is not a known value; one of DOCKER, MESOS`},
		{"unknown nested enum name", `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGED"}}}`,
			`container.docker.network: "BRIDGED" is not a known value; one of HOST, BRIDGE, NONE, USER`},
		{"enum as a number", `{"container": {"type": 1}}`,
			"container.type: expected an enum name as a string (Mesos' JSON does not accept numbers), found the number 1; one of DOCKER, MESOS"},
		{"camelCase field", `{"container": {"type": "DOCKER", "docker": {"image": "i", "portMappings": []}}}`,
			`container.docker.portMappings: unknown field; Mesos' JSON spells it "port_mappings"`},
		{"unknown field", `{"containerInfo": {"type": "DOCKER"}}`, "containerInfo: unknown field (Mesos would ignore it, so it would have no effect)"},
		{"bad base64", `{"data": "not base64!"}`, "data: not valid base64 (standard alphabet, with padding): illegal base64 data at input byte 3"},
		{"label value not a string", `{"labels": {"labels": [{"key": "ServiceName", "value": 7}]}}`, "labels.labels[0].value: expected a string, found the number 7"},
		{"no container", `{"name": "web"}`, `container: missing; this executor runs Docker containers: set container.type to "DOCKER" and container.docker.image`},
		{"null container", `{"container": null}`, `container: missing; this executor runs Docker containers: set container.type to "DOCKER" and container.docker.image`},
		{"no container type", `{"container": {"docker": {"image": "i"}}}`, `container.type: missing; set it to "DOCKER"`},
		{"MESOS container", `{"container": {"type": "MESOS"}}`, "container.type: MESOS; this executor runs DOCKER containers only"},
		{"no docker", `{"container": {"type": "DOCKER"}}`, "container.docker: missing; a DOCKER container needs docker.image"},
		{"no image", `{"container": {"type": "DOCKER", "docker": {}}}`, "container.docker.image: missing or empty; name the image to run, e.g. sidecar-executor/busybox:1.35"},
		{"blank image", `{"container": {"type": "DOCKER", "docker": {"image": " "}}}`, "container.docker.image: missing or empty; name the image to run, e.g. sidecar-executor/busybox:1.35"},
		{"a command", `{"command": {"value": "httpd"}, "container": {"type": "DOCKER", "docker": {"image": "i"}}}`,
			"command: a task run by a custom executor has no command (Mesos requires exactly one of command and executor, and a task with a command runs under Mesos' command executor); put the container's command in the task label executor.ShellCommand, or leave it out to run the image's own command"},
		{"default executor", `{"executor": {"type": "DEFAULT", "executor_id": {"value": "e"}}, "container": {"type": "DOCKER", "docker": {"image": "i"}}}`,
			"executor.type: DEFAULT names Mesos' default executor; this executor is CUSTOM (or leave the type out)"},
		{"port mapping on the default network", `{"container": {"type": "DOCKER", "docker": {"image": "i", "port_mappings": [{"host_port": 0, "container_port": 80}]}}}`,
			"container.docker.port_mappings: port mappings need BRIDGE or USER networking, but container.docker.network is HOST (the default)"},
		{"port mapping with NONE", `{"container": {"type": "DOCKER", "docker": {"image": "i", "network": "NONE", "port_mappings": [{"host_port": 0, "container_port": 80}]}}}`,
			"container.docker.port_mappings: port mappings need BRIDGE or USER networking, but container.docker.network is NONE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTaskFile("tasks/web.json", []byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted %s", tc.doc)
			}
			if got, want := err.Error(), "tasks/web.json: "+tc.want; got != want {
				t.Errorf("error\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestParseTaskFileAcceptsMesosJSON(t *testing.T) {
	doc := `{
		"name": "web",
		"task_id": {"value": "web-1"},
		"agent_id": {"value": "agent-1"},
		"resources": [{"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}}],
		"executor": {"type": "CUSTOM", "executor_id": {"value": "exec-1"}, "framework_id": {"value": "fw-1"},
		             "command": {"value": "/opt/mesos/executor.sh", "environment": {"variables": [{"name": "A", "value": "1"}]}},
		             "shutdown_grace_period": {"nanoseconds": 20000000000}},
		"container": {"type": "DOCKER", "hostname": null,
		              "docker": {"image": "sidecar-executor/busybox:1.35", "network": "BRIDGE", "force_pull_image": false,
		                         "port_mappings": [{"host_port": 31000, "container_port": 80, "protocol": "tcp"}]}},
		"kill_policy": {"grace_period": {"nanoseconds": 3000000000}},
		"data": "aGVsbG8=",
		"labels": {"labels": [{"key": "ServiceName", "value": "web"}]}
	}`
	task, err := parseTaskFile("web.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if task.TaskID.Value != "web-1" || task.AgentID.Value != "agent-1" || task.Name != "web" {
		t.Errorf("IDs: task %q agent %q name %q", task.TaskID.Value, task.AgentID.Value, task.Name)
	}
	if got := task.Container.Docker.GetNetwork(); got != mesos.ContainerInfo_DockerInfo_BRIDGE {
		t.Errorf("network %v", got)
	}
	if got := task.Container.Docker.PortMappings; len(got) != 1 || got[0].HostPort != 31000 || got[0].ContainerPort != 80 {
		t.Errorf("port mappings %v", got)
	}
	if string(task.Data) != "hello" {
		t.Errorf("data %q", task.Data)
	}
	if got := task.Executor.GetShutdownGracePeriod().GetNanoseconds(); got != 20e9 {
		t.Errorf("shutdown grace period %d", got)
	}
	if got := task.GetKillPolicy().GetGracePeriod().GetNanoseconds(); got != 3e9 {
		t.Errorf("kill policy %d", got)
	}
}

// Every example must be a task mesos-local launches as it stands.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d examples, want at least 5: %v", len(files), files)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			task, err := parseTaskFile(file, data)
			if err != nil {
				t.Fatal(err)
			}
			if task.Container.Docker.Image != "sidecar-executor/busybox:1.35" {
				t.Errorf("image %q: the examples use the image make test-image builds", task.Container.Docker.Image)
			}
			if task.TaskID.Value != "" {
				t.Errorf("task_id %q is set: runs would share a container name", task.TaskID.Value)
			}
		})
	}
}

// checkField must know every field type TaskInfo can hold, and agree with
// mesos-go's decoder: a document with a value of the right shape in every
// field (to some depth) passes the check and decodes.
func TestCheckFieldCoversEveryTaskInfoFieldType(t *testing.T) {
	taskType := reflect.TypeOf(mesos.TaskInfo{})
	document := sampleValue(t, taskType, 0)
	data, err := json.Marshal(document)
	if err != nil {
		t.Fatal(err)
	}
	decoded := map[string]any{}
	decoder := json.NewDecoder(strings.NewReader(string(data)))
	decoder.UseNumber()
	if err := decoder.Decode(&decoded); err != nil {
		t.Fatal(err)
	}
	if err := checkField("", decoded, taskType); err != nil {
		t.Fatalf("a well-formed document fails the check: %v", err)
	}
	var task mesos.TaskInfo
	if err := task.UnmarshalJSON(data); err != nil {
		t.Fatalf("mesos-go rejects a document the check accepts: %v", err)
	}
}

// sampleValue builds a JSON value of Go type typ with every field filled,
// down to a depth that keeps the document small (protos nest recursively).
func sampleValue(t *testing.T, typ reflect.Type, depth int) any {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ.Implements(enumInterface):
		names := enumNames(typ)
		if len(names) == 0 {
			t.Fatalf("no names known for enum %s", typ)
		}
		return names[len(names)-1]
	case typ == bytesType:
		return "aGVsbG8="
	}
	switch typ.Kind() {
	case reflect.Struct:
		object := map[string]any{}
		if depth > 5 {
			return object
		}
		for name, fieldType := range jsonFields(typ) {
			object[name] = sampleValue(t, fieldType, depth+1)
		}
		return object
	case reflect.Slice:
		return []any{sampleValue(t, typ.Elem(), depth+1)}
	case reflect.Map:
		return map[string]any{"key": sampleValue(t, typ.Elem(), depth+1)}
	case reflect.String:
		return "text"
	case reflect.Bool:
		return true
	case reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return 7
	case reflect.Float32, reflect.Float64:
		return 0.5
	}
	t.Fatalf("no sample for Go type %s", typ)
	return nil
}
