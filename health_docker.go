package main

// Docker's own HEALTHCHECK as the task's health, for a task that has no
// Mesos health_check and no Sidecar (SidecarDiscover=false) but whose
// container declares one (the image's HEALTHCHECK, or a health-cmd
// parameter): its settings (DockerHealthSettings), the watcher that reads
// Docker's verdict from inspect, and the interpretation of that verdict
// (an update per change, the kill after EXECUTOR_DOCKER_HEALTH_KILL_AFTER
// of being unhealthy). Docker runs the probe and counts its retries; the
// executor only reads the result. task.go's supervise loop sends the
// updates and kills through the normal stop path.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
)

// DockerHealthSettings tune how Docker's HEALTHCHECK is watched. Both are
// task-tunable: timing and health.
type DockerHealthSettings struct {
	// DockerHealthPollInterval separates the reads of Docker's health
	// verdict; 0 takes the container's HEALTHCHECK interval (Docker's
	// default 30s when the image sets none), at least a second.
	DockerHealthPollInterval time.Duration `envconfig:"DOCKER_HEALTH_POLL_INTERVAL" default:"0s"`
	// DockerHealthKillAfter is how long the container may stay unhealthy,
	// as the executor sees it, before it is killed; "never" only reports.
	DockerHealthKillAfter dockerHealthKillAfter `envconfig:"DOCKER_HEALTH_KILL_AFTER" default:"30s"`
}

// minDockerHealthPollInterval bounds a task's chosen interval: every read
// is a call on the Docker daemon the host's tasks share.
const minDockerHealthPollInterval = 100 * time.Millisecond

// defaultDockerHealthInterval is Docker's interval for a HEALTHCHECK that
// sets none.
const defaultDockerHealthInterval = 30 * time.Second

// Docker's health statuses (State.Health.Status); "starting" and ""
// carry no verdict.
const (
	dockerHealthy   = "healthy"
	dockerUnhealthy = "unhealthy"
)

// dockerHealthOutputLimit is how much of the last probe's output a status
// message carries.
const dockerHealthOutputLimit = 256

// dockerHealthKillAfter is a duration, or never.
type dockerHealthKillAfter struct {
	after time.Duration
	never bool
}

// Decode implements envconfig.Decoder: a Go duration or "never".
func (k *dockerHealthKillAfter) Decode(value string) error {
	value = strings.TrimSpace(value)
	if strings.EqualFold(value, "never") {
		*k = dockerHealthKillAfter{never: true}
		return nil
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return fmt.Errorf("not a duration (like 30s) or \"never\": %q", value)
	}
	*k = dockerHealthKillAfter{after: d}
	return nil
}

func (k dockerHealthKillAfter) String() string {
	if k.never {
		return "never"
	}
	return k.after.String()
}

// problems lists what is wrong with the settings, for Config.validate.
func (s DockerHealthSettings) problems() []string {
	var problems []string
	if s.DockerHealthPollInterval != 0 && s.DockerHealthPollInterval < minDockerHealthPollInterval {
		problems = append(problems, fmt.Sprintf("%s_DOCKER_HEALTH_POLL_INTERVAL must be 0 (the HEALTHCHECK's interval) or at least %s (got %s)",
			envPrefix, minDockerHealthPollInterval, s.DockerHealthPollInterval))
	}
	if s.DockerHealthKillAfter.after < 0 {
		problems = append(problems, fmt.Sprintf("%s_DOCKER_HEALTH_KILL_AFTER must not be negative (got %s)", envPrefix, s.DockerHealthKillAfter.after))
	}
	return problems
}

// dockerHealthcheck returns the container's HEALTHCHECK, or nil when it
// has none: no test, or Docker's "NONE".
func dockerHealthcheck(container *docker.Container) *docker.HealthConfig {
	if container == nil || container.Config == nil || container.Config.Healthcheck == nil {
		return nil
	}
	hc := container.Config.Healthcheck
	if len(hc.Test) == 0 || strings.EqualFold(hc.Test[0], "NONE") {
		return nil
	}
	return hc
}

// pollInterval is how often Docker's verdict is read for hc.
func (s DockerHealthSettings) pollInterval(hc *docker.HealthConfig) time.Duration {
	if s.DockerHealthPollInterval > 0 {
		return s.DockerHealthPollInterval
	}
	interval := hc.Interval
	if interval <= 0 {
		interval = defaultDockerHealthInterval
	}
	return max(interval, time.Second)
}

// dockerHealthState interprets Docker's successive verdicts.
type dockerHealthState struct {
	killAfter dockerHealthKillAfter
	// reported is the last verdict sent: "", "healthy" or "unhealthy".
	reported string
	// unhealthySince is when the current unhealthy spell was first seen;
	// zero when the container was not seen unhealthy last time.
	unhealthySince time.Time
	secrets        []string
}

