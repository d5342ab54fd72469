package main

// fakeRuntime is an in-memory container engine behind containerRuntime,
// so that a real taskRunner can be driven through its whole life without
// Docker. It is scriptable rather than clever: containers have a state, an
// exit code and an OOM verdict; wait blocks until the test (or a stop)
// ends the container; stop delivers the stop signal and, when the
// container ignores it, SIGKILL once the grace is up; any call can be made
// to fail, to block until its context ends, or to find Docker unreachable.
// Every call is recorded, so tests assert order and arguments.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
)

// fakeEndpoint is the fake engine's address in error messages.
const fakeEndpoint = "unix:///fake/docker.sock"

// errFakeUnreachable is what every call gets while the engine is down: a
// transport error, not an answer from Docker, so dockerRuntime's retry
// logic treats it as an outage.
var errFakeUnreachable = fmt.Errorf("dial unix /fake/docker.sock: %w", syscall.ECONNREFUSED)

// fakeCall is one call made on the fake engine.
type fakeCall struct {
	method string
	// target is the container ID, the container name (create, the
	// removals by name) or the image (pull).
	target string
	grace  time.Duration // stopContainer only
	at     time.Time
}

// fakeSignal is a signal the fake delivered to a container's process.
type fakeSignal struct {
	name string // "SIGTERM" (the stop signal) or "SIGKILL"
	at   time.Time
}

type fakeContainer struct {
	id     string
	name   string
	labels map[string]string
	state  docker.State
	// exited is closed once the container no longer runs.
	exited chan struct{}
	// ignoresStop makes the process ignore the stop signal: only the
	// SIGKILL after the grace period ends it.
	ignoresStop bool
	// oomAfterInspects delays the OOM verdict: that many inspects after
	// the exit still show OOMKilled false, as when Docker handles the
	// kernel's OOM event after the process exit.
	oomAfterInspects int
	lateOOM          bool
	signals          []fakeSignal
	// healthcheck is the container's HEALTHCHECK; its verdict is in
	// state.Health (setHealth).
	healthcheck *docker.HealthConfig
}

type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer // by ID
	images     map[string]bool
	calls      []fakeCall
	nextID     int
	// failures are returned, in order, by the next calls of a method.
	failures map[string][]error
	// blocked methods wait for their context to end; the channel is
	// closed when the first such call arrives.
	blocked map[string]chan struct{}
	// createDespiteCancel makes a blocked create carry out the creation
	// anyway when cancelled, as Docker may with a request already sent.
	createDespiteCancel bool
	// unreachable fails every call with a transport error; outage is
	// closed when an outage begins, which breaks the waits in progress.
	unreachable bool
	outage      chan struct{}
	// waitAttempts counts the raw waits, retries included.
	waitAttempts int
	// ignoreStopSignal and logs apply to containers created afterwards.
	ignoreStopSignal bool
	logs             string
	// beforeCall, when set, runs at the start of every call, before the
	// call looks at any state: a test's way to change the engine under
	// the executor's feet.
	beforeCall func(method string)
	// output holds what each container wrote, for followLogs (scripted
	// with writeOutput); outputChanged is closed at every write.
	output        map[string][]fakeOutputRecord
	outputChanged chan struct{}
	// followDrops break (or stall) the next follow connections, one each;
	// followErrs fail the next follows at once; follows counts them.
	followDrops []fakeDrop
	followErrs  []error
	follows     int
	// jsonLogs are the containers' json-file logs a test writes itself
	// (jsonLogFile's answer, by ID).
	jsonLogs map[string]string
	// patience rides out outages for waitContainer and inspectPatiently
	// with dockerRuntime's own retry logic, so the tests exercise the
	// production timer and not a copy of it.
	patience *dockerRuntime
	// execResults script execInContainer: each call takes the next one;
	// once used up, commands exit 0. A result with block set waits for
	// the call's context to end (a command that hangs).
	execResults []fakeExec
	// imageHealthcheck is the HEALTHCHECK of the containers created
	// afterwards, unless their create options set one.
	imageHealthcheck *docker.HealthConfig
}

