package main

// The bench's own use of Docker: the baselines, the die-event stream, the
// cleanup of everything it created, and a tracing proxy that times the
// executor's Docker calls.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

// benchLabel marks every container the bench creates directly; its value
// is the run ID. benchTaskLabel marks the containers the executor creates
// for the bench's tasks: the executor ignores task labels under
// "sidecar-executor.", which it keeps for its own.
const (
	benchLabel     = "sidecar-executor.bench"
	benchTaskLabel = "sidecar-executor-bench"
)

var benchLabels = []string{benchLabel, benchTaskLabel}

type dockerEnv struct {
	client  *docker.Client
	network string // "unix" or "tcp"
	address string
	raw     *http.Client // for the event stream
	version string       // the engine's version
}

// newDockerEnv connects like the executor does, from DOCKER_HOST. The event
// stream is read with a plain HTTP client, which supports unix sockets and
// plain TCP; a TLS DOCKER_HOST is refused rather than half supported.
func newDockerEnv() (*dockerEnv, error) {
	client, err := docker.NewClientFromEnv()
	if err != nil {
		return nil, err
	}
	if err := client.Ping(); err != nil {
		return nil, fmt.Errorf("the Docker engine does not answer: %w", err)
	}
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	if os.Getenv("DOCKER_TLS_VERIFY") != "" {
		return nil, errors.New("DOCKER_TLS_VERIFY is set: the bench reads Docker's events over plain HTTP only")
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("DOCKER_HOST %q: %w", host, err)
	}
	d := &dockerEnv{client: client}
	switch u.Scheme {
	case "unix":
		d.network, d.address = "unix", u.Path
	case "tcp":
		d.network, d.address = "tcp", u.Host
	default:
		return nil, fmt.Errorf("DOCKER_HOST %q: only unix:// and tcp:// are supported by the bench", host)
	}
	d.raw = &http.Client{Transport: &http.Transport{DialContext: d.dial}}
	env, err := client.Version()
	if err != nil {
		return nil, fmt.Errorf("docker version: %w", err)
	}
	d.version = env.Get("Version")
	return d, nil
}

func (d *dockerEnv) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var dialer net.Dialer
	return dialer.DialContext(ctx, d.network, d.address)
}

// dockerEvent is the part of a Docker event the bench reads.
type dockerEvent struct {
	Type   string
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
	TimeNano int64 `json:"timeNano"`
}

// dieWatcher records when Docker reported each labelled container dead.
type dieWatcher struct {
	mu      sync.Mutex
	changed chan struct{}
	byName  map[string]time.Time
	err     error
	cancel  context.CancelFunc
}

