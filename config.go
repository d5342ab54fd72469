package main

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	log "github.com/sirupsen/logrus"
)

// envPrefix is the prefix of every executor setting: KillTaskTimeout is read
// from EXECUTOR_KILL_TASK_TIMEOUT.
const envPrefix = "EXECUTOR"

// Config holds the executor's own settings. They come from the executor's
// environment (the Mesos task's executor environment), never from the
// container's. Defaults are those of the original sidecar-executor.
type Config struct {
	// KillTaskTimeout is whole seconds between the stop signal and SIGKILL.
	KillTaskTimeout uint `envconfig:"KILL_TASK_TIMEOUT" default:"5"`
	// HttpTimeout bounds every request to Sidecar.
	HttpTimeout time.Duration `envconfig:"HTTP_TIMEOUT" default:"2s"`
	// SidecarRetryCount is how many times a failed Sidecar request is retried.
	SidecarRetryCount int `envconfig:"SIDECAR_RETRY_COUNT" default:"5"`
	// SidecarRetryDelay separates those retries.
	SidecarRetryDelay time.Duration `envconfig:"SIDECAR_RETRY_DELAY" default:"3s"`
	// SidecarUrl is Sidecar's state.json. The per-service route is derived
	// from it: <SidecarUrl without /state.json and /api>/api/services/<name>.json
	// (serviceRouteURL).
	SidecarUrl string `envconfig:"SIDECAR_URL" default:"http://localhost:7777/state.json"`
	// SidecarBackoff delays the first health check after TASK_RUNNING.
	SidecarBackoff time.Duration `envconfig:"SIDECAR_BACKOFF" default:"1m5s"`
	// SidecarPollInterval separates health checks.
	SidecarPollInterval time.Duration `envconfig:"SIDECAR_POLL_INTERVAL" default:"30s"`
	// SidecarMaxFails is how many consecutive affirmed unhealthy checks fail the task.
	SidecarMaxFails int `envconfig:"SIDECAR_MAX_FAILS" default:"3"`
	// SidecarDrainingDuration is how long a service is left draining in
	// Sidecar before its container is stopped; 0 disables draining.
	SidecarDrainingDuration time.Duration `envconfig:"SIDECAR_DRAINING_DURATION" default:"10s"`
	// DockerRepository selects the registry credentials used when the image
	// names no registry of its own.
	DockerRepository string `envconfig:"DOCKER_REPOSITORY" default:"https://index.docker.io/v1/"`
	// dockerRepositorySet records that the operator chose DockerRepository.
	// Only then are its credentials sent to an image's registry that has
	// none of its own: the default must never hand Docker Hub credentials
	// to whatever registry a task names.
	dockerRepositorySet bool
	// PullRetries is how many times a failed image pull is tried again.
	// Authentication and not-found failures are never retried.
	PullRetries int `envconfig:"PULL_RETRIES" default:"3"`
	// PullBackoff is the wait before the first retry of a pull; it doubles
	// with every retry, up to a minute.
	PullBackoff time.Duration `envconfig:"PULL_BACKOFF" default:"2s"`
	// PullTimeout bounds a whole pull, retries and waits included.
	PullTimeout time.Duration `envconfig:"PULL_TIMEOUT" default:"10m"`
	// PullInactivityTimeout cuts a pull attempt that has made no progress
	// for this long (a stalled registry); the attempt is then retried.
	PullInactivityTimeout time.Duration `envconfig:"PULL_INACTIVITY_TIMEOUT" default:"1m"`
	// PullProgressInterval is how often the progress of a pull is logged.
	PullProgressInterval time.Duration `envconfig:"PULL_PROGRESS_INTERVAL" default:"5s"`
	// LogsSince is how far back container logs are copied on failure or kill.
	LogsSince time.Duration `envconfig:"LOGS_SINCE" default:"3m"`
	// ForceCpuLimit applies the task's cpus resource to the container.
	ForceCpuLimit bool `envconfig:"FORCE_CPU_LIMIT" default:"false"`
	// ForceMemoryLimit applies the task's mem resource to the container.
	ForceMemoryLimit bool `envconfig:"FORCE_MEMORY_LIMIT" default:"false"`
	// UseCpuShares limits CPU with relative shares instead of a CFS quota.
	UseCpuShares bool `envconfig:"USE_CPU_SHARES" default:"false"`
	// AllowPrivileged lets DockerInfo.privileged through; otherwise a task
	// asking for it fails.
	AllowPrivileged bool `envconfig:"ALLOW_PRIVILEGED" default:"false"`
	// DockerUnreachableTimeout is how long Docker may stay unreachable
	// while a task runs before the task is failed. Shorter outages (a
	// daemon restart with live-restore) are ridden out.
	DockerUnreachableTimeout time.Duration `envconfig:"DOCKER_UNREACHABLE_TIMEOUT" default:"5m"`
	// AckTimeout bounds the wait for the agent to acknowledge the terminal
	// update before the executor exits anyway.
	AckTimeout time.Duration `envconfig:"ACK_TIMEOUT" default:"1m"`
	// Debug turns on debug logging and dumps of TaskInfo and container config.
	Debug bool `envconfig:"DEBUG" default:"false"`
	// LogFormat is "text" or "json".
	LogFormat string `envconfig:"LOG_FORMAT" default:"text"`
}

