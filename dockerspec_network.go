package main

// dockerspec_network.go owns the container's network (HOST, BRIDGE, NONE,
// USER), its hostname and its port mappings, checked against the task's
// ports resources. No I/O.

import (
	"fmt"
	"strconv"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// reservedNetworkNames are Docker network modes that a USER network must not
// name: they would bypass the checks made for HOST and NONE networks.
var reservedNetworkNames = map[string]bool{"host": true, "bridge": true, "none": true, "default": true}

func (b *specBuilder) applyNetwork() error {
	network := b.dockerInfo.GetNetwork()
	switch network {
	case mesos.ContainerInfo_DockerInfo_HOST:
		b.hostConfig.NetworkMode = "host"
	case mesos.ContainerInfo_DockerInfo_BRIDGE:
		b.hostConfig.NetworkMode = "bridge"
	case mesos.ContainerInfo_DockerInfo_NONE:
		b.hostConfig.NetworkMode = "none"
	case mesos.ContainerInfo_DockerInfo_USER:
		networkInfos := b.container.NetworkInfos
		if len(networkInfos) != 1 {
			return taskErrorf("container.network_infos: a USER network needs exactly one network_info naming the Docker network, found %d", len(networkInfos))
		}
		name := networkInfos[0].GetName()
		switch {
		case name == "":
			return taskErrorf("container.network_infos[0].name is empty; a USER network needs the name of the Docker network")
		case strings.ContainsRune(name, 0):
			return taskErrorf("container.network_infos[0].name %q contains a NUL byte", name)
		case reservedNetworkNames[name] || strings.HasPrefix(name, "container:"):
			return taskErrorf("container.network_infos[0].name %q is a Docker network mode, not a user-defined network; use container.docker.network HOST, BRIDGE or NONE instead", name)
		}
		b.hostConfig.NetworkMode = name
		b.networkingConfig = &docker.NetworkingConfig{
			EndpointsConfig: map[string]*docker.EndpointConfig{name: {}},
		}
	default:
		return taskErrorf("container.docker.network %d is not one of HOST, BRIDGE, NONE, USER", int32(network))
	}
	if hostname := b.container.GetHostname(); hostname != "" {
		if network == mesos.ContainerInfo_DockerInfo_HOST {
			return taskErrorf("container.hostname %q cannot be set with HOST networking (the container shares the agent's hostname)", hostname)
		}
		if strings.ContainsRune(hostname, 0) {
			return taskErrorf("container.hostname %q contains a NUL byte", hostname)
		}
		b.config.Hostname = hostname
	}
	return b.applyNetworkParameters()
}

// portProtocols parses a port mapping's protocol: "tcp" (also when unset),
// "udp", or both separated by a comma, in any order, case or spacing.
func portProtocols(protocol string) ([]string, bool) {
	if protocol == "" {
		return []string{"tcp"}, true
	}
	var tcp, udp bool
	for _, part := range strings.Split(protocol, ",") {
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "tcp":
			if tcp {
				return nil, false
			}
			tcp = true
		case "udp":
			if udp {
				return nil, false
			}
			udp = true
		default:
			return nil, false
		}
	}
	var protocols []string
	if tcp {
		protocols = append(protocols, "tcp")
	}
	if udp {
		protocols = append(protocols, "udp")
	}
	return protocols, true
}

// taskPortRanges returns the ranges of the task's "ports" resources and
// whether it has any.
func taskPortRanges(taskResources []mesos.Resource) (mesos.Ranges, bool) {
	var ranges mesos.Ranges
	found := false
	for _, resource := range taskResources {
		if resource.Name != "ports" {
			continue
		}
		found = true
		ranges = append(ranges, resource.GetRanges().GetRange()...)
	}
	return ranges, found
}

func rangesContain(ranges mesos.Ranges, port uint64) bool {
	for _, r := range ranges {
		if r.Begin <= port && port <= r.End {
			return true
		}
	}
	return false
}

func formatRanges(ranges mesos.Ranges) string {
	parts := make([]string, 0, len(ranges))
	for _, r := range ranges {
		if r.Begin == r.End {
			parts = append(parts, strconv.FormatUint(r.Begin, 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.Begin, r.End))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (b *specBuilder) applyPortMappings() error {
	mappings := b.dockerInfo.PortMappings
	if len(mappings) == 0 {
		return nil
	}
	switch network := b.dockerInfo.GetNetwork(); network {
	case mesos.ContainerInfo_DockerInfo_HOST, mesos.ContainerInfo_DockerInfo_NONE:
		return taskErrorf("container.docker.port_mappings: port mappings are only supported for bridge and user-defined networks, not %s", network)
	}
	portRanges, havePortResources := taskPortRanges(b.task.Resources)
	type portKey struct {
		port     uint32
		protocol string
	}
	hostPortUsers := map[portKey]int{}
	containerPortUsers := map[portKey]int{}
	b.config.ExposedPorts = map[docker.Port]struct{}{}
	b.hostConfig.PortBindings = map[docker.Port][]docker.PortBinding{}
	for i, mapping := range mappings {
		field := fmt.Sprintf("container.docker.port_mappings[%d]", i)
		if mapping.ContainerPort == 0 || mapping.ContainerPort > 65535 {
			return taskErrorf("%s: container_port %d is not between 1 and 65535", field, mapping.ContainerPort)
		}
		if mapping.HostPort == 0 || mapping.HostPort > 65535 {
			return taskErrorf("%s: host_port %d is not between 1 and 65535 (it must be one of the task's ports resources)", field, mapping.HostPort)
		}
		protocols, ok := portProtocols(mapping.GetProtocol())
		if !ok {
			return taskErrorf(`%s: protocol %q is not one of tcp, udp, "tcp,udp"`, field, mapping.GetProtocol())
		}
		if havePortResources && !rangesContain(portRanges, uint64(mapping.HostPort)) {
			return taskErrorf("%s: host port %d is not in the task's ports resources %s", field, mapping.HostPort, formatRanges(portRanges))
		}
		for _, protocol := range protocols {
			hostKey := portKey{mapping.HostPort, protocol}
			if other, taken := hostPortUsers[hostKey]; taken {
				return taskErrorf("%s: host port %d/%s is already mapped by container.docker.port_mappings[%d]", field, mapping.HostPort, protocol, other)
			}
			hostPortUsers[hostKey] = i
			containerKey := portKey{mapping.ContainerPort, protocol}
			if other, taken := containerPortUsers[containerKey]; taken {
				return taskErrorf("%s: container port %d/%s is already mapped by container.docker.port_mappings[%d]", field, mapping.ContainerPort, protocol, other)
			}
			containerPortUsers[containerKey] = i
			port := docker.Port(fmt.Sprintf("%d/%s", mapping.ContainerPort, protocol))
			b.config.ExposedPorts[port] = struct{}{}
			b.hostConfig.PortBindings[port] = []docker.PortBinding{{HostPort: strconv.FormatUint(uint64(mapping.HostPort), 10)}}
		}
		b.portEnv = append(b.portEnv, keyValue{
			key:   fmt.Sprintf("MESOS_PORT_%d", mapping.ContainerPort),
			value: strconv.FormatUint(uint64(mapping.HostPort), 10),
		})
	}
	return nil
}