// watchDies subscribes to Docker's die events. It
// returns once Docker has answered, so no later die is missed.
func (d *dockerEnv) watchDies(runID string) (*dieWatcher, error) {
	filters, _ := json.Marshal(map[string][]string{
		// No label filter: Docker requires every label filter to match,
		// and the run's containers carry one of two labels. Names are
		// unique to the run, so other containers' dies are never waited for.
		"type":  {"container"},
		"event": {"die"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?filters="+url.QueryEscape(string(filters)), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := d.raw.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe to Docker events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("subscribe to Docker events: %s %s", resp.Status, body)
	}
	w := &dieWatcher{changed: make(chan struct{}), byName: map[string]time.Time{}, cancel: cancel}
	go func() {
		defer resp.Body.Close()
		decoder := json.NewDecoder(resp.Body)
		for {
			var e dockerEvent
			err := decoder.Decode(&e)
			w.mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					w.err = fmt.Errorf("the Docker event stream ended: %w", err)
				} else {
					w.err = errors.New("die watcher closed")
				}
				close(w.changed)
				w.mu.Unlock()
				return
			}
			if e.Action == "die" && e.TimeNano > 0 {
				name := strings.TrimPrefix(e.Actor.Attributes["name"], "/")
				if _, seen := w.byName[name]; !seen {
					w.byName[name] = time.Unix(0, e.TimeNano)
				}
				close(w.changed)
				w.changed = make(chan struct{})
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// wait returns when Docker reported the container named name dead.
func (w *dieWatcher) wait(ctx context.Context, name string) (time.Time, error) {
	for {
		w.mu.Lock()
		t, ok := w.byName[name]
		changed, err := w.changed, w.err
		w.mu.Unlock()
		if ok {
			return t, nil
		}
		if err != nil {
			return time.Time{}, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no die event for container %s: %w", name, ctx.Err())
		}
	}
}

func (w *dieWatcher) close() { w.cancel() }

// removeLabelled force-removes every container carrying the bench label
// (any run, when runID is empty) and returns how many there were.
func (d *dockerEnv) removeLabelled(runID string) (int, error) {
	removed := 0
	var errs []error
	for _, label := range benchLabels {
		filter := label
		if runID != "" {
			filter += "=" + runID
		}
		containers, err := d.client.ListContainers(docker.ListContainersOptions{All: true, Filters: map[string][]string{"label": {filter}}})
		if err != nil {
			return removed, fmt.Errorf("list the bench's containers: %w", err)
		}
		for _, c := range containers {
			err := d.client.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true})
			var missing *docker.NoSuchContainer
			if err != nil && !errors.As(err, &missing) {
				errs = append(errs, err)
			}
		}
		removed += len(containers)
	}
	return removed, errors.Join(errs...)
}

// otherContainersRunning counts running containers that are not the
// bench's: other work on the engine while the bench runs skews it.
func (d *dockerEnv) otherContainersRunning() int {
	containers, err := d.client.ListContainers(docker.ListContainersOptions{})
	if err != nil {
		return -1
	}
	n := 0
	for _, c := range containers {
		_, direct := c.Labels[benchLabel]
		if _, task := c.Labels[benchTaskLabel]; !direct && !task {
			n++
		}
	}
	return n
}

// dockerCall is one request the executor made to Docker, as the tracing
// proxy saw it.
type dockerCall struct {
	Method    string
	Path      string // normalised: IDs and names replaced by {id}
	Container string // the container's ID or name the path (or create's name) held
	Start     time.Time
	End       time.Time // when the response body was finished
}

// dockerProxy is a reverse proxy on a unix socket in front of the engine
// that records each request's start and end. It is used only for the
// breakdown runs: it adds a hop to every call.
type dockerProxy struct {
	socket string
	server *http.Server

	mu       sync.Mutex
	recorded []dockerCall
}

var (
	apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+`)
	containerPath    = regexp.MustCompile(`^/containers/([^/]+)`)
	imagePath        = regexp.MustCompile(`^/images/.+/json$`)
)

// normalisePath replaces the container and image in a Docker API path by
// placeholders and returns the container reference it held, if any.
func normalisePath(path string) (normalised, container string) {
	path = apiVersionPrefix.ReplaceAllString(path, "")
	if m := containerPath.FindStringSubmatch(path); m != nil && m[1] != "create" && m[1] != "json" {
		path, container = "/containers/{id}"+path[len(m[0]):], m[1]
	}
	if imagePath.MatchString(path) {
		path = "/images/{name}/json"
	}
	return path, container
}

func (d *dockerEnv) startProxy(dir string) (*dockerProxy, error) {
	p := &dockerProxy{socket: dir + "/docker-proxy.sock"}
	listener, err := net.Listen("unix", p.socket)
	if err != nil {
		return nil, err
	}
	target := &url.URL{Scheme: "http", Host: "docker"}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{DialContext: d.dial, MaxIdleConnsPerHost: 16}
	proxy.FlushInterval = -1 // stream wait, logs and events as they come
	p.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := dockerCall{Method: r.Method, Start: time.Now()}
		call.Path, call.Container = normalisePath(r.URL.Path)
		if call.Path == "/containers/create" {
			call.Container = r.URL.Query().Get("name")
		}
		proxy.ServeHTTP(w, r)
		call.End = time.Now()
		p.mu.Lock()
		p.recorded = append(p.recorded, call)
		p.mu.Unlock()
	})}
	go func() { _ = p.server.Serve(listener) }()
	return p, nil
}

func (p *dockerProxy) dockerHost() string { return "unix://" + p.socket }

// calls returns every call recorded so far.
func (p *dockerProxy) calls() []dockerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]dockerCall(nil), p.recorded...)
}

func (p *dockerProxy) close() { _ = p.server.Close() }

// cliVersion is the docker CLI's version line, for the record.
func cliVersion() string {
	out, err := execOutput("docker", "version", "--format", "{{.Client.Version}}")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(out)
}

func execOutput(name string, args ...string) (string, error) {
	cmd := newCommand(name, args...)
	var out strings.Builder
	cmd.Stdout = &out
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(firstLines(stderr.String(), 5)))
	}
	return out.String(), nil
}

func firstLines(s string, n int) string {
	scanner := bufio.NewScanner(strings.NewReader(s))
	var lines []string
	for scanner.Scan() && len(lines) < n {
		lines = append(lines, scanner.Text())
	}
	return strings.Join(lines, "\n")
}