// loadConfig reads and validates the EXECUTOR_* settings from the process
// environment.
func loadConfig() (*Config, error) {
	// A variable set to the empty string means the default: task
	// definitions often carry "EXECUTOR_X=" placeholders.
	for _, kv := range os.Environ() {
		if name, value, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix+"_") && value == "" {
			os.Unsetenv(name)
		}
	}
	var cfg Config
	if err := envconfig.Process(envPrefix, &cfg); err != nil {
		return nil, describeEnvconfigError(err)
	}
	_, cfg.dockerRepositorySet = os.LookupEnv(envPrefix + "_DOCKER_REPOSITORY")
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// describeEnvconfigError rewrites envconfig's parse error so that it leads
// with the variable an operator has to fix.
func describeEnvconfigError(err error) error {
	if pe, ok := err.(*envconfig.ParseError); ok {
		return fmt.Errorf("invalid setting %s=%q: not a valid %s", pe.KeyName, pe.Value, pe.TypeName)
	}
	return fmt.Errorf("invalid executor settings: %w", err)
}

func (c *Config) validate() error {
	var problems []string
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			problems = append(problems, fmt.Sprintf("%s_%s must be greater than zero (got %s)", envPrefix, name, d))
		}
	}
	notNegative := func(name string, d time.Duration) {
		if d < 0 {
			problems = append(problems, fmt.Sprintf("%s_%s must not be negative (got %s)", envPrefix, name, d))
		}
	}
	positive("HTTP_TIMEOUT", c.HttpTimeout)
	positive("SIDECAR_POLL_INTERVAL", c.SidecarPollInterval)
	positive("ACK_TIMEOUT", c.AckTimeout)
	positive("DOCKER_UNREACHABLE_TIMEOUT", c.DockerUnreachableTimeout)
	positive("PULL_BACKOFF", c.PullBackoff)
	positive("PULL_TIMEOUT", c.PullTimeout)
	positive("PULL_INACTIVITY_TIMEOUT", c.PullInactivityTimeout)
	positive("PULL_PROGRESS_INTERVAL", c.PullProgressInterval)
	notNegative("SIDECAR_RETRY_DELAY", c.SidecarRetryDelay)
	notNegative("SIDECAR_BACKOFF", c.SidecarBackoff)
	notNegative("SIDECAR_DRAINING_DURATION", c.SidecarDrainingDuration)
	notNegative("LOGS_SINCE", c.LogsSince)
	if c.SidecarRetryCount < 0 {
		problems = append(problems, fmt.Sprintf("%s_SIDECAR_RETRY_COUNT must not be negative (got %d)", envPrefix, c.SidecarRetryCount))
	}
	if c.PullRetries < 0 {
		problems = append(problems, fmt.Sprintf("%s_PULL_RETRIES must not be negative (got %d)", envPrefix, c.PullRetries))
	}
	if c.SidecarMaxFails < 1 {
		problems = append(problems, fmt.Sprintf("%s_SIDECAR_MAX_FAILS must be at least 1 (got %d)", envPrefix, c.SidecarMaxFails))
	}
	if u, err := url.Parse(c.SidecarUrl); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("%s_SIDECAR_URL must be an http(s) URL with a host (got %q)", envPrefix, c.SidecarUrl))
	}
	if c.DockerRepository == "" {
		problems = append(problems, fmt.Sprintf("%s_DOCKER_REPOSITORY must not be empty", envPrefix))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		problems = append(problems, fmt.Sprintf("%s_LOG_FORMAT must be \"text\" or \"json\" (got %q)", envPrefix, c.LogFormat))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid executor settings: %s", strings.Join(problems, "; "))
	}
	return nil
}

