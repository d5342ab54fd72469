package main

// dockerspec_command.go owns what the container runs (CommandInfo or the
// executor.ShellCommand label) and its environment, without the executor's
// own settings and credentials. No I/O.

import (
	"errors"
	"fmt"
	"strings"

	shellwords "github.com/mattn/go-shellwords"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// shellOperators are the characters at which go-shellwords stops parsing
// silently; splitShellCommand turns that into an error.
const shellOperators = ";&|<>"

// splitShellCommand splits a command line into words the way a POSIX shell
// would, respecting single quotes, double quotes and backslash escapes, but
// without running anything: no variable expansion, no command substitution
// (backticks and $(...) stay literal text), no globbing. Operators that only
// a shell understands (; & | < >) are an error rather than being dropped with
// the rest of the line.
func splitShellCommand(s string) ([]string, error) {
	parser := shellwords.NewParser()
	parser.ParseEnv = false
	parser.ParseBacktick = false
	parser.ParseComment = false
	words, err := parser.Parse(s)
	if err != nil {
		return nil, errors.New("unbalanced quote, trailing backslash or unquoted parenthesis")
	}
	if parser.Position >= 0 {
		operator := ";"
		runes := []rune(s)
		for i := parser.Position; i >= 0 && i < len(runes); i++ {
			if strings.ContainsRune(shellOperators, runes[i]) {
				operator = string(runes[i])
				break
			}
		}
		return nil, fmt.Errorf("unquoted shell operator %q: the command is not run by a shell; quote the operator, or run the command as /bin/sh -c '...'", operator)
	}
	return words, nil
}

const (
	// maxEnvironmentBytes bounds the container's environment, counted as
	// the kernel does (each "K=V" plus its terminating NUL); the kernel's
	// own limits are not much higher and a task failing at exec is harder
	// to diagnose than one refused here.
	maxEnvironmentBytes = 1 << 20
)

// withheldVariables are never copied from the task environment into the
// container: they configure or authenticate the executor itself.
var withheldVariables = map[string]bool{
	"VAULT_TOKEN":                         true,
	"VAULT_USERNAME":                      true,
	"VAULT_PASSWORD":                      true,
	"VAULT_TOKEN_FILE":                    true,
	"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": true,
	"SIDECAR_EXECUTOR_PATH":               true,
	"SIDECAR_EXECUTOR_INSTANCE":           true,
}

func isWithheldVariable(name string) bool {
	return withheldVariables[name] || strings.HasPrefix(name, envPrefix+"_")
}

// applyCommand chooses what the container runs, as Mesos' Docker
// containerizer does since 0.20.1: a shell command replaces the image's
// ENTRYPOINT with /bin/sh; a plain command is passed as arguments to the
// image's ENTRYPOINT; no command runs the image as built.
func (b *specBuilder) applyCommand() error {
	command := b.task.Command
	// A CommandInfo that only carries environment or URIs says nothing
	// about what to run.
	if command != nil && (command.Value != nil || command.Shell != nil || len(command.Arguments) > 0) {
		value := command.GetValue()
		if command.GetShell() {
			if value == "" {
				return taskErrorf("command.value is empty but command.shell is true; give a value, or set shell=false to run the image's own command")
			}
			if strings.ContainsRune(value, 0) {
				return taskErrorf("command.value contains a NUL byte")
			}
			if len(command.Arguments) > 0 {
				b.warnf("command.arguments ignored: a shell command (command.shell=true) runs command.value only")
			}
			b.config.Entrypoint = []string{"/bin/sh"} // an entrypoint parameter replaces it later
			b.config.Cmd = []string{"-c", value}
			return nil
		}
		var args []string
		if value != "" {
			args = append(args, value)
		}
		args = append(args, command.Arguments...)
		for i, arg := range args {
			if strings.ContainsRune(arg, 0) {
				return taskErrorf("command: argument %d %q contains a NUL byte", i, arg)
			}
		}
		b.config.Cmd = args
		return nil
	}
	line, ok := b.lookupLabels[shellCommandLabel]
	if !ok {
		return nil
	}
	words, err := splitShellCommand(line)
	if err != nil {
		return taskErrorf("label %s %q: %v", shellCommandLabel, line, err)
	}
	if len(words) == 0 {
		b.warnf("label %s is empty; the image's own command runs", shellCommandLabel)
		return nil
	}
	b.config.Cmd = words
	return nil
}

// environment is an ordered set of variables: a variable keeps the position
// where it was first set and the value it was last set to.
type environment struct {
	names  []string
	values map[string]string
}

// setChecked sets a variable after checking that the container can carry
// it; field names its source for the error.
func (e *environment) setChecked(field, name, value string) error {
	switch {
	case name == "":
		return taskErrorf("%s: environment variable name is empty", field)
	case strings.ContainsRune(name, '='):
		return taskErrorf("%s: environment variable name %q contains '='", field, name)
	case strings.ContainsRune(name, 0) || strings.ContainsRune(value, 0):
		return taskErrorf("%s: environment variable %q contains a NUL byte", field, name)
	}
	e.set(name, value)
	return nil
}

func (e *environment) set(name, value string) {
	if e.values == nil {
		e.values = map[string]string{}
	}
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *environment) get(name string) string {
	return e.values[name]
}

func (e *environment) list() []string {
	entries := make([]string, 0, len(e.names))
	for _, name := range e.names {
		entries = append(entries, name+"="+e.values[name])
	}
	return entries
}

// taskEnvironment is what the scheduler asked the task to see: the
// executor's command environment (where Singularity puts TASK_HOST, PORT0…)
// and then the task command's, without the executor's own settings and
// credentials.
func (b *specBuilder) taskEnvironment() (*environment, error) {
	executorInfo := b.executorInfo()
	sources := []struct {
		field     string
		variables []mesos.Environment_Variable
	}{
		{"executor.command.environment", executorInfo.GetCommand().GetEnvironment().GetVariables()},
		{"command.environment", b.task.GetCommand().GetEnvironment().GetVariables()},
	}
	taskEnv := &environment{}
	for _, source := range sources {
		for i, variable := range source.variables {
			field := fmt.Sprintf("%s.variables[%d] %q", source.field, i, variable.Name)
			if isWithheldVariable(variable.Name) {
				continue
			}
			switch variableType := variable.GetType(); variableType {
			case mesos.Environment_Variable_VALUE:
			case mesos.Environment_Variable_SECRET:
				return nil, taskErrorf("%s: SECRET environment variables are not supported; pass a VALUE", field)
			default:
				return nil, taskErrorf("%s: environment variable type %s is not supported; pass a VALUE", field, variableType)
			}
			if variable.Value == nil {
				return nil, taskErrorf("%s: VALUE environment variable has no value", field)
			}
			if err := taskEnv.setChecked(field, variable.Name, *variable.Value); err != nil {
				return nil, err
			}
		}
	}
	return taskEnv, nil
}

// applyEnvironment assembles the container's environment; later sources
// override earlier ones: derived defaults, the task environment, `env`
// parameters, and finally MESOS_SANDBOX.
func (b *specBuilder) applyEnvironment() error {
	taskEnv, err := b.taskEnvironment()
	if err != nil {
		return err
	}
	// The derived defaults are built from values checked earlier (ports,
	// labels, task ID, image), except the agent's hostname.
	containerEnv := &environment{}
	for _, portVariable := range b.portEnv {
		containerEnv.set(portVariable.key, portVariable.value)
	}
	if taskHost := taskEnv.get("TASK_HOST"); taskHost != "" {
		containerEnv.set("MESOS_HOSTNAME", taskHost)
	} else if agentHostname := b.in.AgentHostname; agentHostname != "" {
		if strings.ContainsRune(agentHostname, 0) {
			return fmt.Errorf("the agent's hostname %q contains a NUL byte", agentHostname)
		}
		containerEnv.set("MESOS_HOSTNAME", agentHostname)
	}
	for _, derived := range []struct{ label, variable string }{{"ServiceName", "SERVICE_NAME"}, {"Environment", "ENVIRONMENT"}} {
		if value, ok := b.lookupLabels[derived.label]; ok {
			containerEnv.set(derived.variable, value)
		}
	}
	containerEnv.set("SERVICE_VERSION", b.image.version())
	containerEnv.set("MESOS_TASK_ID", b.taskID)
	for _, name := range taskEnv.names {
		containerEnv.set(name, taskEnv.values[name]) // checked by taskEnvironment
	}
	for _, variable := range b.parameterEnv {
		if err := containerEnv.setChecked(variable.field, variable.key, variable.value); err != nil {
			return err
		}
	}
	containerEnv.set("MESOS_SANDBOX", containerSandboxPath)

	entries := containerEnv.list()
	if size := envSize(entries); size > maxEnvironmentBytes {
		return taskErrorf("the container environment is %d bytes, more than the limit of %d bytes (1 MiB)", size, maxEnvironmentBytes)
	}
	b.config.Env = entries
	return nil
}

// envSize is the size of a container environment as the limit counts it:
// each entry and its terminating NUL.
func envSize(entries []string) int {
	size := 0
	for _, entry := range entries {
		size += len(entry) + 1
	}
	return size
}
