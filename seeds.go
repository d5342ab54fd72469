package main

// Sidecar seeds from the Mesos master: for a task that runs Sidecar itself
// (EXECUTOR_SEED_SIDECAR), the container gets SIDECAR_SEEDS, the host names
// of every agent the master lists, as Sidecar's gossip seeds. The executor
// asks its agent's /state for master_hostname, then the master's /slaves
// for the agents. Seeding is best effort: any failure is logged and the task
// launches without SIDECAR_SEEDS, as upstream's did.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-json-experiment/json/jsontext"
	log "github.com/sirupsen/logrus"
)

// SeedSettings turn Sidecar seeding on and say where the master answers.
type SeedSettings struct {
	// SeedSidecar gives the container SIDECAR_SEEDS, the host names of
	// the cluster's agents. A task setting: the task that runs Sidecar
	// asks for it.
	SeedSidecar bool `envconfig:"SEED_SIDECAR" default:"false"`
	// MesosMasterPort is the master's HTTP port. Operator-only: it is a
	// property of the cluster, and a task choosing it would choose which
	// port of the master's host the executor connects to.
	MesosMasterPort string `envconfig:"MESOS_MASTER_PORT" default:"5050"`
}

// seedsVariable is the container variable Sidecar reads its seeds from.
const seedsVariable = "SIDECAR_SEEDS"

// maxSeedDocumentBytes caps each answer read, the agent's state and the
// master's agent list. Both are streamed and never held, so the cap bounds
// how long a runaway answer is read, not memory; an agent's state with its
// completed tasks or a master's list of 10,000 agents is a few tens of MB.
const maxSeedDocumentBytes = 64 << 20

// maxSeedsBytes caps the SIDECAR_SEEDS value: about 20,000 host names of
// 25 characters, well inside the container environment's limit.
const maxSeedsBytes = 512 << 10

// problems lists what is wrong with the settings. The port is never
// empty: an empty value means unset, and the default applies.
func (s SeedSettings) problems() []string {
	if port, err := strconv.Atoi(s.MesosMasterPort); err != nil || port < 1 || port > 65535 {
		return []string{fmt.Sprintf("%s_MESOS_MASTER_PORT must be a TCP port number, 1 to 65535 (got %q)", envPrefix, s.MesosMasterPort)}
	}
	return nil
}

// seedLookup finds the cluster's agents through the local agent and its
// master.
type seedLookup struct {
	client *http.Client
	// agentEndpoint is MESOS_AGENT_ENDPOINT, the agent's host:port.
	agentEndpoint string
	// masterPort is EXECUTOR_MESOS_MASTER_PORT.
	masterPort string
}

// newSeedLookup makes a lookup with its own transport, without proxies:
// HTTP_PROXY and co. in the executor's environment are the task's, and
// the agent and the master are the cluster's own hosts.
func newSeedLookup(settings *Config, agentEndpoint string) *seedLookup {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	return &seedLookup{
		client:        &http.Client{Timeout: settings.HttpTimeout, Transport: transport},
		agentEndpoint: agentEndpoint,
		masterPort:    settings.MesosMasterPort,
	}
}

// seedError is a failed step of the lookup: the URL asked and why.
type seedError struct {
	url string
	err error
}

func (e *seedError) Error() string { return e.url + ": " + e.err.Error() }
func (e *seedError) Unwrap() error { return e.err }

// lookup returns the agents' host names, sorted, without repeats, and the
// number of entries left out because they are no usable host name.
func (l *seedLookup) lookup(ctx context.Context) (seeds []string, skipped int, err error) {
	defer l.client.CloseIdleConnections()
	if l.agentEndpoint == "" {
		return nil, 0, &seedError{url: "MESOS_AGENT_ENDPOINT", err: errors.New("not set: the agent to ask for its master is unknown")}
	}
	stateURL := "http://" + l.agentEndpoint + "/state"
	var masterHostname string
	var found bool
	if err := l.get(ctx, stateURL, func(dec *jsontext.Decoder) (readErr error) {
		masterHostname, found, readErr = readMasterHostname(dec)
		return readErr
	}); err != nil {
		return nil, 0, &seedError{url: stateURL, err: err}
	}
	switch {
	case !found:
		return nil, 0, &seedError{url: stateURL, err: errors.New("the agent's state has no master_hostname (the agent is not registered with a master, or could not resolve its master's address to a name)")}
	case !validHost(masterHostname):
		return nil, 0, &seedError{url: stateURL, err: fmt.Errorf("the agent's master_hostname %q is not a host name", masterHostname)}
	}
	slavesURL := "http://" + net.JoinHostPort(masterHostname, l.masterPort) + "/slaves"
	var hostnames []string
	if err := l.get(ctx, slavesURL, func(dec *jsontext.Decoder) (readErr error) {
		hostnames, readErr = readAgentHostnames(dec)
		return readErr
	}); err != nil {
		return nil, 0, &seedError{url: slavesURL, err: err}
	}
	seeds, skipped = cleanSeeds(hostnames)
	if n := len(strings.Join(seeds, ",")); n > maxSeedsBytes {
		return nil, 0, &seedError{url: slavesURL, err: fmt.Errorf("the agents' host names make %d bytes, more than the limit of %d", n, maxSeedsBytes)}
	}
	return seeds, skipped, nil
}

