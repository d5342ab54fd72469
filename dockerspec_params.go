package main

// dockerspec_params.go owns the `docker run` flags a task may give in
// container.docker.parameters: the table of every supported key, the
// general options (environment, labels, user, logging, DNS, command) and
// DockerInfo.privileged. Resource options and TaskInfo.limits are in
// dockerspec_params_resources.go; namespaces, security, devices, network
// and health check options in dockerspec_params_host.go. Whether a mapped
// value is admitted is the admission policy's decision (policy.go). No I/O.
//
// Values follow the Docker CLI's syntax (github.com/docker/go-units for
// sizes and ulimits). Repeated list flags accumulate; a repeated scalar flag
// keeps its last value, as on the command line. A key this table does not
// know, or a value the CLI would reject, fails the task: nothing given by
// the task is dropped silently.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
)

// parameter is one container.docker.parameters entry: field names it for
// errors, key is without leading dashes.
type parameter struct {
	field, key, value string
}

// invalid is a REASON_TASK_INVALID error naming the parameter.
func (p parameter) invalid(format string, args ...any) error {
	return taskErrorf("%s: %s", p.field, fmt.Sprintf(format, args...))
}

func (p parameter) nonEmpty() error {
	if strings.TrimSpace(p.value) == "" {
		return p.invalid("value is empty")
	}
	return nil
}

// boolValue parses a boolean flag; an empty value is the bare flag (true).
func (p parameter) boolValue() (bool, error) {
	if p.value == "" {
		return true, nil
	}
	parsed, err := strconv.ParseBool(p.value)
	if err != nil {
		return false, p.invalid("%q is not true or false", p.value)
	}
	return parsed, nil
}

// keyValue splits KEY=VALUE with a non-empty key.
func (p parameter) keyValue(what string) (string, string, error) {
	name, value, ok := strings.Cut(p.value, "=")
	if !ok || name == "" {
		return "", "", p.invalid("%q is not %s", p.value, what)
	}
	return name, value, nil
}

// optionParameters are the parameters applied after the other mapping
// steps (they win over Mesos' own options) or checked against them.
type optionParameters struct {
	resourceParams      resourceParameters
	entrypointParameter []string
	privilegedParameter *bool
	hostnameParameter   parameter
	networkParameter    *parameter
	networkAliases      []parameter
	macAddress          string
	exposedPorts        map[string]bool
	healthOverride      *parameter // the last health-* parameter
	noHealthcheck       *parameter
}

type parameterHandler func(b *specBuilder, p parameter) error

// parameterHandlers maps every supported key to its handler. Aliases share
// a handler (dns-opt is dns-option, net is network).
var parameterHandlers map[string]parameterHandler

func init() {
	parameterHandlers = map[string]parameterHandler{
		// General options.
		"env":           (*specBuilder).paramEnv,
		"label":         (*specBuilder).paramLabel,
		"user":          (*specBuilder).paramUser,
		"workdir":       (*specBuilder).paramWorkdir,
		"log-driver":    (*specBuilder).paramLogDriver,
		"log-opt":       (*specBuilder).paramLogOpt,
		"add-host":      (*specBuilder).paramAddHost,
		"dns":           (*specBuilder).paramDNS,
		"dns-search":    (*specBuilder).paramDNSSearch,
		"dns-option":    (*specBuilder).paramDNSOption,
		"dns-opt":       (*specBuilder).paramDNSOption,
		"hostname":      (*specBuilder).paramHostname,
		"entrypoint":    (*specBuilder).paramEntrypoint,
		"init":          (*specBuilder).paramInit,
		"stop-signal":   (*specBuilder).paramStopSignal,
		"stop-timeout":  (*specBuilder).paramStopTimeout,
		"read-only":     (*specBuilder).paramReadOnly,
		"group-add":     (*specBuilder).paramGroupAdd,
		"expose":        (*specBuilder).paramExpose,
		"restart":       (*specBuilder).paramRestart,
		"volume-driver": (*specBuilder).paramVolumeDriver,
		"privileged":    (*specBuilder).paramPrivileged,
		"tmpfs":         (*specBuilder).paramTmpfs,
	}
	for key, handler := range resourceParameterHandlers {
		parameterHandlers[key] = handler
	}
	for key, handler := range hostParameterHandlers {
		parameterHandlers[key] = handler
	}
}