// fakeExec is the scripted outcome of one execInContainer call.
type fakeExec struct {
	exitCode int
	output   string
	block    bool
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		containers: map[string]*fakeContainer{},
		images:     map[string]bool{},
		failures:   map[string][]error{},
		blocked:    map[string]chan struct{}{},
		outage:     make(chan struct{}),
		patience:   &dockerRuntime{endpoint: fakeEndpoint},
		output:     map[string][]fakeOutputRecord{},

		outputChanged: make(chan struct{}),
	}
}

var _ containerRuntime = (*fakeRuntime)(nil)

func (f *fakeRuntime) jsonLogFile(c *docker.Container) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jsonLogs[c.ID]
}

// --- scripting, for tests ---

// failNext makes the next call of method fail with err.
func (f *fakeRuntime) failNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[method] = append(f.failures[method], err)
}

// block makes calls of method wait until their context ends; the returned
// channel is closed when the first one arrives.
func (f *fakeRuntime) block(method string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	arrived := make(chan struct{})
	f.blocked[method] = arrived
	return arrived
}

func (f *fakeRuntime) setUnreachable(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if down == f.unreachable {
		return
	}
	f.unreachable = down
	if down {
		close(f.outage)
	} else {
		f.outage = make(chan struct{})
	}
}

func (f *fakeRuntime) addImage(image string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[image] = true
}

// setHealth records Docker's health verdict on the container: its status,
// failing streak and latest probe, as Docker's HEALTHCHECK would.
func (f *fakeRuntime) setHealth(id, status string, failingStreak, exitCode int, output string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.state.Health = docker.Health{Status: status, FailingStreak: failingStreak,
			Log: []docker.HealthCheck{{Start: time.Now(), End: time.Now(), ExitCode: exitCode, Output: output}}}
	}
}

// exit ends the container's process with code, as if it exited by itself.
func (f *fakeRuntime) exit(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		c.exitLocked(code)
	}
}

// oomKill ends the container as the kernel's OOM killer does. Docker
// records the verdict at once, or with inspectsBeforeVerdict > 0 only
// after that many inspects have shown the exit without it.
func (f *fakeRuntime) oomKill(id string, inspectsBeforeVerdict int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return
	}
	c.signals = append(c.signals, fakeSignal{name: "SIGKILL", at: time.Now()})
	if inspectsBeforeVerdict > 0 {
		c.lateOOM, c.oomAfterInspects = true, inspectsBeforeVerdict
	} else {
		c.state.OOMKilled = true
	}
	c.exitLocked(128 + int(syscall.SIGKILL))
}

func (c *fakeContainer) exitLocked(code int) {
	if !c.state.Running {
		return
	}
	c.state.Running = false
	c.state.Pid = 0
	c.state.ExitCode = code
	c.state.FinishedAt = time.Now()
	close(c.exited)
}

// callLog returns the calls made so far.
func (f *fakeRuntime) callLog() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// methods lists the methods called so far, in order.
func (f *fakeRuntime) methods() []string {
	var names []string
	for _, c := range f.callLog() {
		names = append(names, c.method)
	}
	return names
}

// callsOf returns the calls of one method.
func (f *fakeRuntime) callsOf(method string) []fakeCall {
	var matching []fakeCall
	for _, c := range f.callLog() {
		if c.method == method {
			matching = append(matching, c)
		}
	}
	return matching
}

// containerIDs lists the containers the engine holds.
func (f *fakeRuntime) containerIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.containers {
		ids = append(ids, id)
	}
	return ids
}

// signalsOf returns the signals delivered to a container, removed or not.
func (f *fakeRuntime) signalsOf(c *fakeContainer) []fakeSignal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(c.signals)
}

