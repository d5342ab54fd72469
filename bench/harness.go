package main

// Running the executor binary against an emulated agent, as a Mesos agent
// would: its MESOS_* environment, a sandbox directory as working directory,
// stdout and stderr to files in the sandbox.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// Commands for the test image's busybox.
const (
	// termRespecting exits at once on SIGTERM.
	termRespecting = `sh -c 'trap "echo got TERM; exit 0" TERM; echo started; while true; do sleep 0.05; done'`
	// idleCommand sleeps without waking every 50 ms, for the idle and
	// density runs, and exits on SIGTERM or when the file finish appears
	// in the sandbox.
	idleCommand = `sh -c 'trap "exit 0" TERM; while [ ! -f "$MESOS_SANDBOX/finish" ]; do sleep 1; done; echo finished'`
)

type harness struct {
	binary   string
	image    string
	runID    string
	workDir  string
	docker   *dockerEnv
	dies     *dieWatcher
	clkTck   int64
	extraEnv []string // e.g. DOCKER_HOST of the tracing proxy, GODEBUG
	// idPart, when set, goes into every task ID, so that the traced
	// repetitions do not reuse the names (and die events) of the others.
	idPart string
}

// prefix starts every task ID and container name of this harness.
func (h *harness) prefix() string {
	if h.idPart != "" {
		return "bench-" + h.runID + "-" + h.idPart
	}
	return "bench-" + h.runID
}

// execRun is one executor process with its own agent.
type execRun struct {
	h       *harness
	agent   *mesostest.Agent
	sandbox string
	cmd     *exec.Cmd
	pid     int
	// inner is the executor's PID when pid is executor.sh's (the PSS run).
	inner   int
	exited  chan struct{}
	exitAt  time.Time
	waitErr error
}

func newCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

// timestampSlack is how far the agent's event stamps (taken after the write
// is flushed) may trail what the executor already did with the event.
const timestampSlack = 10 * time.Millisecond

// startExecutor starts an agent and the executor process, and waits until
// the executor has subscribed.
func (h *harness) startExecutor(name string, cfg mesostest.Config, settings []string) (*execRun, error) {
	r, err := h.spawnExecutor(name, cfg, settings)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.agent.WaitForSubscriptions(ctx, 1); err != nil {
		r.abort()
		return nil, r.failure(fmt.Errorf("the executor did not subscribe: %w", err))
	}
	return r, nil
}

// spawnExecutor starts an agent and the executor process without waiting.
func (h *harness) spawnExecutor(name string, cfg mesostest.Config, settings []string) (*execRun, error) {
	if cfg.ShutdownGracePeriod == 0 {
		cfg.ShutdownGracePeriod = 10 * time.Second
	}
	agent, err := mesostest.Start(cfg)
	if err != nil {
		return nil, err
	}
	sandbox := filepath.Join(h.workDir, name)
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		agent.Close()
		return nil, err
	}
	stdout, err := os.Create(filepath.Join(sandbox, "stdout"))
	if err != nil {
		agent.Close()
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(sandbox, "stderr"))
	if err != nil {
		stdout.Close()
		agent.Close()
		return nil, err
	}
	env := agent.Environment(sandbox)
	env = append(env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	for _, v := range []string{"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"} {
		if value, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+value)
		}
	}
	env = append(env, h.extraEnv...)
	env = append(env, settings...)
	cmd := exec.Command(h.binary)
	cmd.Dir = sandbox
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		agent.Close()
		return nil, fmt.Errorf("start the executor: %w", err)
	}
	stdout.Close() // the child has its own descriptors
	stderr.Close()
	r := &execRun{h: h, agent: agent, sandbox: sandbox, cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		r.waitErr = cmd.Wait()
		r.exitAt = time.Now()
		close(r.exited)
	}()
	return r, nil
}

// abort kills the executor if it still runs and closes its agent.
func (r *execRun) abort() {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.agent.Close()
}

