package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
)

const (
	// dockerCallTimeout bounds every short Docker call (inspect, create,
	// start, remove). Long calls (wait, stop, pull, logs) use contexts.
	dockerCallTimeout = 30 * time.Second
	// stopSlack is how long a stop may take beyond its grace period before
	// the executor stops waiting for Docker's answer.
	stopSlack = 30 * time.Second
	// logCopyLimit caps how much container output is copied per stream, so
	// a chatty container cannot flood the sandbox on failure.
	logCopyLimit = 16 << 20
)

// dockerRuntime runs one container through the Docker API. It keeps two
// clients: short has an HTTP timeout; long has none and is only used with
// contexts, for calls that legitimately block (wait, stop, pull, logs).
// The start of the container has a client of its own (prepareStart).
type dockerRuntime struct {
	short    *docker.Client
	long     *docker.Client
	follow   *docker.Client // followLogs' (docker_follow_conn.go)
	endpoint string
	exec     execClient // docker_exec.go
}

var _ containerRuntime = (*dockerRuntime)(nil)

// newDockerRuntime configures Docker from DOCKER_HOST, DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH and DOCKER_API_VERSION, like the docker CLI; main has
// set them to the operator's (settingsEnv.applyDockerDaemonSettings).
func newDockerRuntime() (*dockerRuntime, error) {
	short, err := newDockerClient()
	if err != nil {
		return nil, err
	}
	short.SetTimeout(dockerCallTimeout)
	captureRawBodies(short)
	long, err := newDockerClient()
	if err != nil {
		return nil, err
	}
	follow, err := newFollowClient()
	if err != nil {
		return nil, err
	}
	return &dockerRuntime{short: short, long: long, follow: follow, endpoint: short.Endpoint()}, nil
}

// newDockerClient makes a client from the environment that never asks the
// daemon for its version on its own. go-dockerclient would otherwise ask
// (GET /version) before the first call of a client when DOCKER_API_VERSION
// is set; the answer changes none of the calls made here (their URLs carry
// DOCKER_API_VERSION either way), and the lazy, unsynchronised check would
// race when the launch makes two calls at once on one client.
func newDockerClient() (*docker.Client, error) {
	client, err := docker.NewClientFromEnv()
	if err != nil {
		return nil, fmt.Errorf("configure the Docker client from DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH: %w", err)
	}
	client.SkipServerVersionCheck = true
	return client, nil
}

// nextTransport is what a wrapper of a client's HTTP transport passes the
// requests it does not change to. It passes CloseIdleConnections on too, so
// that wrapping the transport does not keep idle connections open.
type nextTransport struct {
	next http.RoundTripper
}

func (t nextTransport) CloseIdleConnections() {
	if closer, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		closer.CloseIdleConnections()
	}
}

// wrapTransport puts wrap's transport in front of the client's own.
func wrapTransport(client *docker.Client, wrap func(next nextTransport) http.RoundTripper) {
	next := client.HTTPClient.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.HTTPClient.Transport = wrap(nextTransport{next: next})
}

// warmDockerJSON has encoding/json build ahead of the launch what it builds
// on the first use of a type and then keeps for the life of the process:
// the field tables and encoders of go-dockerclient's types. An executor
// launches once, so otherwise its launch pays for them on the critical
// path, in encoding the create's body (Config, HostConfig,
// NetworkingConfig) and decoding the create's answer (Container). Timed in
// the executor on the bench machine (BENCHMARKS.md, "Launch, third
// round"): cold, the create left 0.53 ms after the launch asked for it and
// its answer took 0.33 ms to decode; warm, 0.15 and 0.08 ms. main runs
// this in the background at start-up, where it takes under 1 ms of the
// other core while the executor subscribes. Encoding zero values is
// enough: encoding/json builds a type's encoder for its whole tree of
// field types, and its decoder uses the same field tables.
func warmDockerJSON() {
	_, _ = json.Marshal(docker.Container{})
	_, _ = json.Marshal(docker.NetworkingConfig{})
}

