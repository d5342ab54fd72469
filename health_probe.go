package main

// One attempt of a Mesos health check or check against the task's
// container: HTTP(S) and TCP from the host to where the container listens,
// COMMAND inside the container through Docker's exec API. Mesos runs HTTP
// and TCP checks inside the container's network namespace against
// 127.0.0.1; this executor connects from the host instead, to the
// container's own address on its network (127.0.0.1 on the host's
// network), so a service listening only on the container's loopback is
// not reachable (README: "Health checks and checks").

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	docker "github.com/fsouza/go-dockerclient"
)

type probeKind int

const (
	probeHTTP probeKind = iota + 1
	probeTCP
	probeCommand
)

// probeSpec is what one attempt does, from the TaskInfo.
type probeSpec struct {
	kind   probeKind
	scheme string // HTTP: "http" or "https"
	port   uint32 // HTTP, TCP: the container's port (the host's on host networking)
	path   string // HTTP
	ipv6   bool   // HTTP, TCP: the container's IPv6 address (::1 on the host's network)
	cmd    []string
	env    []string
}

// probeTarget is where HTTP and TCP attempts connect, from Docker's view
// of the container (never from anything the container wrote).
type probeTarget struct {
	hostNetwork bool
	ipv4, ipv6  string // the container's addresses on its network
	network     string // the network mode, for messages
}

// probeTargetFor reads the container's addresses; spec says whether it
// runs on the host's network.
func probeTargetFor(container *docker.Container, spec *containerSpec) probeTarget {
	var target probeTarget
	if spec != nil && spec.Options.HostConfig != nil {
		target.network = spec.Options.HostConfig.NetworkMode
		target.hostNetwork = target.network == "host"
	}
	if container == nil || container.NetworkSettings == nil {
		return target
	}
	settings := container.NetworkSettings
	target.ipv4, target.ipv6 = settings.IPAddress, settings.GlobalIPv6Address
	// The task's own network first (its network mode; Docker's
	// "default" is the bridge), then the others by name: a container on
	// several networks is always probed at the same address.
	primary := target.network
	if primary == "" || primary == "default" {
		primary = "bridge"
	}
	names := slices.Sorted(maps.Keys(settings.Networks))
	if i := slices.Index(names, primary); i > 0 {
		names = append(append([]string{primary}, names[:i]...), names[i+1:]...)
	}
	for _, name := range names {
		network := settings.Networks[name]
		if target.ipv4 == "" {
			target.ipv4 = network.IPAddress
		}
		if target.ipv6 == "" {
			target.ipv6 = network.GlobalIPv6Address
		}
	}
	return target
}

// host is the address HTTP and TCP attempts use, or why there is none.
func (t probeTarget) host(ipv6 bool) (string, error) {
	switch {
	case t.hostNetwork && ipv6:
		return "::1", nil
	case t.hostNetwork:
		return "127.0.0.1", nil
	case ipv6 && t.ipv6 != "":
		return t.ipv6, nil
	case ipv6:
		return "", fmt.Errorf("the container has no IPv6 address on its network (%s)", t.describeNetwork())
	case t.ipv4 != "":
		return t.ipv4, nil
	}
	return "", fmt.Errorf("the container has no IP address on its network (%s) for the executor to connect to", t.describeNetwork())
}

func (t probeTarget) describeNetwork() string {
	if t.network == "" {
		return "default"
	}
	return t.network
}

// probeOutcome is the result of one attempt.
type probeOutcome struct {
	kind   probeKind
	target string // what was checked, for messages
	// code is the HTTP status code or the command's exit code.
	code int
	// err: the attempt got no answer (no connection, no response, the
	// command could not run, or the timeout).
	err      error
	timedOut bool
	// refused: a TCP connection was refused or reset (an answer: "no").
	refused bool
	// output is the end of a command's output, redacted.
	output string
}

// describe says why the attempt failed, for status messages.
func (o probeOutcome) describe() string {
	switch {
	case o.err != nil:
		return o.err.Error()
	case o.kind == probeCommand:
		return fmt.Sprintf("%s exited with status %d", o.target, o.code)
	default:
		return fmt.Sprintf("%s answered HTTP %d", o.target, o.code)
	}
}

// prober performs attempts of one check.
type prober interface {
	attempt(ctx context.Context) probeOutcome
	// healthy is Mesos' health verdict on an outcome.
	healthy(out probeOutcome) bool
	// describe names the check in logs.
	describe() string
}

// execRunner is the part of the container runtime a COMMAND check uses.
type execRunner interface {
	execInContainer(ctx context.Context, id string, cmd, env []string, outputLimit int) (execResult, error)
}

func newProber(spec probeSpec, target probeTarget, runtime execRunner, containerID string, secrets []string) prober {
	switch spec.kind {
	case probeHTTP:
		return newHTTPProber(spec, target)
	case probeTCP:
		return &tcpProber{spec: spec, target: target}
	default:
		return &commandProber{spec: spec, runtime: runtime, containerID: containerID, secrets: secrets}
	}
}

// httpProber is an HTTP(S) check: a GET, redirects followed on the same
// host, TLS certificates not verified (as curl -k under Mesos); healthy iff
// 200 <= status < 400.
type httpProber struct {
	spec   probeSpec
	target probeTarget
	client *http.Client
}

// maxProbeHeaderBytes bounds the response headers the container may send.
const maxProbeHeaderBytes = 64 << 10

