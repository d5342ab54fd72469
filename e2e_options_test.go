package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

func withDockerParameters(keyValues ...string) taskOption {
	return func(task *mesos.TaskInfo) {
		for i := 0; i+1 < len(keyValues); i += 2 {
			withDockerParameter(keyValues[i], keyValues[i+1])(task)
		}
	}
}

// TestDockerOptionsOnRealDocker launches one task with many docker run
// options and checks each in docker inspect, and some from inside the
// container.
func TestDockerOptionsOnRealDocker(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage,
		withShellCommand(`sh -c 'ulimit -n > $MESOS_SANDBOX/nofile.txt; id -G > $MESOS_SANDBOX/groups.txt; hostname > $MESOS_SANDBOX/hostname.txt; (touch /rootfs-write 2>/dev/null && echo rw || echo ro) > $MESOS_SANDBOX/rootfs.txt; touch /scratch/ok && echo ok > $MESOS_SANDBOX/tmpfs.txt; exec sleep 600'`),
		func(task *mesos.TaskInfo) {
			task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
		},
		withDockerParameters(
			"ulimit", "nofile=1024:2048",
			"--ulimit", "nproc=512",
			"ulimit", "nofile=1536:2048", // same name: the last wins
			"shm-size", "128m",
			"memory", "96m",
			"memory-swap", "192m",
			"memory-reservation", "48m",
			"memory-swappiness", "0",
			"tmpfs", "/scratch:rw,size=1m",
			"sysctl", "net.ipv4.tcp_syncookies=0",
			"pids-limit", "200",
			"oom-score-adj", "321",
			"read-only", "true",
			"hostname", "options-test",
			"entrypoint", "/bin/env",
			"group-add", "4343",
			"group-add", "4242",
			"dns", "10.0.0.53",
			"dns-search", "example.test",
			"dns-option", "ndots:3",
			"dns-opt", "timeout:2",
			"add-host", "db.test:10.1.2.3",
			"mac-address", "02:42:ac:11:99:01",
			"stop-timeout", "7",
			"stop-signal", "SIGUSR1",
			"security-opt", "no-new-privileges",
			"ipc", "shareable",
			"cgroupns", "private",
			"cpus", "0.5",
			"cpuset-cpus", "0",
			"cpu-shares", "256",
			"init", "true",
			"expose", "9090/udp",
			"health-cmd", "true",
			"health-interval", "30s",
			"health-retries", "4",
			"health-timeout", "3s",
			"health-start-period", "1s",
			"label", "tier=backend",
		),
	)
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)
	waitRunning(t, agent, task, 60*time.Second)
	c := inspectTaskContainer(t, task.TaskID.Value)
	if c == nil {
		t.Fatal("no container")
	}
	h, cfg := c.HostConfig, c.Config
	swappiness := int64(0)
	pids := int64(200)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Ulimits", h.Ulimits, []docker.ULimit{{Name: "nofile", Soft: 1536, Hard: 2048}, {Name: "nproc", Soft: 512, Hard: 512}}},
		{"ShmSize", h.ShmSize, int64(128 << 20)},
		{"Memory", h.Memory, int64(96 << 20)},
		{"MemorySwap", h.MemorySwap, int64(192 << 20)},
		{"MemoryReservation", h.MemoryReservation, int64(48 << 20)},
		{"MemorySwappiness", h.MemorySwappiness, &swappiness},
		{"Tmpfs", h.Tmpfs, map[string]string{"/scratch": "rw,size=1m"}},
		{"Sysctls", h.Sysctls, map[string]string{"net.ipv4.tcp_syncookies": "0"}},
		{"PidsLimit", h.PidsLimit, &pids},
		{"OomScoreAdj", h.OomScoreAdj, 321},
		{"ReadonlyRootfs", h.ReadonlyRootfs, true},
		{"Hostname", cfg.Hostname, "options-test"},
		{"Entrypoint", cfg.Entrypoint, []string{"/bin/env"}},
		{"GroupAdd", h.GroupAdd, []string{"4343", "4242"}},
		{"Dns", h.DNS, []string{"10.0.0.53"}},
		{"DnsSearch", h.DNSSearch, []string{"example.test"}},
		{"DnsOptions", h.DNSOptions, []string{"ndots:3", "timeout:2"}},
		{"ExtraHosts", h.ExtraHosts, []string{"db.test:10.1.2.3"}},
		{"MacAddress", c.NetworkSettings.Networks["bridge"].MacAddress, "02:42:ac:11:99:01"},
		{"StopTimeout", cfg.StopTimeout, 7},
		{"StopSignal", cfg.StopSignal, "SIGUSR1"},
		{"SecurityOpt", h.SecurityOpt, []string{"no-new-privileges=true"}},
		{"IpcMode", h.IpcMode, "shareable"},
		{"CgroupnsMode", h.CgroupnsMode, "private"},
		{"NanoCpus", h.NanoCPUs, int64(500000000)},
		{"CpusetCpus", h.CPUSetCPUs, "0"},
		{"CpuShares", h.CPUShares, int64(256)},
		{"Init", h.Init, true},
		{"RestartPolicy", h.RestartPolicy.Name, "no"},
		{"Healthcheck", cfg.Healthcheck, &docker.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: 30 * time.Second, Timeout: 3 * time.Second, StartPeriod: time.Second, Retries: 4}},
		{"label", cfg.Labels["tier"], "backend"},
	}
	for _, check := range checks {
		if !equalJSONish(check.got, check.want) {
			t.Errorf("%s = %#v, want %#v", check.name, check.got, check.want)
		}
	}
	if _, ok := cfg.ExposedPorts["9090/udp"]; !ok {
		t.Errorf("ExposedPorts %v lack 9090/udp", cfg.ExposedPorts)
	}

	readSandbox := func(name string) string {
		data, err := os.ReadFile(filepath.Join(proc.sandbox, name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(data))
	}
	eventually(t, 30*time.Second, "the container to write its findings", func() bool { return readSandbox("tmpfs.txt") == "ok" })
	for name, want := range map[string]string{"nofile.txt": "1536", "hostname.txt": "options-test", "rootfs.txt": "ro"} {
		if got := readSandbox(name); got != want {
			t.Errorf("%s: the container saw %q, want %q", name, got, want)
		}
	}
	if groups := strings.Fields(readSandbox("groups.txt")); !slices.Contains(groups, "4242") {
		t.Errorf("the container's groups %v lack 4242", groups)
	}

	mustKill(t, agent, task.TaskID.Value, &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{}})
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
}

