package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	log "github.com/sirupsen/logrus"
)

// envPrefix is the prefix of every executor setting: KillTaskTimeout is read
// from EXECUTOR_KILL_TASK_TIMEOUT.
const envPrefix = "EXECUTOR"

// Config holds the executor's own settings. They come from the operator's
// file and the executor's environment (the Mesos task's executor
// environment), never from the container's: see settingsEnv for who may
// set what. Defaults are those of the original sidecar-executor.
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
	// AdmissionSettings are the operator's exceptions to the admission
	// policy (policy.go); envconfig flattens them into EXECUTOR_ALLOW*.
	AdmissionSettings
	// RegistryHelperSettings run Docker credential helpers (credential_helper.go).
	RegistryHelperSettings
	// RelaySettings are the log relay's (logs_relay.go): EXECUTOR_RELAY_SYSLOG*, SYSLOG_ADDR and co.
	RelaySettings
	// OutputSettings cap the sandbox's stdout and stderr (logs_sandbox.go).
	OutputSettings
	// SeedSettings give a Sidecar task its seeds (seeds.go).
	SeedSettings
	// AWSSettings are the AWS credentials from Vault (vault_aws.go).
	AWSSettings
	// DockerHealthSettings tune the watch of Docker's HEALTHCHECK (health_docker.go).
	DockerHealthSettings
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

	// sources says who set each setting, by variable name, for the
	// start-up log.
	sources map[string]settingSource
}

// loadConfig reads and validates the EXECUTOR_* settings of the process:
// the operator's file, then the task's environment (see settingsEnv).
func loadConfig() (*Config, *settingsEnv, error) {
	env, err := loadSettingsEnv(operatorEnvPath(), upstreamEnvPath())
	if err != nil {
		return nil, env, err
	}
	cfg, err := loadConfigFrom(env)
	return cfg, env, err
}

// loadConfigFrom reads and validates the EXECUTOR_* settings of env. Each
// value is the task's, else the operator's, else the field's default tag;
// an operator-only setting ignores the task's (settingsLookup).
func loadConfigFrom(env *settingsEnv) (*Config, error) {
	cfg := Config{sources: map[string]settingSource{}}
	for _, setting := range configSettings(&cfg) {
		value, source, ok := env.settingsLookup(setting.name)
		if !ok {
			value = setting.defaultValue
		}
		cfg.sources[setting.name] = source
		if value == "" {
			continue
		}
		if err := parseSettingValue(setting.field, value); err != nil {
			return nil, describeSettingError(setting.name, source, env.operatorFileOf(setting.name), value, err)
		}
	}
	cfg.dockerRepositorySet = cfg.sources[envPrefix+"_DOCKER_REPOSITORY"] != sourceDefault
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// configSetting is one field of Config and the variable that sets it.
type configSetting struct {
	name         string
	field        reflect.Value
	defaultValue string
	fieldName    string
}

// configSettings lists the settings of cfg.
func configSettings(cfg *Config) []configSetting {
	return settingsOf(cfg)
}

// settingsOf lists the settings of the struct spec points to the way
// envconfig names them: envPrefix_<envconfig tag>, unexported and ignored
// fields skipped, and the fields of embedded structs (the admission
// policy's) as the struct's own.
func settingsOf(spec any) []configSetting {
	var settings []configSetting
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			field, structField := v.Field(i), v.Type().Field(i)
			if isTrue(structField.Tag.Get("ignored")) {
				continue
			}
			tag := structField.Tag.Get("envconfig")
			// The exported fields of an embedded struct are settings even
			// when its type is unexported, as encoding/json sees them.
			if structField.Anonymous && tag == "" && field.Kind() == reflect.Struct {
				walk(field)
				continue
			}
			if !field.CanSet() {
				continue
			}
			if tag == "" {
				tag = structField.Name
			}
			settings = append(settings, configSetting{
				name:         strings.ToUpper(envPrefix + "_" + tag),
				field:        field,
				defaultValue: structField.Tag.Get("default"),
				fieldName:    structField.Name,
			})
		}
	}
	walk(reflect.ValueOf(spec).Elem())
	return settings
}

// parseSettingValue has envconfig parse value into field, so that every
// setting keeps envconfig's syntax (base-0 integers, Go durations,
// comma-separated lists, Decoder types) wherever its value came from.
// envconfig reads values only from the process environment, which is the
// task's; so it is handed a one-field struct whose variable name is "=",
// which no environment can hold (names end at the first =), and the value
// as that field's default.
func parseSettingValue(field reflect.Value, value string) error {
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{
		Name: "Value",
		Type: field.Type(),
		Tag:  reflect.StructTag(`envconfig:"=" default:` + strconv.Quote(value)),
	}}))
	if err := envconfig.Process("", holder.Interface()); err != nil {
		return err
	}
	field.Set(holder.Elem().Field(0))
	return nil
}

// describeSettingError says which variable holds an invalid value and who
// set it (file names the operator's file), leading with what an operator
// has to fix.
func describeSettingError(name string, source settingSource, file, value string, err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("invalid executor settings: %s: %w", name, err)
	}
	shown := fmt.Sprintf("%q", value)
	if isSecretKey(name) {
		shown = redactedValue
	}
	where := ""
	if source == sourceOperator {
		where = " in " + file
	}
	return fmt.Errorf("invalid setting %s=%s%s: not a valid %s", name, shown, where, pe.TypeName)
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
	_, admissionProblems := c.AdmissionSettings.rules()
	problems = append(problems, admissionProblems...)
	problems = append(problems, c.RegistryHelperSettings.problems()...)
	problems = append(problems, c.RelaySettings.problems()...)
	problems = append(problems, c.OutputSettings.problems()...)
	problems = append(problems, c.SeedSettings.problems()...)
	problems = append(problems, c.AWSSettings.problems()...)
	problems = append(problems, c.DockerHealthSettings.problems()...)
	if len(problems) > 0 {
		return fmt.Errorf("invalid executor settings: %s", strings.Join(problems, "; "))
	}
	return nil
}

// configureLogging sets the log format and level from EXECUTOR_LOG_FORMAT
// and EXECUTOR_DEBUG alone, so that even a broken configuration is reported
// in the format asked for.
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

// logSettings writes the effective settings, one field per setting, each
// value followed by who set it: (default), (operator) or (task).
func (c *Config) logSettings() {
	log.WithFields(c.settingsFields()).Info("executor settings")
}

func (c *Config) settingsFields() log.Fields {
	fields := log.Fields{}
	for _, setting := range configSettings(c) {
		value := fmt.Sprint(setting.field.Interface())
		if isSecretKey(setting.name) && value != "" {
			value = redactedValue
		} else {
			value = redactSecretsIn(value)
		}
		source := c.sources[setting.name]
		if source == "" {
			source = sourceDefault
		}
		fields[setting.fieldName] = fmt.Sprintf("%s (%s)", value, source)
	}
	return fields
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