func newHTTPProber(spec probeSpec, target probeTarget) *httpProber {
	transport := &http.Transport{
		// Never through a proxy: the container's address is local.
		Proxy:                  nil,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxProbeHeaderBytes,
		// The service's certificate is not checked, as Mesos' curl -k does
		// not: the check asks whether it answers, not who it is.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	}
	p := &httpProber{spec: spec, target: target}
	p.client = &http.Client{Transport: transport, CheckRedirect: p.checkRedirect}
	return p
}

// checkRedirect follows redirects (curl -L) only to the container itself:
// the executor connects from the host, which may reach what the container
// cannot, so a redirect elsewhere is not followed and its 3xx is the
// answer.
func (p *httpProber) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return http.ErrUseLastResponse
	}
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	return nil
}

func (p *httpProber) url() (string, error) {
	host, err := p.target.host(p.spec.ipv6)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: p.spec.scheme, Host: net.JoinHostPort(host, strconv.Itoa(int(p.spec.port))), Path: p.spec.path}
	return u.String(), nil
}

func (p *httpProber) describe() string {
	return fmt.Sprintf("%s port %d path %q", strings.ToUpper(p.spec.scheme), p.spec.port, p.spec.path)
}

func (p *httpProber) attempt(ctx context.Context) probeOutcome {
	target, err := p.url()
	if err != nil {
		return probeOutcome{kind: probeHTTP, target: p.describe(), err: err}
	}
	out := probeOutcome{kind: probeHTTP, target: "GET " + target}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		out.err = err
		return out
	}
	req.Header.Set("User-Agent", "sidecar-executor-health-check")
	resp, err := p.client.Do(req)
	if err != nil {
		out.err = fmt.Errorf("GET %s: %w", target, unwrapURLError(err))
		return out
	}
	// The body is not read: the status is the answer.
	resp.Body.Close()
	out.code = resp.StatusCode
	return out
}

func (p *httpProber) healthy(out probeOutcome) bool {
	return out.err == nil && out.code >= 200 && out.code < 400
}

// unwrapURLError drops url.Error's repetition of the method and URL.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

// tcpProber is a TCP check: healthy iff a connection is established.
type tcpProber struct {
	spec   probeSpec
	target probeTarget
}

func (p *tcpProber) describe() string { return fmt.Sprintf("TCP port %d", p.spec.port) }

func (p *tcpProber) attempt(ctx context.Context) probeOutcome {
	host, err := p.target.host(p.spec.ipv6)
	if err != nil {
		return probeOutcome{kind: probeTCP, target: p.describe(), err: err}
	}
	address := net.JoinHostPort(host, strconv.Itoa(int(p.spec.port)))
	out := probeOutcome{kind: probeTCP, target: "TCP " + address}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		out.err = fmt.Errorf("connect to %s: %w", address, err)
		out.refused = errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
		return out
	}
	conn.Close()
	return out
}

func (p *tcpProber) healthy(out probeOutcome) bool { return out.err == nil }

// commandProber is a COMMAND check, run in the container with Docker's
// exec API; healthy iff it exits 0. Its output stays out of the log unless
// the check fails, and then only its redacted tail.
type commandProber struct {
	spec        probeSpec
	runtime     execRunner
	containerID string
	// secrets are the container's secret values (from Vault or under a
	// secret-like name), replaced wherever they appear in the output.
	secrets []string
}

// commandOutputTail is how much of a failed command's output is logged.
const commandOutputTail = 512

func (p *commandProber) describe() string {
	return "command " + strconv.Quote(strings.Join(p.spec.cmd, " "))
}

func (p *commandProber) attempt(ctx context.Context) probeOutcome {
	out := probeOutcome{kind: probeCommand, target: "command"}
	result, err := p.runtime.execInContainer(ctx, p.containerID, p.spec.cmd, p.spec.env, commandOutputTail)
	out.output = redactOutput(string(result.outputTail), p.secrets)
	if err != nil {
		out.err = fmt.Errorf("command: %w", err)
		return out
	}
	out.code = result.exitCode
	return out
}

func (p *commandProber) healthy(out probeOutcome) bool { return out.err == nil && out.code == 0 }

// envAssignment finds NAME=value text in a command's output.
var envAssignment = regexp.MustCompile(`\b([A-Za-z_][A-Za-z0-9_]*)=(\S+)`)

// redactOutput makes a command's output fit for the log: the known secret
// values, the values of NAME=value pairs whose name marks a secret, and
// what redactSecretsIn recognises by its shape are replaced.
func redactOutput(output string, secrets []string) string {
	output = strings.ToValidUTF8(output, "?")
	for _, secret := range secrets {
		if len(secret) >= 4 {
			output = strings.ReplaceAll(output, secret, redactedValue)
		}
	}
	output = envAssignment.ReplaceAllStringFunc(output, func(kv string) string {
		name, _, _ := strings.Cut(kv, "=")
		if isSecretKey(name) {
			return name + "=" + redactedValue
		}
		return kv
	})
	return redactSecretsIn(output)
}

// containerSecrets are secretValues of the task's container environment.
func (t *taskRunner) containerSecrets() []string {
	if t.spec == nil || t.spec.Options.Config == nil {
		return nil
	}
	return secretValues(t.spec.Options.Config.Env, t.fromVault)
}

// secretValues are the values of the container's environment that are
// never logged: resolved from Vault, or under a secret-like name.
func secretValues(env []string, fromVault []string) []string {
	var secrets []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if value != "" && (isSecretKey(name) || slices.Contains(fromVault, name)) {
			secrets = append(secrets, value)
		}
	}
	return secrets
}
