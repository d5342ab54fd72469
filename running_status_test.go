package main

// Unit tests of what TASK_RUNNING carries (running_status.go).

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

type ipOf struct {
	network, ip string
	protocol    mesos.NetworkInfo_Protocol
}

func flattenNetworkInfos(status *mesos.ContainerStatus) []ipOf {
	var got []ipOf
	for _, info := range status.GetNetworkInfos() {
		for _, ip := range info.IPAddresses {
			got = append(got, ipOf{info.GetName(), ip.GetIPAddress(), ip.GetProtocol()})
		}
	}
	return got
}

func TestContainerStatusOneNetworkInfoPerNetwork(t *testing.T) {
	c := &docker.Container{NetworkSettings: &docker.NetworkSettings{
		IPAddress: "172.17.0.5",
		Networks: map[string]docker.ContainerNetwork{
			"bridge":  {IPAddress: "172.17.0.5"},
			"backend": {IPAddress: "10.9.0.2", GlobalIPv6Address: "2001:db8::2"},
			"v6only":  {GlobalIPv6Address: "2001:db8:1::7"},
		},
	}}
	status := containerStatusFor(c)
	if n := len(status.GetNetworkInfos()); n != 3 {
		t.Fatalf("%d network infos, want one per network: %v", n, status)
	}
	want := []ipOf{
		{"backend", "10.9.0.2", mesos.IPv4}, {"backend", "2001:db8::2", mesos.IPv6},
		{"bridge", "172.17.0.5", mesos.IPv4},
		{"v6only", "2001:db8:1::7", mesos.IPv6},
	}
	if got := flattenNetworkInfos(status); !slices.Equal(got, want) {
		t.Errorf("network infos %v, want %v", got, want)
	}
}

func TestContainerStatusWithoutAddresses(t *testing.T) {
	host := &docker.Container{NetworkSettings: &docker.NetworkSettings{Networks: map[string]docker.ContainerNetwork{"host": {}}}}
	if status := containerStatusFor(host); status != nil {
		t.Errorf("the host network gave network infos %v; it has no address of the container's own", status)
	}
	if status := containerStatusFor(&docker.Container{}); status != nil {
		t.Errorf("no network settings gave %v", status)
	}
	// A daemon that lists no network but the old top-level address.
	old := &docker.Container{HostConfig: &docker.HostConfig{NetworkMode: "bridge"}, NetworkSettings: &docker.NetworkSettings{IPAddress: "172.17.0.3"}}
	if got := flattenNetworkInfos(containerStatusFor(old)); !slices.Equal(got, []ipOf{{"bridge", "172.17.0.3", mesos.IPv4}}) {
		t.Errorf("top-level address: %v", got)
	}
}

func TestInspectDataIsAnArrayOfTheAnswer(t *testing.T) {
	object := []byte(`{"Id":"abc","Unknown":{"x":[1,2]}}` + "\n")
	data := inspectData(object, maxRunningData)
	if string(data) != `[{"Id":"abc","Unknown":{"x":[1,2]}}]` {
		t.Errorf("data %q", data)
	}
	if data := inspectData(object, len(object)); data != nil {
		t.Errorf("data over the limit was kept: %q", data)
	}
	for _, bad := range []string{"", "[]", `{"Id":`, "null"} {
		if data := inspectData([]byte(bad), maxRunningData); data != nil {
			t.Errorf("%q gave data %q", bad, data)
		}
	}
}