// pendingStart is the client that will start the launch's container, being
// readied in the background (a ping) while the launch creates the
// container.
//
// go-dockerclient's StartContainer asks the daemon for its API version
// (GET /version) before the first start of each client, whatever the
// client's settings (container_start.go), only to send the HostConfig in
// the start's body to a daemon older than API 1.24 (Docker 1.12, 2016).
// The executor puts the HostConfig in the create, which every daemon the
// executor supports takes, so the answer changes nothing; and dockerd
// answers /version slowly (it asks containerd, runc and docker-init for
// their versions: 7-17 ms of the daemon's time on the bench machine), on
// every launch, competing with the create on a busy agent. The start's
// client therefore never sends it: its transport (versionlessTransport)
// answers GET /version with an error of its own, which go-dockerclient's
// start ignores, and the start goes straight to POST .../start.
type pendingStart struct {
	client *docker.Client
	done   chan struct{}
	err    error // set before done is closed
}

// prepareStart pings the daemon on a new client of its own. The client is
// the launch's alone: go-dockerclient's version check in the start is
// unsynchronised, so nothing else may use the client.
func (r *dockerRuntime) prepareStart(ctx context.Context) containerStart {
	p := &pendingStart{done: make(chan struct{})}
	client, err := newDockerClient()
	if err != nil {
		p.err = err
		close(p.done)
		return p
	}
	client.SetTimeout(dockerCallTimeout)
	wrapTransport(client, func(next nextTransport) http.RoundTripper { return versionlessTransport{next} })
	p.client = client
	go func() {
		defer close(p.done)
		pingCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
		defer cancel()
		if err := client.PingWithContext(pingCtx); err != nil {
			p.err = fmt.Errorf("the Docker daemon at %s is unreachable: %w", r.endpoint, err)
		}
	}()
	return p
}

// versionlessTransport refuses GET /version (pendingStart says why) and
// passes every other request on unchanged.
type versionlessTransport struct {
	nextTransport
}

// errVersionNotAsked is the answer go-dockerclient's start gets, and
// ignores, for its version check.
var errVersionNotAsked = errors.New("the start's client does not ask the daemon's version")

func (t versionlessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && isVersionPath(req.URL.Path) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errVersionNotAsked
	}
	return t.next.RoundTrip(req)
}

// isVersionPath tells Docker's version endpoint: /version, or /vX.Y/version
// on a client that names an API version.
func isVersionPath(path string) bool {
	if path == "/version" {
		return true
	}
	rest, ok := strings.CutPrefix(path, "/v")
	if !ok {
		return false
	}
	number, tail, ok := strings.Cut(rest, "/")
	if !ok || tail != "version" || number == "" {
		return false
	}
	return strings.Trim(number, "0123456789.") == ""
}

// wait returns the ping's verdict once it is in, or the context's error if
// the launch is abandoned first (a KILL must not wait for the ping).
func (p *pendingStart) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// splitImageReference splits an image reference into the repository and tag
// that Docker's pull API expects. Digest references keep the digest in the
// repository (the client passes it through) and an empty tag; references
// without a tag get "latest", since an empty tag would pull every tag.
func splitImageReference(image string) (repository, tag string) {
	if strings.Contains(image, "@") {
		return image, ""
	}
	lastSlash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > lastSlash {
		return image[:colon], image[colon+1:]
	}
	return image, "latest"
}

// pullImage pulls once; retries are the caller's policy (pull.go). Docker's
// JSON progress stream goes to progress, which also catches an error the
// daemon reports inside the stream after answering 200. An attempt that
// receives nothing for inactivity is cut.
func (r *dockerRuntime) pullImage(ctx context.Context, image string, auth docker.AuthConfiguration, inactivity time.Duration, progress *pullProgress) error {
	repository, tag := splitImageReference(image)
	opts := docker.PullImageOptions{
		Repository:        repository,
		Tag:               tag,
		Context:           ctx,
		OutputStream:      progress,
		RawJSONStream:     true,
		InactivityTimeout: inactivity,
	}
	if err := r.long.PullImage(opts, auth); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull %s: %w", image, ctx.Err())
		}
		return fmt.Errorf("pull %s: %w", image, err)
	}
	progress.finish()
	if err := progress.streamError(); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	return nil
}

