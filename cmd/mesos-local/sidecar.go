package main

import (
	"context"
	"slices"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

const (
	// taskIDLabel is the label the executor puts on the task's container.
	taskIDLabel = "sidecar-executor.task-id"
	// discoverLabel set to false keeps a container out of Sidecar.
	discoverLabel = "SidecarDiscover"
)

const (
	containerPollInterval = 200 * time.Millisecond
	dockerCallTimeout     = 5 * time.Second
)

// embeddedSidecar plays the Sidecar of this machine for one task: it lists
// the task's container as a service once Docker shows it, ALIVE, and
// UNHEALTHY from unhealthyAfter later when that is set.
type embeddedSidecar struct {
	server         *sidecartest.Server
	host           string // its own Hostname and the Servers key of the service
	docker         *docker.Client
	taskID         string
	serviceName    string
	image          string
	ports          []publishedPort
	unhealthyAfter time.Duration
	say            func(event, format string, args ...any)
}

// run watches Docker until ctx ends.
func (s *embeddedSidecar) run(ctx context.Context) {
	container, ok := s.waitForContainer(ctx)
	if !ok {
		return
	}
	id12 := container.ID[:min(12, len(container.ID))]
	if strings.EqualFold(container.Labels[discoverLabel], "false") {
		// A real Sidecar ignores such containers, and so does the
		// executor's health watching.
		s.say("sidecar", "container %s has the label %s=false: not listed", id12, discoverLabel)
		return
	}
	// Said before it is served: the executor cannot report what it saw
	// before the line that explains it is printed.
	s.say("sidecar", "service %s, container %s: ALIVE on host %s", s.serviceName, id12, s.host)
	s.server.SetService(s.host, id12, sidecartest.StatusAlive,
		sidecartest.WithName(s.serviceName), sidecartest.WithImage(s.image), sidecartest.WithPorts(s.sidecarPorts()...))
	if s.unhealthyAfter <= 0 {
		return
	}
	timer := time.NewTimer(s.unhealthyAfter)
	defer timer.Stop()
	select {
	case <-timer.C:
		s.say("sidecar", "service %s, container %s: UNHEALTHY (-unhealthy-after %s)", s.serviceName, id12, s.unhealthyAfter)
		s.server.SetService(s.host, id12, sidecartest.StatusUnhealthy,
			sidecartest.WithName(s.serviceName), sidecartest.WithImage(s.image), sidecartest.WithPorts(s.sidecarPorts()...))
	case <-ctx.Done():
	}
}

// waitForContainer polls Docker for the running container labelled with
// the task ID (Sidecar, too, lists running containers only). Docker trouble is reported once and polling goes on: the executor
// reports it to the agent too.
func (s *embeddedSidecar) waitForContainer(ctx context.Context) (docker.APIContainers, bool) {
	ticker := time.NewTicker(containerPollInterval)
	defer ticker.Stop()
	reported := false
	for {
		callCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		containers, err := s.docker.ListContainers(docker.ListContainersOptions{
			Filters: map[string][]string{"label": {taskIDLabel + "=" + s.taskID}},
			Context: callCtx,
		})
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !reported:
			s.say("sidecar", "cannot list the task's container through Docker: %v", err)
			reported = true
		case err == nil && len(containers) > 0:
			return containers[0], true
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return docker.APIContainers{}, false
		}
	}
}

func (s *embeddedSidecar) sidecarPorts() []sidecartest.Port {
	var ports []sidecartest.Port
	for _, p := range s.ports {
		for _, protocol := range []string{"tcp", "udp"} {
			if slices.Contains(strings.Split(p.protocols, ","), protocol) {
				ports = append(ports, sidecartest.Port{Type: protocol, Port: int(p.hostPort), ServicePort: int(p.containerPort), IP: "127.0.0.1"})
			}
		}
	}
	return ports
}