// refusedParameters are `docker run` flags that have no place in a task
// run by this executor, each with the reason and what to use instead.
var refusedParameters = map[string]string{
	"publish":      "host ports come from the task's ports resources; map them with container.docker.port_mappings",
	"p":            "host ports come from the task's ports resources; map them with container.docker.port_mappings",
	"publish-all":  "host ports come from the task's ports resources; map them with container.docker.port_mappings",
	"P":            "host ports come from the task's ports resources; map them with container.docker.port_mappings",
	"volume":       "mount volumes with container.volumes (host_path or source.docker_volume)",
	"v":            "mount volumes with container.volumes (host_path or source.docker_volume)",
	"mount":        "mount volumes with container.volumes (host_path or source.docker_volume)",
	"volumes-from": "mount volumes with container.volumes; another container's volumes belong to another task",
	"name":         "the executor names the container after the task",
	"rm":           "the executor removes the container itself once it has read its exit status",
	"env-file":     "the Docker CLI reads this file on the agent; give the variables with env parameters",
	"label-file":   "the Docker CLI reads this file on the agent; give the labels with label parameters",
	"cidfile":      "the Docker CLI writes this file on the agent; the executor reports the container ID itself",
	"pull":         "use container.docker.force_pull_image",
	"detach":       "the executor runs every container detached",
	"d":            "the executor runs every container detached",
	"interactive":  "the executor attaches no input to the container",
	"i":            "the executor attaches no input to the container",
	"tty":          "the executor reads the container's output as a plain stream, not a terminal",
	"t":            "the executor reads the container's output as a plain stream, not a terminal",
	"e":            "give environment variables with the env key",
	"l":            "give labels with the label key",
	"u":            "give the user with the user key",
	"w":            "give the working directory with the workdir key",
	"h":            "give the hostname with the hostname key",
}

// supportedParameterKeys is the sorted list of keys, for error messages.
func supportedParameterKeys() string {
	return strings.Join(slices.Sorted(maps.Keys(parameterHandlers)), ", ")
}

// applyParameters maps the `docker run` flags given in
// container.docker.parameters. Keys may carry leading dashes.
func (b *specBuilder) applyParameters() error {
	for i, given := range b.dockerInfo.Parameters {
		p := parameter{
			field: fmt.Sprintf("container.docker.parameters[%d] %q", i, given.Key),
			key:   strings.TrimLeft(given.Key, "-"),
			value: given.Value,
		}
		if strings.ContainsRune(p.value, 0) || strings.ContainsRune(p.key, 0) {
			return p.invalid("contains a NUL byte")
		}
		if reason, refused := refusedParameters[p.key]; refused {
			return p.invalid("not supported by this executor: %s", reason)
		}
		handler, ok := parameterHandlers[p.key]
		if !ok {
			return p.redacted(p.invalid("unknown docker parameter %q (value %q); supported keys: %s", p.key, p.value, supportedParameterKeys()))
		}
		if err := handler(b, p); err != nil {
			return p.redacted(err)
		}
	}
	return nil
}

// redacted keeps secrets out of an error that quotes the value, since the
// error becomes the TaskStatus message: a misspelled key may well carry
// DB_PASSWORD=… or a URL with a password.
func (p parameter) redacted(err error) error {
	shown := redactSecretsIn(p.value)
	if strings.Contains(p.value, "=") {
		shown = redactEnvVar(p.value)
	}
	if shown == p.value {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), strconv.Quote(p.value), strconv.Quote(shown)))
}

func (b *specBuilder) paramEnv(p parameter) error {
	name, value, ok := strings.Cut(p.value, "=")
	if !ok {
		// The CLI would copy the variable from its own environment, which
		// here is the executor's: refused rather than leaked.
		return p.invalid("%q is not NAME=VALUE (a bare NAME would copy the executor's own variable, which is not passed on)", p.value)
	}
	b.parameterEnv = append(b.parameterEnv, keyValue{field: p.field, key: name, value: value})
	return nil
}

