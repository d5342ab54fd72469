package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// policyHost is a fake host in a temporary directory: protected paths, a
// Mesos agent work directory with this task's sandbox and another task's,
// and symlinks pointing into the protected places. Protected paths are
// injected into admit, so nothing here depends on the real host's files.
type policyHost struct {
	root        string
	sandbox     string // MESOS_DIRECTORY
	otherTask   string // another task's sandbox under the same agent
	workDir     string // the agent's --work_dir
	dockerHost  string // DOCKER_HOST of the executor
	protected   []protectedPath
	plain       string // a harmless directory
	varRunSock  string // <root>/var/run/docker.sock, <root>/var/run -> run
	runSock     string // <root>/run/docker.sock
	dockerStore string // <root>/var/lib/docker
}

func newPolicyHost(t testing.TB) *policyHost {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &policyHost{root: root}
	at := func(rel string) string { return filepath.Join(root, rel) }
	h.workDir = at("mesos")
	h.sandbox = at("mesos/slaves/agent-1/frameworks/fw-1/executors/ex-1/runs/run-1")
	h.otherTask = at("mesos/slaves/agent-1/frameworks/fw-1/executors/ex-2/runs/run-2")
	h.plain = at("plain")
	h.runSock = at("run/docker.sock")
	h.varRunSock = at("var/run/docker.sock")
	h.dockerStore = at("var/lib/docker")
	h.dockerHost = "unix://" + at("custom/docker.sock")
	for _, dir := range []string{h.sandbox, h.otherTask, h.plain, at("run/sub"), at("var/lib/docker/volumes"), at("etc/sidecar-executor"), at("custom"), at("tmp")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, file := range []string{h.runSock, at("custom/docker.sock")} {
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"var/run":             "../run", // as on most hosts: /var/run -> /run
		"plain/sock-link":     h.runSock,
		"plain/store-link":    "../var/lib/docker",
		"plain/sub-link":      at("run/sub"),
		"plain/dangling":      at("var/lib/docker/not-yet"),
		"plain/loop-a":        at("plain/loop-b"),
		"plain/loop-b":        at("plain/loop-a"),
		"plain/other-sandbox": h.otherTask,
		strings.TrimPrefix(h.sandbox, root+"/") + "/evil": h.dockerStore,
	}
	for link, target := range links {
		if err := os.Symlink(target, at(link)); err != nil {
			t.Fatal(err)
		}
	}
	h.protected = []protectedPath{
		{path: "/", what: "the host's root filesystem", selfOnly: true},
		{path: h.varRunSock, what: "the Docker socket"},
		{path: h.dockerStore, what: "Docker's storage"},
		{path: at("etc/sidecar-executor"), what: "the executor's operator settings"},
	}
	return h
}

// input is a harmless request on this host: host networking and the
// task's sandbox, as dockerspec builds it.
func (h *policyHost) input() admissionInput {
	return admissionInput{
		Options: docker.CreateContainerOptions{
			Config: &docker.Config{Image: testImage},
			HostConfig: &docker.HostConfig{
				NetworkMode: "host",
				Binds:       []string{h.sandbox + ":" + containerSandboxPath + ":rw"},
			},
		},
		Task:        &mesos.TaskInfo{Container: &mesos.ContainerInfo{Docker: &mesos.ContainerInfo_DockerInfo{}}},
		HostSandbox: h.sandbox,
		DockerHost:  h.dockerHost,
		protected:   h.protected,
	}
}

// bind adds a host path volume the way dockerspec maps container.volumes.
func bind(source string) func(*admissionInput) {
	return func(in *admissionInput) {
		in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, source+":/data:rw")
		in.Task.Container.Volumes = append(in.Task.Container.Volumes, mesos.Volume{HostPath: strPtr(source), ContainerPath: "/data", Mode: mesos.RW.Enum()})
	}
}

func hostConfig(change func(*docker.HostConfig)) func(*admissionInput) {
	return func(in *admissionInput) { change(in.Options.HostConfig) }
}

func capAdd(capability string) func(*admissionInput) {
	return hostConfig(func(h *docker.HostConfig) { h.CapAdd = append(h.CapAdd, capability) })
}

func securityOpt(option string) func(*admissionInput) {
	return hostConfig(func(h *docker.HostConfig) { h.SecurityOpt = append(h.SecurityOpt, option) })
}

// applySuggestedSetting turns the "NAME=VALUE" a refusal suggests into
// settings, so the test proves the suggestion really admits the request.
func applySuggestedSetting(t *testing.T, settings *AdmissionSettings, suggestion string) {
	t.Helper()
	name, value, ok := strings.Cut(suggestion, "=")
	if !ok {
		t.Fatalf("suggestion %q is not NAME=VALUE", suggestion)
	}
	switch name {
	case settingAllowPrivileged:
		settings.AllowPrivileged = value == "true"
	case settingAllowedCapabilities:
		settings.AllowedCapabilities = value
	case settingAllowedHostPaths:
		settings.AllowedHostPaths = value
	case settingAllowedVolumeDrivers:
		settings.AllowedVolumeDrivers = value
	case settingAllowedNamedVolumes:
		settings.AllowedNamedVolumes = value
	case settingAllowedDevices:
		settings.AllowedDevices = value
	case settingAllowedHostNamespaces:
		settings.AllowedHostNamespaces = value
	case settingAllowedSysctls:
		settings.AllowedSysctls = value
	case settingAllowedRuntimes:
		settings.AllowedRuntimes = value
	case settingAllowedCgroupParents:
		settings.AllowedCgroupParents = value
	case settingAllowOOMProtection:
		settings.AllowOOMProtection = value == "true"
	default:
		t.Fatalf("suggestion %q names no admission setting", suggestion)
	}
}

