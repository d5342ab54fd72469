// redact.go decides what never reaches a log or a status message: secret
// values recognised by the name they are stored under (DB_PASSWORD) and by
// their shape (a password in a URL, an Authorization value, a JSON header
// object with auth-like keys), wherever they appear.
package main

import (
	"regexp"
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
			} else if v.Value != nil {
				redacted := redactSecretsIn(*v.Value)
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

// redactEnvVar renders one KEY=VALUE pair as redactEnv does.
func redactEnvVar(kv string, alsoSecret ...string) string {
	name, value, _ := strings.Cut(kv, "=")
	if (isSecretKey(name) || slices.Contains(alsoSecret, name)) && value != "" {
		return name + "=" + redactedValue
	}
	return name + "=" + redactSecretsIn(value)
}

// redactEnv renders KEY=VALUE pairs for logging with secret values
// replaced: whole values whose names mark them secret or that are named in
// alsoSecret (values resolved from Vault), and the secret parts of every
// other value (redactSecretsIn).
func redactEnv(env []string, alsoSecret ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		out = append(out, redactEnvVar(kv, alsoSecret...))
	}
	sort.Strings(out)
	return out
}

var (
	// urlPassword finds the password of a URL's userinfo. The password runs
	// to the last '@' of the authority, since an unencoded '@' in it is
	// common in hand-written URLs; the scheme, user and host stay visible.
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*):[^/?#\s]*@`)
	// authScheme finds the credentials of an Authorization value:
	// "Bearer <token>", "Basic <base64>" and the like.
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic|digest|negotiate|token)(\s+)[A-Za-z0-9._~+/=:-]+`)
	// quotedField finds "key": "value" pairs (JSON objects such as
	// VAULT_HEADERS) so that the values of auth-like keys can be replaced.
	quotedField = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"(\s*:\s*)"((?:[^"\\]|\\.)*)"`)
	// headerField finds "Name: value" header text whose name is auth-like.
	headerField = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization|cookie|x-vault-token|x-api-key)(\s*:\s*)[^\r\n]+`)
)

// isAuthKey reports whether a header or JSON key holds credentials.
func isAuthKey(key string) bool {
	switch strings.ToLower(key) {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	return isSecretKey(key)
}

// redactSecretsIn replaces the secret parts of a value recognised by their
// shape, whatever name the value is stored under: URL passwords,
// Authorization credentials and auth-like fields of JSON objects.
func redactSecretsIn(value string) string {
	if value == "" {
		return value
	}
	value = urlPassword.ReplaceAllString(value, "$1:"+redactedValue+"@")
	value = quotedField.ReplaceAllStringFunc(value, func(field string) string {
		parts := quotedField.FindStringSubmatch(field)
		if !isAuthKey(parts[1]) {
			return field
		}
		return `"` + parts[1] + `"` + parts[2] + `"` + redactedValue + `"`
	})
	value = headerField.ReplaceAllString(value, "${1}${2}"+redactedValue)
	value = authScheme.ReplaceAllString(value, "${1}${2}"+redactedValue)
	return value
}

// proxyVariables configure the proxies of the executor's own HTTP clients
// (Vault's among them), so they are worth seeing at start-up.
var proxyVariables = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// executorEnvForLog selects the variables worth logging at start-up: those
// that configure Mesos, the executor, Vault, Docker and proxies.
func executorEnvForLog(environ []string) []string {
	var selected []string
	for _, kv := range environ {
		if name, _, _ := strings.Cut(kv, "="); slices.Contains(proxyVariables, name) {
			selected = append(selected, kv)
			continue
		}
		for _, prefix := range []string{"MESOS_", envPrefix + "_", "VAULT_", "DOCKER_", "SIDECAR_"} {
			if strings.HasPrefix(kv, prefix) {
				selected = append(selected, kv)
				break
			}
		}
	}
	return redactEnv(selected)
}
