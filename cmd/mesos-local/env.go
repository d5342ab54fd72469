package main

import (
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// passedThrough are the variables of mesos-local's own environment that the
// executor gets, standing in for the agent's environment and the host's
// site environment file: exact names, and prefixes ending in "_".
var passedThrough = []string{"PATH", "HOME", "DOCKER_", "VAULT_", "EXECUTOR_", "SIDECAR_EXECUTOR_"}

// demoSettings are Sidecar timings that let a demo show health within
// seconds. The task's executor environment and mesos-local's own
// environment override them.
var demoSettings = []string{
	"EXECUTOR_SIDECAR_BACKOFF=1s",
	"EXECUTOR_SIDECAR_POLL_INTERVAL=1s",
	"EXECUTOR_SIDECAR_DRAINING_DURATION=1s",
}

// envExtras are what mesos-local sets in the executor's environment over
// every layer.
type envExtras struct {
	// sidecarURL is the Sidecar mesos-local uses: EXECUTOR_SIDECAR_URL.
	sidecarURL string
	// syslogAddr (-syslog-addr), when set, is EXECUTOR_SYSLOG_ADDR.
	syslogAddr string
	// operatorVar (-operator-env-var), when set, names operatorFile, and
	// the host settings of mesos-local's environment are in that file
	// rather than in the executor's environment.
	operatorVar  string
	operatorFile string
}

// executorEnvironment is the executor process's environment, later layers
// overriding earlier ones: the demo settings; the passed-through variables
// of mesos-local's environment (without the host settings when they go to
// the operator's file); the MESOS_* variables an agent sets; the task's
// executor.command.environment, which a real agent applies on top; and the
// extras: EXECUTOR_SIDECAR_URL, which always names the Sidecar mesos-local
// uses, -syslog-addr's EXECUTOR_SYSLOG_ADDR and the operator file's
// variable.
func executorEnvironment(own, agentEnv []string, task mesos.TaskInfo, extras envExtras) []string {
	env := &orderedEnv{values: map[string]string{}}
	env.setAll(demoSettings)
	for _, kv := range own {
		name, value, _ := strings.Cut(kv, "=")
		if isPassedThrough(name) && (extras.operatorVar == "" || !isHostSetting(name)) {
			env.set(name, value)
		}
	}
	env.setAll(agentEnv)
	for _, v := range task.GetExecutor().GetCommand().GetEnvironment().GetVariables() {
		if v.GetType() == mesos.Environment_Variable_VALUE && v.Value != nil {
			env.set(v.Name, *v.Value)
		}
	}
	env.set("EXECUTOR_SIDECAR_URL", extras.sidecarURL)
	if extras.syslogAddr != "" {
		env.set("EXECUTOR_SYSLOG_ADDR", extras.syslogAddr)
	}
	if extras.operatorVar != "" {
		env.set(extras.operatorVar, extras.operatorFile)
	}
	return env.list()
}

func isPassedThrough(name string) bool {
	for _, p := range passedThrough {
		if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
			return true
		}
	}
	return false
}

// orderedEnv is an environment with one value per name, in the order names
// were first set.
type orderedEnv struct {
	names  []string
	values map[string]string
}

func (e *orderedEnv) set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

func (e *orderedEnv) setAll(kvs []string) {
	for _, kv := range kvs {
		name, value, _ := strings.Cut(kv, "=")
		e.set(name, value)
	}
}

func (e *orderedEnv) list() []string {
	out := make([]string, 0, len(e.names))
	for _, name := range e.names {
		out = append(out, name+"="+e.values[name])
	}
	return out
}