// equalJSONish compares values, treating pointers by what they point to.
func equalJSONish(got, want any) bool {
	switch w := want.(type) {
	case *int64:
		g, ok := got.(*int64)
		return ok && g != nil && *g == *w
	case *docker.HealthConfig:
		g, ok := got.(*docker.HealthConfig)
		return ok && g != nil && slices.Equal(g.Test, w.Test) && g.Interval == w.Interval && g.Timeout == w.Timeout &&
			g.StartPeriod == w.StartPeriod && g.Retries == w.Retries
	case []docker.ULimit:
		g, ok := got.([]docker.ULimit)
		return ok && slices.Equal(g, w)
	case []string:
		g, ok := got.([]string)
		return ok && slices.Equal(g, w)
	case map[string]string:
		g, ok := got.(map[string]string)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if g[k] != v {
				return false
			}
		}
		return true
	default:
		return got == want
	}
}

// TestTaskLimitsOnRealDocker: TaskInfo.limits show in docker inspect as
// Mesos' Docker containerizer would set them.
func TestTaskLimitsOnRealDocker(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	agent, task, _ := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(termRespecting),
		func(task *mesos.TaskInfo) {
			task.Resources = []mesos.Resource{scalarResource("cpus", 0.25), scalarResource("mem", 40)}
			task.Limits = map[string]mesos.Value_Scalar{"cpus": {Value: 0.5}, "mem": {Value: 80}}
		},
	})
	c := inspectTaskContainer(t, task.TaskID.Value)
	if c == nil {
		t.Fatal("no container")
	}
	h := c.HostConfig
	if h.CPUShares != 256 || h.CPUPeriod != 100000 || h.CPUQuota != 50000 {
		t.Errorf("CpuShares %d CpuPeriod %d CpuQuota %d, want 256/100000/50000", h.CPUShares, h.CPUPeriod, h.CPUQuota)
	}
	if h.Memory != 80<<20 || h.MemoryReservation != 40<<20 {
		t.Errorf("Memory %d MemoryReservation %d, want 80 MiB / 40 MiB", h.Memory, h.MemoryReservation)
	}
	total := hostMemoryBytes()
	if want := 1000 - int(float64(40<<20)*1000/float64(total)+0.5); h.OomScoreAdj != want || want <= 0 {
		t.Errorf("OomScoreAdj %d, want %d (host memory %d bytes)", h.OomScoreAdj, want, total)
	}
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
}