func (b *specBuilder) paramLabel(p parameter) error {
	// As the CLI: a key alone is a label with an empty value.
	name, value, _ := strings.Cut(p.value, "=")
	if name == "" {
		return p.invalid("%q has an empty key", p.value)
	}
	b.parameterLabels = append(b.parameterLabels, keyValue{field: p.field, key: name, value: value})
	return nil
}

func (b *specBuilder) paramUser(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	b.config.User = p.value
	return nil
}

func (b *specBuilder) paramWorkdir(p parameter) error {
	if !path.IsAbs(p.value) {
		return p.invalid("%q is not an absolute path", p.value)
	}
	b.config.WorkingDir = p.value
	return nil
}

func (b *specBuilder) paramLogDriver(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	b.hostConfig.LogConfig.Type = p.value
	return nil
}

func (b *specBuilder) paramLogOpt(p parameter) error {
	name, value, err := p.keyValue("KEY=VALUE")
	if err != nil {
		return err
	}
	if b.hostConfig.LogConfig.Config == nil {
		b.hostConfig.LogConfig.Config = map[string]string{}
	}
	b.hostConfig.LogConfig.Config[name] = value
	return nil
}

func (b *specBuilder) paramAddHost(p parameter) error {
	// The CLI accepts HOST:IP and, since Docker 23, HOST=IP; the engine
	// reads HOST:IP.
	hostname, address, ok := strings.Cut(p.value, "=")
	if !ok {
		hostname, address, ok = strings.Cut(p.value, ":")
	}
	address = strings.TrimSuffix(strings.TrimPrefix(address, "["), "]")
	if !ok || hostname == "" || (net.ParseIP(address) == nil && address != "host-gateway") {
		return p.invalid("%q is not HOSTNAME:IP", p.value)
	}
	b.hostConfig.ExtraHosts = append(b.hostConfig.ExtraHosts, hostname+":"+address)
	return nil
}

func (b *specBuilder) paramDNS(p parameter) error {
	if net.ParseIP(p.value) == nil {
		return p.invalid("%q is not an IP address", p.value)
	}
	b.hostConfig.DNS = append(b.hostConfig.DNS, p.value)
	return nil
}

func (b *specBuilder) paramDNSSearch(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.ContainsAny(p.value, " \t\n") {
		return p.invalid("%q is not a DNS domain", p.value)
	}
	b.hostConfig.DNSSearch = append(b.hostConfig.DNSSearch, p.value)
	return nil
}

func (b *specBuilder) paramDNSOption(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.ContainsAny(p.value, " \t\n") {
		return p.invalid("%q is not a resolv.conf option (such as ndots:2)", p.value)
	}
	b.hostConfig.DNSOptions = append(b.hostConfig.DNSOptions, p.value)
	return nil
}

func (b *specBuilder) paramHostname(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if len(p.value) > 253 || strings.ContainsAny(p.value, " \t\n/") {
		return p.invalid("%q is not a hostname", p.value)
	}
	b.hostnameParameter = p
	return nil
}

func (b *specBuilder) paramEntrypoint(p parameter) error {
	// As the CLI: one element; an empty value clears the image's
	// ENTRYPOINT. It overrides the /bin/sh of a shell command, as the
	// parameter comes after Mesos' own --entrypoint.
	b.entrypointParameter = []string{p.value}
	return nil
}

func (b *specBuilder) paramInit(p parameter) error {
	enabled, err := p.boolValue()
	if err != nil {
		return err
	}
	// HostConfig.Init is sent only when true, so "false" leaves the
	// daemon's default (off unless the daemon runs with --init).
	b.hostConfig.Init = enabled
	return nil
}

func (b *specBuilder) paramStopSignal(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	b.config.StopSignal = p.value
	return nil
}

func (b *specBuilder) paramStopTimeout(p parameter) error {
	seconds, err := strconv.Atoi(p.value)
	if err != nil || seconds < -1 {
		return p.invalid("%q is not a number of seconds (-1 waits forever)", p.value)
	}
	if seconds == 0 {
		// The client library omits a zero; it would be dropped silently.
		return p.invalid("0 cannot be passed to Docker; the executor's own kill grace period (kill_policy) decides how long a stop waits")
	}
	b.config.StopTimeout = seconds
	return nil
}

