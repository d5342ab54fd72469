package main

// dockerspec_params.go owns the `docker run` flags a task may give in
// container.docker.parameters, and DockerInfo.privileged. No I/O.

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
)

// applyParameters maps the `docker run` flags given in
// container.docker.parameters. Keys may carry leading dashes.
func (b *specBuilder) applyParameters() error {
	for i, parameter := range b.dockerInfo.Parameters {
		field := fmt.Sprintf("container.docker.parameters[%d] %q", i, parameter.Key)
		key := strings.TrimLeft(parameter.Key, "-")
		value := parameter.Value
		if strings.ContainsRune(value, 0) {
			return taskErrorf("%s: value contains a NUL byte", field)
		}
		nonEmpty := func() error {
			if strings.TrimSpace(value) == "" {
				return taskErrorf("%s: value is empty", field)
			}
			return nil
		}
		switch key {
		case "env":
			name, envValue, ok := strings.Cut(value, "=")
			if !ok {
				return taskErrorf("%s: %q is not NAME=VALUE", field, value)
			}
			b.parameterEnv = append(b.parameterEnv, keyValue{field: field, key: name, value: envValue})
		case "label":
			name, labelValue, ok := strings.Cut(value, "=")
			if !ok {
				return taskErrorf("%s: %q is not KEY=VALUE", field, value)
			}
			if name == "" {
				return taskErrorf("%s: %q has an empty key", field, value)
			}
			b.parameterLabels = append(b.parameterLabels, keyValue{field: field, key: name, value: labelValue})
		case "cap-add":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.CapAdd = append(b.hostConfig.CapAdd, value)
		case "cap-drop":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.CapDrop = append(b.hostConfig.CapDrop, value)
		case "user":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.config.User = value
		case "workdir":
			if !path.IsAbs(value) {
				return taskErrorf("%s: %q is not an absolute path", field, value)
			}
			b.config.WorkingDir = value
		case "log-driver":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.LogConfig.Type = value
		case "log-opt":
			name, optionValue, ok := strings.Cut(value, "=")
			if !ok || name == "" {
				return taskErrorf("%s: %q is not KEY=VALUE", field, value)
			}
			if b.hostConfig.LogConfig.Config == nil {
				b.hostConfig.LogConfig.Config = map[string]string{}
			}
			b.hostConfig.LogConfig.Config[name] = optionValue
		case "add-host":
			hostname, address, ok := strings.Cut(value, ":")
			if !ok || hostname == "" || address == "" {
				return taskErrorf("%s: %q is not HOSTNAME:ADDRESS", field, value)
			}
			b.hostConfig.ExtraHosts = append(b.hostConfig.ExtraHosts, value)
		case "dns":
			if net.ParseIP(value) == nil {
				return taskErrorf("%s: %q is not an IP address", field, value)
			}
			b.hostConfig.DNS = append(b.hostConfig.DNS, value)
		case "init":
			enabled := true // a bare --init flag
			if value != "" {
				parsed, err := strconv.ParseBool(value)
				if err != nil {
					return taskErrorf("%s: %q is not true or false", field, value)
				}
				enabled = parsed
			}
			// HostConfig.Init is sent only when true, so "false" leaves the
			// daemon's default (off unless the daemon runs with --init).
			b.hostConfig.Init = enabled
		case "stop-signal":
			if err := nonEmpty(); err != nil {
				return err
			}
			b.config.StopSignal = value
		case "volume-driver":
			// As docker run: the last one wins. The admission policy
			// judges the driver.
			if err := nonEmpty(); err != nil {
				return err
			}
			b.hostConfig.VolumeDriver = value
			b.volumeDriverField = field
		default:
			b.warnf("%s: unsupported docker parameter ignored (supported: env, label, cap-add, cap-drop, user, workdir, log-driver, log-opt, add-host, dns, init, stop-signal, volume-driver)", field)
		}
	}
	return nil
}

// applyPrivileged maps DockerInfo.privileged; whether it is admitted is the
// admission policy's decision (policy.go).
func (b *specBuilder) applyPrivileged() error {
	b.hostConfig.Privileged = b.dockerInfo.GetPrivileged()
	return nil
}