// TestBadDockerParametersOnRealDocker: an unknown or malformed parameter,
// or a restart policy, fails the task as invalid before any container.
func TestBadDockerParametersOnRealDocker(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	for _, tc := range []struct {
		name    string
		params  []string
		message []string
	}{
		{"unknown key", []string{"env", "A=1", "no-such-option", "x"}, []string{`container.docker.parameters[1] "no-such-option"`, "unknown docker parameter", `value "x"`}},
		{"restart policy", []string{"restart", "always"}, []string{`parameters[0] "restart"`, "Docker must never restart it"}},
		{"malformed ulimit", []string{"ulimit", "nofile=lots"}, []string{`parameters[0] "ulimit"`, "NAME=SOFT[:HARD]"}},
		{"seccomp profile file", []string{"security-opt", "seccomp=/etc/seccomp.json"}, []string{"reads no host file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := newAgent(t, mesostest.Config{})
			task := newDockerTask(t, agent, testImage, withShellCommand("true"), withDockerParameters(tc.params...))
			mustLaunch(t, agent, task)
			proc := startExecutor(t, agent)
			final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED)
			if final.GetReason() != mesos.REASON_TASK_INVALID {
				t.Errorf("reason %s, want REASON_TASK_INVALID", final.GetReason())
			}
			for _, fragment := range tc.message {
				if !strings.Contains(final.GetMessage(), fragment) {
					t.Errorf("message %q does not mention %q", final.GetMessage(), fragment)
				}
			}
			if code := proc.waitExit(t, 20*time.Second); code == 0 {
				t.Errorf("executor exited 0 after refusing the task")
			}
			assertNoTaskContainer(t, task.TaskID.Value)
		})
	}
}

