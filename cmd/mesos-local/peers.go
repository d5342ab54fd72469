package main

// The optional peers a task written for upstream sidecar-executor needs on
// one machine: the embedded Mesos master (-master, -master-agents) that
// seeds Sidecar, the relay's collector address (-syslog-addr), and the
// operator's file (-operator-env-var) through which host settings reach an
// executor built to read it from a variable.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/sidecar-executor/sidecar-executor/internal/mastertest"
)

// masterHostname is what the agent's /state reports as master_hostname
// with -master: a name, as an agent gets from a reverse lookup, that
// reaches the embedded master on 127.0.0.1.
const masterHostname = "localhost"

// hostSettingPrefixes are the variables of mesos-local's environment that
// go to the operator's file with -operator-env-var: a host's settings.
var hostSettingPrefixes = []string{"DOCKER_", "VAULT_", "EXECUTOR_"}

// variableName is what may be the name of an environment variable.
var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// hostnamePattern is what -master-agents accepts: a DNS name or an IP
// address, the way an agent registers.
var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$`)

// checkPeers validates the peer flags and parses -master-agents.
func (o *options) checkPeers(masterAgents string) error {
	if masterAgents != "" {
		if !o.master {
			return &usageError{msg: "-master-agents names the agents of the embedded master: it needs -master"}
		}
		for _, name := range strings.Split(masterAgents, ",") {
			name = strings.TrimSpace(name)
			if !hostnamePattern.MatchString(name) {
				return &usageError{msg: fmt.Sprintf("-master-agents: %q is not a host name", name)}
			}
			if !slices.Contains(o.masterAgents, name) {
				o.masterAgents = append(o.masterAgents, name)
			}
		}
	}
	if o.master && o.operatorEnvVar == "" {
		return &usageError{msg: "-master needs -operator-env-var: the executor takes the master's port (EXECUTOR_MESOS_MASTER_PORT) from its operator's file only"}
	}
	if o.operatorEnvVar != "" && !variableName.MatchString(o.operatorEnvVar) {
		return &usageError{msg: fmt.Sprintf("-operator-env-var %q is not a variable name", o.operatorEnvVar)}
	}
	if o.syslogAddr != "" {
		host, port, err := net.SplitHostPort(o.syslogAddr)
		if err != nil || host == "" || port == "" {
			return &usageError{msg: fmt.Sprintf("-syslog-addr %q is not a UDP host:port", o.syslogAddr)}
		}
	}
	return nil
}

// startMaster starts the embedded master, listing the agents named.
func startMaster(agentNames []string) (*mastertest.Server, error) {
	var agents []mastertest.Agent
	for _, name := range agentNames {
		agents = append(agents, mastertest.Agent{Hostname: name})
	}
	master, err := mastertest.Start(agents...)
	if err != nil {
		return nil, fmt.Errorf("start the embedded Mesos master: %w", err)
	}
	return master, nil
}

// operatorFile is the operator's file mesos-local writes for an executor
// that reads it from a variable. It lives in a directory of its own,
// outside the sandbox (which the container can read), readable by this
// user only, and is removed at the end.
type operatorFile struct {
	dir  string
	path string
}

// writeOperatorFile writes the host settings of own (mesos-local's
// environment) and extra ("NAME=value") as an operator's file.
func writeOperatorFile(own, extra []string) (*operatorFile, error) {
	var lines []string
	add := func(kv string) error {
		name, value, _ := strings.Cut(kv, "=")
		line, err := operatorLine(name, value)
		if err != nil {
			return err
		}
		lines = append(lines, line)
		return nil
	}
	for _, kv := range own {
		if name, _, _ := strings.Cut(kv, "="); isHostSetting(name) {
			if err := add(kv); err != nil {
				return nil, err
			}
		}
	}
	for _, kv := range extra {
		if err := add(kv); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "mesos-local-operator-")
	if err != nil {
		return nil, fmt.Errorf("create a directory for the operator's file: %w", err)
	}
	f := &operatorFile{dir: dir, path: filepath.Join(dir, "environment")}
	content := "# Written by mesos-local: the host's settings for this run.\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
		f.remove()
		return nil, fmt.Errorf("write the operator's file: %w", err)
	}
	return f, nil
}

func (f *operatorFile) remove() {
	if f != nil {
		_ = os.RemoveAll(f.dir)
	}
}

// isHostSetting reports whether a variable of mesos-local's environment
// is a host setting, for the operator's file.
func isHostSetting(name string) bool {
	for _, prefix := range hostSettingPrefixes {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// operatorLine renders NAME="value" the way the executor reads its
// operator's file: double quotes, with \ " $ and ` escaped. A value over
// several lines cannot be written; the error names the variable, never
// the value (it may be a token).
func operatorLine(name, value string) (string, error) {
	if !variableName.MatchString(name) {
		return "", fmt.Errorf("the operator's file cannot hold %q: not a variable name", name)
	}
	if strings.ContainsAny(value, "\n\r\x00") {
		return "", fmt.Errorf("the operator's file cannot hold %s: its value has a line break or a NUL byte", name)
	}
	var b strings.Builder
	b.WriteString(name + `="`)
	for _, r := range value {
		if strings.ContainsRune("\\\"$`", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String(), nil
}
