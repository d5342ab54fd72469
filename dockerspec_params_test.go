package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func int64Ptr(v int64) *int64 { return &v }

// paramsInput is the test input, changed by mutate (when not nil), with
// the Docker parameters params (key, value, ...).
func paramsInput(mutate func(*specInput), params ...string) specInput {
	in := testInput()
	if mutate != nil {
		mutate(&in)
	}
	withParameters(&in, params...)
	return in
}

// TestParameterMapping maps each supported option, repeated where the CLI
// accumulates or keeps the last, and compares the Engine API field.
func TestParameterMapping(t *testing.T) {
	const mib = 1 << 20
	bridge := func(in *specInput) { withNetwork(in, mesos.ContainerInfo_DockerInfo_BRIDGE) }
	userNet := func(in *specInput) {
		withNetwork(in, mesos.ContainerInfo_DockerInfo_USER)
		in.Task.Container.NetworkInfos = []mesos.NetworkInfo{{Name: stringPtr("backend")}}
	}
	type result struct {
		config     *docker.Config
		host       *docker.HostConfig
		networking *docker.NetworkingConfig
	}
	tests := []struct {
		name   string
		params []string
		mutate func(*specInput)
		got    func(r result) any
		want   any
	}{
		{"ulimit accumulates, same name last wins", []string{"ulimit", "nofile=1024:2048", "ulimit", "nproc=-1", "--ulimit", "nofile=4096"}, nil,
			func(r result) any { return r.host.Ulimits },
			[]docker.ULimit{{Name: "nofile", Soft: 4096, Hard: 4096}, {Name: "nproc", Soft: -1, Hard: -1}}},
		{"shm-size binary units", []string{"shm-size", "1g"}, nil, func(r result) any { return r.host.ShmSize }, int64(1 << 30)},
		{"shm-size bytes, last wins", []string{"shm-size", "64m", "shm-size", "1048576"}, nil, func(r result) any { return r.host.ShmSize }, int64(mib)},
		{"memory and memory-swap", []string{"memory", "512m", "memory-swap", "1g"}, nil,
			func(r result) any { return []int64{r.host.Memory, r.host.MemorySwap} }, []int64{512 * mib, 1 << 30}},
		{"memory-swap unlimited", []string{"memory", "512m", "memory-swap", "-1"}, nil, func(r result) any { return r.host.MemorySwap }, int64(-1)},
		{"memory-reservation", []string{"memory-reservation", "256M"}, nil, func(r result) any { return r.host.MemoryReservation }, int64(256 * mib)},
		{"tmpfs, same path last wins", []string{"tmpfs", "/run:rw,noexec,size=65536k", "tmpfs", "/cache", "tmpfs", "/run:size=1m"}, nil,
			func(r result) any { return r.host.Tmpfs }, map[string]string{"/run": "size=1m", "/cache": ""}},
		{"sysctl, same key last wins", []string{"sysctl", "net.ipv4.tcp_syncookies=1", "sysctl", "kernel/shm_rmid_forced=1", "sysctl", "net.ipv4.tcp_syncookies=0"}, nil,
			func(r result) any { return r.host.Sysctls }, map[string]string{"net.ipv4.tcp_syncookies": "0", "kernel.shm_rmid_forced": "1"}},
		{"pids-limit", []string{"pids-limit", "100"}, nil, func(r result) any { return r.host.PidsLimit }, int64Ptr(100)},
		{"pids-limit unlimited", []string{"pids-limit", "-1"}, nil, func(r result) any { return r.host.PidsLimit }, int64Ptr(-1)},
		{"oom-score-adj", []string{"oom-score-adj", "500"}, nil, func(r result) any { return r.host.OomScoreAdj }, 500},
		{"read-only", []string{"read-only", "true"}, nil, func(r result) any { return r.host.ReadonlyRootfs }, true},
		{"read-only bare, then false", []string{"read-only", "", "read-only", "false"}, nil, func(r result) any { return r.host.ReadonlyRootfs }, false},
		{"hostname", []string{"hostname", "web-a", "hostname", "web-b"}, bridge, func(r result) any { return r.config.Hostname }, "web-b"},
		{"hostname parameter wins over container.hostname", []string{"hostname", "from-param"},
			func(in *specInput) { bridge(in); in.Task.Container.Hostname = stringPtr("from-field") },
			func(r result) any { return r.config.Hostname }, "from-param"},
		{"entrypoint", []string{"entrypoint", "/app/run"}, nil, func(r result) any { return r.config.Entrypoint }, []string{"/app/run"}},
		{"empty entrypoint clears the image's", []string{"entrypoint", ""}, nil, func(r result) any { return r.config.Entrypoint }, []string{""}},
		{"entrypoint replaces the shell's /bin/sh", []string{"entrypoint", "/bin/bash"},
			func(in *specInput) { in.Task.Command = &mesos.CommandInfo{Value: stringPtr("echo hi")} },
			func(r result) any { return [][]string{r.config.Entrypoint, r.config.Cmd} }, [][]string{{"/bin/bash"}, {"-c", "echo hi"}}},
		{"group-add accumulates", []string{"group-add", "audio", "group-add", "1001"}, nil, func(r result) any { return r.host.GroupAdd }, []string{"audio", "1001"}},
		{"dns-search", []string{"dns-search", "example.com", "dns-search", "svc.local"}, nil, func(r result) any { return r.host.DNSSearch }, []string{"example.com", "svc.local"}},
		{"dns-option and its alias dns-opt", []string{"dns-option", "ndots:2", "dns-opt", "timeout:1"}, nil, func(r result) any { return r.host.DNSOptions }, []string{"ndots:2", "timeout:1"}},
		{"network-alias on a user network", []string{"network-alias", "api", "network-alias", "web"}, userNet,
			func(r result) any { return r.networking.EndpointsConfig["backend"].Aliases }, []string{"api", "web"}},
		{"mac-address on bridge", []string{"mac-address", "92:D0:C6:0A:29:33"}, bridge, func(r result) any { return r.config.MacAddress }, "92:d0:c6:0a:29:33"},
		{"mac-address on a user network", []string{"mac-address", "92:d0:c6:0a:29:33"}, userNet,
			func(r result) any {
				return []string{r.config.MacAddress, r.networking.EndpointsConfig["backend"].MacAddress}
			}, []string{"92:d0:c6:0a:29:33", "92:d0:c6:0a:29:33"}},
		{"stop-timeout", []string{"stop-timeout", "30"}, nil, func(r result) any { return r.config.StopTimeout }, 30},
		{"volume-driver last wins", []string{"volume-driver", "a", "volume-driver", "b"}, nil, func(r result) any { return r.host.VolumeDriver }, "b"},
		{"security-opt accumulates; bare no-new-privileges", []string{"security-opt", "no-new-privileges", "security-opt", "label=level:s0:c100,c200", "security-opt", "apparmor:docker-default"}, nil,
			func(r result) any { return r.host.SecurityOpt }, []string{"no-new-privileges=true", "label=level:s0:c100,c200", "apparmor:docker-default"}},
		{"security-opt inline seccomp JSON", []string{"security-opt", `seccomp={"defaultAction":"SCMP_ACT_ERRNO"}`}, nil,
			func(r result) any { return r.host.SecurityOpt }, []string{`seccomp={"defaultAction":"SCMP_ACT_ERRNO"}`}},
		{"device forms", []string{"device", "/dev/fuse", "device", "/dev/sda:/dev/xvda:r", "device", "/dev/snd:rw"}, nil,
			func(r result) any { return r.host.Devices }, []docker.Device{
				{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
				{PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "r"},
				{PathOnHost: "/dev/snd", PathInContainer: "/dev/snd", CgroupPermissions: "rw"}}},
		{"namespaces", []string{"ipc", "shareable", "pid", "host", "uts", "host", "userns", "host", "cgroupns", "private"}, nil,
			func(r result) any {
				return []string{r.host.IpcMode, r.host.PidMode, r.host.UTSMode, r.host.UsernsMode, r.host.CgroupnsMode}
			}, []string{"shareable", "host", "host", "host", "private"}},
		{"ipc of another container", []string{"ipc", "container:db"}, nil, func(r result) any { return r.host.IpcMode }, "container:db"},
		{"add-host both syntaxes", []string{"add-host", "db:10.0.0.5", "add-host", "gw=host-gateway", "add-host", "v6:[fd00::1]"}, nil,
			func(r result) any { return r.host.ExtraHosts }, []string{"db:10.0.0.5", "gw:host-gateway", "v6:fd00::1"}},
		{"cpus", []string{"cpus", "1.5"}, nil, func(r result) any { return r.host.NanoCPUs }, int64(1500000000)},
		{"cpus exact to the nano-CPU", []string{"cpus", "0.000000001"}, nil, func(r result) any { return r.host.NanoCPUs }, int64(1)},
		{"cpuset", []string{"cpuset-cpus", "0-3,5", "cpuset-mems", "0"}, nil,
			func(r result) any { return []string{r.host.CPUSetCPUs, r.host.CPUSetMEMs} }, []string{"0-3,5", "0"}},
		{"cpu-shares, quota, period", []string{"cpu-shares", "512", "cpu-quota", "50000", "cpu-period", "100000"}, nil,
			func(r result) any { return []int64{r.host.CPUShares, r.host.CPUQuota, r.host.CPUPeriod} }, []int64{512, 50000, 100000}},
		{"memory-swappiness", []string{"memory-swappiness", "10"}, nil, func(r result) any { return r.host.MemorySwappiness }, int64Ptr(10)},
		{"memory-swappiness -1 is the host's", []string{"memory-swappiness", "10", "memory-swappiness", "-1"}, nil,
			func(r result) any { return r.host.MemorySwappiness }, (*int64)(nil)},
		{"oom-kill-disable", []string{"oom-kill-disable", "true"}, nil, func(r result) any { return r.host.OOMKillDisable }, boolPtr(true)},
		{"blkio-weight", []string{"blkio-weight", "300"}, nil, func(r result) any { return r.host.BlkioWeight }, int64(300)},
		{"runtime", []string{"runtime", "runsc"}, nil, func(r result) any { return r.host.Runtime }, "runsc"},
		{"storage-opt", []string{"storage-opt", "size=10G"}, nil, func(r result) any { return r.host.StorageOpt }, map[string]string{"size": "10G"}},
		{"cgroup-parent", []string{"cgroup-parent", "/tenants/a"}, nil, func(r result) any { return r.host.CgroupParent }, "/tenants/a"},
		{"init", []string{"init", "true"}, nil, func(r result) any { return r.host.Init }, true},
		{"privileged parameter", []string{"privileged", "true"}, nil, func(r result) any { return r.host.Privileged }, true},
		{"privileged parameter false wins over DockerInfo", []string{"privileged", "false"},
			func(in *specInput) { in.Task.Container.Docker.Privileged = boolPtr(true) }, func(r result) any { return r.host.Privileged }, false},
		{"restart no", []string{"restart", "no"}, nil, func(r result) any { return r.host.RestartPolicy }, docker.NeverRestart()},
		{"expose, with a range", []string{"expose", "8080", "expose", "53/udp", "expose", "9000-9001/tcp"}, nil,
			func(r result) any { return r.config.ExposedPorts },
			map[docker.Port]struct{}{"8080/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}}},
		{"expose adds to port mappings", []string{"expose", "9090"},
			func(in *specInput) { bridge(in); withPortMappings(in, portMapping(31000, 8080, "")) },
			func(r result) any { return r.config.ExposedPorts }, map[docker.Port]struct{}{"8080/tcp": {}, "9090/tcp": {}}},
		{"health check overrides", []string{"health-cmd", "wget -q -O- localhost:8080/health", "health-interval", "10s", "health-timeout", "2s",
			"health-retries", "5", "health-start-period", "1m", "health-start-interval", "500ms"}, nil,
			func(r result) any { return r.config.Healthcheck }, &docker.HealthConfig{Test: []string{"CMD-SHELL", "wget -q -O- localhost:8080/health"},
				Interval: 10 * time.Second, Timeout: 2 * time.Second, Retries: 5, StartPeriod: time.Minute, StartInterval: 500 * time.Millisecond}},
		{"no-healthcheck", []string{"no-healthcheck", "true"}, nil, func(r result) any { return r.config.Healthcheck }, &docker.HealthConfig{Test: []string{"NONE"}}},
		{"network parameter names a user network", []string{"network", "backend", "network-alias", "api"}, bridge,
			func(r result) any { return []any{r.host.NetworkMode, r.networking.EndpointsConfig["backend"].Aliases} }, []any{"backend", []string{"api"}}},
		{"net alias replaces the network with none", []string{"net", "none"}, bridge,
			func(r result) any { return []any{r.host.NetworkMode, r.networking} }, []any{"none", (*docker.NetworkingConfig)(nil)}},
		{"label key alone is an empty label", []string{"label", "canary"}, nil, func(r result) any { return r.config.Labels["canary"] }, ""},
		{"log-driver and log-opt", []string{"log-driver", "json-file", "log-opt", "max-size=10m"}, nil,
			func(r result) any { return r.host.LogConfig }, docker.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := paramsInput(tt.mutate, tt.params...)
			spec := mustBuild(t, in)
			if len(spec.Warnings) != 0 {
				t.Errorf("warnings: %q", spec.Warnings)
			}
			got := tt.got(result{spec.Options.Config, spec.Options.HostConfig, spec.Options.NetworkingConfig})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestParameterErrors: a value Docker would refuse, an unknown key or a
// flag that has no place here fails the task, naming the parameter.
func TestParameterErrors(t *testing.T) {
	bridge := func(in *specInput) { withNetwork(in, mesos.ContainerInfo_DockerInfo_BRIDGE) }
	tests := []struct {
		name   string
		params []string
		mutate func(*specInput)
		want   string
	}{
		{"unknown key", []string{"env", "A=1", "frobnicate", "yes"}, nil, `parameters[1] "frobnicate": unknown docker parameter "frobnicate" (value "yes"); supported keys: add-host, blkio-weight`},
		{"one-letter key", []string{"e", "A=1"}, nil, `parameters[0] "e": not supported by this executor: give environment variables with the env key`},
		{"publish", []string{"publish", "8080:80"}, nil, "container.docker.port_mappings"},
		{"volume", []string{"volume", "/etc:/etc"}, nil, "container.volumes"},
		{"env-file", []string{"env-file", "/etc/passwd"}, nil, "reads this file on the agent"},
		{"restart always", []string{"restart", "always"}, nil, `restart policy "always" refused: the executor supervises the container`},
		{"restart on-failure", []string{"restart", "on-failure:3"}, nil, `restart policy "on-failure:3" refused`},
		{"ulimit without value", []string{"ulimit", "nofile"}, nil, `parameters[0] "ulimit": "nofile" is not NAME=SOFT[:HARD]`},
		{"ulimit soft above hard", []string{"ulimit", "nofile=2048:1024"}, nil, `"ulimit": "nofile=2048:1024" is not NAME=SOFT[:HARD]`},
		{"ulimit unknown name", []string{"ulimit", "files=10"}, nil, `"files=10" is not NAME=SOFT[:HARD]`},
		{"shm-size garbage", []string{"shm-size", "lots"}, nil, `"shm-size": "lots" is not a size`},
		{"shm-size zero", []string{"shm-size", "0"}, nil, `must be above zero`},
		{"memory below 6m", []string{"memory", "1m"}, nil, `below Docker's minimum memory limit`},
		{"memory negative", []string{"memory", "-5"}, nil, `"memory": "-5" is not a size`},
		{"memory-swap without memory", []string{"memory-swap", "1g"}, nil, `memory-swap needs a memory limit`},
		{"memory-swap below memory", []string{"memory", "1g", "memory-swap", "512m"}, nil, `memory-swap 536870912 bytes is below the memory limit`},
		{"memory-reservation above memory", []string{"memory", "64m", "memory-reservation", "128m"}, nil, `memory-reservation 134217728 bytes is above the memory limit`},
		{"tmpfs relative", []string{"tmpfs", "run"}, nil, `"tmpfs": "run" is not /PATH[:OPTIONS]`},
		{"tmpfs with ..", []string{"tmpfs", "/a/../b"}, nil, `contains a '..' element`},
		{"sysctl without =", []string{"sysctl", "net.ipv4.tcp_syncookies"}, nil, `"sysctl": "net.ipv4.tcp_syncookies" is not NAME=VALUE`},
		{"sysctl bad name", []string{"sysctl", "a b=1"}, nil, `"a b" is not a kernel parameter name`},
		{"pids-limit garbage", []string{"pids-limit", "many"}, nil, `"pids-limit": "many" is not a number of processes`},
		{"oom-score-adj out of range", []string{"oom-score-adj", "1001"}, nil, `"1001" is not an OOM score adjustment between -1000 and 1000`},
		{"read-only garbage", []string{"read-only", "yes please"}, nil, `"read-only": "yes please" is not true or false`},
		{"hostname with a space", []string{"hostname", "a b"}, bridge, `"a b" is not a hostname`},
		{"hostname with host network", []string{"hostname", "web"}, nil, `a hostname cannot be set with host networking`},
		{"group-add empty", []string{"group-add", ""}, nil, `"group-add": value is empty`},
		{"dns-search empty", []string{"dns-search", " "}, nil, `"dns-search": value is empty`},
		{"dns-option with blank", []string{"dns-opt", "ndots: 2"}, nil, `is not a resolv.conf option`},
		{"network-alias on bridge", []string{"network-alias", "api"}, bridge, `network aliases need a user-defined network`},
		{"mac-address malformed", []string{"mac-address", "92:d0"}, bridge, `"92:d0" is not a MAC address`},
		{"mac-address with host network", []string{"mac-address", "92:d0:c6:0a:29:33"}, nil, `mac-address cannot be set with host networking`},
		{"stop-timeout garbage", []string{"stop-timeout", "10s"}, nil, `"stop-timeout": "10s" is not a number of seconds`},
		{"stop-timeout zero", []string{"stop-timeout", "0"}, nil, `0 cannot be passed to Docker`},
		{"security-opt seccomp file", []string{"security-opt", "seccomp=/etc/profile.json"}, nil, `names a file; this executor reads no host file named by a task`},
		{"security-opt bad JSON", []string{"security-opt", "seccomp={oops"}, nil, `inline seccomp profile is not valid JSON`},
		{"security-opt without value", []string{"security-opt", "apparmor"}, nil, `"apparmor" is not KEY=VALUE`},
		{"device relative", []string{"device", "sda"}, nil, `device paths must be absolute`},
		{"device bad permissions", []string{"device", "/dev/sda:/dev/sda:rwx"}, nil, `permissions "rwx" are not a combination of r, w and m`},
		{"device too many parts", []string{"device", "/a:/b:r:w"}, nil, `is not HOST_PATH[:CONTAINER_PATH][:PERMISSIONS]`},
		{"ipc unknown", []string{"ipc", "shared"}, nil, `"shared" is not a ipc mode`},
		{"uts container", []string{"uts", "container:x"}, nil, `"container:x" is not a uts mode`},
		{"pid empty container", []string{"pid", "container:"}, nil, `"container:" is not a pid mode`},
		{"cgroupns unknown", []string{"cgroupns", "yes"}, nil, `is not a cgroupns mode (accepted: host, private)`},
		{"cpus zero", []string{"cpus", "0"}, nil, `"0" is not a positive number of CPUs`},
		{"cpus too precise", []string{"cpus", "0.0000000001"}, nil, `give at most 9 decimals`},
		{"cpus with cpu-quota", []string{"cpus", "1", "cpu-quota", "50000"}, nil, `cpus cannot be combined with cpu-quota or cpu-period`},
		{"cpuset garbage", []string{"cpuset-cpus", "0-"}, nil, `"0-" is not a list such as 0-3,5`},
		{"cpu-quota below 1ms", []string{"cpu-quota", "999"}, nil, `is not a CFS quota`},
		{"cpu-period too large", []string{"cpu-period", "2000000"}, nil, `is not a CFS period`},
		{"cpu-shares negative", []string{"cpu-shares", "-1"}, nil, `is not a number of CPU shares`},
		{"memory-swappiness above 100", []string{"memory-swappiness", "101"}, nil, `is not a swappiness`},
		{"blkio-weight out of range", []string{"blkio-weight", "5"}, nil, `is not a block I/O weight`},
		{"storage-opt without =", []string{"storage-opt", "size"}, nil, `"size" is not KEY=VALUE`},
		{"runtime with a slash", []string{"runtime", "/usr/bin/runc"}, nil, `"/usr/bin/runc" is not a runtime name`},
		{"cgroup-parent with ..", []string{"cgroup-parent", "/a/../b"}, nil, `contains a '..' element`},
		{"expose garbage", []string{"expose", "http"}, nil, `"http" is not PORT[/PROTOCOL]`},
		{"expose bad protocol", []string{"expose", "80/icmp"}, nil, `protocol "icmp" is not tcp, udp or sctp`},
		{"expose huge range", []string{"expose", "1-65535"}, nil, `at most 1024 per parameter`},
		{"health-interval garbage", []string{"health-interval", "often"}, nil, `"often" is not a duration`},
		{"health-timeout negative", []string{"health-timeout", "-1s"}, nil, `"-1s" is not a duration`},
		{"health-retries negative", []string{"health-retries", "-1"}, nil, `is not a number of retries`},
		{"no-healthcheck with health-cmd", []string{"health-cmd", "true", "no-healthcheck", ""}, nil, `no-healthcheck conflicts with container.docker.parameters[0] "health-cmd"`},
		{"two network parameters", []string{"network", "a", "net", "b"}, bridge, `a second network parameter`},
		{"network host with port mappings", []string{"network", "host"}, func(in *specInput) { bridge(in); withPortMappings(in, portMapping(31000, 80, "")) },
			`network "host" cannot carry container.docker.port_mappings`},
		{"container.hostname with a network parameter naming host", []string{"network", "host"},
			func(in *specInput) { bridge(in); in.Task.Container.Hostname = stringPtr("web") }, `container.hostname "web" cannot be set with host networking`},
		{"hostname with another container's network", []string{"net", "container:db", "hostname", "x"}, bridge, `a hostname cannot be set with container:db networking`},
		{"env bare name", []string{"env", "HOME"}, nil, `"HOME" is not NAME=VALUE`},
		{"cap-add list", []string{"cap-add", "NET_ADMIN,SYS_ADMIN"}, nil, `is not one capability name`},
		{"NUL in key", []string{"env\x00", "A=1"}, nil, `contains a NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := paramsInput(tt.mutate, tt.params...)
			spec, err := buildContainerSpec(in)
			if err == nil {
				t.Fatalf("built %+v; want an error containing %q", spec.Options.HostConfig, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "invalid TaskInfo: container.docker.parameters") {
				t.Errorf("error %q does not name container.docker.parameters as invalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// TestTaskLimits applies TaskInfo.limits as Mesos' Docker containerizer.
// TestParameterErrorsKeepSecretsOut: the error becomes the TaskStatus
// message, so a secret in a rejected value is redacted there.
func TestParameterErrorsKeepSecretsOut(t *testing.T) {
	for _, tc := range []struct{ key, value, secret, keep string }{
		{"evn", "DB_PASSWORD=hunter2", "hunter2", `"DB_PASSWORD=`},
		{"log-opt", "https://user:s3cret@logs.example.com", "s3cret", "logs.example.com"},
		{"frobnicate", "URL=https://user:s3cret@db.example.com", "s3cret", "db.example.com"},
	} {
		in := testInput()
		withParameters(&in, tc.key, tc.value)
		_, err := buildContainerSpec(in)
		if err == nil {
			t.Fatalf("%s=%s accepted", tc.key, tc.value)
		}
		if strings.Contains(err.Error(), tc.secret) || !strings.Contains(err.Error(), tc.keep) || !strings.HasPrefix(err.Error(), "invalid TaskInfo: ") {
			t.Errorf("%s: error %q leaks %q or lacks %q", tc.key, err, tc.secret, tc.keep)
		}
	}
}

func TestTaskLimits(t *testing.T) {
	const mib = 1 << 20
	const hostMemory = 16 << 30
	inf := math.Inf(1)
	type want struct {
		shares, period, quota, memory, reservation, swap int64
		oom                                              int
	}
	tests := []struct {
		name      string
		settings  Config
		cpus, mem float64
		limits    map[string]float64
		params    []string
		want      want
	}{
		{"cpus limit", Config{}, 0.5, 128, map[string]float64{"cpus": 2}, nil, want{shares: 512, period: 100000, quota: 200000}},
		{"cpus limit minimum quota", Config{}, 0.001, 128, map[string]float64{"cpus": 0.001}, nil, want{shares: 2, period: 100000, quota: 1000}},
		{"infinite cpus limit: shares only", Config{}, 1, 128, map[string]float64{"cpus": inf}, nil, want{shares: 1024}},
		{"limits override FORCE_CPU_LIMIT", Config{ForceCpuLimit: true, UseCpuShares: true}, 1, 128, map[string]float64{"cpus": 3}, nil,
			want{shares: 1024, period: 100000, quota: 300000}},
		{"mem limit above request", Config{}, 1, 1024, map[string]float64{"mem": 2048}, nil,
			want{memory: 2048 * mib, reservation: 1024 * mib, oom: 1000 - int(math.Round(1000*1024.0*mib/hostMemory))}},
		{"mem limit equal to request: no OOM adjustment", Config{}, 1, 256, map[string]float64{"mem": 256}, nil, want{memory: 256 * mib, reservation: 256 * mib}},
		{"mem limit at least 32 MB", Config{}, 1, 8, map[string]float64{"mem": 16}, nil, want{memory: 32 * mib, reservation: 32 * mib, oom: 1000}},
		{"infinite mem limit", Config{}, 1, 512, map[string]float64{"mem": inf}, nil, want{reservation: 512 * mib, oom: 969}},
		{"limits override FORCE_MEMORY_LIMIT", Config{ForceMemoryLimit: true}, 1, 512, map[string]float64{"mem": inf}, nil, want{reservation: 512 * mib, oom: 969}},
		{"a parameter wins over limits", Config{}, 1, 512, map[string]float64{"cpus": 2, "mem": 1024}, []string{"memory", "2g", "oom-score-adj", "100", "cpus", "1"},
			want{shares: 1024, memory: 2 << 30, reservation: 512 * mib, oom: 100}},
		{"no limits, no force: nothing", Config{}, 1, 512, nil, nil, want{}},
		{"a memory parameter over FORCE_MEMORY_LIMIT stays swapless", Config{ForceMemoryLimit: true}, 1, 512, nil, []string{"memory", "1g"},
			want{memory: 1 << 30, swap: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			settings := tt.settings
			in.Settings = &settings
			in.HostMemoryBytes = hostMemory
			in.Task.Resources = []mesos.Resource{scalarResource("cpus", tt.cpus), scalarResource("mem", tt.mem)}
			if tt.limits != nil {
				in.Task.Limits = map[string]mesos.Value_Scalar{}
				for name, value := range tt.limits {
					in.Task.Limits[name] = mesos.Value_Scalar{Value: value}
				}
			}
			withParameters(&in, tt.params...)
			h := mustBuild(t, in).Options.HostConfig
			got := want{h.CPUShares, h.CPUPeriod, h.CPUQuota, h.Memory, h.MemoryReservation, h.MemorySwap, h.OomScoreAdj}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	errorCases := []struct {
		name   string
		limits map[string]float64
		noMem  bool
		want   string
	}{
		{"unknown key", map[string]float64{"disk": 10}, false, `limits["disk"]: only cpus and mem limits are supported`},
		{"below request", map[string]float64{"cpus": 0.5}, false, `limits["cpus"] 0.5 is below the cpus request 1`},
		{"mem below request", map[string]float64{"mem": 100}, false, `limits["mem"] 100 MB is below the mem request 512 MB`},
		{"NaN", map[string]float64{"mem": math.NaN()}, false, `limits["mem"] is NaN`},
		{"negative infinity", map[string]float64{"cpus": math.Inf(-1)}, false, `limits["cpus"] is -Inf`},
		{"no request", map[string]float64{"mem": 1024}, true, `limits["mem"]: a mem limit needs a mem resource`},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			in.Task.Resources = []mesos.Resource{scalarResource("cpus", 1)}
			if !tt.noMem {
				in.Task.Resources = append(in.Task.Resources, scalarResource("mem", 512))
			}
			in.Task.Limits = map[string]mesos.Value_Scalar{}
			for name, value := range tt.limits {
				in.Task.Limits[name] = mesos.Value_Scalar{Value: value}
			}
			_, err := buildContainerSpec(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "invalid TaskInfo: ") {
				t.Errorf("err = %v, want an invalid TaskInfo naming %q", err, tt.want)
			}
		})
	}

	// Without the host's memory size the OOM adjustment is skipped, with
	// a warning rather than silently.
	in := testInput()
	in.Task.Resources = []mesos.Resource{scalarResource("mem", 512)}
	in.Task.Limits = map[string]mesos.Value_Scalar{"mem": {Value: 1024}}
	spec := mustBuild(t, in)
	if spec.Options.HostConfig.OomScoreAdj != 0 || len(spec.Warnings) != 1 || !strings.Contains(spec.Warnings[0], "host's memory size is unknown") {
		t.Errorf("OomScoreAdj %d, warnings %q", spec.Options.HostConfig.OomScoreAdj, spec.Warnings)
	}
}

func TestParseMemTotal(t *testing.T) {
	for text, want := range map[string]int64{
		"MemTotal:       16318412 kB\nMemFree: 1 kB\n": 16318412 << 10,
		"MemFree: 1 kB\nMemTotal: 2048 kB\n":           2 << 20,
		"MemTotal: lots kB\n":                          0,
		"MemTotal: 5 MB\n":                             0,
		"":                                             0,
	} {
		if got := parseMemTotal(strings.NewReader(text)); got != want {
			t.Errorf("parseMemTotal(%q) = %d, want %d", text, got, want)
		}
	}
	if hostMemoryBytes() <= 0 {
		t.Error("hostMemoryBytes() found no memory on this Linux host")
	}
}

// FuzzDockerParameter feeds arbitrary parameters to the mapping: it must
// never panic, must refuse every key it does not know (nothing dropped
// silently), must name the parameters in its errors, and whatever the
// default admission policy then admits must stay within the baseline.
func FuzzDockerParameter(f *testing.F) {
	for _, seed := range [][4]string{
		{"ulimit", "nofile=1024:2048", "shm-size", "64m"},
		{"memory", "1g", "memory-swap", "-1"},
		{"sysctl", "kernel.msgmax=1", "ipc", "host"},
		{"device", "/dev/fuse:/dev/fuse:rw", "runtime", "runsc"},
		{"security-opt", `seccomp={"a":1}`, "oom-score-adj", "-1"},
		{"network", "container:x", "network-alias", "a"},
		{"health-cmd", "true", "no-healthcheck", ""},
		{"--privileged", "", "restart", "no"},
		{"cpus", "1.5", "cpu-quota", "1000"},
		{"tmpfs", "/run:size=1m", "expose", "1-2/udp"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, key1, value1, key2, value2 string) {
		in := testInput()
		withNetwork(&in, mesos.ContainerInfo_DockerInfo_BRIDGE)
		withParameters(&in, key1, value1, key2, value2)
		spec, err := buildContainerSpec(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid TaskInfo: container.docker.parameters") {
				t.Fatalf("error %q does not name the parameters", err)
			}
			return
		}
		for _, key := range []string{key1, key2} {
			if _, known := parameterHandlers[strings.TrimLeft(key, "-")]; !known {
				t.Fatalf("unknown key %q accepted", key)
			}
		}
		if admit(admissionInput{Options: spec.Options, Task: in.Task, HostSandbox: in.HostSandbox}) == nil {
			checkBaselineAdmitted(t, spec.Options)
		}
	})
}
