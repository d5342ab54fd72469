package main

// The operator's layer of settings. The executor's process environment is
// the task author's (ExecutorInfo.command.environment), so it may tune
// timing and health but may not loosen the admission policy, choose where
// the host's credentials go, or name a host file. Those settings come only
// from the operator's file at a fixed path that no task can write or
// redirect.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
	log "github.com/sirupsen/logrus"
)

// operatorEnvFile is where the operator configures the executor: VAR=value
// lines, as a systemd EnvironmentFile or a shell would read them.
const operatorEnvFile = "/etc/sidecar-executor/environment"

// operatorEnvOverrideVar names an environment variable that replaces
// operatorEnvFile. It is empty in every production build, so no
// environment can redirect a production binary to another file; only the
// end-to-end tests set it, at link time (-ldflags -X).
var operatorEnvOverrideVar string

// operatorEnvPath is the operator file this binary reads.
func operatorEnvPath() string {
	if operatorEnvOverrideVar != "" {
		if path := os.Getenv(operatorEnvOverrideVar); path != "" {
			return path
		}
	}
	return operatorEnvFile
}

// maxOperatorFileSize bounds what is read: an environment file is a few
// hundred bytes, and anything much larger is not one.
const maxOperatorFileSize = 1 << 20

// loadOperatorEnv reads the operator's file. A missing file means no
// operator settings (every default applies). Errors name the file and the
// line, never a value: a value may be a password.
func loadOperatorEnv(path string) (map[string]string, error) {
	file, err := openOperatorFile(path)
	if file == nil || err != nil {
		return map[string]string{}, err
	}
	defer file.Close()

	values := map[string]string{}
	scanner := operatorFileScanner(file)
	for lineNumber := 1; scanner.Scan(); lineNumber++ {
		name, value, ok, err := parseOperatorLine(scanner.Text())
		if err != nil {
			return nil, fmt.Errorf("invalid operator settings: %s line %d: %w", path, lineNumber, err)
		}
		if ok {
			// As when a shell sources the file, the last assignment wins.
			values[name] = value
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("invalid operator settings: cannot read %s: %w", path, err)
	}
	return values, nil
}

// openOperatorFile opens one of the operator's files: nil and no error when
// it does not exist; an error when it is no regular file or too large.
func openOperatorFile(path string) (*os.File, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invalid operator settings: cannot read %s: %w", path, errors.Unwrap(err))
	}
	info, err := file.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("invalid operator settings: cannot read %s: %w", path, err)
	case !info.Mode().IsRegular():
		err = fmt.Errorf("invalid operator settings: %s is not a regular file", path)
	case info.Size() > maxOperatorFileSize:
		err = fmt.Errorf("invalid operator settings: %s is larger than %d bytes", path, maxOperatorFileSize)
	}
	if err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

// operatorFileScanner reads an operator file line by line.
func operatorFileScanner(file *os.File) *bufio.Scanner {
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 0, 4096), maxOperatorFileSize)
	return scanner
}

// parseOperatorLine reads one line: blank, a # comment, or
// [export ]NAME=value where value is bare, 'single-quoted' (literal) or
// "double-quoted" (with \" \\ \$ \` escapes), optionally followed by a
// # comment. ok is false for lines that assign nothing. Errors describe the
// line's shape, never its value.
func parseOperatorLine(line string) (name, value string, ok bool, err error) {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(line, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line = strings.TrimSpace(rest)
	}
	name, raw, found := strings.Cut(line, "=")
	if !found {
		return "", "", false, errors.New("not a NAME=value assignment")
	}
	if !validVariableName(name) {
		return "", "", false, errors.New("the name before = is not a valid variable name (letters, digits and _, not starting with a digit, no spaces around =)")
	}
	value, rest, err := unquoteOperatorValue(raw)
	if err != nil {
		return "", "", false, fmt.Errorf("the value of %s %w", name, err)
	}
	if rest = strings.TrimSpace(rest); rest != "" && !strings.HasPrefix(rest, "#") {
		return "", "", false, fmt.Errorf("the value of %s is followed by more text; quote values that hold spaces", name)
	}
	if strings.ContainsRune(value, 0) {
		return "", "", false, fmt.Errorf("the value of %s holds a NUL byte", name)
	}
	return name, value, true, nil
}

