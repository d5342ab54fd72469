package main

// credential_helper.go owns Docker credential helpers: running the
// docker-credential-<name> program that the host's Docker config names
// (credHelpers, credsStore) with the "get" protocol of the docker CLI, and
// its settings. Which file and which registry ask for a helper is
// registry_auth.go's decision; only the operator's Docker config may name
// one (a task's files never make the host run a program).
//
// The helper is the operator's program, but it runs with the executor's
// rights, so nothing of the task reaches it: it is looked up in the
// operator's search path (EXECUTOR_REGISTRY_HELPER_PATH), never in the
// executor's PATH (the task's environment sets it), and runs with a
// minimal environment. Its answer holds a secret: it is never logged, and
// only a short, sanitised line of its standard error is ever shown.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	log "github.com/sirupsen/logrus"
)

// RegistryHelperSettings are the operator's settings for credential
// helpers; all are operator-only (the EXECUTOR_REGISTRY_HELPER_ prefix in
// operator.go). The type is exported only so that envconfig reaches its
// fields through the embedding in Config.
type RegistryHelperSettings struct {
	// RegistryHelperTimeout bounds one run of a credential helper; a
	// helper still running then is killed with its process group.
	RegistryHelperTimeout time.Duration `envconfig:"REGISTRY_HELPER_TIMEOUT" default:"10s"`
	// RegistryHelperPath is where docker-credential-<name> programs are
	// looked for: colon-separated absolute directories, searched in order.
	RegistryHelperPath string `envconfig:"REGISTRY_HELPER_PATH" default:"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"`
	// RegistryHelperEnv names variables of the operator's file that are
	// passed to credential helpers (comma list), e.g. AWS_REGION for
	// docker-credential-ecr-login. A helper gets only these, PATH (the
	// search path) and HOME (the executor user's home directory).
	RegistryHelperEnv string `envconfig:"REGISTRY_HELPER_ENV"`
}

// Setting names as the operator writes them.
const (
	settingRegistryHelperTimeout = envPrefix + "_REGISTRY_HELPER_TIMEOUT"
	settingRegistryHelperPath    = envPrefix + "_REGISTRY_HELPER_PATH"
	settingRegistryHelperEnv     = envPrefix + "_REGISTRY_HELPER_ENV"
)

// problems lists what is wrong with the settings, for Config.validate.
func (s RegistryHelperSettings) problems() []string {
	var problems []string
	if s.RegistryHelperTimeout <= 0 {
		problems = append(problems, fmt.Sprintf("%s must be greater than zero (got %s)", settingRegistryHelperTimeout, s.RegistryHelperTimeout))
	}
	for _, dir := range strings.Split(s.RegistryHelperPath, ":") {
		if !filepath.IsAbs(dir) {
			problems = append(problems, fmt.Sprintf("%s must list absolute directories separated by ':' (got %q)", settingRegistryHelperPath, s.RegistryHelperPath))
			break
		}
	}
	for _, name := range s.helperEnvNames() {
		if !validVariableName(name) {
			problems = append(problems, fmt.Sprintf("%s must list variable names separated by commas (got %q)", settingRegistryHelperEnv, name))
		}
	}
	return problems
}

// helperEnvNames is RegistryHelperEnv as a list.
func (s RegistryHelperSettings) helperEnvNames() []string {
	return splitList(s.RegistryHelperEnv)
}

// credentialHelper gets credentials from a credential helper; helperRunner
// is the real one.
type credentialHelper interface {
	// get asks the helper called name for serverURL's credentials. A
	// helper that has none is not an error: found is false.
	get(ctx context.Context, name, serverURL string) (helperCredentials, error)
}

// helperCredentials are a helper's answer.
type helperCredentials struct {
	found    bool
	username string
	secret   string
}

// identityTokenUsername is the Username with which a helper says that the
// secret is an identity token (an OAuth refresh token), not a password.
const identityTokenUsername = "<token>"

// helperNamePattern is what a helper's name may be: the part after
// docker-credential-, never a path or anything a shell would read.
var helperNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// helperProgramPrefix is how the docker CLI names helper programs.
const helperProgramPrefix = "docker-credential-"

// Bounds of what is kept of a helper's output: a real answer is a few
// kilobytes; standard error is only ever shown as one short line.
const (
	maxHelperAnswer       = 1 << 20
	maxHelperStderrKept   = 4 << 10
	maxHelperStderrShown  = 200
	helperPipeGracePeriod = time.Second
)

// helperRunner runs credential helpers as the operator set them up.
type helperRunner struct {
	timeout    time.Duration
	searchPath []string
	// env is the helper's whole environment.
	env    []string
	logger *log.Entry
}

// newHelperRunner prepares helpers' runs from the settings and the
// operator's file.
func newHelperRunner(settings RegistryHelperSettings, env *settingsEnv, logger *log.Entry) *helperRunner {
	helperEnv := []string{"PATH=" + settings.RegistryHelperPath, "HOME=" + executorHomeDir()}
	for _, name := range settings.helperEnvNames() {
		if value, ok := env.operatorValue(name); ok {
			helperEnv = append(helperEnv, name+"="+value)
		}
	}
	return &helperRunner{
		timeout:    settings.RegistryHelperTimeout,
		searchPath: strings.Split(settings.RegistryHelperPath, ":"),
		env:        helperEnv,
		logger:     logger,
	}
}

