package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// writeOperatorFile writes content to an operator file of the test's own.
func writeOperatorFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "environment")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOperatorFileParsing(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    map[string]string
	}{
		{"empty file", "", map[string]string{}},
		{"blank lines and comments", "\n  \n# a comment\n\t# indented comment\nA=1\n", map[string]string{"A": "1"}},
		{"export prefix", "export EXECUTOR_DEBUG=true\nexport\tB=2\n", map[string]string{"EXECUTOR_DEBUG": "true", "B": "2"}},
		{"a variable named export_x is not an export", "export_x=1\n", map[string]string{"export_x": "1"}},
		{"single quotes are literal", `VAULT_PASSWORD='p@ss "word" $HOME \n'` + "\n", map[string]string{"VAULT_PASSWORD": `p@ss "word" $HOME \n`}},
		{"double quotes with escapes", `V="a \"b\" \\ \$c"` + "\n", map[string]string{"V": `a "b" \ $c`}},
		{"quoted value with spaces", `V="two words"`, map[string]string{"V": "two words"}},
		{"trailing comment", "A=1 # why\nB='x' # why\n", map[string]string{"A": "1", "B": "x"}},
		{"empty value", "A=\nB=''\n", map[string]string{"A": "", "B": ""}},
		{"bare value holding = and punctuation", "URL=http://h/p?a=b&c=$d\n", map[string]string{"URL": "http://h/p?a=b&c=$d"}},
		{"JSON in single quotes", `VAULT_HEADERS='{"k": "v=1"}'`, map[string]string{"VAULT_HEADERS": `{"k": "v=1"}`}},
		{"last assignment wins", "A=1\nA=2\n", map[string]string{"A": "2"}},
		{"CRLF line ends", "A=1\r\nB=2\r\n", map[string]string{"A": "1", "B": "2"}},
		{"no final newline", "A=1", map[string]string{"A": "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadOperatorEnv(writeOperatorFile(t, tc.content))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOperatorFileMalformedLinesNameFileAndLineNotValue(t *testing.T) {
	const secret = "s3cr3t-never-in-errors"
	cases := map[string]string{
		"no assignment":           "JUST_A_WORD_" + secret,
		"space before =":          "VAULT_PASSWORD =" + secret,
		"invalid name":            "1VAULT=" + secret,
		"name with a dash":        "VAULT-PASSWORD=" + secret,
		"unclosed double quote":   `VAULT_PASSWORD="` + secret,
		"unclosed single quote":   `VAULT_PASSWORD='` + secret,
		"unquoted spaces":         "VAULT_PASSWORD=" + secret + " and more",
		"text after quotes":       `VAULT_PASSWORD="` + secret + `"trailing`,
		"quote inside bare value": `VAULT_PASSWORD=ab"` + secret + `"`,
	}
	for name, line := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeOperatorFile(t, "# operator settings\nEXECUTOR_DEBUG=true\n"+line+"\n")
			_, err := loadOperatorEnv(path)
			if err == nil {
				t.Fatalf("%q accepted", line)
			}
			for _, want := range []string{path, "line 3", "invalid operator settings"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
}

func TestOperatorFileAbsentOrUnreadable(t *testing.T) {
	values, err := loadOperatorEnv(filepath.Join(t.TempDir(), "missing", "environment"))
	if err != nil || len(values) != 0 {
		t.Fatalf("a missing file gave %v, %v; want no settings and no error", values, err)
	}
	dir := t.TempDir()
	if _, err := loadOperatorEnv(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a directory as the operator file gave %v; want an error naming it", err)
	}
	// An unreadable file fails loadConfig, and so the task, naming the file.
	env, err := loadSettingsEnv(dir, "")
	if err == nil || env == nil {
		t.Fatalf("loadSettingsEnv(%s) = %v, %v; want a view and an error", dir, env, err)
	}
}

// TestOperatorFilePathIsFixedInProductionBuilds: the unit-test binary is
// built without the link-time hook, so no environment can move the file.
func TestOperatorFilePathIsFixedInProductionBuilds(t *testing.T) {
	t.Setenv("SIDECAR_EXECUTOR_TEST_OPERATOR_ENV", "/tmp/elsewhere")
	if operatorEnvOverrideVar != "" {
		t.Fatalf("operatorEnvOverrideVar is %q without -ldflags", operatorEnvOverrideVar)
	}
	if got := operatorEnvPath(); got != "/etc/sidecar-executor/environment" {
		t.Fatalf("operator file %q, want /etc/sidecar-executor/environment", got)
	}
}

func TestSettingsPrecedence(t *testing.T) {
	const name = "EXECUTOR_KILL_TASK_TIMEOUT"
	cases := []struct {
		name       string
		operator   map[string]string
		task       []string
		want       uint
		wantSource settingSource
	}{
		{"default", nil, nil, 5, sourceDefault},
		{"operator over default", map[string]string{name: "7"}, nil, 7, sourceOperator},
		{"task over operator", map[string]string{name: "7"}, []string{name + "=9"}, 9, sourceTask},
		{"task over default", nil, []string{name + "=9"}, 9, sourceTask},
		{"empty task value leaves the operator's", map[string]string{name: "7"}, []string{name + "="}, 7, sourceOperator},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoadConfig(t, testSettingsEnv(tc.operator, tc.task...))
			if cfg.KillTaskTimeout != tc.want || cfg.sources[name] != tc.wantSource {
				t.Fatalf("KillTaskTimeout %d from %s, want %d from %s", cfg.KillTaskTimeout, cfg.sources[name], tc.want, tc.wantSource)
			}
		})
	}
}

// TestOperatorOnlySettingsIgnoreTheTask: a task cannot loosen the policy
// or choose the credential fallback, under the prefixed name or, as
// envconfig would have accepted, the bare one.
func TestOperatorOnlySettingsIgnoreTheTask(t *testing.T) {
	task := []string{"EXECUTOR_ALLOW_PRIVILEGED=true", "ALLOW_PRIVILEGED=true", "EXECUTOR_DOCKER_REPOSITORY=evil.example", "DOCKER_REPOSITORY=evil.example"}
	cfg := mustLoadConfig(t, testSettingsEnv(nil, task...))
	if cfg.AllowPrivileged || cfg.credentialFallback() != "" || cfg.DockerRepository != "https://index.docker.io/v1/" {
		t.Fatalf("the task's environment set operator-only settings: %+v", withoutSources(cfg))
	}
	cfg = mustLoadConfig(t, testSettingsEnv(map[string]string{"EXECUTOR_ALLOW_PRIVILEGED": "true"}, "EXECUTOR_ALLOW_PRIVILEGED=false"))
	if !cfg.AllowPrivileged || cfg.sources["EXECUTOR_ALLOW_PRIVILEGED"] != sourceOperator {
		t.Fatalf("the task's value overrode the operator's for an operator-only setting")
	}
}

// TestOperatorOnlyRule covers every admission setting by its prefix,
// present and future, and leaves timing settings to the task.
func TestOperatorOnlyRule(t *testing.T) {
	for _, name := range []string{
		"EXECUTOR_ALLOW_PRIVILEGED", "EXECUTOR_ALLOWED_CAPABILITIES", "EXECUTOR_ALLOWED_HOST_PATHS",
		"EXECUTOR_ALLOWED_VOLUME_DRIVERS", "EXECUTOR_ALLOWED_NAMED_VOLUMES", "EXECUTOR_ALLOW_ANYTHING_NEW",
		"EXECUTOR_DOCKER_REPOSITORY", "DOCKER_CONFIG", "HOME", "VAULT_ADDR", "VAULT_TOKEN", "VAULT_USERNAME",
		"VAULT_PASSWORD", "VAULT_TOKEN_FILE", "VAULT_CACERT", "VAULT_CLIENT_KEY", "VAULT_NAMESPACE", "VAULT_HEADERS",
		"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION",
	} {
		if !isOperatorOnly(name) {
			t.Errorf("%s is task-tunable, want operator-only", name)
		}
	}
	var cfg Config
	for _, setting := range configSettings(&cfg) {
		tunable := !isOperatorOnly(setting.name)
		wantTunable := !strings.HasPrefix(setting.name, "EXECUTOR_ALLOW") && setting.name != "EXECUTOR_DOCKER_REPOSITORY" &&
			!strings.HasPrefix(setting.name, "EXECUTOR_REGISTRY_HELPER_") && setting.name != "EXECUTOR_MESOS_MASTER_PORT" &&
			setting.name != settingLogMaxSize && setting.name != settingLogRotateKeep && setting.name != settingReadLogFile
		if tunable != wantTunable {
			t.Errorf("%s: task-tunable %v, want %v", setting.name, tunable, wantTunable)
		}
	}
}

// TestSettingsWalkSeesEmbeddedPolicyFields: settings embedded from
// another file (the admission policy's) are read like Config's own, and
// ruled operator-only by their name.
func TestSettingsWalkSeesEmbeddedPolicyFields(t *testing.T) {
	type policy struct {
		AllowedThings []string `envconfig:"ALLOWED_THINGS" default:"a,b"`
	}
	var spec struct {
		policy
		Tunable time.Duration `envconfig:"TUNABLE" default:"3s"`
		private int
	}
	env := testSettingsEnv(map[string]string{"EXECUTOR_ALLOWED_THINGS": "x,y"}, "EXECUTOR_ALLOWED_THINGS=everything", "EXECUTOR_TUNABLE=1s")
	var names []string
	for _, setting := range settingsOf(&spec) {
		names = append(names, setting.name)
		value, _, _ := env.settingsLookup(setting.name)
		if err := parseSettingValue(setting.field, value); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(names, []string{"EXECUTOR_ALLOWED_THINGS", "EXECUTOR_TUNABLE"}) {
		t.Fatalf("settings %v", names)
	}
	if !slices.Equal(spec.AllowedThings, []string{"x", "y"}) || spec.Tunable != time.Second {
		t.Fatalf("read %v and %s; want the operator's list and the task's duration", spec.AllowedThings, spec.Tunable)
	}
}

func TestIgnoredTaskSettingsNameOperatorOnlyVariables(t *testing.T) {
	env := testSettingsEnv(map[string]string{"VAULT_ADDR": "https://vault.host"},
		"EXECUTOR_ALLOW_PRIVILEGED=true", "EXECUTOR_ALLOWED_CAPABILITIES=SYS_ADMIN", "EXECUTOR_DOCKER_REPOSITORY=r",
		"VAULT_ADDR=https://vault.task", "VAULT_TOKEN_FILE=/etc/shadow", "DOCKER_CONFIG=/root/.docker", "HOME=/home/task",
		"EXECUTOR_KILL_TASK_TIMEOUT=9", "EXECUTOR_ALLOW_EMPTY=")
	want := []string{"DOCKER_CONFIG", "EXECUTOR_ALLOWED_CAPABILITIES", "EXECUTOR_ALLOW_PRIVILEGED", "EXECUTOR_DOCKER_REPOSITORY", "VAULT_ADDR", "VAULT_TOKEN_FILE"}
	if got := env.ignoredTaskSettings(); !slices.Equal(got, want) {
		t.Fatalf("ignored %v, want %v", got, want)
	}
	// With its own token the task's Vault settings are used, except the
	// host file it names.
	env = testSettingsEnv(nil, "VAULT_TOKEN=t", "VAULT_ADDR=https://vault.task", "VAULT_TOKEN_FILE=/etc/shadow", "VAULT_CACERT=/etc/shadow")
	if got, want := env.ignoredTaskSettings(), []string{"VAULT_CACERT", "VAULT_TOKEN_FILE"}; !slices.Equal(got, want) {
		t.Fatalf("ignored %v, want %v", got, want)
	}
}

// onlyWarning checks hook holds one entry, a warning, and returns its
// message and its whole formatted line (fields included).
func onlyWarning(t *testing.T, hook *logtest.Hook) (message, line string) {
	t.Helper()
	entries := hook.AllEntries()
	if len(entries) != 1 || entries[0].Level != log.WarnLevel {
		t.Fatalf("%d entries, want one warning", len(entries))
	}
	line, err := entries[0].String()
	if err != nil {
		t.Fatal(err)
	}
	return entries[0].Message, line
}

// TestIgnoredTaskSettingsLoggedOnce: one warning names every ignored
// variable and shows no value; nothing is logged when none is ignored.
func TestIgnoredTaskSettingsLoggedOnce(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	env := testSettingsEnv(nil, "EXECUTOR_ALLOW_PRIVILEGED=true", "VAULT_PASSWORD=task-value-31415", "EXECUTOR_DEBUG=true")
	env.logIgnoredTaskSettings(log.NewEntry(logger))
	_, line := onlyWarning(t, hook)
	for _, name := range []string{"EXECUTOR_ALLOW_PRIVILEGED", "VAULT_PASSWORD"} {
		if !strings.Contains(line, name) {
			t.Errorf("%q does not name %s", line, name)
		}
	}
	if strings.Contains(line, "task-value-31415") || strings.Contains(line, "EXECUTOR_DEBUG") {
		t.Errorf("%q shows a value or a task-tunable setting", line)
	}

	hook.Reset()
	testSettingsEnv(map[string]string{"EXECUTOR_ALLOW_PRIVILEGED": "true"}, "EXECUTOR_DEBUG=true", "HOME=/root").logIgnoredTaskSettings(log.NewEntry(logger))
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("%d entries for a task that sets no operator-only setting", n)
	}
}

func TestVaultLookupRules(t *testing.T) {
	operator := map[string]string{
		"VAULT_ADDR": "https://vault.host", "VAULT_USERNAME": "host", "VAULT_PASSWORD": "host-pw",
		"VAULT_TOKEN_FILE": "/var/lib/executor/token", "VAULT_CACERT": "/etc/host-ca.pem",
		"VAULT_CLIENT_CERT": "/etc/host.crt", "VAULT_CLIENT_KEY": "/etc/host.key",
		"VAULT_HEADERS": `{"X-Host-Auth":"h"}`, "VAULT_NAMESPACE": "host-ns", "VAULT_AGENT_ADDR": "http://127.0.0.1:8100",
		"HTTP_PROXY": "http://proxy.host:3128", "VAULT_MAX_RETRIES": "1",
	}
	type want map[string]string
	cases := []struct {
		name string
		task []string
		want want
	}{
		{"no task token: the operator's Vault only", []string{
			"VAULT_ADDR=https://vault.task", "VAULT_USERNAME=task", "VAULT_TOKEN_FILE=/tmp/t", "HTTP_PROXY=http://proxy.task", "VAULT_MAX_RETRIES=9",
		}, want{
			"VAULT_ADDR": "https://vault.host", "VAULT_USERNAME": "host", "VAULT_PASSWORD": "host-pw", "VAULT_TOKEN_FILE": "/var/lib/executor/token",
			"VAULT_CACERT": "/etc/host-ca.pem", "VAULT_CLIENT_CERT": "/etc/host.crt", "VAULT_HEADERS": `{"X-Host-Auth":"h"}`,
			"HTTP_PROXY": "http://proxy.host:3128", "VAULT_MAX_RETRIES": "1", "VAULT_TOKEN": "",
		}},
		{"task token and address: the task's Vault, no host credential or host file", []string{
			"VAULT_TOKEN=task-token", "VAULT_ADDR=https://vault.task", "VAULT_CACERT=/etc/shadow", "VAULT_CLIENT_KEY=/etc/shadow",
			"VAULT_TOKEN_FILE=/etc/cron.d/x", "VAULT_NAMESPACE=task-ns", "VAULT_CACERT_BYTES=pem",
		}, want{
			"VAULT_TOKEN": "task-token", "VAULT_ADDR": "https://vault.task", "VAULT_NAMESPACE": "task-ns", "VAULT_CACERT_BYTES": "pem",
			"VAULT_USERNAME": "", "VAULT_PASSWORD": "", "VAULT_TOKEN_FILE": "", "VAULT_CACERT": "", "VAULT_CLIENT_CERT": "",
			"VAULT_CLIENT_KEY": "", "VAULT_HEADERS": "", "VAULT_AGENT_ADDR": "", "HTTP_PROXY": "", "VAULT_MAX_RETRIES": "",
		}},
		{"task token alone: the operator's server and trust, still no host credential", []string{"VAULT_TOKEN=task-token", "VAULT_NAMESPACE=task-ns"}, want{
			"VAULT_TOKEN": "task-token", "VAULT_ADDR": "https://vault.host", "VAULT_CACERT": "/etc/host-ca.pem", "VAULT_NAMESPACE": "host-ns",
			"VAULT_USERNAME": "", "VAULT_PASSWORD": "", "VAULT_TOKEN_FILE": "", "VAULT_CLIENT_CERT": "", "VAULT_CLIENT_KEY": "",
			"VAULT_HEADERS": "", "VAULT_AGENT_ADDR": "",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := testSettingsEnv(operator, tc.task...).vaultGetenv()
			for name, value := range tc.want {
				if got := getenv(name); got != value {
					t.Errorf("%s = %q, want %q", name, got, value)
				}
			}
		})
	}
}

// TestExecutorHomeDirIgnoresHOME: the host's Docker credentials are found
// through the user database, whatever HOME the task sets.
func TestExecutorHomeDirIgnoresHOME(t *testing.T) {
	t.Setenv("HOME", "/tmp/task-chosen-home")
	if home := executorHomeDir(); home == "/tmp/task-chosen-home" || home == "" {
		t.Fatalf("executorHomeDir() = %q", home)
	}
	env := testSettingsEnv(nil, "HOME=/tmp/task-chosen-home", "DOCKER_CONFIG=/tmp/task-chosen-config")
	if got := env.hostDockerConfig(); got.configDir != "" || got.home == "/tmp/task-chosen-home" {
		t.Fatalf("host Docker config %+v follows the task", got)
	}
	env = testSettingsEnv(map[string]string{"DOCKER_CONFIG": "/etc/executor/docker"}, "DOCKER_CONFIG=/tmp/task-chosen-config")
	if got := env.hostDockerConfig(); got.configDir != "/etc/executor/docker" {
		t.Fatalf("host Docker config %+v, want the operator's DOCKER_CONFIG", got)
	}
}

func TestSettingsLogMarksSources(t *testing.T) {
	cfg := mustLoadConfig(t, testSettingsEnv(map[string]string{"EXECUTOR_ALLOW_PRIVILEGED": "true", "EXECUTOR_KILL_TASK_TIMEOUT": "7"},
		"EXECUTOR_HTTP_TIMEOUT=3s", "EXECUTOR_ALLOW_PRIVILEGED=false"))
	fields := cfg.settingsFields()
	for field, want := range map[string]string{
		"AllowPrivileged": "true (operator)", "KillTaskTimeout": "7 (operator)", "HttpTimeout": "3s (task)", "LogFormat": "text (default)",
	} {
		if fields[field] != want {
			t.Errorf("%s logged as %v, want %q", field, fields[field], want)
		}
	}
	if len(fields) != len(configSettings(cfg)) {
		t.Errorf("%d fields logged for %d settings", len(fields), len(configSettings(cfg)))
	}
}

// FuzzParseOperatorLine: any line either is refused with an error that
// does not show the value, or yields a valid name and a value without NUL
// that, written back single-quoted, reads the same.
func FuzzParseOperatorLine(f *testing.F) {
	for _, seed := range []string{"A=1", "export B='x y'", `C="a \" b" # c`, "# c", "", "1=2", "D=a b", `E="unterminated`, "F=é\t#", "export=1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") {
			return // one line at a time
		}
		name, value, ok, err := parseOperatorLine(line)
		if err != nil {
			if ok {
				t.Fatalf("%q: both an error and an assignment", line)
			}
			return
		}
		if !ok {
			return
		}
		if !validVariableName(name) || strings.ContainsRune(value, 0) {
			t.Fatalf("%q read as %q=%q", line, name, value)
		}
		if strings.Contains(value, "'") {
			return
		}
		again, againValue, againOK, err := parseOperatorLine(name + "='" + value + "'")
		if err != nil || !againOK || again != name || againValue != value {
			t.Fatalf("%q=%q does not read back (%q=%q, %v)", name, value, again, againValue, err)
		}
	})
}
