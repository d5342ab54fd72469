package main

import (
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