// runSidecarTask launches a task whose TASK_HOST is the host the Sidecar
// emulator reports, waits for it to run and gives the first 12 digits of
// its container's ID, the ID Sidecar knows it by.
func (h *harness) runSidecarTask(r *execRun, taskID, command string) (string, error) {
	task := h.benchTask(r.agent, taskID, command, map[string]string{"TASK_HOST": sidecarHostName})
	if _, err := r.launchAt(task); err != nil {
		return "", err
	}
	if _, err := r.waitState(taskID, mesos.TASK_RUNNING, 60*time.Second); err != nil {
		return "", err
	}
	c, err := h.docker.client.InspectContainerWithOptions(docker.InspectContainerOptions{ID: r.containerName(taskID)})
	if err != nil {
		return "", r.failure(err)
	}
	return c.ID[:12], nil
}

// awaitEnd waits for the task's container to die, then for the executor to
// exit after the terminal update's acknowledgement, and finishes the run; it
// gives when the container died and how long the exit took after the ACK.
func (h *harness) awaitEnd(r *execRun, taskID string, terminal mesostest.Update) (time.Time, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dieAt, err := h.dies.wait(ctx, r.containerName(taskID))
	if err != nil {
		return time.Time{}, 0, r.failure(err)
	}
	ackExit, err := r.ackToExit(terminal)
	if err != nil {
		return time.Time{}, 0, err
	}
	if err := r.finish(taskID); err != nil {
		return time.Time{}, 0, err
	}
	return dieAt, ackExit, nil
}

// failure decorates err with the agent's view and the executor's last log
// lines, so that a failed run says why.
func (r *execRun) failure(err error) error {
	var updates []string
	for _, u := range r.agent.Updates() {
		updates = append(updates, fmt.Sprintf("%s(%q)", u.Status.GetState(), u.Status.GetMessage()))
	}
	logs, _ := os.ReadFile(filepath.Join(r.sandbox, "stderr"))
	out, _ := os.ReadFile(filepath.Join(r.sandbox, "stdout"))
	tail := lastLines(string(out)+string(logs), 25)
	return fmt.Errorf("%w\n  sandbox %s\n  updates: [%s]\n  violations: %q\n  executor output (last lines):\n%s",
		err, r.sandbox, strings.Join(updates, ", "), r.agent.Violations(), indent(tail, "    "))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// benchTask is a custom-executor task shaped as Singularity builds them:
// command in the executor.ShellCommand label, host network, executor
// environment on the ExecutorInfo, and the bench label on the container.
func (h *harness) benchTask(agent *mesostest.Agent, taskID, command string, env map[string]string) mesos.TaskInfo {
	str := func(s string) *string { return &s }
	task := agent.NewDockerTask(taskID, h.image)
	task.Container.Docker.Parameters = []mesos.Parameter{{Key: "label", Value: benchTaskLabel + "=" + h.runID}}
	task.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: "executor.ShellCommand", Value: str(command)}}}
	if len(env) > 0 {
		vars := &mesos.Environment{}
		for name, value := range env {
			vars.Variables = append(vars.Variables, mesos.Environment_Variable{Name: name, Value: str(value)})
		}
		task.Executor.Command.Environment = vars
	}
	return task
}

// containerName is the executor's container name for a task of this run's
// framework, for task IDs made of [a-zA-Z0-9_-] only, as the bench's are:
// "mesos-", the ID, '_' and 12 hex digits of a SHA-256 over the
// length-prefixed framework ID and the task ID. It must follow
// containerName in dockerspec.go (TestContainerNameMatchesTheExecutor and
// TestContainerNameOfABenchTask pin one vector on both sides).
func (r *execRun) containerName(taskID string) string {
	return containerNameFor(r.agent.Config().FrameworkID, taskID)
}

func containerNameFor(frameworkID, taskID string) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s%s", len(frameworkID), frameworkID, taskID)))
	return "mesos-" + taskID + "_" + hex.EncodeToString(sum[:])[:12]
}

// launchAt sends LAUNCH and returns when the agent wrote it to the stream.
func (r *execRun) launchAt(task mesos.TaskInfo) (time.Time, error) {
	if err := r.agent.Launch(task); err != nil {
		return time.Time{}, err
	}
	return r.eventTime(executor.Event_LAUNCH, nil)
}