// TestAdmissionRefusesEscalations tries one escalation per row against the
// default policy. Each must be refused alone, with a message naming the
// field, the rule and the operator setting; applying exactly that setting
// must then admit it, and EXECUTOR_ALLOW_PRIVILEGED=true must admit it too.
func TestAdmissionRefusesEscalations(t *testing.T) {
	h := newPolicyHost(t)
	at := func(rel string) string { return filepath.Join(h.root, rel) }
	cases := []struct {
		name    string
		change  func(*admissionInput)
		field   string // fragment naming the field and value
		rule    string // fragment of the rule
		setting string // the setting the refusal must suggest
	}{
		{"privileged", func(in *admissionInput) { in.Options.HostConfig.Privileged = true },
			"container.docker.privileged=true", "privileged container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"cap-add SYS_ADMIN", capAdd("SYS_ADMIN"),
			"parameter cap-add=SYS_ADMIN", "outside Docker's default set", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN"},
		{"cap-add in lower case", capAdd("sys_admin"),
			"parameter cap-add=sys_admin", "outside Docker's default set", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN"},
		{"cap-add with CAP_ prefix", capAdd("CAP_SYS_MODULE"),
			"parameter cap-add=CAP_SYS_MODULE", "outside Docker's default set", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_MODULE"},
		{"cap-add mixed case with prefix", capAdd("Cap_Net_Admin"),
			"parameter cap-add=Cap_Net_Admin", "outside Docker's default set", "EXECUTOR_ALLOWED_CAPABILITIES=NET_ADMIN"},
		{"cap-add ALL", capAdd("ALL"),
			"parameter cap-add=ALL", "adds every capability", "EXECUTOR_ALLOWED_CAPABILITIES=ALL"},
		{"cap-add all in lower case", capAdd("all"),
			"parameter cap-add=all", "adds every capability", "EXECUTOR_ALLOWED_CAPABILITIES=ALL"},
		{"cap-add unknown name", capAdd("SYS_EVERYTHING"),
			"parameter cap-add=SYS_EVERYTHING", "no capability the policy knows", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"Capabilities replacing the set", hostConfig(func(h *docker.HostConfig) { h.Capabilities = []string{"CAP_CHOWN", "CAP_SYS_PTRACE"} }),
			"HostConfig.Capabilities CAP_SYS_PTRACE", "outside Docker's default set", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_PTRACE"},
		{"pid=host", hostConfig(func(h *docker.HostConfig) { h.PidMode = "host" }),
			"parameter pid=host", "host's PID namespace", "EXECUTOR_ALLOWED_HOST_NAMESPACES=pid"},
		{"ipc=host", hostConfig(func(h *docker.HostConfig) { h.IpcMode = "host" }),
			"parameter ipc=host", "host's IPC namespace", "EXECUTOR_ALLOWED_HOST_NAMESPACES=ipc"},
		{"uts=host", hostConfig(func(h *docker.HostConfig) { h.UTSMode = "host" }),
			"parameter uts=host", "host's UTS namespace", "EXECUTOR_ALLOWED_HOST_NAMESPACES=uts"},
		{"userns=host", hostConfig(func(h *docker.HostConfig) { h.UsernsMode = "host" }),
			"parameter userns=host", "host's user namespace", "EXECUTOR_ALLOWED_HOST_NAMESPACES=userns"},
		{"cgroupns=host", hostConfig(func(h *docker.HostConfig) { h.CgroupnsMode = "host" }),
			"parameter cgroupns=host", "host's cgroup namespace", "EXECUTOR_ALLOWED_HOST_NAMESPACES=cgroupns"},
		{"network of another container", hostConfig(func(h *docker.HostConfig) { h.NetworkMode = "container:db" }),
			"container.docker.network container:db", "network namespace of another container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"network parameter naming another container", func(in *admissionInput) {
			in.Options.HostConfig.NetworkMode = "container:db"
			in.Task.Container.Docker.Parameters = []mesos.Parameter{{Key: "net", Value: "container:db"}}
		}, "parameter net=container:db", "network namespace of another container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"USER network named container:", func(in *admissionInput) {
			in.Options.HostConfig.NetworkMode = "bridge"
			in.Options.NetworkingConfig = &docker.NetworkingConfig{EndpointsConfig: map[string]*docker.EndpointConfig{"container:db": {}}}
		}, "container.network_infos name container:db", "another container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"ipc of another container", hostConfig(func(h *docker.HostConfig) { h.IpcMode = "container:db" }),
			"parameter ipc=container:db", "IPC namespace of another container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"pid of another container", hostConfig(func(h *docker.HostConfig) { h.PidMode = "container:db" }),
			"parameter pid=container:db", "PID namespace of another container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"volumes-from", hostConfig(func(h *docker.HostConfig) { h.VolumesFrom = []string{"db:ro"} }),
			"parameter volumes-from=db:ro", "volumes of another container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"cgroup-parent", hostConfig(func(h *docker.HostConfig) { h.CgroupParent = "/system.slice" }),
			"parameter cgroup-parent=/system.slice", "outside the cgroup", "EXECUTOR_ALLOWED_CGROUP_PARENTS=/system.slice"},
		{"device", hostConfig(func(h *docker.HostConfig) {
			h.Devices = []docker.Device{{PathOnHost: "/dev/sda", PathInContainer: "/dev/sda", CgroupPermissions: "rwm"}}
		}), "parameter device=/dev/sda:/dev/sda", "host device", "EXECUTOR_ALLOWED_DEVICES=/dev/sda"},
		{"privileged parameter", func(in *admissionInput) {
			in.Options.HostConfig.Privileged = true
			in.Task.Container.Docker.Parameters = []mesos.Parameter{{Key: "--privileged", Value: ""}}
		}, "parameter privileged=", "privileged container", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"unsafe sysctl", hostConfig(func(h *docker.HostConfig) { h.Sysctls = map[string]string{"kernel.msgmax": "65536"} }),
			"parameter sysctl=kernel.msgmax=65536", "outside the baseline's safe set", "EXECUTOR_ALLOWED_SYSCTLS=kernel.msgmax"},
		{"net sysctl outside the safe set", hostConfig(func(h *docker.HostConfig) { h.Sysctls = map[string]string{"net.core.somaxconn": "1024"} }),
			"parameter sysctl=net.core.somaxconn=1024", "safe set", "EXECUTOR_ALLOWED_SYSCTLS=net.core.somaxconn"},
		{"another runtime", hostConfig(func(h *docker.HostConfig) { h.Runtime = "sysbox-runc" }),
			"parameter runtime=sysbox-runc", "other than runc", "EXECUTOR_ALLOWED_RUNTIMES=sysbox-runc"},
		{"negative oom-score-adj", hostConfig(func(h *docker.HostConfig) { h.OomScoreAdj = -500 }),
			"parameter oom-score-adj=-500", "less likely than the host's own processes to be killed", "EXECUTOR_ALLOW_OOM_PROTECTION=true"},
		{"oom-kill-disable", hostConfig(func(h *docker.HostConfig) { h.OOMKillDisable = boolPtr(true) }),
			"parameter oom-kill-disable=true", "keeps the OOM killer away", "EXECUTOR_ALLOW_OOM_PROTECTION=true"},
		{"gpus", hostConfig(func(h *docker.HostConfig) {
			h.DeviceRequests = []docker.DeviceRequest{{Driver: "nvidia", Count: -1}}
		}), "parameter gpus", "host devices", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"device-cgroup-rule", hostConfig(func(h *docker.HostConfig) { h.DeviceCgroupRules = []string{"b 8:* rmw"} }),
			"parameter device-cgroup-rule=b 8:* rmw", "host devices", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"seccomp=unconfined", securityOpt("seccomp=unconfined"),
			"parameter security-opt=seccomp=unconfined", "disables seccomp", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"seccomp:unconfined (old syntax)", securityOpt("seccomp:unconfined"),
			"parameter security-opt=seccomp:unconfined", "disables seccomp", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"seccomp custom profile", securityOpt(`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`),
			"parameter security-opt=seccomp=", "replaces Docker's default seccomp profile", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"apparmor=unconfined", securityOpt("apparmor=unconfined"),
			"parameter security-opt=apparmor=unconfined", "disables AppArmor", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"label=disable", securityOpt("label=disable"),
			"parameter security-opt=label=disable", "disables SELinux", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"label:disable", securityOpt("label:disable"),
			"parameter security-opt=label:disable", "disables SELinux", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"label type", securityOpt("label=type:spc_t"),
			"parameter security-opt=label=type:spc_t", "SELinux user, role or type", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"systempaths=unconfined", securityOpt("systempaths=unconfined"),
			"parameter security-opt=systempaths=unconfined", "unmasks", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"no-new-privileges=false", securityOpt("no-new-privileges=false"),
			"parameter security-opt=no-new-privileges=false", "setuid", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"unknown security option", securityOpt("mystery=1"),
			"parameter security-opt=mystery=1", "does not know", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"masked paths replaced", hostConfig(func(h *docker.HostConfig) { h.MaskedPaths = []string{"/nothing"} }),
			"HostConfig.MaskedPaths", "/proc", "EXECUTOR_ALLOW_PRIVILEGED=true"},

		{"bind of /", bind("/"),
			"container.volumes[0].host_path=/", "is / (the host's root filesystem)", "EXECUTOR_ALLOWED_HOST_PATHS=/"},
		{"docker socket", bind(h.varRunSock),
			"host_path=" + h.varRunSock, "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{"docker socket by its resolved path", bind(h.runSock),
			"host_path=" + h.runSock, "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{"docker socket with a trailing slash", bind(h.varRunSock + "/"),
			"host_path=" + h.varRunSock + "/", "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{"docker socket through ..", bind(h.root + "/tmp/../var/run/docker.sock"),
			"host_path=" + h.root + "/tmp/../var/run/docker.sock", "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{"docker socket through a symlink", bind(at("plain/sock-link")),
			"host_path=" + at("plain/sock-link"), "resolves to " + h.runSock, "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{".. after a symlink climbs from its target", bind(h.root + "/plain/sub-link/../docker.sock"),
			"host_path=" + h.root + "/plain/sub-link/../docker.sock", "resolves to " + h.runSock, "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{"docker socket named by DOCKER_HOST", bind(at("custom/docker.sock")),
			"host_path=" + at("custom/docker.sock"), "DOCKER_HOST", "EXECUTOR_ALLOWED_HOST_PATHS=" + at("custom/docker.sock")},
		{"a directory containing the Docker socket", bind(at("custom")),
			"host_path=" + at("custom"), "contains " + at("custom/docker.sock"), "EXECUTOR_ALLOWED_HOST_PATHS=" + at("custom")},
		{"Docker's storage with a trailing slash", bind(h.dockerStore + "/"),
			"host_path=" + h.dockerStore + "/", "Docker's storage", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.dockerStore},
		{"a path containing Docker's storage", bind(at("var")),
			"host_path=" + at("var"), "is a host path that contains " + at("var/"), "EXECUTOR_ALLOWED_HOST_PATHS=" + at("var")},
		{"a path inside Docker's storage", bind(at("var/lib/docker/volumes")),
			"host_path=" + at("var/lib/docker/volumes"), "is inside " + h.dockerStore, "EXECUTOR_ALLOWED_HOST_PATHS=" + at("var/lib/docker/volumes")},
		{"a symlink to Docker's storage", bind(at("plain/store-link")),
			"host_path=" + at("plain/store-link"), "resolves to " + h.dockerStore, "EXECUTOR_ALLOWED_HOST_PATHS=" + h.dockerStore},
		{"a missing path under a symlink into Docker's storage", bind(at("plain/store-link/new/deeper")),
			"host_path=" + at("plain/store-link/new/deeper"), "is inside " + h.dockerStore, "EXECUTOR_ALLOWED_HOST_PATHS=" + at("var/lib/docker/new/deeper")},
		{"a dangling symlink into Docker's storage", bind(at("plain/dangling")),
			"host_path=" + at("plain/dangling"), "resolves to " + at("var/lib/docker/not-yet"), "EXECUTOR_ALLOWED_HOST_PATHS=" + at("var/lib/docker/not-yet")},
		{"a symlink in the sandbox pointing out of it", bind(h.sandbox + "/evil"),
			"host_path=" + h.sandbox + "/evil", "resolves to " + h.dockerStore, "EXECUTOR_ALLOWED_HOST_PATHS=" + h.dockerStore},
		{"a symlink loop", bind(at("plain/loop-a")),
			"host_path=" + at("plain/loop-a"), "cannot be resolved", "EXECUTOR_ALLOWED_HOST_PATHS=" + at("plain/loop-a")},
		{"a path containing the operator's settings", bind(at("etc")),
			"host_path=" + at("etc"), "contains " + at("etc/sidecar-executor"), "EXECUTOR_ALLOWED_HOST_PATHS=" + at("etc")},
		{"the agent work directory", bind(h.workDir),
			"host_path=" + h.workDir, "Mesos agent's work directory", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.workDir},
		{"the agent work directory outside the sandbox", bind(at("mesos/meta/slaves")),
			"host_path=" + at("mesos/meta/slaves"), "is inside " + h.workDir, "EXECUTOR_ALLOWED_HOST_PATHS=" + at("mesos/meta/slaves")},
		{"the directory above the sandbox", bind(filepath.Dir(h.sandbox)),
			"host_path=" + filepath.Dir(h.sandbox), "is inside " + h.workDir, "EXECUTOR_ALLOWED_HOST_PATHS=" + filepath.Dir(h.sandbox)},
		{"another task's sandbox", bind(h.otherTask),
			"host_path=" + h.otherTask, "Mesos agent's work directory", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.otherTask},
		{"another task's sandbox through a symlink", bind(at("plain/other-sandbox")),
			"host_path=" + at("plain/other-sandbox"), "resolves to " + h.otherTask, "EXECUTOR_ALLOWED_HOST_PATHS=" + h.otherTask},
		{"a bind mount of the socket", hostConfig(func(hc *docker.HostConfig) {
			hc.Mounts = []docker.HostMount{{Type: "bind", Source: h.varRunSock, Target: "/sock"}}
		}), "HostConfig.Mounts[0] (bind " + h.varRunSock, "the Docker socket", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock},
		{"shared propagation", func(in *admissionInput) {
			in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, h.plain+":/data:rw,rshared")
		}, "bind " + h.plain + ":/data:rw,rshared", "rshared mount propagation", "EXECUTOR_ALLOW_PRIVILEGED=true"},
		{"unknown mount type", hostConfig(func(hc *docker.HostConfig) {
			hc.Mounts = []docker.HostMount{{Type: "npipe", Source: `\\.\pipe\docker_engine`, Target: "/pipe"}}
		}), "HostConfig.Mounts[0] (npipe", "does not know", "EXECUTOR_ALLOW_PRIVILEGED=true"},

		{"another team's named volume", func(in *admissionInput) {
			in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, "payments-data:/data:rw")
			in.Task.Container.Volumes = []mesos.Volume{{ContainerPath: "/data", Mode: mesos.RW.Enum(),
				Source: &mesos.Volume_Source{Type: mesos.Volume_Source_DOCKER_VOLUME, DockerVolume: &mesos.Volume_Source_DockerVolume{Name: "payments-data"}}}}
		}, "container.volumes[0].source.docker_volume.name=payments-data", "named volume", "EXECUTOR_ALLOWED_NAMED_VOLUMES=payments-data"},
		{"a named volume mount", hostConfig(func(hc *docker.HostConfig) {
			hc.Mounts = []docker.HostMount{{Type: "volume", Source: "payments-data", Target: "/data"}}
		}), "HostConfig.Mounts[0] (volume payments-data", "named volume", "EXECUTOR_ALLOWED_NAMED_VOLUMES=payments-data"},
		{"volume-driver parameter", func(in *admissionInput) {
			in.Options.HostConfig.VolumeDriver = "rexray"
			in.Task.Container.Docker.Parameters = []mesos.Parameter{{Key: "volume-driver", Value: "rexray"}}
		}, "parameter volume-driver=rexray", `volume driver "rexray"`, "EXECUTOR_ALLOWED_VOLUME_DRIVERS=rexray"},
		{"DockerInfo.volume_driver", func(in *admissionInput) {
			in.Options.HostConfig.VolumeDriver = "convoy"
			in.Task.Container.Docker.VolumeDriver = strPtr("convoy")
		}, "container.docker.volume_driver=convoy", `volume driver "convoy"`, "EXECUTOR_ALLOWED_VOLUME_DRIVERS=convoy"},
		{"docker_volume.driver", func(in *admissionInput) {
			in.Options.HostConfig.VolumeDriver = "nfs"
			in.Task.Container.Volumes = []mesos.Volume{{ContainerPath: "/data", Mode: mesos.RW.Enum(),
				Source: &mesos.Volume_Source{Type: mesos.Volume_Source_DOCKER_VOLUME, DockerVolume: &mesos.Volume_Source_DockerVolume{Name: "x", Driver: strPtr("nfs")}}}}
		}, "container.volumes[0].source.docker_volume.driver=nfs", `volume driver "nfs"`, "EXECUTOR_ALLOWED_VOLUME_DRIVERS=nfs"},
		{"a mount's driver", hostConfig(func(hc *docker.HostConfig) {
			hc.Mounts = []docker.HostMount{{Type: "volume", Target: "/data", VolumeOptions: &docker.VolumeOptions{DriverConfig: docker.VolumeDriverConfig{Name: "ceph"}}}}
		}), "HostConfig.Mounts[0] volume driver ceph", `volume driver "ceph"`, "EXECUTOR_ALLOWED_VOLUME_DRIVERS=ceph"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := h.input()
			tc.change(&in)
			err := admit(in)
			var refusal *admissionError
			if !errors.As(err, &refusal) {
				t.Fatalf("admit = %v, want a refusal", err)
			}
			if len(refusal.violations) != 1 {
				t.Fatalf("%d violations, want 1: %v", len(refusal.violations), err)
			}
			v := refusal.violations[0]
			message := err.Error()
			for _, want := range []string{"refused by the admission policy: ", tc.field, tc.rule, "the operator allows it with " + tc.setting + " in /etc/sidecar-executor/environment"} {
				if !strings.Contains(message, want) {
					t.Errorf("message %q lacks %q", message, want)
				}
			}
			if v.allow != tc.setting {
				t.Errorf("suggested setting %q, want %q", v.allow, tc.setting)
			}

			allowed := in
			applySuggestedSetting(t, &allowed.Settings, v.allow)
			if err := admit(allowed); err != nil {
				t.Errorf("with %s the request is still refused: %v", v.allow, err)
			}
			allowed.Settings = AdmissionSettings{AllowPrivileged: true}
			if err := admit(allowed); err != nil {
				t.Errorf("with EXECUTOR_ALLOW_PRIVILEGED=true the request is refused: %v", err)
			}
		})
	}
}