// removeStaleContainer frees the container name for this task. A container
// of that name whose owner labels say it belongs to this framework's task is
// one a previous executor of the task left behind (it crashed, or was
// SIGKILLed): it is removed, so that two containers never run one task. Any
// other container of that name belongs to someone else and is left alone;
// the launch fails instead.
func (r *dockerRuntime) removeStaleContainer(ctx context.Context, name string, owner containerOwner, taskID string, logger *log.Entry) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	existing, err := r.short.InspectContainerWithOptions(docker.InspectContainerOptions{ID: name, Context: ctx})
	var missing *docker.NoSuchContainer
	switch {
	case errors.As(err, &missing):
		return nil
	case err != nil:
		return fmt.Errorf("look for an earlier container named %s: %w", name, err)
	}
	var labels map[string]string
	if existing.Config != nil {
		labels = existing.Config.Labels
	}
	if owner.FrameworkID == "" || labels[frameworkIDLabel] != owner.FrameworkID || labels[taskIDLabel] != taskID {
		return fmt.Errorf("a container named %s (%s, %s) already exists and is not one of this task's: its labels say framework %q, task %q, where this task is framework %q, task %q; it was left untouched",
			name, shortID(existing.ID), existing.State.StateString(), labels[frameworkIDLabel], labels[taskIDLabel], owner.FrameworkID, taskID)
	}
	logger.WithFields(log.Fields{
		"container":          shortID(existing.ID),
		"state":              existing.State.StateString(),
		"container_name":     name,
		"owner_executor_id":  labels[executorIDLabel],
		"owner_framework_id": labels[frameworkIDLabel],
	}).Warn("found a container of this task left by a previous executor (its labels name this framework and task); removing it before launching")
	err = r.short.RemoveContainer(docker.RemoveContainerOptions{ID: existing.ID, Force: true, RemoveVolumes: true, Context: ctx})
	if err != nil && !errors.As(err, &missing) {
		return fmt.Errorf("remove the earlier container %s named %s: %w", shortID(existing.ID), name, err)
	}
	return nil
}

// removeOwnContainerNamed removes the container of that name only if its
// labels say this executor created it for this task.
func (r *dockerRuntime) removeOwnContainerNamed(ctx context.Context, name string, owner containerOwner, taskID string, logger *log.Entry) error {
	inspectCtx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	existing, err := r.short.InspectContainerWithOptions(docker.InspectContainerOptions{ID: name, Context: inspectCtx})
	var missing *docker.NoSuchContainer
	switch {
	case errors.As(err, &missing):
		return nil
	case err != nil:
		return fmt.Errorf("look for a container named %s: %w", name, err)
	}
	var labels map[string]string
	if existing.Config != nil {
		labels = existing.Config.Labels
	}
	if owner.FrameworkID == "" || owner.ExecutorID == "" || labels[frameworkIDLabel] != owner.FrameworkID ||
		labels[executorIDLabel] != owner.ExecutorID || labels[taskIDLabel] != taskID {
		logger.WithFields(log.Fields{"container": shortID(existing.ID), "container_name": name}).Warn("a container of this name exists but is not this executor's; leaving it alone")
		return nil
	}
	return r.removeContainer(ctx, existing.ID)
}

// ownedContainers lists every container, running or not, whose owner labels
// name this framework, executor, instance and (when known) agent. The
// framework, executor and instance IDs are required: a filter without them
// would match containers that are not the caller's.
func (r *dockerRuntime) ownedContainers(ctx context.Context, owner containerOwner) ([]docker.APIContainers, error) {
	if owner.FrameworkID == "" || owner.ExecutorID == "" || owner.Instance == "" {
		return nil, errors.New("the framework, executor and instance IDs are all needed to find the executor's containers")
	}
	filters := []string{frameworkIDLabel + "=" + owner.FrameworkID, executorIDLabel + "=" + owner.ExecutorID, instanceLabel + "=" + owner.Instance}
	if owner.AgentID != "" {
		filters = append(filters, agentIDLabel+"="+owner.AgentID)
	}
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	containers, err := r.short.ListContainers(docker.ListContainersOptions{All: true, Filters: map[string][]string{"label": filters}, Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("list the containers labelled %s: %w", strings.Join(filters, ", "), err)
	}
	// Docker applies the filter; checking again costs nothing and keeps a
	// daemon that ignored it from handing us someone else's containers.
	var owned []docker.APIContainers
	for _, c := range containers {
		if c.Labels[frameworkIDLabel] == owner.FrameworkID && c.Labels[executorIDLabel] == owner.ExecutorID &&
			c.Labels[instanceLabel] == owner.Instance && (owner.AgentID == "" || c.Labels[agentIDLabel] == owner.AgentID) {
			owned = append(owned, c)
		}
	}
	return owned, nil
}

func (r *dockerRuntime) createContainer(ctx context.Context, opts docker.CreateContainerOptions) (*docker.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	opts.Context = ctx
	container, err := r.short.CreateContainer(opts)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", opts.Name, err)
	}
	return container, nil
}

