package main

// dockerspec_params_host.go owns the container.docker.parameters that touch
// the host's isolation (capabilities, namespaces, security options,
// devices, sysctls, runtime, cgroup), the network options (network,
// network-alias, mac-address) and Docker's health check overrides, plus
// the final step that applies what must come after Mesos' own options.
// Mapping only: what is admitted is decided in policy.go. No I/O.

import (
	"encoding/json"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

var hostParameterHandlers = map[string]parameterHandler{
	"cap-add":               (*specBuilder).paramCapability,
	"cap-drop":              (*specBuilder).paramCapability,
	"security-opt":          (*specBuilder).paramSecurityOpt,
	"device":                (*specBuilder).paramDevice,
	"ipc":                   (*specBuilder).paramNamespace,
	"pid":                   (*specBuilder).paramNamespace,
	"uts":                   (*specBuilder).paramNamespace,
	"userns":                (*specBuilder).paramNamespace,
	"cgroupns":              (*specBuilder).paramNamespace,
	"sysctl":                (*specBuilder).paramSysctl,
	"runtime":               (*specBuilder).paramRuntime,
	"cgroup-parent":         (*specBuilder).paramCgroupParent,
	"network":               (*specBuilder).paramNetwork,
	"net":                   (*specBuilder).paramNetwork,
	"network-alias":         (*specBuilder).paramNetworkAlias,
	"mac-address":           (*specBuilder).paramMacAddress,
	"health-cmd":            (*specBuilder).paramHealth,
	"health-interval":       (*specBuilder).paramHealth,
	"health-timeout":        (*specBuilder).paramHealth,
	"health-start-period":   (*specBuilder).paramHealth,
	"health-start-interval": (*specBuilder).paramHealth,
	"health-retries":        (*specBuilder).paramHealth,
	"no-healthcheck":        (*specBuilder).paramHealth,
}

func (b *specBuilder) paramCapability(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.ContainsAny(p.value, " \t\n,") {
		return p.invalid("%q is not one capability name (give one per parameter)", p.value)
	}
	if p.key == "cap-add" {
		b.hostConfig.CapAdd = append(b.hostConfig.CapAdd, p.value)
	} else {
		b.hostConfig.CapDrop = append(b.hostConfig.CapDrop, p.value)
	}
	return nil
}

// paramSecurityOpt takes the CLI's KEY=VALUE (or the older KEY:VALUE) and a
// bare no-new-privileges. A seccomp profile must be given inline as JSON:
// the CLI would read a file named by the task from the agent's disk, which
// the executor does not do for a task.
func (b *specBuilder) paramSecurityOpt(p parameter) error {
	option := p.value
	if option == "no-new-privileges" {
		option = "no-new-privileges=true"
	}
	key, value, found := strings.Cut(option, "=")
	if !found {
		key, value, found = strings.Cut(option, ":")
	}
	if !found || key == "" {
		return p.invalid("%q is not KEY=VALUE (label=…, apparmor=…, seccomp=…, no-new-privileges[=true])", p.value)
	}
	if strings.EqualFold(key, "seccomp") {
		switch trimmed := strings.TrimSpace(value); {
		case trimmed == "unconfined" || trimmed == "builtin":
		case strings.HasPrefix(trimmed, "{"):
			if !json.Valid([]byte(trimmed)) {
				return p.invalid("the inline seccomp profile is not valid JSON")
			}
			option = "seccomp=" + trimmed
		default:
			return p.invalid("seccomp=%q names a file; this executor reads no host file named by a task: give the profile inline as JSON (seccomp={...}), builtin or unconfined", value)
		}
	}
	b.hostConfig.SecurityOpt = append(b.hostConfig.SecurityOpt, option)
	return nil
}

// validDeviceMode is the CLI's test for cgroup permissions: r, w, m, each
// at most once.
func validDeviceMode(mode string) bool {
	if mode == "" || len(mode) > 3 {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// paramDevice parses HOST[:CONTAINER][:PERMISSIONS] as the CLI does.
func (b *specBuilder) paramDevice(p parameter) error {
	parts := strings.Split(p.value, ":")
	device := docker.Device{CgroupPermissions: "rwm"}
	switch len(parts) {
	case 3:
		if !validDeviceMode(parts[2]) {
			return p.invalid("%q: permissions %q are not a combination of r, w and m", p.value, parts[2])
		}
		device.CgroupPermissions = parts[2]
		device.PathInContainer = parts[1]
	case 2:
		if validDeviceMode(parts[1]) {
			device.CgroupPermissions = parts[1]
		} else {
			device.PathInContainer = parts[1]
		}
	case 1:
	default:
		return p.invalid("%q is not HOST_PATH[:CONTAINER_PATH][:PERMISSIONS]", p.value)
	}
	device.PathOnHost = parts[0]
	if device.PathInContainer == "" {
		device.PathInContainer = device.PathOnHost
	}
	if !path.IsAbs(device.PathOnHost) || !path.IsAbs(device.PathInContainer) {
		return p.invalid("%q: device paths must be absolute", p.value)
	}
	b.hostConfig.Devices = append(b.hostConfig.Devices, device)
	return nil
}

// namespaceModes lists the values each namespace flag takes; container:
// prefixes are accepted where Docker accepts them.
var namespaceModes = map[string]struct {
	modes     []string
	container bool
}{
	"ipc":      {[]string{"none", "private", "shareable", "host"}, true},
	"pid":      {[]string{"host"}, true},
	"uts":      {[]string{"host"}, false},
	"userns":   {[]string{"host"}, false},
	"cgroupns": {[]string{"host", "private"}, false},
}

func (b *specBuilder) paramNamespace(p parameter) error {
	spec := namespaceModes[p.key]
	valid := false
	for _, mode := range spec.modes {
		valid = valid || p.value == mode
	}
	if target, ok := strings.CutPrefix(p.value, "container:"); ok && spec.container && target != "" {
		valid = true
	}
	if !valid {
		accepted := strings.Join(spec.modes, ", ")
		if spec.container {
			accepted += ", container:<name|id>"
		}
		return p.invalid("%q is not a %s mode (accepted: %s)", p.value, p.key, accepted)
	}
	switch p.key {
	case "ipc":
		b.hostConfig.IpcMode = p.value
	case "pid":
		b.hostConfig.PidMode = p.value
	case "uts":
		b.hostConfig.UTSMode = p.value
	case "userns":
		b.hostConfig.UsernsMode = p.value
	case "cgroupns":
		b.hostConfig.CgroupnsMode = p.value
	}
	return nil
}

// sysctlNamePattern is a kernel parameter name in dotted or slashed form.
var sysctlNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_]+([./][a-zA-Z0-9_*-]+)+$`)

func (b *specBuilder) paramSysctl(p parameter) error {
	name, value, err := p.keyValue("NAME=VALUE (e.g. net.ipv4.ip_unprivileged_port_start=0)")
	if err != nil {
		return err
	}
	if !sysctlNamePattern.MatchString(name) {
		return p.invalid("%q is not a kernel parameter name", name)
	}
	if b.hostConfig.Sysctls == nil {
		b.hostConfig.Sysctls = map[string]string{}
	}
	b.hostConfig.Sysctls[strings.ReplaceAll(name, "/", ".")] = value
	return nil
}

// runtimeNamePattern is what a Docker runtime name looks like.
var runtimeNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (b *specBuilder) paramRuntime(p parameter) error {
	if !runtimeNamePattern.MatchString(p.value) {
		return p.invalid("%q is not a runtime name", p.value)
	}
	b.hostConfig.Runtime = p.value
	return nil
}

func (b *specBuilder) paramCgroupParent(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.Contains("/"+p.value+"/", "/../") {
		return p.invalid("%q contains a '..' element", p.value)
	}
	b.hostConfig.CgroupParent = p.value
	return nil
}

// paramNetwork replaces the network container.docker.network chose, as
// Mesos lets the first net or network parameter replace its own --net.
func (b *specBuilder) paramNetwork(p parameter) error {
	if b.networkParameter != nil {
		return p.invalid("a second network parameter (the first is %s); give one network", b.networkParameter.field)
	}
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.ContainsAny(p.value, " \t\n,") {
		return p.invalid("%q is not one network name", p.value)
	}
	b.networkParameter = &p
	return nil
}

func (b *specBuilder) paramNetworkAlias(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.ContainsAny(p.value, " \t\n,") {
		return p.invalid("%q is not one alias", p.value)
	}
	b.networkAliases = append(b.networkAliases, p)
	return nil
}

func (b *specBuilder) paramMacAddress(p parameter) error {
	mac, err := net.ParseMAC(p.value)
	if err != nil || len(mac) != 6 {
		return p.invalid("%q is not a MAC address such as 92:d0:c6:0a:29:33", p.value)
	}
	b.macAddress = mac.String()
	return nil
}

// paramHealth maps the HEALTHCHECK overrides into Config.Healthcheck.
func (b *specBuilder) paramHealth(p parameter) error {
	if b.config.Healthcheck == nil {
		b.config.Healthcheck = &docker.HealthConfig{}
	}
	health := b.config.Healthcheck
	duration := func() (time.Duration, error) {
		d, err := time.ParseDuration(p.value)
		if err != nil || d < 0 {
			return 0, p.invalid("%q is not a duration such as 30s or 1m30s", p.value)
		}
		if d > 0 && d < time.Millisecond {
			return 0, p.invalid("%q is below Docker's minimum of 1ms", p.value)
		}
		return d, nil
	}
	var err error
	switch p.key {
	case "health-cmd":
		if err := p.nonEmpty(); err != nil {
			return err
		}
		health.Test = []string{"CMD-SHELL", p.value}
	case "health-interval":
		health.Interval, err = duration()
	case "health-timeout":
		health.Timeout, err = duration()
	case "health-start-period":
		health.StartPeriod, err = duration()
	case "health-start-interval":
		health.StartInterval, err = duration()
	case "health-retries":
		retries, parseErr := strconv.Atoi(p.value)
		if parseErr != nil || retries < 0 {
			return p.invalid("%q is not a number of retries", p.value)
		}
		health.Retries = retries
	case "no-healthcheck":
		disable, parseErr := p.boolValue()
		if parseErr != nil {
			return parseErr
		}
		if disable {
			b.noHealthcheck = &p
		} else {
			b.noHealthcheck = nil
		}
		return nil
	}
	if err != nil {
		return err
	}
	b.healthOverride = &p
	return nil
}

// applyParameterOverrides is the last mapping step: parameters that come
// after Mesos' own options on its command line, and so win over what the
// TaskInfo's other fields set, are applied here, then checked together.
func (b *specBuilder) applyParameterOverrides() error {
	if b.entrypointParameter != nil {
		b.config.Entrypoint = b.entrypointParameter
	}
	if err := b.applyResourceParameters(); err != nil {
		return err
	}
	if len(b.exposedPorts) > 0 {
		if b.config.ExposedPorts == nil {
			b.config.ExposedPorts = map[docker.Port]struct{}{}
		}
		for port := range b.exposedPorts {
			b.config.ExposedPorts[docker.Port(port)] = struct{}{}
		}
	}
	if b.noHealthcheck != nil {
		if b.healthOverride != nil {
			return b.noHealthcheck.invalid("no-healthcheck conflicts with %s", b.healthOverride.field)
		}
		b.config.Healthcheck = &docker.HealthConfig{Test: []string{"NONE"}}
	}
	return nil
}

// applyNetworkParameters runs at the end of applyNetwork: the network
// parameter replaces the mode, then hostname, aliases and MAC address are
// checked against the final network.
func (b *specBuilder) applyNetworkParameters() error {
	if p := b.networkParameter; p != nil {
		switch name := p.value; {
		case name == "host" || name == "none":
			b.hostConfig.NetworkMode = name
			b.networkingConfig = nil
		case name == "bridge" || name == "default":
			b.hostConfig.NetworkMode = "bridge"
			b.networkingConfig = nil
		case strings.HasPrefix(name, "container:"):
			// The admission policy judges another container's namespace.
			b.hostConfig.NetworkMode = name
			b.networkingConfig = nil
		default:
			b.hostConfig.NetworkMode = name
			b.networkingConfig = &docker.NetworkingConfig{
				EndpointsConfig: map[string]*docker.EndpointConfig{name: {}},
			}
		}
		mode := b.hostConfig.NetworkMode
		if len(b.dockerInfo.PortMappings) > 0 && (mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:")) {
			return p.invalid("network %q cannot carry container.docker.port_mappings; port mappings need a bridge or user-defined network", mode)
		}
	}
	mode := b.hostConfig.NetworkMode
	if h := b.hostnameParameter; h.field != "" {
		if mode == "host" || strings.HasPrefix(mode, "container:") {
			return h.invalid("a hostname cannot be set with %s networking (the container shares that network's hostname)", mode)
		}
		b.config.Hostname = h.value
	} else if (mode == "host" || strings.HasPrefix(mode, "container:")) && b.config.Hostname != "" && b.networkParameter != nil {
		return b.networkParameter.invalid("container.hostname %q cannot be set with %s networking", b.config.Hostname, mode)
	}
	userNetwork := b.networkingConfig != nil && len(b.networkingConfig.EndpointsConfig) == 1
	if len(b.networkAliases) > 0 {
		if !userNetwork {
			return b.networkAliases[0].invalid("network aliases need a user-defined network (container.docker.network USER, or a network parameter naming one), not %s", mode)
		}
		for _, endpoint := range b.networkingConfig.EndpointsConfig {
			for _, alias := range b.networkAliases {
				endpoint.Aliases = append(endpoint.Aliases, alias.value)
			}
		}
	}
	if b.macAddress != "" {
		if mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:") {
			return taskErrorf("container.docker.parameters: mac-address cannot be set with %s networking", mode)
		}
		// Engines before API 1.44 read Config.MacAddress; later ones read
		// the endpoint's. Both carry the same value.
		b.config.MacAddress = b.macAddress
		if userNetwork {
			for _, endpoint := range b.networkingConfig.EndpointsConfig {
				endpoint.MacAddress = b.macAddress
			}
		}
	}
	return nil
}