// configureLogging sets the log format and level from the environment alone,
// so that even a broken configuration is reported in the format the operator
// asked for.
func configureLogging(getenv func(string) string) {
	log.SetOutput(os.Stdout)
	if strings.EqualFold(getenv(envPrefix+"_LOG_FORMAT"), "json") {
		log.SetFormatter(&log.JSONFormatter{})
	} else {
		log.SetFormatter(&log.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	log.SetLevel(log.InfoLevel)
	if isTrue(getenv(envPrefix + "_DEBUG")) {
		log.SetLevel(log.DebugLevel)
	}
}

func isTrue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "yes", "on":
		return true
	}
	return false
}

// redactedValue is what the logs show instead of a secret.
const redactedValue = "[REDACTED]"

// secretKeyMarkers are the parts of a variable name that mark its value as a
// secret.
var secretKeyMarkers = []string{"SECRET", "PASSWORD", "TOKEN", "KEY", "CREDENTIAL", "PASSWD"}

// isSecretKey reports whether a variable's value must never be logged.
func isSecretKey(name string) bool {
	upper := strings.ToUpper(name)
	for _, marker := range secretKeyMarkers {
		if strings.Contains(upper, marker) {
			return true
		}
	}
	return false
}

// redactEnv renders KEY=VALUE pairs for logging with secret values
// replaced: those whose names mark them secret, and those named in
// alsoSecret (values resolved from Vault).
func redactEnv(env []string, alsoSecret ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if (isSecretKey(name) || slices.Contains(alsoSecret, name)) && value != "" {
			value = redactedValue
		}
		out = append(out, name+"="+value)
	}
	sort.Strings(out)
	return out
}

// executorEnvForLog selects the variables worth logging at start-up: those
// that configure Mesos, the executor, Vault and Docker.
func executorEnvForLog(environ []string) []string {
	var selected []string
	for _, kv := range environ {
		for _, prefix := range []string{"MESOS_", envPrefix + "_", "VAULT_", "DOCKER_", "SIDECAR_"} {
			if strings.HasPrefix(kv, prefix) {
				selected = append(selected, kv)
				break
			}
		}
	}
	return redactEnv(selected)
}

// logSettings writes the effective settings, one field per setting.
func (c *Config) logSettings() {
	log.WithFields(log.Fields{
		"KillTaskTimeout":          c.KillTaskTimeout,
		"HttpTimeout":              c.HttpTimeout.String(),
		"SidecarRetryCount":        c.SidecarRetryCount,
		"SidecarRetryDelay":        c.SidecarRetryDelay.String(),
		"SidecarUrl":               c.SidecarUrl,
		"SidecarBackoff":           c.SidecarBackoff.String(),
		"SidecarPollInterval":      c.SidecarPollInterval.String(),
		"SidecarMaxFails":          c.SidecarMaxFails,
		"SidecarDrainingDuration":  c.SidecarDrainingDuration.String(),
		"DockerRepository":         c.DockerRepository,
		"PullRetries":              c.PullRetries,
		"PullBackoff":              c.PullBackoff.String(),
		"PullTimeout":              c.PullTimeout.String(),
		"PullInactivityTimeout":    c.PullInactivityTimeout.String(),
		"PullProgressInterval":     c.PullProgressInterval.String(),
		"LogsSince":                c.LogsSince.String(),
		"ForceCpuLimit":            c.ForceCpuLimit,
		"ForceMemoryLimit":         c.ForceMemoryLimit,
		"UseCpuShares":             c.UseCpuShares,
		"AllowPrivileged":          c.AllowPrivileged,
		"AckTimeout":               c.AckTimeout.String(),
		"DockerUnreachableTimeout": c.DockerUnreachableTimeout.String(),
		"Debug":                    c.Debug,
		"LogFormat":                c.LogFormat,
	}).Info("executor settings")
}

// credentialFallback is the registry whose credentials serve an image whose
// own registry has none: EXECUTOR_DOCKER_REPOSITORY when the operator set
// it, else none.
func (c *Config) credentialFallback() string {
	if !c.dockerRepositorySet {
		return ""
	}
	return c.DockerRepository
}