// start starts the container through the client prepareStart readied;
// wait must have returned nil.
func (p *pendingStart) start(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	err := p.client.StartContainerWithContext(id, nil, ctx)
	// The client has done its one job: free its connection to the daemon
	// rather than keep it idle for the life of the task.
	p.client.HTTPClient.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("start container %s: %w", shortID(id), err)
	}
	return nil
}

func (r *dockerRuntime) inspectContainer(ctx context.Context, id string) (*docker.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	container, err := r.short.InspectContainerWithOptions(docker.InspectContainerOptions{ID: id, Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	return container, nil
}

// inspectStarted inspects the container and keeps Docker's answer as it
// was sent, for TASK_RUNNING's data.
func (r *dockerRuntime) inspectStarted(ctx context.Context, id string) (*docker.Container, []byte, error) {
	sink := &rawBodySink{limit: maxRunningData}
	container, err := r.inspectContainer(withRawBody(ctx, sink), id)
	if err != nil {
		return nil, nil, err
	}
	if sink.over {
		return container, nil, nil
	}
	return container, inspectData(sink.buf.Bytes(), maxRunningData), nil
}

// waitContainer blocks until the container is no longer running. A broken
// connection to Docker is not an exit: the wait is resumed once Docker
// answers again, unless it stays unreachable for longer than limit.
func (r *dockerRuntime) waitContainer(ctx context.Context, id string, limit time.Duration, logger *log.Entry) error {
	return r.whileUnreachable(ctx, limit, logger, "wait for container "+shortID(id), func() error {
		_, err := r.long.WaitContainerWithContext(id, ctx)
		return err
	})
}

// inspectPatiently inspects the container, riding out a Docker outage of
// up to limit: the exit status must not be lost to a daemon restart.
func (r *dockerRuntime) inspectPatiently(ctx context.Context, id string, limit time.Duration, logger *log.Entry) (*docker.Container, error) {
	var container *docker.Container
	err := r.whileUnreachable(ctx, limit, logger, "inspect container "+shortID(id), func() error {
		var err error
		container, err = r.inspectContainer(ctx, id)
		return err
	})
	return container, err
}

// whileUnreachable runs call until it succeeds, fails for a reason other
// than Docker being unreachable, or Docker has not answered for limit.
func (r *dockerRuntime) whileUnreachable(ctx context.Context, limit time.Duration, logger *log.Entry, what string, call func() error) error {
	var unreachableSince time.Time
	delay := 100 * time.Millisecond
	for {
		err := call()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var missing *docker.NoSuchContainer
		var apiError *docker.Error
		if errors.As(err, &missing) || errors.As(err, &apiError) {
			// Docker answered: this is its verdict, not an outage.
			return fmt.Errorf("%s: %w", what, err)
		}
		if unreachableSince.IsZero() {
			unreachableSince = time.Now()
		}
		if time.Since(unreachableSince) > limit {
			return fmt.Errorf("%s: the Docker daemon at %s was unreachable for more than %s (the container may still be running): %w",
				what, r.endpoint, limit, err)
		}
		logger.WithError(err).Warnf("%s: Docker did not answer; trying again", what)
		if !sleepContext(ctx, delay) {
			return ctx.Err()
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// stopContainer asks Docker to stop the container: the container's stop
// signal (the image's STOPSIGNAL, else SIGTERM), then SIGKILL after grace.
// Docker takes whole seconds, so a fractional grace is rounded up.
func (r *dockerRuntime) stopContainer(ctx context.Context, id string, grace time.Duration) error {
	seconds := uint((grace + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+stopSlack)
	defer cancel()
	err := r.long.StopContainerWithContext(id, seconds, ctx)
	var notRunning *docker.ContainerNotRunning
	if err != nil && !errors.As(err, &notRunning) {
		return fmt.Errorf("stop container %s: %w", shortID(id), err)
	}
	return nil
}

// logsOptions asks Docker for both output streams of container id, all of
// it since the given time (all of it when since is zero), demultiplexed
// unless the container has a TTY.
func logsOptions(ctx context.Context, id string, since time.Time, tty bool, stdout, stderr io.Writer) docker.LogsOptions {
	opts := docker.LogsOptions{
		Context:      ctx,
		Container:    id,
		OutputStream: stdout,
		ErrorStream:  stderr,
		Stdout:       true,
		Stderr:       true,
		Tail:         "all",
		RawTerminal:  tty,
	}
	if !since.IsZero() {
		opts.Since = since.Unix()
	}
	return opts
}

// copyLogs writes the container's output since the given time to the
// executor's own stdout and stderr, so it lands in the Mesos sandbox.
func (r *dockerRuntime) copyLogs(ctx context.Context, id string, since time.Time, tty bool, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	opts := logsOptions(ctx, id, since, tty, &limitedWriter{w: stdout, remaining: logCopyLimit}, &limitedWriter{w: stderr, remaining: logCopyLimit})
	if err := r.long.Logs(opts); err != nil {
		return fmt.Errorf("copy logs of container %s: %w", shortID(id), err)
	}
	return nil
}

// followLogs follows the container's output with Docker's timestamps,
// split into stdout and stderr by frameSplitter unless the container has
// a TTY. Docker's since filter has
// a resolution of one second: logs.go skips what it already delivered.
func (r *dockerRuntime) followLogs(ctx context.Context, id string, since time.Time, tty bool, stdout, stderr io.Writer) error {
	opts := logsOptions(ctx, id, since, tty, stdout, stderr)
	opts.Follow, opts.Timestamps = true, true
	if !tty {
		// The raw multiplexed stream, split by frameSplitter
		// (docker_frames.go says why not go-dockerclient's demultiplexer).
		opts.RawTerminal = true
		opts.OutputStream, opts.ErrorStream = newFrameSplitter(stdout, stderr), nil
	}
	if err := r.follow.Logs(opts); err != nil {
		return fmt.Errorf("follow the output of container %s: %w", shortID(id), err)
	}
	return nil
}

// jsonLogFile is the container's LogPath when Docker runs on this host (a
// unix socket) and logs the container with json-file: Docker's own word
// on where the log is, never the task's.
func (r *dockerRuntime) jsonLogFile(c *docker.Container) string {
	if c == nil || c.HostConfig == nil || c.HostConfig.LogConfig.Type != "json-file" ||
		!strings.HasPrefix(r.endpoint, "unix://") || !filepath.IsAbs(c.LogPath) {
		return ""
	}
	return filepath.Clean(c.LogPath)
}

func (r *dockerRuntime) removeContainer(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	err := r.short.RemoveContainer(docker.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true, Context: ctx})
	var missing *docker.NoSuchContainer
	if err != nil && !errors.As(err, &missing) {
		return fmt.Errorf("remove container %s: %w", shortID(id), err)
	}
	return nil
}

// limitedWriter passes through at most remaining bytes and then discards
// the rest, noting once that output was cut.
type limitedWriter struct {
	w         io.Writer
	remaining int
	cut       bool
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	n := len(p)
	if l.remaining <= 0 {
		if !l.cut {
			l.cut = true
			fmt.Fprintf(l.w, "\n[sidecar-executor: container output cut after %d MiB]\n", logCopyLimit>>20)
		}
		return n, nil
	}
	if len(p) > l.remaining {
		p = p[:l.remaining]
	}
	l.remaining -= len(p)
	if _, err := l.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// shortID is the 12-character form of a container ID that docker ps and
// Sidecar use.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
