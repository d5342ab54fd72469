package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// testSettingsEnv is a settings view with the given operator file values
// and task environment ("K=V").
func testSettingsEnv(operator map[string]string, task ...string) *settingsEnv {
	return newSettingsEnv("/etc/sidecar-executor/environment", operator, task)
}

// mustLoadConfig loads the settings of env, failing the test on an error.
func mustLoadConfig(t *testing.T, env *settingsEnv) *Config {
	t.Helper()
	cfg, err := loadConfigFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// withoutSources drops the provenance, for comparing values.
func withoutSources(cfg *Config) Config {
	c := *cfg
	c.sources = nil
	return c
}

func TestConfigDefaultsMatchTheSeeds(t *testing.T) {
	cfg := mustLoadConfig(t, testSettingsEnv(nil))
	want := Config{
		KillTaskTimeout:          5,
		HttpTimeout:              2 * time.Second,
		SidecarRetryCount:        5,
		SidecarRetryDelay:        3 * time.Second,
		SidecarUrl:               "http://localhost:7777/state.json",
		SidecarBackoff:           time.Minute + 5*time.Second,
		SidecarPollInterval:      30 * time.Second,
		SidecarMaxFails:          3,
		SidecarDrainingDuration:  10 * time.Second,
		DockerRepository:         "https://index.docker.io/v1/",
		PullRetries:              3,
		PullBackoff:              2 * time.Second,
		PullTimeout:              10 * time.Minute,
		PullInactivityTimeout:    time.Minute,
		PullProgressInterval:     5 * time.Second,
		LogsSince:                3 * time.Minute,
		AckTimeout:               time.Minute,
		DockerUnreachableTimeout: 5 * time.Minute,
		LogFormat:                "text",
		RegistryHelperSettings:   RegistryHelperSettings{RegistryHelperTimeout: 10 * time.Second, RegistryHelperPath: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		RelaySettings:            RelaySettings{RelaySyslogStartupTime: time.Minute, SyslogAddr: "127.0.0.1:514", SyslogFormat: "json"},
		SeedSettings:             SeedSettings{MesosMasterPort: "5050"},
		OutputSettings:           OutputSettings{LogMaxSize: 10 << 20, LogRotateKeep: 3, ReadDockerLogFile: true},
		AWSSettings:              AWSSettings{AWSRoleMaxTTL: 744 * time.Hour},
		DockerHealthSettings:     DockerHealthSettings{DockerHealthKillAfter: dockerHealthKillAfter{after: 30 * time.Second}},
	}
	if !reflect.DeepEqual(withoutSources(cfg), want) {
		t.Fatalf("defaults\n got %+v\nwant %+v", *cfg, want)
	}
}

// TestConfigReadsEveryVariable sets every setting where it may be set:
// the operator-only ones in the operator's file, the others in the task's
// environment.
func TestConfigReadsEveryVariable(t *testing.T) {
	operator := map[string]string{}
	var task []string
	for name, value := range map[string]string{
		"EXECUTOR_KILL_TASK_TIMEOUT":           "12",
		"EXECUTOR_HTTP_TIMEOUT":                "750ms",
		"EXECUTOR_SIDECAR_RETRY_COUNT":         "0",
		"EXECUTOR_SIDECAR_RETRY_DELAY":         "1s",
		"EXECUTOR_SIDECAR_URL":                 "http://sidecar.local:7777/api/state.json",
		"EXECUTOR_SIDECAR_BACKOFF":             "0s",
		"EXECUTOR_SIDECAR_POLL_INTERVAL":       "5s",
		"EXECUTOR_SIDECAR_MAX_FAILS":           "7",
		"EXECUTOR_SIDECAR_DRAINING_DURATION":   "0s",
		"EXECUTOR_DOCKER_REPOSITORY":           "registry.local:5000",
		"EXECUTOR_PULL_RETRIES":                "0",
		"EXECUTOR_PULL_BACKOFF":                "250ms",
		"EXECUTOR_PULL_TIMEOUT":                "90s",
		"EXECUTOR_PULL_INACTIVITY_TIMEOUT":     "15s",
		"EXECUTOR_PULL_PROGRESS_INTERVAL":      "1s",
		"EXECUTOR_LOGS_SINCE":                  "10m",
		"EXECUTOR_FORCE_CPU_LIMIT":             "true",
		"EXECUTOR_FORCE_MEMORY_LIMIT":          "true",
		"EXECUTOR_USE_CPU_SHARES":              "true",
		"EXECUTOR_ALLOW_PRIVILEGED":            "true",
		"EXECUTOR_ACK_TIMEOUT":                 "5s",
		"EXECUTOR_DOCKER_UNREACHABLE_TIMEOUT":  "45s",
		"EXECUTOR_DEBUG":                       "true",
		"EXECUTOR_LOG_FORMAT":                  "json",
		"EXECUTOR_REGISTRY_HELPER_TIMEOUT":     "3s",
		"EXECUTOR_REGISTRY_HELPER_PATH":        "/opt/helpers",
		"EXECUTOR_REGISTRY_HELPER_ENV":         "AWS_REGION",
		"EXECUTOR_RELAY_SYSLOG":                "true",
		"EXECUTOR_RELAY_SYSLOG_STARTUP_ONLY":   "true",
		"EXECUTOR_RELAY_SYSLOG_STARTUP_TIME":   "30s",
		"EXECUTOR_SYSLOG_ADDR":                 "logs.local:5514",
		"EXECUTOR_CONTAINER_LOGS_STDOUT":       "true",
		"EXECUTOR_SEND_DOCKER_LABELS":          "ServiceName,team",
		"EXECUTOR_LOG_HOSTNAME":                "agent-7",
		"EXECUTOR_SYSLOG_FORMAT":               "rfc5424",
		"EXECUTOR_SEED_SIDECAR":                "true",
		"EXECUTOR_MESOS_MASTER_PORT":           "8080",
		"EXECUTOR_AWS_ROLE":                    "app",
		"EXECUTOR_LOG_MAX_SIZE":                "2MB",
		"EXECUTOR_LOG_ROTATE_KEEP":             "7",
		"EXECUTOR_READ_DOCKER_LOG_FILE":        "false",
		"EXECUTOR_AWS_ROLE_TTL":                "1h",
		"EXECUTOR_AWS_ROLE_MAX_TTL":            "2h",
		"EXECUTOR_ALLOWED_AWS_ROLES":           "app,batch",
		"EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL": "2s",
		"EXECUTOR_DOCKER_HEALTH_KILL_AFTER":    "never",
	} {
		if isOperatorOnly(name) {
			operator[name] = value
		} else {
			task = append(task, name+"="+value)
		}
	}
	cfg := mustLoadConfig(t, testSettingsEnv(operator, task...))
	want := Config{
		KillTaskTimeout: 12, HttpTimeout: 750 * time.Millisecond, SidecarRetryCount: 0, SidecarRetryDelay: time.Second,
		SidecarUrl: "http://sidecar.local:7777/api/state.json", SidecarBackoff: 0, SidecarPollInterval: 5 * time.Second,
		SidecarMaxFails: 7, SidecarDrainingDuration: 0, DockerRepository: "registry.local:5000",
		PullRetries: 0, PullBackoff: 250 * time.Millisecond, PullTimeout: 90 * time.Second,
		PullInactivityTimeout: 15 * time.Second, PullProgressInterval: time.Second, LogsSince: 10 * time.Minute,
		ForceCpuLimit: true, ForceMemoryLimit: true, UseCpuShares: true, AdmissionSettings: AdmissionSettings{AllowPrivileged: true}, AckTimeout: 5 * time.Second,
		DockerUnreachableTimeout: 45 * time.Second, dockerRepositorySet: true,
		Debug: true, LogFormat: "json",
		RegistryHelperSettings: RegistryHelperSettings{RegistryHelperTimeout: 3 * time.Second, RegistryHelperPath: "/opt/helpers", RegistryHelperEnv: "AWS_REGION"},
		RelaySettings: RelaySettings{RelaySyslog: true, RelaySyslogStartupOnly: true, RelaySyslogStartupTime: 30 * time.Second,
			SyslogAddr: "logs.local:5514", ContainerLogsStdout: true, SendDockerLabels: "ServiceName,team", LogHostname: "agent-7", SyslogFormat: "rfc5424"},
		SeedSettings:         SeedSettings{SeedSidecar: true, MesosMasterPort: "8080"},
		OutputSettings:       OutputSettings{LogMaxSize: 2 << 20, LogRotateKeep: 7},
		AWSSettings:          AWSSettings{AWSRole: "app", AWSRoleTTL: time.Hour, AWSRoleMaxTTL: 2 * time.Hour, AllowedAWSRoles: []string{"app", "batch"}},
		DockerHealthSettings: DockerHealthSettings{DockerHealthPollInterval: 2 * time.Second, DockerHealthKillAfter: dockerHealthKillAfter{never: true}},
	}
	if !reflect.DeepEqual(withoutSources(cfg), want) {
		t.Fatalf("\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestConfigRejectsBadValuesNamingTheVariable(t *testing.T) {
	cases := map[string]string{
		"EXECUTOR_KILL_TASK_TIMEOUT=-1":          "EXECUTOR_KILL_TASK_TIMEOUT",
		"EXECUTOR_KILL_TASK_TIMEOUT=5s":          "EXECUTOR_KILL_TASK_TIMEOUT",
		"EXECUTOR_HTTP_TIMEOUT=fast":             "EXECUTOR_HTTP_TIMEOUT",
		"EXECUTOR_HTTP_TIMEOUT=0s":               "EXECUTOR_HTTP_TIMEOUT",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=0":       "EXECUTOR_SIDECAR_POLL_INTERVAL",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=-1s":     "EXECUTOR_SIDECAR_POLL_INTERVAL",
		"EXECUTOR_SIDECAR_RETRY_COUNT=-2":        "EXECUTOR_SIDECAR_RETRY_COUNT",
		"EXECUTOR_SIDECAR_RETRY_DELAY=-1s":       "EXECUTOR_SIDECAR_RETRY_DELAY",
		"EXECUTOR_SIDECAR_MAX_FAILS=0":           "EXECUTOR_SIDECAR_MAX_FAILS",
		"EXECUTOR_SIDECAR_BACKOFF=-5s":           "EXECUTOR_SIDECAR_BACKOFF",
		"EXECUTOR_SIDECAR_URL=localhost:7777":    "EXECUTOR_SIDECAR_URL",
		"EXECUTOR_SIDECAR_URL=ftp://x/state":     "EXECUTOR_SIDECAR_URL",
		"EXECUTOR_SIDECAR_URL=http://":           "EXECUTOR_SIDECAR_URL",
		"EXECUTOR_SIDECAR_DRAINING_DURATION=-1s": "EXECUTOR_SIDECAR_DRAINING_DURATION",
		"EXECUTOR_LOGS_SINCE=yesterday":          "EXECUTOR_LOGS_SINCE",
		"EXECUTOR_FORCE_CPU_LIMIT=maybe":         "EXECUTOR_FORCE_CPU_LIMIT",
		"EXECUTOR_LOG_FORMAT=xml":                "EXECUTOR_LOG_FORMAT",
		"EXECUTOR_ACK_TIMEOUT=0s":                "EXECUTOR_ACK_TIMEOUT",
		"EXECUTOR_PULL_RETRIES=-1":               "EXECUTOR_PULL_RETRIES",
		"EXECUTOR_PULL_RETRIES=many":             "EXECUTOR_PULL_RETRIES",
		"EXECUTOR_PULL_BACKOFF=0s":               "EXECUTOR_PULL_BACKOFF",
		"EXECUTOR_PULL_TIMEOUT=0s":               "EXECUTOR_PULL_TIMEOUT",
		"EXECUTOR_PULL_TIMEOUT=10":               "EXECUTOR_PULL_TIMEOUT",
		"EXECUTOR_PULL_INACTIVITY_TIMEOUT=-1s":   "EXECUTOR_PULL_INACTIVITY_TIMEOUT",
		"EXECUTOR_PULL_PROGRESS_INTERVAL=0s":     "EXECUTOR_PULL_PROGRESS_INTERVAL",
	}
	for setting, variable := range cases {
		t.Run(setting, func(t *testing.T) {
			name, value, _ := strings.Cut(setting, "=")
			for _, env := range []*settingsEnv{testSettingsEnv(nil, setting), testSettingsEnv(map[string]string{name: value})} {
				_, err := loadConfigFrom(env)
				if err == nil {
					t.Fatalf("%s accepted", setting)
				}
				if !strings.Contains(err.Error(), variable) {
					t.Fatalf("error %q does not name %s", err, variable)
				}
			}
		})
	}
}

func TestRedactEnvHidesSecrets(t *testing.T) {
	got := redactEnv([]string{
		"VAULT_TOKEN=s.abc", "DB_PASSWORD=hunter2", "API_KEY=k", "MY_SECRET=x", "AWS_SECRET_ACCESS_KEY=y",
		"PLAIN=visible", "EMPTY_TOKEN=", "FROM_VAULT=resolved",
	}, "FROM_VAULT")
	joined := strings.Join(got, " ")
	for _, secret := range []string{"s.abc", "hunter2", "=k", "=x", "=y", "resolved"} {
		if strings.Contains(joined, secret) {
			t.Errorf("secret %q visible in %q", secret, joined)
		}
	}
	if !strings.Contains(joined, "PLAIN=visible") || !strings.Contains(joined, "VAULT_TOKEN="+redactedValue) {
		t.Errorf("redaction went too far or not far enough: %q", joined)
	}
}

func TestExecutorEnvForLogSelectsExecutorVariables(t *testing.T) {
	got := executorEnvForLog([]string{"MESOS_EXECUTOR_ID=e1", "EXECUTOR_DEBUG=true", "VAULT_TOKEN=s.t", "HOME=/root", "PATH=/bin", "DOCKER_HOST=unix:///x"})
	joined := strings.Join(got, " ")
	if strings.Contains(joined, "HOME=") || strings.Contains(joined, "PATH=") || strings.Contains(joined, "s.t") {
		t.Fatalf("unexpected selection %q", joined)
	}
	for _, want := range []string{"MESOS_EXECUTOR_ID=e1", "EXECUTOR_DEBUG=true", "DOCKER_HOST=unix:///x", "VAULT_TOKEN=" + redactedValue} {
		if !strings.Contains(joined, want) {
			t.Errorf("%q missing from %q", want, joined)
		}
	}
}

// TestEmptySettingMeansUnset: a task's "EXECUTOR_X=" placeholder leaves
// the operator's value, or the default, in place.
func TestEmptySettingMeansUnset(t *testing.T) {
	cfg := mustLoadConfig(t, testSettingsEnv(map[string]string{"EXECUTOR_KILL_TASK_TIMEOUT": "9"},
		"EXECUTOR_SIDECAR_POLL_INTERVAL=", "EXECUTOR_KILL_TASK_TIMEOUT="))
	if cfg.SidecarPollInterval != 30*time.Second || cfg.KillTaskTimeout != 9 {
		t.Fatalf("empty settings did not fall back to the operator's value and the default: %+v", cfg)
	}
}

// FuzzLoadConfig sets one setting to arbitrary text: loading must either
// succeed with a valid configuration or fail naming that variable.
func FuzzLoadConfig(f *testing.F) {
	names := []string{"KILL_TASK_TIMEOUT", "HTTP_TIMEOUT", "SIDECAR_RETRY_COUNT", "SIDECAR_RETRY_DELAY", "SIDECAR_URL",
		"SIDECAR_BACKOFF", "SIDECAR_POLL_INTERVAL", "SIDECAR_MAX_FAILS", "SIDECAR_DRAINING_DURATION", "DOCKER_REPOSITORY",
		"LOGS_SINCE", "FORCE_CPU_LIMIT", "FORCE_MEMORY_LIMIT", "USE_CPU_SHARES", "ALLOW_PRIVILEGED", "ACK_TIMEOUT",
		"DOCKER_UNREACHABLE_TIMEOUT", "DEBUG", "LOG_FORMAT",
		"ALLOWED_CAPABILITIES", "ALLOWED_HOST_PATHS", "ALLOWED_VOLUME_DRIVERS", "ALLOWED_NAMED_VOLUMES",
		"AWS_ROLE", "AWS_ROLE_TTL", "AWS_ROLE_MAX_TTL", "ALLOWED_AWS_ROLES"}
	for i, seed := range []string{"5", "2s", "-1", "1m5s", "http://localhost:7777/state.json", "true", "json", "", "0", "ftp://x", "9999999999999999999h"} {
		f.Add(uint8(i), seed)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		if strings.ContainsRune(value, 0) {
			return // the environment cannot hold NUL bytes
		}
		name := "EXECUTOR_" + names[int(which)%len(names)]
		env := testSettingsEnv(nil, name+"="+value)
		if isOperatorOnly(name) {
			env = testSettingsEnv(map[string]string{name: value})
		}
		cfg, err := loadConfigFrom(env)
		if err != nil {
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q does not name %s", err, name)
			}
			return
		}
		if cfg.HttpTimeout <= 0 || cfg.SidecarPollInterval <= 0 || cfg.AckTimeout <= 0 || cfg.DockerUnreachableTimeout <= 0 ||
			cfg.SidecarRetryDelay < 0 || cfg.SidecarBackoff < 0 || cfg.SidecarDrainingDuration < 0 || cfg.LogsSince < 0 ||
			cfg.SidecarRetryCount < 0 || cfg.SidecarMaxFails < 1 || (cfg.LogFormat != "text" && cfg.LogFormat != "json") ||
			len(cfg.AWSSettings.problems()) > 0 {
			t.Fatalf("%s=%q accepted into an invalid configuration %+v", name, value, cfg)
		}
	})
}

func TestCredentialFallbackOnlyWhenChosen(t *testing.T) {
	cfg := mustLoadConfig(t, testSettingsEnv(nil))
	if got := cfg.credentialFallback(); got != "" {
		t.Fatalf("the default DockerRepository is a credential fallback (%q): Docker Hub credentials would go to any registry", got)
	}
	cfg = mustLoadConfig(t, testSettingsEnv(map[string]string{"EXECUTOR_DOCKER_REPOSITORY": "registry.example.com:5000"}))
	if got := cfg.credentialFallback(); got != "registry.example.com:5000" {
		t.Fatalf("fallback %q, want the chosen registry", got)
	}
	cfg = mustLoadConfig(t, testSettingsEnv(nil, "EXECUTOR_DOCKER_REPOSITORY=registry.example.com:5000"))
	if got := cfg.credentialFallback(); got != "" {
		t.Fatalf("the task chose the credential fallback %q: the host's credentials for one registry would go where the task says", got)
	}
}