// get asks target and hands its JSON body to read.
func (l *seedLookup) get(ctx context.Context, target string, read func(*jsontext.Decoder) error) error {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	request.Header.Set("Accept", "application/json")
	response, err := l.client.Do(request)
	if err != nil {
		// The URL is already in seedError; *url.Error would repeat it.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			return urlErr.Err
		}
		return err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("answered HTTP %s", response.Status)
	}
	limited := &io.LimitedReader{R: response.Body, N: maxSeedDocumentBytes + 1}
	if err := read(jsontext.NewDecoder(limited, stateDecoderOptions...)); err != nil {
		if limited.N <= 0 {
			return fmt.Errorf("the answer is larger than %d bytes", maxSeedDocumentBytes)
		}
		return err
	}
	return nil
}

// readMasterHostname reads the agent's state document for its top-level
// master_hostname, skipping everything else.
func readMasterHostname(dec *jsontext.Decoder) (hostname string, found bool, err error) {
	err = readTopLevel(dec, "agent state", map[string]func() error{
		"master_hostname": func() error {
			if kind := dec.PeekKind(); kind != '"' {
				if kind == 0 {
					return dec.SkipValue()
				}
				return fmt.Errorf("master_hostname is a JSON %s, not a string", kindName(kind))
			}
			var buf []byte
			value, err := readJSONString(dec, &buf)
			hostname, found = string(value), err == nil
			return err
		},
	})
	return hostname, found, err
}

// readAgentHostnames reads the master's /slaves document for the hostname
// of every entry of its top-level slaves array.
func readAgentHostnames(dec *jsontext.Decoder) ([]string, error) {
	var hostnames []string
	var haveSlaves bool
	err := readTopLevel(dec, "master's agent list", map[string]func() error{
		"slaves": func() error {
			haveSlaves = true
			if kind := dec.PeekKind(); kind != '[' {
				if kind == 0 {
					return dec.SkipValue()
				}
				return fmt.Errorf("slaves is a JSON %s, not an array", kindName(kind))
			}
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
			var buf []byte
			for dec.PeekKind() != ']' {
				if kind := dec.PeekKind(); kind != '{' {
					if kind == 0 {
						_, err := dec.ReadToken()
						return err
					}
					return fmt.Errorf("an entry of slaves is a JSON %s, not an object", kindName(kind))
				}
				if _, err := dec.ReadToken(); err != nil {
					return err
				}
				haveHostname := false
				for dec.PeekKind() != '}' {
					name, err := readJSONString(dec, &buf)
					if err != nil {
						return err
					}
					if string(name) != "hostname" || haveHostname || dec.PeekKind() != '"' {
						if err := dec.SkipValue(); err != nil {
							return err
						}
						continue
					}
					haveHostname = true
					value, err := readJSONString(dec, &buf)
					if err != nil {
						return err
					}
					hostnames = append(hostnames, string(value))
				}
				if _, err := dec.ReadToken(); err != nil {
					return err
				}
				if !haveHostname {
					hostnames = append(hostnames, "")
				}
			}
			_, err := dec.ReadToken()
			return err
		},
	})
	if err == nil && !haveSlaves {
		err = errors.New("the master's agent list has no slaves field")
	}
	return hostnames, err
}

