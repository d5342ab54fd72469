package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestClassifyExit(t *testing.T) {
	kill := &stopRequest{cause: causeKill, message: "killed by the scheduler"}
	unhealthy := &stopRequest{cause: causeUnhealthy, message: "Sidecar reported the container unhealthy 3 times in a row"}
	lost := &stopRequest{cause: causeAgentLost, message: "lost the agent"}
	cases := []struct {
		name        string
		state       docker.State
		stop        *stopRequest
		memoryLimit int64
		wantState   mesos.TaskState
		wantReason  *mesos.TaskStatus_Reason
		wantMessage string
		wantHealthy *bool
	}{
		{name: "exit 0", state: docker.State{ExitCode: 0}, wantState: mesos.TASK_FINISHED, wantMessage: "container exited with status 0"},
		{name: "exit 3", state: docker.State{ExitCode: 3}, wantState: mesos.TASK_FAILED, wantMessage: "container exited with status 3"},
		{name: "segfault is a failure, not a kill", state: docker.State{ExitCode: 139}, wantState: mesos.TASK_FAILED, wantMessage: "exited with status 139 (SIGSEGV)"},
		{name: "start error", state: docker.State{ExitCode: 127, Error: "exec: \"nope\": executable file not found"}, wantState: mesos.TASK_FAILED, wantMessage: "executable file not found"},
		{name: "oom", state: docker.State{ExitCode: 137, OOMKilled: true}, memoryLimit: 8 << 20, wantState: mesos.TASK_FAILED,
			wantReason: mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum(), wantMessage: "OOM killer (memory limit 8 MiB)"},
		{name: "killed after SIGTERM", state: docker.State{ExitCode: 143}, stop: kill, wantState: mesos.TASK_KILLED, wantMessage: "exited with status 143 (SIGTERM)"},
		{name: "killed exits 0", state: docker.State{ExitCode: 0}, stop: kill, wantState: mesos.TASK_KILLED, wantMessage: "killed by the scheduler"},
		{name: "killed after SIGKILL", state: docker.State{ExitCode: 137}, stop: kill, wantState: mesos.TASK_KILLED, wantMessage: "(SIGKILL)"},
		{name: "unhealthy", state: docker.State{ExitCode: 143}, stop: unhealthy, wantState: mesos.TASK_FAILED,
			wantReason: mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), wantMessage: "unhealthy 3 times", wantHealthy: new(bool)},
		{name: "Mesos health check", state: docker.State{ExitCode: 143}, stop: &stopRequest{cause: causeHealthCheckFailed, message: "Mesos health check failed 3 times in a row"},
			wantState: mesos.TASK_KILLED, wantMessage: "Mesos health check failed 3 times in a row; container exited with status 143", wantHealthy: new(bool)},
		{name: "agent lost", state: docker.State{ExitCode: 143}, stop: lost, wantState: mesos.TASK_FAILED,
			wantReason: mesos.REASON_AGENT_DISCONNECTED.Enum(), wantMessage: "lost the agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyExit(tc.state, tc.stop, tc.memoryLimit)
			if got.state != tc.wantState {
				t.Errorf("state %s, want %s", got.state, tc.wantState)
			}
			if (got.reason == nil) != (tc.wantReason == nil) || got.reason != nil && *got.reason != *tc.wantReason {
				t.Errorf("reason %v, want %v", got.reason, tc.wantReason)
			}
			if !strings.Contains(got.message, tc.wantMessage) {
				t.Errorf("message %q lacks %q", got.message, tc.wantMessage)
			}
			if (got.healthy == nil) != (tc.wantHealthy == nil) || got.healthy != nil && *got.healthy != *tc.wantHealthy {
				t.Errorf("healthy %v, want %v", got.healthy, tc.wantHealthy)
			}
		})
	}
}

func TestSplitImageReference(t *testing.T) {
	cases := map[string][2]string{
		"busybox":                              {"busybox", "latest"},
		"busybox:1.35":                         {"busybox", "1.35"},
		"registry.local:5000/team/app":         {"registry.local:5000/team/app", "latest"},
		"registry.local:5000/team/app:2.1":     {"registry.local:5000/team/app", "2.1"},
		"127.0.0.1:5000/app@sha256:0123456789": {"127.0.0.1:5000/app@sha256:0123456789", ""},
	}
	for image, want := range cases {
		repo, tag := splitImageReference(image)
		if repo != want[0] || tag != want[1] {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", image, repo, tag, want[0], want[1])
		}
	}
}