// running waits for the task's container to run and returns it.
func (f *fakeRuntime) running(t *testing.T) *fakeContainer {
	t.Helper()
	var found *fakeContainer
	eventually(t, 5*time.Second, "a running container", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.containers {
			if c.state.Running {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// --- containerRuntime ---

// enter records a call and applies what the test scripted for it.
func (f *fakeRuntime) enter(ctx context.Context, method, target string, grace time.Duration) error {
	if f.beforeCall != nil {
		f.beforeCall(method)
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: method, target: target, grace: grace, at: time.Now()})
	if f.unreachable {
		f.mu.Unlock()
		return errFakeUnreachable
	}
	if queued := f.failures[method]; len(queued) > 0 {
		f.failures[method] = queued[1:]
		f.mu.Unlock()
		return queued[0]
	}
	arrived, blocked := f.blocked[method]
	if blocked {
		delete(f.blocked, method)
	}
	f.mu.Unlock()
	if blocked {
		close(arrived)
		<-ctx.Done()
		return fmt.Errorf("%s %s: %w", method, target, ctx.Err())
	}
	return nil
}

// prepareStart pings at once, so the call record shows the ping where the
// real launch issues it: before the checks that run alongside it.
func (f *fakeRuntime) prepareStart(ctx context.Context) containerStart {
	return &fakeStart{engine: f, pingErr: f.ping(ctx)}
}

// fakeStart is a start readied by prepareStart.
type fakeStart struct {
	engine  *fakeRuntime
	pingErr error
}

func (s *fakeStart) wait(ctx context.Context) error { return s.pingErr }

func (s *fakeStart) start(ctx context.Context, id string) error {
	return s.engine.startContainer(ctx, id)
}

func (f *fakeRuntime) ping(ctx context.Context) error {
	if err := f.enter(ctx, "ping", "", 0); err != nil {
		return fmt.Errorf("the Docker daemon at %s is unreachable: %w", fakeEndpoint, err)
	}
	return nil
}

func (f *fakeRuntime) pullImage(ctx context.Context, image string, _ docker.AuthConfiguration, _ time.Duration, _ *pullProgress) error {
	if err := f.enter(ctx, "pullImage", image, 0); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	f.addImage(image)
	return nil
}

func (f *fakeRuntime) byNameLocked(name string) *fakeContainer {
	for _, c := range f.containers {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (f *fakeRuntime) removeStaleContainer(ctx context.Context, name string, owner containerOwner, taskID string, _ *log.Entry) error {
	if err := f.enter(ctx, "removeStaleContainer", name, 0); err != nil {
		return fmt.Errorf("look for an earlier container named %s: %w", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byNameLocked(name)
	if c == nil {
		return nil
	}
	if owner.FrameworkID == "" || c.labels[frameworkIDLabel] != owner.FrameworkID || c.labels[taskIDLabel] != taskID {
		return fmt.Errorf("a container named %s already exists and is not one of this task's", name)
	}
	f.removeLocked(c)
	return nil
}

func (f *fakeRuntime) removeOwnContainerNamed(ctx context.Context, name string, owner containerOwner, taskID string, _ *log.Entry) error {
	if err := f.enter(ctx, "removeOwnContainerNamed", name, 0); err != nil {
		return fmt.Errorf("look for a container named %s: %w", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byNameLocked(name)
	if c == nil || c.labels[frameworkIDLabel] != owner.FrameworkID || c.labels[executorIDLabel] != owner.ExecutorID || c.labels[taskIDLabel] != taskID {
		return nil
	}
	f.removeLocked(c)
	return nil
}

func (f *fakeRuntime) createContainer(ctx context.Context, opts docker.CreateContainerOptions) (*docker.Container, error) {
	err := f.enter(ctx, "createContainer", opts.Name, 0)
	if err != nil && !(f.createDespiteCancel && ctx.Err() != nil) {
		return nil, fmt.Errorf("create container %s: %w", opts.Name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Docker looks for the image before it reserves the name.
	if opts.Config != nil && !f.images[opts.Config.Image] {
		return nil, fmt.Errorf("create container %s: %w", opts.Name, docker.ErrNoSuchImage)
	}
	if f.byNameLocked(opts.Name) != nil {
		return nil, fmt.Errorf("create container %s: %w", opts.Name, docker.ErrContainerAlreadyExists)
	}
	f.nextID++
	c := &fakeContainer{
		id:          fmt.Sprintf("c%011d%052d", f.nextID, 0),
		name:        opts.Name,
		exited:      make(chan struct{}),
		ignoresStop: f.ignoreStopSignal,
	}
	c.healthcheck = f.imageHealthcheck
	if opts.Config != nil {
		c.labels = opts.Config.Labels
		if opts.Config.Healthcheck != nil {
			c.healthcheck = opts.Config.Healthcheck
		}
	}
	f.containers[c.id] = c
	if err != nil {
		// Docker created it, but the caller gave up on the answer.
		return nil, fmt.Errorf("create container %s: %w", opts.Name, err)
	}
	return f.snapshotLocked(c), nil
}

func (f *fakeRuntime) startContainer(ctx context.Context, id string) error {
	if err := f.enter(ctx, "startContainer", id, 0); err != nil {
		return fmt.Errorf("start container %s: %w", shortID(id), err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return fmt.Errorf("start container %s: %w", shortID(id), &docker.NoSuchContainer{ID: id})
	}
	c.state.Running = true
	c.state.Pid = 4242
	c.state.StartedAt = time.Now()
	return nil
}

func (f *fakeRuntime) snapshotLocked(c *fakeContainer) *docker.Container {
	state := c.state
	state.Health.Log = slices.Clone(c.state.Health.Log)
	return &docker.Container{
		ID:              c.id,
		Name:            "/" + c.name,
		State:           state,
		Config:          &docker.Config{Labels: c.labels, Healthcheck: c.healthcheck},
		NetworkSettings: &docker.NetworkSettings{IPAddress: "172.17.0.9"},
	}
}

func (f *fakeRuntime) inspectContainer(ctx context.Context, id string) (*docker.Container, error) {
	if err := f.enter(ctx, "inspectContainer", id, 0); err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	return f.inspectNow(id)
}

// inspectStarted answers with the snapshot, marshalled as Docker would
// send it, wrapped as TASK_RUNNING's data.
func (f *fakeRuntime) inspectStarted(ctx context.Context, id string) (*docker.Container, []byte, error) {
	if err := f.enter(ctx, "inspectStarted", id, 0); err != nil {
		return nil, nil, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	container, err := f.inspectNow(id)
	if err != nil {
		return nil, nil, err
	}
	raw, err := json.Marshal(container)
	if err != nil {
		return nil, nil, err
	}
	return container, inspectData(raw, maxRunningData), nil
}

func (f *fakeRuntime) inspectNow(id string) (*docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return nil, fmt.Errorf("inspect container %s: %w", shortID(id), &docker.NoSuchContainer{ID: id})
	}
	if c.lateOOM && !c.state.Running {
		if c.oomAfterInspects == 0 {
			c.state.OOMKilled = true
		} else {
			c.oomAfterInspects--
		}
	}
	return f.snapshotLocked(c), nil
}

func (f *fakeRuntime) waitContainer(ctx context.Context, id string, limit time.Duration, logger *log.Entry) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: "waitContainer", target: id, at: time.Now()})
	f.mu.Unlock()
	return f.patience.whileUnreachable(ctx, limit, logger, "wait for container "+shortID(id), func() error {
		f.mu.Lock()
		f.waitAttempts++
		if f.unreachable {
			f.mu.Unlock()
			return errFakeUnreachable
		}
		c := f.containers[id]
		if c == nil {
			f.mu.Unlock()
			return &docker.NoSuchContainer{ID: id}
		}
		exited, outage := c.exited, f.outage
		f.mu.Unlock()
		select {
		case <-exited:
			return nil
		case <-outage:
			return errFakeUnreachable
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// attempts returns how many raw waits were made.
func (f *fakeRuntime) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waitAttempts
}

func (f *fakeRuntime) inspectPatiently(ctx context.Context, id string, limit time.Duration, logger *log.Entry) (*docker.Container, error) {
	var container *docker.Container
	err := f.patience.whileUnreachable(ctx, limit, logger, "inspect container "+shortID(id), func() error {
		if err := f.enter(ctx, "inspectPatiently", id, 0); err != nil {
			return err
		}
		var err error
		container, err = f.inspectNow(id)
		return err
	})
	return container, err
}

func (f *fakeRuntime) stopContainer(ctx context.Context, id string, grace time.Duration) error {
	if err := f.enter(ctx, "stopContainer", id, grace); err != nil {
		return fmt.Errorf("stop container %s: %w", shortID(id), err)
	}
	f.mu.Lock()
	c := f.containers[id]
	if c == nil {
		f.mu.Unlock()
		return fmt.Errorf("stop container %s: %w", shortID(id), &docker.NoSuchContainer{ID: id})
	}
	if !c.state.Running {
		f.mu.Unlock()
		return nil
	}
	c.signals = append(c.signals, fakeSignal{name: "SIGTERM", at: time.Now()})
	if !c.ignoresStop {
		c.exitLocked(128 + int(syscall.SIGTERM))
		f.mu.Unlock()
		return nil
	}
	exited := c.exited
	f.mu.Unlock()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
		f.mu.Lock()
		if c.state.Running {
			c.signals = append(c.signals, fakeSignal{name: "SIGKILL", at: time.Now()})
			c.exitLocked(128 + int(syscall.SIGKILL))
		}
		f.mu.Unlock()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: %w", shortID(id), ctx.Err())
	}
}

func (f *fakeRuntime) copyLogs(ctx context.Context, id string, _ time.Time, _ bool, stdout, _ io.Writer) error {
	if err := f.enter(ctx, "copyLogs", id, 0); err != nil {
		return fmt.Errorf("copy logs of container %s: %w", shortID(id), err)
	}
	f.mu.Lock()
	logs := f.logs
	f.mu.Unlock()
	_, err := io.WriteString(stdout, logs)
	return err
}

// fakeOutputRecord is one record of a container's output as Docker keeps
// it: a line with its newline, or a piece of a longer one without.
type fakeOutputRecord struct {
	stream logStream
	at     time.Time
	text   string
}

// fakeDrop breaks a follow connection after records whole records and
// bytes of the next one.
type fakeDrop struct {
	records, bytes int
	// stall: the follow stops delivering there but stays open until its
	// context ends, as a Docker follow that lost its place.
	stall bool
	// resend: the follow goes back this many records there and sends
	// them again, then goes on, as Docker's follow after a json-file
	// rotation.
	resend int
}

// dockerTimestampLayout is how Docker stamps each record of its logs.
const dockerTimestampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// writeOutput appends records to a container's output (and to its
// json-file log, see keepJSONLog).
func (f *fakeRuntime) writeOutput(id string, records ...fakeOutputRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.output[id] = append(f.output[id], records...)
	if path := f.jsonLogs[id]; path != "" {
		var data []byte
		for _, r := range records {
			text, err := json.Marshal(r.text)
			if err != nil {
				panic(err)
			}
			data = fmt.Appendf(data, `{"log":%s,"stream":"%s","time":"%s"}`+"\n", text, r.stream, r.at.UTC().Format(time.RFC3339Nano))
		}
		appendFile(path, data)
	}
	close(f.outputChanged)
	f.outputChanged = make(chan struct{})
}

// keepJSONLog makes the engine keep container id's output in a json-file
// log as well, as Docker's json-file driver does, and name it in
// jsonLogFile. It returns the log's path.
func (f *fakeRuntime) keepJSONLog(t *testing.T, id string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, id+"-json.log")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jsonLogs == nil {
		f.jsonLogs = map[string]string{}
	}
	f.jsonLogs[id] = path
	return path
}

// rotateJSONLog rotates a container's json-file log as Docker does: the
// log is renamed to .1 (the older .1 to .2) and a new one created.
func (f *fakeRuntime) rotateJSONLog(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := f.jsonLogs[id]
	if err := os.Rename(path+".1", path+".2"); err != nil && !os.IsNotExist(err) {
		panic(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		panic(err)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		panic(err)
	}
}

// writeJSONLogRaw appends bytes to a container's json-file log only: a
// record in two writes, or a broken one.
func (f *fakeRuntime) writeJSONLogRaw(id string, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	appendFile(f.jsonLogs[id], []byte(data))
}

func appendFile(path string, data []byte) {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		panic(err)
	}
	defer file.Close()
	if _, err := file.Write(data); err != nil {
		panic(err)
	}
}

// followCount is how many follows were made.
func (f *fakeRuntime) followCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.follows
}

// followLogs replays the container's records as Docker does: those
// stamped at or after since (whole seconds, as go-dockerclient sends it),
// then the new ones until the container exits. Demultiplexed records are
// written one per Write, like go-dockerclient's; a TTY's in small pieces.
// It is not in the call record: it runs alongside the lifecycle's calls.
func (f *fakeRuntime) followLogs(ctx context.Context, id string, since time.Time, tty bool, stdout, stderr io.Writer) error {
	fail := func(err error) error { return fmt.Errorf("follow the output of container %s: %w", shortID(id), err) }
	f.mu.Lock()
	f.follows++
	if f.unreachable {
		f.mu.Unlock()
		return fail(errFakeUnreachable)
	}
	if len(f.followErrs) > 0 {
		err := f.followErrs[0]
		f.followErrs = f.followErrs[1:]
		f.mu.Unlock()
		return fail(err)
	}
	drop := fakeDrop{records: -1}
	if len(f.followDrops) > 0 {
		drop = f.followDrops[0]
		f.followDrops = f.followDrops[1:]
	}
	f.mu.Unlock()
	sent, next := 0, 0
	for {
		f.mu.Lock()
		c := f.containers[id]
		if c == nil {
			f.mu.Unlock()
			return fail(&docker.NoSuchContainer{ID: id})
		}
		records, changed, exited, outage := f.output[id], f.outputChanged, c.exited, f.outage
		f.mu.Unlock()
		for ; next < len(records); next++ {
			if sent == drop.records && drop.resend > 0 {
				next, drop.resend, drop.records = max(next-drop.resend, 0), 0, -1
			}
			r := records[next]
			if r.at.Before(since) {
				continue
			}
			w := stdout
			if r.stream == streamStderr && !tty {
				w = stderr
			}
			data := []byte(r.at.Format(dockerTimestampLayout) + " " + r.text)
			if sent == drop.records && drop.stall {
				<-ctx.Done()
				return fail(ctx.Err())
			}
			if sent == drop.records {
				// Only a raw TTY stream can break inside a record: a
				// demultiplexed one arrives in whole frames.
				if drop.bytes > 0 && tty {
					w.Write(data[:min(len(data), len(r.at.Format(dockerTimestampLayout))+1+drop.bytes)])
				}
				return fail(io.ErrUnexpectedEOF)
			}
			if tty {
				for len(data) > 0 {
					n := min(len(data), 7)
					w.Write(data[:n])
					data = data[n:]
				}
			} else {
				w.Write(data)
			}
			sent++
		}
		select {
		case <-changed:
		case <-exited:
			f.mu.Lock()
			more := len(f.output[id]) > next
			f.mu.Unlock()
			if !more {
				return nil
			}
		case <-outage:
			return fail(errFakeUnreachable)
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

func (f *fakeRuntime) removeContainer(ctx context.Context, id string) error {
	if err := f.enter(ctx, "removeContainer", id, 0); err != nil {
		return fmt.Errorf("remove container %s: %w", shortID(id), err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		f.removeLocked(c)
	}
	return nil
}

// removeLocked is a forced removal: a running container is killed first.
func (f *fakeRuntime) removeLocked(c *fakeContainer) {
	if c.state.Running {
		c.signals = append(c.signals, fakeSignal{name: "SIGKILL", at: time.Now()})
		c.exitLocked(128 + int(syscall.SIGKILL))
	}
	delete(f.containers, c.id)
}

func (f *fakeRuntime) execInContainer(ctx context.Context, id string, cmd, env []string, outputLimit int) (execResult, error) {
	if err := f.enter(ctx, "execInContainer", id, 0); err != nil {
		return execResult{}, fmt.Errorf("exec in container %s: %w", shortID(id), err)
	}
	f.mu.Lock()
	next := fakeExec{}
	if len(f.execResults) > 0 {
		next = f.execResults[0]
		f.execResults = f.execResults[1:]
	}
	c := f.containers[id]
	running := c != nil && c.state.Running
	f.mu.Unlock()
	if !running {
		return execResult{}, fmt.Errorf("exec in container %s: %w", shortID(id), errFakeAPI(409, "container is not running"))
	}
	if next.block {
		<-ctx.Done()
		return execResult{}, ctx.Err()
	}
	output := []byte(next.output)
	if len(output) > outputLimit {
		output = output[len(output)-outputLimit:]
	}
	return execResult{exitCode: next.exitCode, outputTail: output}, nil
}

// errFakeAPI is an answer from Docker refusing a call.
func errFakeAPI(status int, message string) error {
	return &docker.Error{Status: status, Message: message}
}
