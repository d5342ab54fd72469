package main

import (
	"slices"
	"sort"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// redactedTaskInfo returns a copy of a TaskInfo that is safe to log: secret
// environment values are replaced and the opaque data field is dropped
// (schedulers such as Singularity put whole configurations there).
func redactedTaskInfo(info mesos.TaskInfo) *mesos.TaskInfo {
	clone := proto.Clone(&info).(*mesos.TaskInfo)
	clone.Data = nil
	redactCommand := func(cmd *mesos.CommandInfo) {
		if cmd == nil || cmd.Environment == nil {
			return
		}
		for i := range cmd.Environment.Variables {
			v := &cmd.Environment.Variables[i]
			if isSecretKey(v.Name) && v.GetValue() != "" {
				redacted := redactedValue
				v.Value = &redacted
			}
			v.Secret = nil
		}
	}
	redactCommand(clone.Command)
	if clone.Executor != nil {
		redactCommand(clone.Executor.Command)
		clone.Executor.Data = nil
	}
	if docker := clone.GetContainer().GetDocker(); docker != nil {
		for i := range docker.Parameters {
			p := &docker.Parameters[i]
			if strings.TrimLeft(p.Key, "-") == "env" {
				p.Value = redactEnv([]string{p.Value})[0]
			}
		}
	}
	return clone
}

// redactedOptions returns container options that are safe to log.
func redactedOptions(opts docker.CreateContainerOptions, alsoSecret ...string) docker.CreateContainerOptions {
	if opts.Config != nil {
		config := *opts.Config
		config.Env = redactEnv(config.Env, alsoSecret...)
		opts.Config = &config
	}
	opts.Context = nil
	return opts
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