func TestRedactRunningData(t *testing.T) {
	raw := []byte(`[{"Id":"abc","Config":{"Hostname":"h","Env":["PATH=/bin","DB_PASSWORD=hunter2","FROM_VAULT=s3cret","PLAIN=x"],"Labels":{"a":"b"}},"Zeta":1}]`)
	c := &docker.Container{Config: &docker.Config{Env: []string{"PATH=/bin", "DB_PASSWORD=hunter2", "FROM_VAULT=s3cret", "PLAIN=x"}}}
	got, err := redactRunningData(raw, c, []string{"FROM_VAULT"})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(string(got), secret) {
			t.Errorf("data still holds %q: %s", secret, got)
		}
	}
	var decoded []struct {
		ID     string `json:"Id"`
		Config struct {
			Hostname string
			Env      []string
			Labels   map[string]string
		}
		Zeta int
	}
	if err := json.Unmarshal(got, &decoded); err != nil || len(decoded) != 1 {
		t.Fatalf("rewritten data %s: %v", got, err)
	}
	d := decoded[0]
	if d.ID != "abc" || d.Config.Hostname != "h" || d.Config.Labels["a"] != "b" || d.Zeta != 1 {
		t.Errorf("other fields changed: %s", got)
	}
	if d.Config.Env[0] != "PATH=/bin" || d.Config.Env[3] != "PLAIN=x" || !strings.HasPrefix(d.Config.Env[1], "DB_PASSWORD=") {
		t.Errorf("env %q", d.Config.Env)
	}
	// The member order is Docker's, not re-sorted.
	if strings.Index(string(got), `"Zeta"`) < strings.Index(string(got), `"Config"`) {
		t.Errorf("members reordered: %s", got)
	}

	// Nothing secret: the bytes are Docker's, untouched.
	plain := &docker.Container{Config: &docker.Config{Env: []string{"PATH=/bin"}}}
	raw2 := []byte(`[{"Config":{"Env":["PATH=/bin"]},  "Id":"abc"}]`)
	if got, err := redactRunningData(raw2, plain, nil); err != nil || string(got) != string(raw2) {
		t.Errorf("data without secrets changed: %s, %v", got, err)
	}
	// An answer whose environment is not the decoded one is dropped.
	if got, err := redactRunningData([]byte(`[{"Config":{"Env":["OTHER=1","X=2"]}}]`), c, []string{"FROM_VAULT"}); err == nil {
		t.Errorf("mismatched environment rewritten: %s", got)
	}
}

func TestCapturingTransportKeepsTheRawAnswer(t *testing.T) {
	// What go-dockerclient's decoder reads is captured for the one call
	// that asks, and other calls are left alone.
	answer := `{"Id":"0123456789ab","FieldTheClientDoesNotKnow":{"kept":true},"Config":{"Env":["A=1"]}}` + "\n"
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer) //nolint:errcheck
	}))
	defer server.Close()
	client, err := docker.NewClient(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	client.SkipServerVersionCheck = true
	captureRawBodies(client)
	runtime := &dockerRuntime{short: client, long: client, endpoint: server.URL}
	container, data, err := runtime.inspectStarted(context.Background(), "0123456789ab")
	if err != nil {
		t.Fatal(err)
	}
	if container.ID != "0123456789ab" {
		t.Errorf("decoded ID %q", container.ID)
	}
	if want := "[" + strings.TrimSpace(answer) + "]"; string(data) != want {
		t.Errorf("data %s, want %s", data, want)
	}
	if _, err := runtime.inspectContainer(context.Background(), "0123456789ab"); err != nil {
		t.Errorf("an inspect without a sink: %v", err)
	}
}

func TestTaskUnitRunningCarriesTheInspectAnswer(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	var running mesos.TaskStatus
	for _, s := range u.statuses.all() {
		if s.status.GetState() == mesos.TASK_RUNNING {
			running = s.status
		}
	}
	var data []map[string]any
	if err := json.Unmarshal(running.GetData(), &data); err != nil || len(data) != 1 {
		t.Fatalf("TASK_RUNNING data %q is not an array of one object: %v", running.GetData(), err)
	}
	if data[0]["Id"] != c.id {
		t.Errorf("data[0].Id = %v, want the container's ID %s", data[0]["Id"], c.id)
	}
	if len(engine.callsOf("inspectStarted")) != 1 {
		t.Errorf("calls %v: want one inspect of the started container", engine.methods())
	}
	engine.exit(c.id, 0)
	u.finish(t)
}

func TestTaskUnitHealthUpdatesResendNetworkInfosButNotData(t *testing.T) {
	engine := newUnitRuntime()
	u, sidecar := startSidecarUnitTask(t, engine, bridgeTaskInfo(), nil)
	c := engine.running(t)
	sidecar.Script("agent-host", shortID(c.id), sidecartest.StatusAlive)
	var running, health *mesos.TaskStatus
	eventually(t, 5*time.Second, "a health update", func() bool {
		for _, s := range u.statuses.all() {
			switch {
			case s.status.GetState() == mesos.TASK_RUNNING && s.status.Healthy == nil:
				running = &s.status
			case s.status.GetState() == mesos.TASK_RUNNING && s.status.Healthy != nil:
				health = &s.status
			}
		}
		return running != nil && health != nil
	})
	if len(running.GetData()) == 0 {
		t.Error("TASK_RUNNING carries no data")
	}
	if len(health.GetData()) != 0 {
		t.Errorf("the health update carries data: %.100q", health.GetData())
	}
	if got, want := flattenNetworkInfos(health.GetContainerStatus()), flattenNetworkInfos(running.GetContainerStatus()); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("health update network infos %v, want TASK_RUNNING's %v", got, want)
	}
	engine.exit(c.id, 0)
	u.finish(t)
}