// TestAdmissionAdmitsHarmlessRequests: the default policy must not get in
// the way of ordinary tasks.
func TestAdmissionAdmitsHarmlessRequests(t *testing.T) {
	h := newPolicyHost(t)
	cases := []struct {
		name   string
		change func(*admissionInput)
	}{
		{"the sandbox and host networking", func(*admissionInput) {}},
		{"bridge networking", hostConfig(func(hc *docker.HostConfig) { hc.NetworkMode = "bridge" })},
		{"a user network", func(in *admissionInput) {
			in.Options.HostConfig.NetworkMode = "backend"
			in.Options.NetworkingConfig = &docker.NetworkingConfig{EndpointsConfig: map[string]*docker.EndpointConfig{"backend": {}}}
		}},
		{"NET_BIND_SERVICE", capAdd("NET_BIND_SERVICE")},
		{"default capabilities in any spelling", func(in *admissionInput) {
			for _, c := range []string{"chown", "CAP_KILL", "cap_audit_write", "SetUID"} {
				capAdd(c)(in)
			}
		}},
		{"dropping capabilities", hostConfig(func(hc *docker.HostConfig) { hc.CapDrop = []string{"ALL"} })},
		{"a plain directory", bind(h.plain)},
		{"a plain directory, read-only", func(in *admissionInput) {
			in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, h.plain+":/data:ro")
		}},
		{"a missing plain path", bind(filepath.Join(h.plain, "not/yet"))},
		{"a file in the sandbox", bind(filepath.Join(h.sandbox, "config.yml"))},
		{"the sandbox itself again", bind(h.sandbox)},
		{"an anonymous volume", func(in *admissionInput) {
			in.Options.Config.Volumes = map[string]struct{}{"/cache": {}}
			in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, "/proc")
			in.Options.HostConfig.Mounts = []docker.HostMount{{Type: "volume", Target: "/scratch"}}
		}},
		{"a tmpfs", hostConfig(func(hc *docker.HostConfig) {
			hc.Mounts = []docker.HostMount{{Type: "tmpfs", Target: "/tmp"}}
		})},
		{"the local volume driver", hostConfig(func(hc *docker.HostConfig) { hc.VolumeDriver = "local" })},
		{"confining security options", func(in *admissionInput) {
			for _, o := range []string{"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true", "apparmor=docker-default", "label=level:s0:c100,c200"} {
				securityOpt(o)(in)
			}
		}},
		{"private namespaces", hostConfig(func(hc *docker.HostConfig) {
			hc.IpcMode, hc.PidMode, hc.CgroupnsMode = "private", "", "private"
		})},
		{"the baseline's safe sysctls", hostConfig(func(hc *docker.HostConfig) {
			hc.Sysctls = map[string]string{}
			for _, name := range safeSysctls {
				hc.Sysctls[name] = "1"
			}
		})},
		{"runc named explicitly", hostConfig(func(hc *docker.HostConfig) { hc.Runtime = "runc" })},
		{"a task making itself the likelier OOM victim", hostConfig(func(hc *docker.HostConfig) { hc.OomScoreAdj = 500; hc.OOMKillDisable = boolPtr(false) })},
		{"resource and hardening options", hostConfig(func(hc *docker.HostConfig) {
			hc.ReadonlyRootfs, hc.ShmSize, hc.PidsLimit = true, 1<<30, int64Ptr(100)
			hc.Ulimits = []docker.ULimit{{Name: "nofile", Soft: 1024, Hard: 1024}}
			hc.Tmpfs = map[string]string{"/run": "size=1m"}
			hc.GroupAdd, hc.DNSSearch, hc.DNSOptions = []string{"audio"}, []string{"example.com"}, []string{"ndots:2"}
			hc.IpcMode = "shareable"
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := h.input()
			tc.change(&in)
			if err := admit(in); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestAdmissionDoesNotExemptAProtectedSandbox: the sandbox is admitted
// because it is the task's own directory; a MESOS_DIRECTORY that is itself a
// protected path (or contains one) earns no exemption.
func TestAdmissionDoesNotExemptAProtectedSandbox(t *testing.T) {
	h := newPolicyHost(t)
	for _, sandbox := range []string{"/", filepath.Join(h.root, "var"), h.dockerStore} {
		t.Run(sandbox, func(t *testing.T) {
			in := h.input()
			in.HostSandbox = sandbox
			in.Options.HostConfig.Binds = []string{sandbox + ":" + containerSandboxPath + ":rw"}
			err := admit(in)
			var refusal *admissionError
			if !errors.As(err, &refusal) {
				t.Fatalf("admit = %v, want a refusal", err)
			}
			if !strings.Contains(err.Error(), "the task sandbox MESOS_DIRECTORY="+sandbox) {
				t.Errorf("message %q does not name the sandbox", err)
			}
		})
	}
}

// TestAdmissionReportsEveryViolation: a request breaking several rules is
// refused once, listing them all, so the author fixes everything at once.
func TestAdmissionReportsEveryViolation(t *testing.T) {
	h := newPolicyHost(t)
	in := h.input()
	in.Options.HostConfig.Privileged = true
	capAdd("SYS_ADMIN")(&in)
	bind(h.varRunSock)(&in)
	err := admit(in)
	var refusal *admissionError
	if !errors.As(err, &refusal) || len(refusal.violations) != 3 {
		t.Fatalf("admit = %v, want 3 violations", err)
	}
	message := err.Error()
	for _, want := range []string{"(3 violations)", "(1) container.docker.privileged=true", "(2) parameter cap-add=SYS_ADMIN", "(3) container.volumes[0].host_path=" + h.varRunSock,
		"EXECUTOR_ALLOW_PRIVILEGED=true", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN", "EXECUTOR_ALLOWED_HOST_PATHS=" + h.runSock} {
		if !strings.Contains(message, want) {
			t.Errorf("message %q lacks %q", message, want)
		}
	}
}

// TestAdmissionExceptionsAreNarrow: an operator's exception admits what it
// names and nothing next to it.
func TestAdmissionExceptionsAreNarrow(t *testing.T) {
	h := newPolicyHost(t)
	cases := []struct {
		name     string
		settings AdmissionSettings
		change   func(*admissionInput)
	}{
		{"SYS_PTRACE does not admit SYS_ADMIN", AdmissionSettings{AllowedCapabilities: "SYS_PTRACE"}, capAdd("SYS_ADMIN")},
		{"a list of capabilities does not admit ALL", AdmissionSettings{AllowedCapabilities: "SYS_PTRACE,NET_ADMIN"}, capAdd("ALL")},
		{"capabilities do not admit privileged", AdmissionSettings{AllowedCapabilities: "ALL"}, func(in *admissionInput) { in.Options.HostConfig.Privileged = true }},
		{"an allowed directory does not admit its parent", AdmissionSettings{AllowedHostPaths: h.dockerStore + "/volumes"}, bind(h.dockerStore)},
		{"a symlink inside an allowed path does not lead out of it", AdmissionSettings{AllowedHostPaths: h.plain}, bind(filepath.Join(h.plain, "sock-link"))},
		{"the socket's path does not admit its directory", AdmissionSettings{AllowedHostPaths: h.runSock}, bind(filepath.Dir(h.runSock))},
		{"a volume pattern admits only what it matches", AdmissionSettings{AllowedNamedVolumes: "billing-*"}, func(in *admissionInput) {
			in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, "payments-data:/data:rw")
		}},
		{"one driver does not admit another", AdmissionSettings{AllowedVolumeDrivers: "rexray"}, hostConfig(func(hc *docker.HostConfig) { hc.VolumeDriver = "convoy" })},
		{"host paths do not admit host namespaces", AdmissionSettings{AllowedHostPaths: "/"}, hostConfig(func(hc *docker.HostConfig) { hc.PidMode = "host" })},
		{"one host namespace does not admit another", AdmissionSettings{AllowedHostNamespaces: "ipc"}, hostConfig(func(hc *docker.HostConfig) { hc.PidMode = "host" })},
		{"host namespaces do not admit another container's", AdmissionSettings{AllowedHostNamespaces: "pid,ipc,uts,userns,cgroupns"}, hostConfig(func(hc *docker.HostConfig) { hc.PidMode = "container:db" })},
		{"one device does not admit another", AdmissionSettings{AllowedDevices: "/dev/fuse"}, hostConfig(func(hc *docker.HostConfig) {
			hc.Devices = []docker.Device{{PathOnHost: "/dev/fuse/../sda", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"}}
		})},
		{"a sysctl prefix admits only its prefix", AdmissionSettings{AllowedSysctls: "kernel.msg*"}, hostConfig(func(hc *docker.HostConfig) { hc.Sysctls = map[string]string{"kernel.sem": "1"} })},
		{"one runtime does not admit another", AdmissionSettings{AllowedRuntimes: "runsc"}, hostConfig(func(hc *docker.HostConfig) { hc.Runtime = "kata" })},
		{"OOM protection does not admit privileged", AdmissionSettings{AllowOOMProtection: true}, func(in *admissionInput) { in.Options.HostConfig.Privileged = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := h.input()
			in.Settings = tc.settings
			tc.change(&in)
			var refusal *admissionError
			if err := admit(in); !errors.As(err, &refusal) {
				t.Fatalf("admit = %v, want a refusal", err)
			}
		})
	}
	in := h.input()
	in.Settings = AdmissionSettings{AllowedNamedVolumes: "billing-*,cache"}
	in.Options.HostConfig.Binds = append(in.Options.HostConfig.Binds, "billing-2024:/a:rw", "cache:/b:ro")
	if err := admit(in); err != nil {
		t.Errorf("named volumes matching the allowed patterns refused: %v", err)
	}
	in.Settings = AdmissionSettings{AllowedNamedVolumes: "*"}
	if err := admit(in); err != nil {
		t.Errorf("named volumes refused with *: %v", err)
	}
}

// TestAdmissionProtectsTheRealHost runs the default protected paths
// against this machine's own files: the Docker socket by both its names,
// and the usual host directories.
func TestAdmissionProtectsTheRealHost(t *testing.T) {
	sandbox := t.TempDir()
	for _, source := range []string{"/", "/var/run/docker.sock", "/run/docker.sock", "/var/run", "/var", "/proc", "/proc/1/root", "/sys/fs/cgroup", "/dev", "/boot", "/root/.ssh",
		"/var/lib/docker", "/var/lib", "/etc", "/etc/sidecar-executor/environment", "/tmp/../var/run/docker.sock", "/run/containerd/containerd.sock"} {
		t.Run(source, func(t *testing.T) {
			in := admissionInput{
				Options: docker.CreateContainerOptions{Config: &docker.Config{}, HostConfig: &docker.HostConfig{
					Binds: []string{sandbox + ":" + containerSandboxPath + ":rw", source + ":/data:ro"}}},
				HostSandbox: sandbox,
			}
			var refusal *admissionError
			if err := admit(in); !errors.As(err, &refusal) {
				t.Fatalf("admit = %v, want a refusal", err)
			}
		})
	}
}

func TestAgentWorkDir(t *testing.T) {
	checkStringFunc(t, "agentWorkDir", agentWorkDir, map[string]string{
		"/var/lib/mesos/slaves/a1/frameworks/f1/executors/e1/runs/r1":  "/var/lib/mesos",
		"/var/lib/mesos/slaves/a1/frameworks/f1/executors/e1/runs/r1/": "/var/lib/mesos",
		"/slaves/a1/frameworks/f1/executors/e1/runs/r1":                "/",
		"/var/lib/mesos/slaves/a1/frameworks/f1/executors/e1":          "",
		"/tmp/sandbox": "",
		"":             "",
		"relative/slaves/a1/frameworks/f1/executors/e1/runs/r1": "",
	})
}

// checkStringFunc checks that f, named name in errors, maps every key of
// cases to its value.
func checkStringFunc(t *testing.T, name string, f func(string) string, cases map[string]string) {
	t.Helper()
	for in, want := range cases {
		if got := f(in); got != want {
			t.Errorf("%s(%q) = %q, want %q", name, in, got, want)
		}
	}
}

// TestAdmissionSettingsAreValidated: a typo in an operator setting is an
// invalid-setting error at start-up, not a silently narrower exception.
func TestAdmissionSettingsAreValidated(t *testing.T) {
	cases := map[string]string{
		"EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMN":        `"SYS_ADMN" is not a Linux capability`,
		"EXECUTOR_ALLOWED_CAPABILITIES=NET_ADMIN,bogus": `"bogus" is not a Linux capability`,
		"EXECUTOR_ALLOWED_HOST_PATHS=var/run":           `"var/run" is not an absolute path`,
		"EXECUTOR_ALLOWED_NAMED_VOLUMES=team-[":         `"team-[" is not a valid name pattern`,
		"EXECUTOR_ALLOWED_VOLUME_DRIVERS=rex ray":       `"rex ray" is not a volume driver name`,
		"EXECUTOR_ALLOW_PRIVILEGED=sometimes":           "EXECUTOR_ALLOW_PRIVILEGED",
		"EXECUTOR_ALLOWED_DEVICES=dev/fuse":             `"dev/fuse" is not a clean absolute device path`,
		"EXECUTOR_ALLOWED_HOST_NAMESPACES=net":          `"net" is not one of pid, ipc, uts, userns, cgroupns`,
		"EXECUTOR_ALLOWED_SYSCTLS=kernel.*.x":           `"kernel.*.x" is not a sysctl name or a prefix`,
		"EXECUTOR_ALLOWED_RUNTIMES=/usr/bin/runsc":      `"/usr/bin/runsc" is not a runtime name`,
		"EXECUTOR_ALLOW_OOM_PROTECTION=maybe":           "EXECUTOR_ALLOW_OOM_PROTECTION",
	}
	for setting, want := range cases {
		t.Run(setting, func(t *testing.T) {
			name, value, _ := strings.Cut(setting, "=")
			_, err := loadConfigFrom(testSettingsEnv(map[string]string{name: value}))
			if err == nil {
				t.Fatalf("%s accepted", setting)
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s and %q", err, name, want)
			}
		})
	}
}

// TestAdmissionSettingsLoadThroughTheEmbedding proves that envconfig reads
// the settings of the struct embedded in Config (it silently skips
// embedded structs it cannot set).
func TestAdmissionSettingsLoadThroughTheEmbedding(t *testing.T) {
	want := AdmissionSettings{
		AllowPrivileged:       true,
		AllowedCapabilities:   "cap_sys_ptrace, NET_ADMIN",
		AllowedHostPaths:      "/srv/shared,/opt/data",
		AllowedVolumeDrivers:  "rexray",
		AllowedNamedVolumes:   "team-*",
		AllowedDevices:        "/dev/fuse",
		AllowedHostNamespaces: "ipc,pid",
		AllowedSysctls:        "kernel.msg*,net.core.somaxconn",
		AllowedRuntimes:       "runsc",
		AllowedCgroupParents:  "/tenants",
		AllowOOMProtection:    true,
	}
	cfg := mustLoadConfig(t, testSettingsEnv(map[string]string{
		"EXECUTOR_ALLOW_PRIVILEGED":        "true",
		"EXECUTOR_ALLOWED_CAPABILITIES":    want.AllowedCapabilities,
		"EXECUTOR_ALLOWED_HOST_PATHS":      want.AllowedHostPaths,
		"EXECUTOR_ALLOWED_VOLUME_DRIVERS":  want.AllowedVolumeDrivers,
		"EXECUTOR_ALLOWED_NAMED_VOLUMES":   want.AllowedNamedVolumes,
		"EXECUTOR_ALLOWED_DEVICES":         want.AllowedDevices,
		"EXECUTOR_ALLOWED_HOST_NAMESPACES": want.AllowedHostNamespaces,
		"EXECUTOR_ALLOWED_SYSCTLS":         want.AllowedSysctls,
		"EXECUTOR_ALLOWED_RUNTIMES":        want.AllowedRuntimes,
		"EXECUTOR_ALLOWED_CGROUP_PARENTS":  want.AllowedCgroupParents,
		"EXECUTOR_ALLOW_OOM_PROTECTION":    "true",
	}))
	if cfg.AdmissionSettings != want {
		t.Fatalf("loaded %+v, want %+v", cfg.AdmissionSettings, want)
	}
	rules, problems := cfg.AdmissionSettings.rules()
	if len(problems) > 0 || !rules.capabilities["SYS_PTRACE"] || !rules.capabilities["NET_ADMIN"] || len(rules.hostPaths) != 2 ||
		!rules.options.devices["/dev/fuse"] || !rules.options.hostNamespaces["pid"] || !rules.options.sysctlAllowed("kernel.msgmax") ||
		!rules.options.runtimes["runsc"] || !rules.options.cgroupParents["/tenants"] || !rules.options.oomProtection {
		t.Fatalf("rules %+v, problems %q", rules, problems)
	}
}

func TestResolveHostPath(t *testing.T) {
	h := newPolicyHost(t)
	at := func(rel string) string { return filepath.Join(h.root, rel) }
	for source, want := range map[string]string{
		at("var/run/docker.sock"):                 h.runSock,
		h.root + "/var/run/../run/docker.sock":    h.runSock,
		h.root + "/plain/sub-link/../docker.sock": h.runSock,
		h.root + "/plain/store-link/a/../b":       at("var/lib/docker/b"),
		at("plain/dangling/x"):                    at("var/lib/docker/not-yet/x"),
		h.root + "/plain//./":                     h.plain,
		"/":                                       "/",
	} {
		got, err := resolveHostPath(source)
		if err != nil || got != want {
			t.Errorf("resolveHostPath(%q) = %q, %v; want %q", source, got, err, want)
		}
	}
	if _, err := resolveHostPath(at("plain/loop-a")); err == nil {
		t.Error("a symlink loop resolved")
	}
}

// FuzzAdmissionHostPaths binds arbitrary paths on the fake host and checks
// every admitted one against an independent oracle, the standard library's
// filepath.EvalSymlinks: where the path exists, what it really is must not
// be, lie inside or contain a protected path, unless it is in the sandbox.
func FuzzAdmissionHostPaths(f *testing.F) {
	h := newPolicyHost(f)
	for _, seed := range []string{"plain", "plain/sock-link", "plain/sub-link/../docker.sock", "var/run/docker.sock/", "tmp/../var/run",
		"plain/store-link/volumes", "plain/dangling", "mesos/slaves", "var/../etc", "./plain/../plain/other-sandbox/../../../mesos",
		"mesos/slaves/agent-1/frameworks/fw-1/executors/ex-1/runs/run-1/evil/volumes", "run/sub/../../run/./docker.sock", "plain/loop-a/x"} {
		f.Add(seed)
	}
	var protectedReal []string
	for _, root := range h.protected {
		if root.selfOnly {
			continue
		}
		if real, err := filepath.EvalSymlinks(root.path); err == nil {
			protectedReal = append(protectedReal, real)
		}
	}
	for _, extra := range []string{h.workDir, filepath.Join(h.root, "custom/docker.sock")} {
		protectedReal = append(protectedReal, extra)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if strings.ContainsAny(rel, ":\x00,") {
			return // not a path a bind can carry
		}
		source := h.root + "/" + rel
		in := h.input()
		bind(source)(&in)
		if admit(in) != nil {
			return
		}
		real, err := filepath.EvalSymlinks(source)
		if err != nil {
			return // does not exist (yet): nothing for the oracle to compare
		}
		if within(real, h.sandbox) {
			return
		}
		if real == "/" {
			t.Fatalf("%q (really /) admitted", source)
		}
		for _, protected := range protectedReal {
			if within(real, protected) || within(protected, real) {
				t.Fatalf("%q (really %s) admitted though it reaches %s", source, real, protected)
			}
		}
	})
}