func (b *specBuilder) paramReadOnly(p parameter) error {
	readOnly, err := p.boolValue()
	if err != nil {
		return err
	}
	b.hostConfig.ReadonlyRootfs = readOnly
	return nil
}

func (b *specBuilder) paramGroupAdd(p parameter) error {
	if err := p.nonEmpty(); err != nil {
		return err
	}
	if strings.ContainsAny(p.value, " \t\n:") {
		return p.invalid("%q is not a group name or GID", p.value)
	}
	b.hostConfig.GroupAdd = append(b.hostConfig.GroupAdd, p.value)
	return nil
}

// paramExpose records ports the container listens on (PORT[/PROTO] or a
// range START-END[/PROTO]); it publishes nothing.
func (b *specBuilder) paramExpose(p parameter) error {
	ports, protocol, hasProtocol := strings.Cut(p.value, "/")
	if !hasProtocol {
		protocol = "tcp"
	}
	protocol = strings.ToLower(protocol)
	if protocol != "tcp" && protocol != "udp" && protocol != "sctp" {
		return p.invalid("%q: protocol %q is not tcp, udp or sctp", p.value, protocol)
	}
	startText, endText, isRange := strings.Cut(ports, "-")
	if !isRange {
		endText = startText
	}
	start, err1 := strconv.ParseUint(startText, 10, 16)
	end, err2 := strconv.ParseUint(endText, 10, 16)
	if err1 != nil || err2 != nil || start == 0 || end < start {
		return p.invalid("%q is not PORT[/PROTOCOL] or START-END[/PROTOCOL] with ports between 1 and 65535", p.value)
	}
	if end-start >= 1024 {
		return p.invalid("%q exposes %d ports; at most 1024 per parameter", p.value, end-start+1)
	}
	if b.exposedPorts == nil {
		b.exposedPorts = map[string]bool{}
	}
	for port := start; port <= end; port++ {
		b.exposedPorts[fmt.Sprintf("%d/%s", port, protocol)] = true
	}
	return nil
}

// paramRestart accepts only "no": the executor supervises the container,
// and a container Docker restarts behind its back would be reported
// finished while it runs on.
func (b *specBuilder) paramRestart(p parameter) error {
	if p.value == "no" {
		return nil
	}
	return p.invalid("restart policy %q refused: the executor supervises the container and reports its exit to Mesos, so Docker must never restart it (only \"no\" is accepted); let the scheduler relaunch the task instead", p.value)
}

func (b *specBuilder) paramVolumeDriver(p parameter) error {
	// As docker run: the last one wins. The admission policy judges the
	// driver.
	if err := p.nonEmpty(); err != nil {
		return err
	}
	b.hostConfig.VolumeDriver = p.value
	b.volumeDriverField = p.field
	return nil
}

func (b *specBuilder) paramPrivileged(p parameter) error {
	privileged, err := p.boolValue()
	if err != nil {
		return err
	}
	b.privilegedParameter = &privileged
	return nil
}

// paramTmpfs mounts an empty tmpfs: /PATH[:OPTIONS]. The same path given
// twice keeps the last options.
func (b *specBuilder) paramTmpfs(p parameter) error {
	target, options, _ := strings.Cut(p.value, ":")
	if !path.IsAbs(target) {
		return p.invalid("%q is not /PATH[:OPTIONS] with an absolute path", p.value)
	}
	if err := checkMountPath(p.field, target); err != nil {
		return err
	}
	if strings.ContainsAny(options, " \t\n") {
		return p.invalid("%q: options %q contain blanks", p.value, options)
	}
	if b.hostConfig.Tmpfs == nil {
		b.hostConfig.Tmpfs = map[string]string{}
	}
	b.hostConfig.Tmpfs[path.Clean(target)] = options
	return nil
}

// applyPrivileged maps DockerInfo.privileged; a privileged parameter comes
// after it on Mesos' command line and wins. Whether it is admitted is the
// admission policy's decision (policy.go).
func (b *specBuilder) applyPrivileged() error {
	b.hostConfig.Privileged = b.dockerInfo.GetPrivileged()
	if b.privilegedParameter != nil {
		b.hostConfig.Privileged = *b.privilegedParameter
	}
	return nil
}