// unquoteOperatorValue returns the value at the start of raw and what
// follows it.
func unquoteOperatorValue(raw string) (value, rest string, err error) {
	switch {
	case strings.HasPrefix(raw, "'"):
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", "", errors.New("has no closing single quote")
		}
		return raw[1 : 1+end], raw[2+end:], nil
	case strings.HasPrefix(raw, `"`):
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			switch c := raw[i]; {
			case c == '"':
				return b.String(), raw[i+1:], nil
			case c == '\\' && i+1 < len(raw) && strings.IndexByte("\"\\$`", raw[i+1]) >= 0:
				b.WriteByte(raw[i+1])
				i++
			default:
				b.WriteByte(c)
			}
		}
		return "", "", errors.New("has no closing double quote")
	default:
		end := strings.IndexAny(raw, " \t")
		if end < 0 {
			end = len(raw)
		}
		value = raw[:end]
		if strings.ContainsAny(value, `'"`) {
			return "", "", errors.New("has a quote inside an unquoted value; quote the whole value")
		}
		return value, raw[end:], nil
	}
}

func validVariableName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, r := range name {
		if r != '_' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// settingSource says who chose a setting's value.
type settingSource string

const (
	sourceDefault  settingSource = "default"
	sourceOperator settingSource = "operator"
	sourceTask     settingSource = "task"
)

// operatorOnlyPrefixes and operatorOnlyNames are the settings a task may
// not choose: the admission policy (every EXECUTOR_ALLOW_* and
// EXECUTOR_ALLOWED_*, so that new policy settings are covered by their
// name), the registry whose credentials serve other registries, where the
// host's Docker credentials are, the Docker daemon that receives them, and
// the host's Vault (address, TLS files, login, token file), the
// credential helpers the host runs (EXECUTOR_REGISTRY_HELPER_*), the
// Mesos master's port (seeds.go: where the executor connects), the
// sandbox's cap and whether Docker's log files on the host are read
// (logs_sandbox.go, logs_file.go). HOME is
// listed because the docker CLI finds ~/.docker through it; the executor
// takes the home directory from the user database instead
// (hostDockerConfig).
var (
	operatorOnlyPrefixes = []string{envPrefix + "_ALLOW_", envPrefix + "_ALLOWED_", "VAULT_", envPrefix + "_REGISTRY_HELPER_"}
	operatorOnlyNames    = append([]string{envPrefix + "_DOCKER_REPOSITORY", envPrefix + "_MESOS_MASTER_PORT", "DOCKER_CONFIG", "HOME", settingLogMaxSize, settingLogRotateKeep, settingReadLogFile}, dockerDaemonSettings...)
)

// dockerDaemonSettings choose the Docker daemon the executor drives, the
// way the docker CLI reads them. They are the operator's: a pull hands
// the daemon the host's registry credentials, and DOCKER_CERT_PATH names
// host files.
var dockerDaemonSettings = []string{"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"}

// applyDockerDaemonSettings replaces the Docker daemon settings of the
// process environment with the operator's (unset when the operator sets
// none: the local socket). go-dockerclient reads them only from the
// process environment (NewClientFromEnv), so this is how the operator's
// choice reaches it; settingsEnv keeps the task's values for the log.
func (e *settingsEnv) applyDockerDaemonSettings() {
	for _, name := range dockerDaemonSettings {
		if value, ok := e.operatorValue(name); ok {
			os.Setenv(name, value)
		} else {
			os.Unsetenv(name)
		}
	}
}

// isOperatorOnly reports whether only the operator's file may set name.
func isOperatorOnly(name string) bool {
	if slices.Contains(operatorOnlyNames, name) {
		return true
	}
	for _, prefix := range operatorOnlyPrefixes {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// settingsEnv is the executor's view of its settings: the operator's
// files and the task's environment (the process environment at start-up).
// An empty value counts as unset in both: task definitions often carry
// "EXECUTOR_X=" placeholders.
type settingsEnv struct {
	// operatorPath is the file operator was read from, for messages.
	operatorPath string
	// operator holds the values of the operator's files: upstream's
	// drop-in file (operator_upstream.go) overlaid with operatorPath's.
	operator map[string]string
	task     map[string]string
	// operatorOrigin names the file each operator value came from, when
	// it is not operatorPath.
	operatorOrigin map[string]string
	// fileWarnings are the drop-in file's skipped lines, for the log.
	fileWarnings []string
}

// newSettingsEnv combines an operator file's values with the task's
// environment ("K=V" entries, as os.Environ returns them).
func newSettingsEnv(operatorPath string, operator map[string]string, taskEnviron []string) *settingsEnv {
	task := make(map[string]string, len(taskEnviron))
	for _, kv := range taskEnviron {
		if name, value, ok := strings.Cut(kv, "="); ok && name != "" {
			task[name] = value
		}
	}
	if operator == nil {
		operator = map[string]string{}
	}
	return &settingsEnv{operatorPath: operatorPath, operator: operator, task: task}
}

// loadSettingsEnv reads the operator's file at path and upstream's
// drop-in file at upstreamPath ("" for none), the former winning, and
// snapshots the process environment as the task's.
func loadSettingsEnv(path, upstreamPath string) (*settingsEnv, error) {
	upstream, warnings, upstreamErr := loadUpstreamEnv(upstreamPath)
	operator, err := loadOperatorEnv(path)
	if operator == nil {
		operator = map[string]string{}
	}
	origin := map[string]string{}
	for name, value := range upstream {
		if _, set := operator[name]; !set {
			operator[name] = value
			origin[name] = upstreamPath
		}
	}
	env := newSettingsEnv(path, operator, os.Environ())
	env.operatorOrigin, env.fileWarnings = origin, warnings
	return env, errors.Join(upstreamErr, err)
}

// operatorFileOf names the operator file that set name.
func (e *settingsEnv) operatorFileOf(name string) string {
	if path, ok := e.operatorOrigin[name]; ok {
		return path
	}
	return e.operatorPath
}

// logOperatorFileNotes warns about the drop-in file's skipped lines and
// about upstream's variable for another drop-in file, which a task's
// environment may hold and which is not honoured.
func (e *settingsEnv) logOperatorFileNotes(logger *log.Entry) {
	for _, warning := range e.fileWarnings {
		logger.Warn(warning)
	}
	if _, set := e.taskValue(upstreamEnvPathVariable); set {
		logger.WithField("variable", upstreamEnvPathVariable).
			Warnf("%s is ignored: the executor's environment is the task's, so it reads the operator's files at their fixed paths only (%s, %s)", upstreamEnvPathVariable, upstreamEnvFile, operatorEnvFile)
	}
}

// taskValue is the task's non-empty value of name.
func (e *settingsEnv) taskValue(name string) (string, bool) {
	value := e.task[name]
	return value, value != ""
}

// operatorValue is the operator's non-empty value of name.
func (e *settingsEnv) operatorValue(name string) (string, bool) {
	value := e.operator[name]
	return value, value != ""
}

// settingsLookup returns the value the executor uses for name and who set
// it: for an operator-only setting the operator's file alone; for any
// other the task's value, else the operator's. ok is false when neither
// set it, and the default applies.
func (e *settingsEnv) settingsLookup(name string) (value string, source settingSource, ok bool) {
	if !isOperatorOnly(name) {
		if value, ok := e.taskValue(name); ok {
			return value, sourceTask, true
		}
	}
	if value, ok := e.operatorValue(name); ok {
		return value, sourceOperator, true
	}
	return "", sourceDefault, false
}

// getenv is settingsLookup in the shape of os.Getenv.
func (e *settingsEnv) getenv(name string) string {
	value, _, _ := e.settingsLookup(name)
	return value
}

// taskUsesOwnVault reports whether the task brings its own Vault token:
// then the task talks to its own Vault with its own token, and none of the
// host's Vault credentials take part.
func (e *settingsEnv) taskUsesOwnVault() bool {
	_, ok := e.taskValue(api.EnvVaultToken)
	return ok
}

// Vault settings by role, for a task that brings its own token.
var (
	// vaultHostFiles name files on the host; a task may not choose them.
	vaultHostFiles = []string{api.EnvVaultCACert, api.EnvVaultCAPath, api.EnvVaultClientCert, api.EnvVaultClientKey, envVaultTokenFile}
	// vaultServerTrust says which server the executor talks to and how it
	// is verified: taken as a whole from the task when it names its own
	// server, else as a whole from the operator.
	vaultServerTrust = []string{
		api.EnvVaultAddress, api.EnvVaultNamespace, api.EnvVaultCACert, api.EnvVaultCAPath,
		api.EnvVaultCACertBytes, api.EnvVaultTLSServerName, api.EnvVaultSkipVerify, api.EnvVaultSRVLookup,
	}
)

// vaultGetenv returns the lookup resolveVaultEnv uses for VAULT_* (and the
// proxy variables):
//
//   - The task brings its own VAULT_TOKEN: its own server (its VAULT_ADDR
//     and TLS settings, else the operator's address with the operator's
//     TLS settings, which are no credential), its token and its other
//     settings. Nothing else of the operator's is used: not its login, its
//     token file, its client certificate, its headers or its agent, any of
//     which would authenticate the task as the host. A task never names a
//     host file.
//   - Otherwise the operator's values only, so that the host's login goes
//     only where, and through what, the operator chose.
func (e *settingsEnv) vaultGetenv() func(string) string {
	if !e.taskUsesOwnVault() {
		return func(name string) string {
			value, _ := e.operatorValue(name)
			return value
		}
	}
	_, taskNamesServer := e.taskValue(api.EnvVaultAddress)
	return func(name string) string {
		var value string
		switch {
		case !taskNamesServer && slices.Contains(vaultServerTrust, name):
			value, _ = e.operatorValue(name)
		case slices.Contains(vaultHostFiles, name):
		default:
			value, _ = e.taskValue(name)
		}
		return value
	}
}

// ignoredTaskSettings lists, sorted, the operator-only variables the
// task's environment sets that the executor does not use.
func (e *settingsEnv) ignoredTaskSettings() []string {
	vaultGetenv := e.vaultGetenv()
	var ignored []string
	for name, value := range e.task {
		switch {
		case value == "" || !isOperatorOnly(name):
		case name == "HOME":
			// Every process has a HOME; it is not a setting the task
			// chose, it is just not where host credentials are looked for.
		case strings.HasPrefix(name, "VAULT_") && vaultGetenv(name) == value:
			// Used, for the task's own Vault.
		default:
			ignored = append(ignored, name)
		}
	}
	slices.Sort(ignored)
	return ignored
}

// logIgnoredTaskSettings says once, in one line, which operator-only
// variables of the task's environment are not used: their names, never
// their values.
func (e *settingsEnv) logIgnoredTaskSettings(logger *log.Entry) {
	if ignored := e.ignoredTaskSettings(); len(ignored) > 0 {
		logger.WithField("variables", strings.Join(ignored, " ")).
			Warnf("the task's environment sets operator-only settings; they are ignored (only the operator's files, %s and %s, may set them)", operatorEnvFile, upstreamEnvFile)
	}
}

// hostDockerLocation is where the host's Docker credentials are.
type hostDockerLocation struct {
	// configDir is the operator's DOCKER_CONFIG; when empty the docker
	// CLI's files under home are used.
	configDir string
	home      string
}

// hostDockerConfig finds the host's Docker credentials: the operator's
// DOCKER_CONFIG, else the home directory of the user the executor runs as,
// from the user database. The task's HOME is not consulted: it would let a
// task pick which file's credentials the executor sends.
func (e *settingsEnv) hostDockerConfig() hostDockerLocation {
	if dir, ok := e.operatorValue("DOCKER_CONFIG"); ok {
		return hostDockerLocation{configDir: dir}
	}
	return hostDockerLocation{home: executorHomeDir()}
}

// executorHomeDir is the home directory of the user the executor runs as.
// user.Current is not used: without cgo it falls back to $HOME, which the
// task sets. /root is where the docker CLI looks under a Mesos agent that
// runs as root with no home.
func executorHomeDir() string {
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil && u.HomeDir != "" {
		return u.HomeDir
	}
	return "/root"
}
