package main

// policy_options.go is the admission policy's view of the Docker options
// beyond privileges, mounts and volume drivers: host devices, host
// namespaces, sysctls, the OCI runtime, the cgroup parent and protection
// from the OOM killer. Like policy.go it follows Kubernetes' Pod Security
// "baseline" profile and judges the final create request; each rule has a
// narrow operator setting (EXECUTOR_ALLOW*) that lifts it.

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// Setting names of the rules here, as the operator writes them.
const (
	settingAllowedDevices        = envPrefix + "_ALLOWED_DEVICES"
	settingAllowedHostNamespaces = envPrefix + "_ALLOWED_HOST_NAMESPACES"
	settingAllowedSysctls        = envPrefix + "_ALLOWED_SYSCTLS"
	settingAllowedRuntimes       = envPrefix + "_ALLOWED_RUNTIMES"
	settingAllowedCgroupParents  = envPrefix + "_ALLOWED_CGROUP_PARENTS"
	settingAllowOOMProtection    = envPrefix + "_ALLOW_OOM_PROTECTION"
)

// safeSysctls are the sysctls Kubernetes' baseline profile allows: each is
// namespaced to the container and cannot affect other tasks or the host.
// (Docker itself refuses net.* sysctls on the host network.)
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
}

// hostNamespaceFlags are the namespaces ALLOWED_HOST_NAMESPACES may name
// (the network namespace is Mesos' HOST networking, always admitted).
var hostNamespaceFlags = []string{"pid", "ipc", "uts", "userns", "cgroupns"}

// defaultRuntime is the runtime Docker uses when none is named.
const defaultRuntime = "runc"

// optionRules are the parsed settings of the rules here.
type optionRules struct {
	devices        map[string]bool // host device paths
	hostNamespaces map[string]bool // flags from hostNamespaceFlags
	sysctls        []string        // names, or prefixes ending in '*'
	runtimes       map[string]bool
	cgroupParents  map[string]bool
	oomProtection  bool
}

// optionRules parses the settings of the rules here, adding a problem per
// unusable entry.
func (s AdmissionSettings) optionRules(problems *[]string) optionRules {
	rules := optionRules{
		devices:        map[string]bool{},
		hostNamespaces: map[string]bool{},
		runtimes:       map[string]bool{defaultRuntime: true},
		cgroupParents:  map[string]bool{},
		oomProtection:  s.AllowOOMProtection,
	}
	problem := func(format string, args ...any) { *problems = append(*problems, fmt.Sprintf(format, args...)) }
	for _, item := range splitList(s.AllowedDevices) {
		if !path.IsAbs(item) || path.Clean(item) != item || strings.ContainsAny(item, ":\x00") {
			problem("%s: %q is not a clean absolute device path such as /dev/fuse", settingAllowedDevices, item)
			continue
		}
		rules.devices[item] = true
	}
	for _, item := range splitList(s.AllowedHostNamespaces) {
		if !slices.Contains(hostNamespaceFlags, item) {
			problem("%s: %q is not one of %s", settingAllowedHostNamespaces, item, strings.Join(hostNamespaceFlags, ", "))
			continue
		}
		rules.hostNamespaces[item] = true
	}
	for _, item := range splitList(s.AllowedSysctls) {
		name := strings.TrimSuffix(item, "*")
		if strings.Contains(name, "*") || (name != "" && !sysctlNamePattern.MatchString(strings.TrimSuffix(name, "."))) {
			problem("%s: %q is not a sysctl name or a prefix ending in * (such as kernel.msg*)", settingAllowedSysctls, item)
			continue
		}
		rules.sysctls = append(rules.sysctls, item)
	}
	for _, item := range splitList(s.AllowedRuntimes) {
		if !runtimeNamePattern.MatchString(item) {
			problem("%s: %q is not a runtime name", settingAllowedRuntimes, item)
			continue
		}
		rules.runtimes[item] = true
	}
	for _, item := range splitList(s.AllowedCgroupParents) {
		if strings.ContainsAny(item, " \t\x00") {
			problem("%s: %q is not a cgroup path", settingAllowedCgroupParents, item)
			continue
		}
		rules.cgroupParents[item] = true
	}
	return rules
}

// sysctlAllowed says whether the baseline or the operator admits a sysctl.
func (r optionRules) sysctlAllowed(name string) bool {
	if slices.Contains(safeSysctls, name) {
		return true
	}
	for _, allowed := range r.sysctls {
		if prefix, isPrefix := strings.CutSuffix(allowed, "*"); isPrefix {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == allowed {
			return true
		}
	}
	return false
}

// judgeOptions applies the rules of this file.
func (j *judge) judgeOptions() {
	rules := j.rules.options
	for _, device := range j.host.Devices {
		field := fmt.Sprintf("parameter device=%s:%s", device.PathOnHost, device.PathInContainer)
		if !rules.devices[device.PathOnHost] {
			j.refuse(field, "gives the container a host device", settingAllowedDevices+"="+device.PathOnHost)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(j.host.Sysctls)) {
		if !rules.sysctlAllowed(name) {
			j.refuse(fmt.Sprintf("parameter sysctl=%s=%s", name, j.host.Sysctls[name]),
				"sets a kernel parameter outside the baseline's safe set ("+strings.Join(safeSysctls, ", ")+")", settingAllowedSysctls+"="+name)
		}
	}
	if runtime := j.host.Runtime; runtime != "" && !rules.runtimes[runtime] {
		j.refuse("parameter runtime="+runtime, "runs the container with an OCI runtime other than runc", settingAllowedRuntimes+"="+runtime)
	}
	if parent := j.host.CgroupParent; parent != "" && !rules.cgroupParents[parent] {
		j.refuse("parameter cgroup-parent="+parent, "places the container outside the cgroup Docker gives it (and outside its limits)", settingAllowedCgroupParents+"="+parent)
	}
	if !rules.oomProtection {
		if j.host.OomScoreAdj < 0 {
			j.refuse(fmt.Sprintf("parameter oom-score-adj=%d", j.host.OomScoreAdj), "makes the container less likely than the host's own processes to be killed when memory runs out", settingAllowOOMProtection+"=true")
		}
		if j.host.OOMKillDisable != nil && *j.host.OOMKillDisable {
			j.refuse("parameter oom-kill-disable=true", "keeps the OOM killer away from the container, so the host's own processes die instead", settingAllowOOMProtection+"=true")
		}
	}
}

// judgeHostNamespace refuses sharing one of the host's namespaces unless the
// operator lists it.
func (j *judge) judgeHostNamespace(flag, field, what string) {
	if !j.rules.options.hostNamespaces[flag] {
		j.refuse(field, fmt.Sprintf("shares the host's %s namespace", what), settingAllowedHostNamespaces+"="+flag)
	}
}