func TestGracePrecedence(t *testing.T) {
	settings := &Config{KillTaskTimeout: 5}
	withPolicy := func(d time.Duration) mesos.TaskInfo {
		return mesos.TaskInfo{KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(d)}}}
	}
	cases := []struct {
		name string
		info mesos.TaskInfo
		req  stopRequest
		want time.Duration
	}{
		{"setting", mesos.TaskInfo{}, stopRequest{cause: causeKill, grace: -1}, 5 * time.Second},
		{"task kill policy", withPolicy(9 * time.Second), stopRequest{cause: causeKill, grace: -1}, 9 * time.Second},
		{"KILL kill policy wins", withPolicy(9 * time.Second), stopRequest{cause: causeKill, grace: 2 * time.Second}, 2 * time.Second},
		{"KILL zero grace", withPolicy(9 * time.Second), stopRequest{cause: causeKill, grace: 0}, 0},
		{"shutdown budget caps", withPolicy(30 * time.Second), stopRequest{cause: causeShutdown, grace: 3 * time.Second}, 3 * time.Second},
		{"shutdown budget larger than grace", mesos.TaskInfo{}, stopRequest{cause: causeShutdown, grace: time.Minute}, 5 * time.Second},
		{"unhealthy uses default", withPolicy(7 * time.Second), stopRequest{cause: causeUnhealthy, grace: -1}, 7 * time.Second},
	}
	for _, tc := range cases {
		s := &stopper{task: &taskRunner{info: tc.info, deps: &taskDeps{settings: settings}}}
		if got := s.graceFor(tc.req); got != tc.want {
			t.Errorf("%s: grace %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestShutdownGraceLeavesRoomForTheTerminalUpdate(t *testing.T) {
	for period, want := range map[time.Duration]time.Duration{
		5 * time.Second:  3 * time.Second,
		10 * time.Second: 8 * time.Second,
		2 * time.Second:  time.Second,
		time.Second:      500 * time.Millisecond,
	} {
		if got := shutdownGrace(period); got != want {
			t.Errorf("shutdownGrace(%s) = %s, want %s", period, got, want)
		}
	}
}

func TestLimitedWriterCutsOutput(t *testing.T) {
	var out bytes.Buffer
	w := &limitedWriter{w: &out, remaining: 10}
	for i := 0; i < 3; i++ {
		if n, err := w.Write([]byte("0123456")); err != nil || n != 7 {
			t.Fatalf("write %d: n=%d err=%v", i, n, err)
		}
	}
	if !strings.HasPrefix(out.String(), "0123456012") || !strings.Contains(out.String(), "output cut") {
		t.Fatalf("got %q", out.String())
	}
	if strings.Count(out.String(), "output cut") != 1 {
		t.Fatalf("cut notice repeated: %q", out.String())
	}
}

func TestContainerStatusCarriesIPs(t *testing.T) {
	if containerStatusFor(&docker.Container{NetworkSettings: &docker.NetworkSettings{}}) != nil {
		t.Fatal("a container without IP (host networking) must not report network infos")
	}
	c := &docker.Container{NetworkSettings: &docker.NetworkSettings{
		IPAddress: "172.17.0.5",
		Networks:  map[string]docker.ContainerNetwork{"bridge": {IPAddress: "172.17.0.5"}, "extra": {IPAddress: "10.9.0.2"}},
	}}
	status := containerStatusFor(c)
	ips := status.GetNetworkInfos()[0].IPAddresses
	if len(ips) != 2 || ips[0].GetIPAddress() != "172.17.0.5" || ips[0].GetProtocol() != mesos.IPv4 {
		t.Fatalf("ips %v", ips)
	}
}

func TestDrainBudget(t *testing.T) {
	settings := &Config{KillTaskTimeout: 5, SidecarDrainingDuration: 10 * time.Second}
	watcher := &sidecarWatcher{}
	cases := []struct {
		name    string
		sidecar *sidecarWatcher
		req     stopRequest
		want    time.Duration
	}{
		{"kill drains the full duration", watcher, stopRequest{cause: causeKill, grace: -1}, 10 * time.Second},
		{"kill with its own grace still drains", watcher, stopRequest{cause: causeKill, grace: 2 * time.Second}, 10 * time.Second},
		{"kill with grace 0 does not drain", watcher, stopRequest{cause: causeKill, grace: 0}, 0},
		{"shutdown with no room left does not drain", watcher, stopRequest{cause: causeShutdown, grace: 3 * time.Second, deadline: time.Now().Add(time.Second)}, 0},
		{"signal with time to spare drains in full", watcher, stopRequest{cause: causeSignal, grace: 20 * time.Second, deadline: time.Now().Add(time.Hour)}, 10 * time.Second},
		{"unhealthy containers are not drained", watcher, stopRequest{cause: causeUnhealthy, grace: -1}, 0},
		{"a failed Mesos health check drains", watcher, stopRequest{cause: causeHealthCheckFailed, grace: -1}, 10 * time.Second},
		{"a lost agent does not drain", watcher, stopRequest{cause: causeAgentLost, grace: -1}, 0},
		{"SidecarDiscover=false does not drain", nil, stopRequest{cause: causeKill, grace: -1}, 0},
	}
	for _, tc := range cases {
		s := &stopper{task: &taskRunner{deps: &taskDeps{settings: settings}}, sidecar: tc.sidecar}
		if got := s.drainBudget(tc.req, s.graceFor(tc.req)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