// find returns the path of the helper program called name.
func (r *helperRunner) find(name string) (string, error) {
	if !helperNamePattern.MatchString(name) {
		return "", fmt.Errorf("%q is not a credential helper name (letters, digits, '.', '_' and '-'; no path); refused", name)
	}
	program := helperProgramPrefix + name
	for _, dir := range r.searchPath {
		path := filepath.Join(dir, program)
		info, err := os.Stat(path)
		if err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("no executable %s in %s (%s)", program, settingRegistryHelperPath, strings.Join(r.searchPath, ":"))
}

// get runs the helper's "get" for serverURL, within the timeout, through
// the docker-credential-helpers client.
func (r *helperRunner) get(ctx context.Context, name, serverURL string) (helperCredentials, error) {
	path, err := r.find(name)
	if err != nil {
		return helperCredentials{}, err
	}
	runCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var process *helperProcess
	programFunc := func(args ...string) client.Program {
		process = newHelperProcess(runCtx, path, r.env, args...)
		return process
	}
	r.logger.WithFields(log.Fields{"helper": path, "server_url": serverURL, "timeout": r.timeout.String()}).
		Info("asking the credential helper for the registry's credentials")
	started := time.Now()
	answer, err := client.Get(programFunc, serverURL)
	took := log.Fields{"helper": path, "took": time.Since(started).Round(time.Millisecond).String()}
	switch {
	case err == nil && answer.Secret == "":
		r.logger.WithFields(took).Info("the credential helper answered with an empty secret: no credentials")
		return helperCredentials{}, nil
	case err == nil:
		return helperCredentials{found: true, username: answer.Username, secret: answer.Secret}, nil
	case credentials.IsErrCredentialsNotFound(err):
		r.logger.WithFields(took).Info("the credential helper has no credentials for the registry")
		return helperCredentials{}, nil
	}
	// err may quote the helper's standard output, which may hold a
	// secret: only what the process did is described.
	return helperCredentials{}, process.failure(ctx, runCtx, r.timeout)
}

// helperProcess is one run of a helper, in a process group of its own so
// that a timeout kills whatever it started too. It is the client.Program
// the docker-credential-helpers client drives.
type helperProcess struct {
	cmd    *exec.Cmd
	stdout cappedBuffer
	stderr cappedBuffer
	runErr error
	ran    bool
}

func newHelperProcess(ctx context.Context, path string, env []string, args ...string) *helperProcess {
	p := &helperProcess{stdout: cappedBuffer{limit: maxHelperAnswer}, stderr: cappedBuffer{limit: maxHelperStderrKept}}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's ID is the helper's PID (Setpgid).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A process the helper left behind holding its output open must not
	// hold the launch.
	cmd.WaitDelay = helperPipeGracePeriod
	p.cmd = cmd
	return p
}

// Input is the helper's standard input: the server URL.
func (p *helperProcess) Input(in io.Reader) { p.cmd.Stdin = in }

// Output runs the helper and returns its standard output.
func (p *helperProcess) Output() ([]byte, error) {
	p.ran = true
	p.runErr = p.cmd.Run()
	if errors.Is(p.runErr, exec.ErrWaitDelay) {
		// The helper exited 0; something it left behind held its output
		// open, and was cut off.
		p.runErr = nil
	}
	if p.runErr == nil && p.stdout.overflow {
		p.runErr = errHelperAnswerTooLarge
	}
	return p.stdout.Bytes(), p.runErr
}

var errHelperAnswerTooLarge = fmt.Errorf("its answer is larger than %d bytes", maxHelperAnswer)

// failure describes a failed run for an operator: what happened to the
// process, and the last line of its standard error, sanitised.
func (p *helperProcess) failure(ctx, runCtx context.Context, timeout time.Duration) error {
	var exitErr *exec.ExitError
	var what string
	switch {
	case p == nil || !p.ran:
		what = "it was not run"
	case ctx.Err() != nil:
		return fmt.Errorf("abandoned: %w", ctx.Err())
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		what = fmt.Sprintf("it did not answer within %s (%s); it was killed", timeout, settingRegistryHelperTimeout)
	case errors.Is(p.runErr, errHelperAnswerTooLarge):
		what = p.runErr.Error()
	case errors.As(p.runErr, &exitErr):
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			what = fmt.Sprintf("it was killed by signal %s", signalName(status.Signal()))
		} else {
			what = fmt.Sprintf("it exited with status %d", exitErr.ExitCode())
		}
	case p.runErr != nil:
		what = "it could not be run: " + p.runErr.Error()
	default:
		what = "its answer is not the JSON of the credential-helper protocol"
	}
	if line := sanitizedLastLine(p.stderr.Bytes()); line != "" {
		what += ": " + line
	}
	return errors.New(what)
}

// sanitizedLastLine is the last non-empty line of text, printable
// characters only, cut to maxHelperStderrShown bytes, with anything shaped
// like a secret redacted.
func sanitizedLastLine(text []byte) string {
	lines := strings.Split(strings.ReplaceAll(string(text), "\r", "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.Map(func(r rune) rune {
			if r == utf8.RuneError || !unicode.IsPrint(r) {
				return -1
			}
			return r
		}, lines[i])
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(line) > maxHelperStderrShown {
			cut := maxHelperStderrShown
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			line = line[:cut] + "…"
		}
		return redactSecretsIn(line)
	}
	return ""
}

// cappedBuffer keeps the first limit bytes written to it and notes whether
// more came; it never fails a write, so the helper is never stopped by a
// closed pipe.
// It does not embed bytes.Buffer: io.Copy would use the buffer's ReadFrom
// and read past the limit.
type cappedBuffer struct {
	buffer   bytes.Buffer
	limit    int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.limit - b.buffer.Len()
	if len(p) > room {
		b.overflow = true
		if room > 0 {
			b.buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buffer.Write(p)
}

// Bytes is what was kept.
func (b *cappedBuffer) Bytes() []byte { return b.buffer.Bytes() }