// observe takes one reading of a running container's health and returns
// what it asks for, if anything. The kill needs a reading made killAfter
// or more after the first of an unbroken series of unhealthy readings: a
// reading that failed (Docker down) breaks nothing, but decides nothing.
func (s *dockerHealthState) observe(health docker.Health, now time.Time) (healthVerdict, bool) {
	switch health.Status {
	case dockerHealthy:
		s.unhealthySince = time.Time{}
		if s.reported == dockerHealthy {
			return healthVerdict{}, false
		}
		s.reported = dockerHealthy
		return healthVerdict{healthy: true, update: true, message: "Docker HEALTHCHECK passed"}, true
	case dockerUnhealthy:
		v := healthVerdict{output: s.lastOutput(health)}
		probe := describeDockerProbe(health, v.output)
		if s.reported != dockerUnhealthy {
			s.reported = dockerUnhealthy
			v.update = true
			v.message = fmt.Sprintf("Docker HEALTHCHECK failed %d times in a row: %s", health.FailingStreak, probe)
		}
		if s.unhealthySince.IsZero() {
			s.unhealthySince = now
		}
		if !s.killAfter.never && now.Sub(s.unhealthySince) >= s.killAfter.after {
			v.kill = true
			v.message = fmt.Sprintf("Docker HEALTHCHECK failed: unhealthy for %s (EXECUTOR_DOCKER_HEALTH_KILL_AFTER=%s), %d failures in a row: %s",
				now.Sub(s.unhealthySince).Round(time.Millisecond), s.killAfter, health.FailingStreak, probe)
		}
		return v, v.update || v.kill
	default:
		// "starting" (also after a daemon restart) or no verdict: the
		// spell, if any, is no longer known to be unbroken.
		s.unhealthySince = time.Time{}
		return healthVerdict{}, false
	}
}

// lastOutput is the latest probe's output, redacted, its end kept.
func (s *dockerHealthState) lastOutput(health docker.Health) string {
	if len(health.Log) == 0 {
		return ""
	}
	output := strings.TrimSpace(health.Log[len(health.Log)-1].Output)
	cut := false
	if len(output) > dockerHealthOutputLimit {
		output, cut = output[len(output)-dockerHealthOutputLimit:], true
	}
	output = strings.Join(strings.Fields(redactOutput(output, s.secrets)), " ")
	if cut {
		output = "…" + output
	}
	return output
}

// describeDockerProbe says how the latest probe ended.
func describeDockerProbe(health docker.Health, output string) string {
	if len(health.Log) == 0 {
		return "no probe result recorded"
	}
	last := health.Log[len(health.Log)-1]
	text := fmt.Sprintf("last probe exited with status %d", last.ExitCode)
	if last.ExitCode < 0 {
		// Docker's own failure to run the probe (a timeout): the
		// output says what happened.
		text = "last probe did not complete"
	}
	if output == "" {
		return text + " (no output)"
	}
	return text + ": " + output
}

// dockerHealthWatch reads Docker's verdict on the container in the
// background; verdicts is nil when it is not watched.
type dockerHealthWatch struct {
	verdicts chan healthVerdict
	cancel   context.CancelFunc
	done     chan struct{}
}

// stop ends the watch and waits for it; safe to call many times.
func (w *dockerHealthWatch) stop() {
	w.cancel()
	<-w.done
}

// watchDockerHealth starts watching Docker's HEALTHCHECK verdict when it is
// the task's only health source: no Mesos health_check and no Sidecar
// (sidecarOff). The HEALTHCHECK is read from the config of the container
// as the launch's inspect answered.
func (t *taskRunner) watchDockerHealth(container *docker.Container, sidecarOff bool, logger *log.Entry) *dockerHealthWatch {
	w := &dockerHealthWatch{cancel: func() {}, done: make(chan struct{})}
	if t.info.HealthCheck != nil || !sidecarOff || t.deps.settings == nil {
		close(w.done)
		return w
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.verdicts = make(chan healthVerdict, 1)
	settings := t.deps.settings.DockerHealthSettings
	secrets := t.containerSecrets()
	go func() {
		defer close(w.done)
		hc := dockerHealthcheck(container)
		if hc == nil {
			return
		}
		state := &dockerHealthState{killAfter: settings.DockerHealthKillAfter, secrets: secrets}
		interval := settings.pollInterval(hc)
		logger.WithFields(log.Fields{"healthcheck": strings.Join(hc.Test, " "), "poll_interval": interval.String(),
			"kill_after": settings.DockerHealthKillAfter.String()}).Info("watching Docker's HEALTHCHECK: no Mesos health check and SidecarDiscover=false")
		t.pollDockerHealth(ctx, container.ID, interval, state, logger, w.verdicts)
	}()
	return w
}

// pollDockerHealth reads the container's health every interval and hands
// on what the readings ask for, until ctx ends, the kill is asked for or
// the container is gone. A failed reading is no verdict: Docker being away
// says nothing about the container.
func (t *taskRunner) pollDockerHealth(ctx context.Context, id string, interval time.Duration, state *dockerHealthState,
	logger *log.Entry, verdicts chan<- healthVerdict) {
	failing := false
	for sleepContext(ctx, interval) {
		container, err := t.deps.docker.inspectContainer(ctx, id)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var missing *docker.NoSuchContainer
			if errors.As(err, &missing) {
				return
			}
			if !failing {
				logger.WithError(err).Warn("could not read Docker's health verdict; no verdict until Docker answers")
				failing = true
			}
			continue
		}
		if failing {
			logger.Info("Docker answers again; reading its health verdict")
			failing = false
		}
		if !container.State.Running || container.State.Health.Status == "" {
			continue
		}
		verdict, ok := state.observe(container.State.Health, time.Now())
		if !ok {
			continue
		}
		entry := logger.WithFields(log.Fields{"healthy": verdict.healthy, "failing_streak": container.State.Health.FailingStreak})
		switch {
		case verdict.healthy:
			entry.Info(verdict.message)
		default:
			entry.WithField("output_tail", verdict.output).Warn(verdict.message)
		}
		select {
		case verdicts <- verdict:
		case <-ctx.Done():
			return
		}
		if verdict.kill {
			return
		}
	}
}