// readTopLevel reads one JSON object, handing the value of each member
// named in fields (its first occurrence) to its reader and skipping the
// rest, and checks that nothing follows it.
func readTopLevel(dec *jsontext.Decoder, doc string, fields map[string]func() error) error {
	if kind := dec.PeekKind(); kind != '{' {
		if kind == 0 {
			_, err := dec.ReadToken()
			return fmt.Errorf("the %s is not valid JSON: %w", doc, err)
		}
		return fmt.Errorf("the %s is a JSON %s, not an object", doc, kindName(kind))
	}
	if _, err := dec.ReadToken(); err != nil {
		return fmt.Errorf("the %s is not valid JSON: %w", doc, err)
	}
	seen := map[string]bool{}
	var buf []byte
	for dec.PeekKind() != '}' {
		name, err := readJSONString(dec, &buf)
		if err != nil {
			return fmt.Errorf("the %s is not valid JSON: %w", doc, err)
		}
		read, wanted := fields[string(name)]
		if !wanted || seen[string(name)] {
			err = dec.SkipValue()
		} else {
			seen[string(name)] = true
			err = read()
		}
		if err != nil {
			var syntaxErr *jsontext.SyntacticError
			if errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("the %s is not valid JSON: %w", doc, err)
			}
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return fmt.Errorf("the %s is not valid JSON: %w", doc, err)
	}
	return checkNothingAfter(dec, "the "+doc)
}

// validHost accepts a DNS name or an IP address: what may stand between
// http:// and the port without changing the URL's meaning.
func validHost(host string) bool {
	if net.ParseIP(host) != nil {
		return true
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, r := range host {
		if r != '.' && r != '-' && r != '_' && (r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

// cleanSeeds sorts the host names and drops repeats and those that cannot
// stand in a comma-separated list: empty, or holding a comma, a space or a
// control character.
func cleanSeeds(hostnames []string) (seeds []string, skipped int) {
	for _, hostname := range hostnames {
		if hostname == "" || strings.IndexFunc(hostname, func(r rune) bool {
			return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r)
		}) >= 0 {
			skipped++
			continue
		}
		seeds = append(seeds, hostname)
	}
	slices.Sort(seeds)
	return slices.Compact(seeds), skipped
}

// pendingSeeds is a lookup running alongside the launch.
type pendingSeeds struct {
	done   chan struct{}
	seeds  []string
	skip   int
	err    error
	logger *log.Entry
}

// startSeedLookup starts the lookup when the task asked for seeds; nil
// otherwise. It ends with ctx or the lookup's HTTP timeouts.
func startSeedLookup(ctx context.Context, settings *Config, agentEndpoint string, logger *log.Entry) *pendingSeeds {
	if !settings.SeedSidecar {
		return nil
	}
	pending := &pendingSeeds{done: make(chan struct{}), logger: logger}
	lookup := newSeedLookup(settings, agentEndpoint)
	go func() {
		defer close(pending.done)
		pending.seeds, pending.skip, pending.err = lookup.lookup(ctx)
	}()
	return pending
}

// apply waits for the lookup and returns env with SIDECAR_SEEDS set to its
// answer; on failure env is returned as it is and the log says why.
func (p *pendingSeeds) apply(ctx context.Context, env []string) []string {
	if p == nil {
		return env
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return env
	}
	if p.err != nil {
		fields := log.Fields{"error": p.err.Error()}
		var stepErr *seedError
		if errors.As(p.err, &stepErr) {
			fields = log.Fields{"url": stepErr.url, "error": stepErr.err.Error()}
		}
		p.logger.WithFields(fields).Warn("cannot seed Sidecar from the Mesos master; the task is launched without " + seedsVariable)
		return env
	}
	if p.skip > 0 {
		p.logger.WithField("skipped", p.skip).Warn("the master lists agents with no usable host name (empty, or holding a comma, a space or a control character); they are left out of " + seedsVariable)
	}
	if len(p.seeds) == 0 {
		p.logger.Warn("the master lists no agents; " + seedsVariable + " is empty")
	}
	value := strings.Join(p.seeds, ",")
	out := make([]string, 0, len(env)+1)
	for _, entry := range env {
		if strings.HasPrefix(entry, seedsVariable+"=") {
			p.logger.Info("the seeds from the Mesos master replace the task's own " + seedsVariable)
			continue
		}
		out = append(out, entry)
	}
	out = append(out, seedsVariable+"="+value)
	if size := envSize(out); size > maxEnvironmentBytes {
		p.logger.WithField("agents", len(p.seeds)).Warnf("cannot seed Sidecar: with %s the container environment would be %d bytes, more than the limit of %d; the task is launched without it", seedsVariable, size, maxEnvironmentBytes)
		return env
	}
	p.logger.WithFields(log.Fields{"agents": len(p.seeds), "seeds": value}).Info("Sidecar seeded from the Mesos master")
	return out
}