// TestOptionPolicyOnRealDocker: options beyond the baseline are refused
// with the setting that admits them, and with that setting the executor
// asks Docker for them. The engine here may not start every one of them
// (a host device, another runtime), so the request is read from the
// executor's debug log of the create call.
func TestOptionPolicyOnRealDocker(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	cases := []struct {
		name    string
		params  []string
		refusal []string
		setting []string
		check   func(docker.HostConfig) bool
	}{
		{"device", []string{"device", "/dev/null:/dev/extra-null:rw"},
			[]string{"parameter device=/dev/null:/dev/extra-null", "EXECUTOR_ALLOWED_DEVICES=/dev/null"},
			[]string{"EXECUTOR_ALLOWED_DEVICES=/dev/null"},
			func(h docker.HostConfig) bool {
				return len(h.Devices) == 1 && h.Devices[0] == docker.Device{PathOnHost: "/dev/null", PathInContainer: "/dev/extra-null", CgroupPermissions: "rw"}
			}},
		{"host IPC and PID namespaces", []string{"ipc", "host", "pid", "host"},
			[]string{"parameter pid=host", "parameter ipc=host", "EXECUTOR_ALLOWED_HOST_NAMESPACES=pid", "EXECUTOR_ALLOWED_HOST_NAMESPACES=ipc"},
			[]string{"EXECUTOR_ALLOWED_HOST_NAMESPACES=pid,ipc"},
			func(h docker.HostConfig) bool { return h.IpcMode == "host" && h.PidMode == "host" }},
		{"unsafe sysctl", []string{"sysctl", "kernel.msgmax=65536"},
			[]string{"parameter sysctl=kernel.msgmax=65536", "EXECUTOR_ALLOWED_SYSCTLS=kernel.msgmax"},
			[]string{"EXECUTOR_ALLOWED_SYSCTLS=kernel.msg*"},
			func(h docker.HostConfig) bool { return h.Sysctls["kernel.msgmax"] == "65536" }},
		{"negative oom-score-adj", []string{"oom-score-adj", "-100"},
			[]string{"parameter oom-score-adj=-100", "EXECUTOR_ALLOW_OOM_PROTECTION=true"},
			[]string{"EXECUTOR_ALLOW_OOM_PROTECTION=true"},
			func(h docker.HostConfig) bool { return h.OomScoreAdj == -100 }},
		{"another runtime", []string{"runtime", "io.containerd.runc.v2"},
			[]string{"parameter runtime=io.containerd.runc.v2", "EXECUTOR_ALLOWED_RUNTIMES=io.containerd.runc.v2"},
			[]string{"EXECUTOR_ALLOWED_RUNTIMES=io.containerd.runc.v2"},
			func(h docker.HostConfig) bool { return h.Runtime == "io.containerd.runc.v2" }},
	}
	for _, tc := range cases {
		t.Run(tc.name+" refused", func(t *testing.T) {
			t.Parallel()
			agent := newAgent(t, mesostest.Config{})
			task := newDockerTask(t, agent, testImage, withShellCommand("true"), withDockerParameters(tc.params...))
			mustLaunch(t, agent, task)
			startExecutor(t, agent)
			final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED)
			if final.GetReason() != mesos.REASON_TASK_UNAUTHORIZED {
				t.Errorf("reason %s (%q), want REASON_TASK_UNAUTHORIZED", final.GetReason(), final.GetMessage())
			}
			for _, fragment := range tc.refusal {
				if !strings.Contains(final.GetMessage(), fragment) {
					t.Errorf("message %q does not mention %q", final.GetMessage(), fragment)
				}
			}
			assertNoTaskContainer(t, task.TaskID.Value)
		})
		t.Run(tc.name+" admitted", func(t *testing.T) {
			t.Parallel()
			agent, task, proc := startTask(t, mesostest.Config{}, testImage,
				[]taskOption{withShellCommand(termRespecting), withDockerParameters(tc.params...)},
				withOperatorFile(t, tc.setting...), "EXECUTOR_DEBUG=true")
			update, err := agent.WaitForUpdate(testContext(t, 60*time.Second), func(u mesostest.Update) bool {
				state := u.Status.GetState()
				return u.Status.TaskID.Value == task.TaskID.Value && (state == mesos.TASK_RUNNING || isTerminal(state))
			})
			if err != nil {
				t.Fatalf("the task neither ran nor ended: %v", err)
			}
			if reason := update.Status.GetReason(); reason == mesos.REASON_TASK_UNAUTHORIZED || reason == mesos.REASON_TASK_INVALID {
				t.Fatalf("refused despite %v: %s %q", tc.setting, reason, update.Status.GetMessage())
			}
			if update.Status.GetState() == mesos.TASK_RUNNING {
				if c := inspectTaskContainer(t, task.TaskID.Value); c == nil || !tc.check(*c.HostConfig) {
					t.Errorf("the running container's HostConfig lacks the option")
				}
				waitForTrap(t, task.TaskID.Value, 30*time.Second)
				mustKill(t, agent, task.TaskID.Value, nil)
				waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
			}
			if hostConfig := containerConfigLogged(t, proc); !tc.check(hostConfig) {
				t.Errorf("the executor asked Docker for %+v", hostConfig)
			}
		})
	}
}