// eventTime waits for the first event of that type (and matching, if
// match is set) and returns when the agent finished writing it.
func (r *execRun) eventTime(typ executor.Event_Type, match func(executor.Event) bool) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := r.agent.WaitForEvent(ctx, func(e mesostest.SentEvent) bool {
		return e.Event.GetType() == typ && (match == nil || match(e.Event))
	})
	if err != nil {
		return time.Time{}, r.failure(fmt.Errorf("no %s event: %w", typ, err))
	}
	return e.Time, nil
}

// waitState returns the accepted update that put the task in state.
func (r *execRun) waitState(taskID string, state mesos.TaskState, timeout time.Duration) (mesostest.Update, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	u, err := r.agent.WaitForState(ctx, taskID, state)
	if err != nil {
		return u, r.failure(err)
	}
	return u, nil
}

// waitTerminal returns the task's terminal update and fails unless it is
// in the state wanted.
func (r *execRun) waitTerminal(taskID string, want mesos.TaskState, timeout time.Duration) (mesostest.Update, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	u, err := r.agent.WaitForUpdate(ctx, func(u mesostest.Update) bool {
		return u.Status.TaskID.Value == taskID && u.Dropped == "" && !u.Duplicate && mesostest.IsTerminal(u.Status.GetState())
	})
	if err != nil {
		return u, r.failure(fmt.Errorf("task %s never reached a terminal state: %w", taskID, err))
	}
	if u.Status.GetState() != want {
		return u, r.failure(fmt.Errorf("task %s ended %s (%q), want %s", taskID, u.Status.GetState(), u.Status.GetMessage(), want))
	}
	return u, nil
}

// ackToExit waits for the ACKNOWLEDGED of the terminal update and the
// process exit, checks the exit code is 0, and returns the time between.
func (r *execRun) ackToExit(terminal mesostest.Update) (time.Duration, error) {
	uuid := string(terminal.Status.UUID)
	ackAt, err := r.eventTime(executor.Event_ACKNOWLEDGED, func(e executor.Event) bool {
		return string(e.GetAcknowledged().UUID) == uuid
	})
	if err != nil {
		return 0, err
	}
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		return 0, r.failure(errors.New("the executor did not exit within 30s of the terminal acknowledgement"))
	}
	if r.waitErr != nil {
		return 0, r.failure(fmt.Errorf("the executor exited with %v, want status 0", r.waitErr))
	}
	if v := r.agent.Violations(); len(v) > 0 {
		return 0, r.failure(fmt.Errorf("protocol violations: %q", v))
	}
	// The agent stamps an event after writing and flushing it, so on a
	// loaded machine the bench may reap the executor a little before that
	// stamp. A small negative figure is that error showing; a large one
	// means the executor did not wait for the acknowledgement.
	d := r.exitAt.Sub(ackAt)
	if d < -timestampSlack {
		return 0, r.failure(fmt.Errorf("the executor exited %s before its terminal update was acknowledged", -d))
	}
	return d, nil
}

// finish closes the agent after the executor exited and checks that the
// task's container is gone.
func (r *execRun) finish(taskID string) error {
	r.agent.Close()
	_, err := r.h.docker.client.InspectContainerWithOptions(docker.InspectContainerOptions{ID: r.containerName(taskID)})
	var missing *docker.NoSuchContainer
	switch {
	case err == nil:
		return fmt.Errorf("the executor left container %s behind", r.containerName(taskID))
	case !errors.As(err, &missing):
		return fmt.Errorf("check that container %s is gone: %w", r.containerName(taskID), err)
	}
	return nil
}

// rss is the executor's VmRSS in KiB.
func (r *execRun) rss() (int64, error) {
	v, err := rssKB(r.pid)
	if err != nil {
		return 0, fmt.Errorf("read VmRSS of executor %d: %w", r.pid, err)
	}
	return v, nil
}

// fetchProfile saves a pprof endpoint of a benchpprof build to file.
func (r *execRun) fetchProfile(path, file string) error {
	addr, err := os.ReadFile(filepath.Join(r.sandbox, "pprof.addr"))
	if err != nil {
		return fmt.Errorf("no pprof address from executor %d (build with -tags benchpprof): %w", r.pid, err)
	}
	resp, err := http.Get("http://" + strings.TrimSpace(string(addr)) + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
