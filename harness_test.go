package main

// Shared machinery of the end-to-end tests: the executor binary built on
// first use, a child-process handle, TaskInfo builders and Docker helpers.
// Every end-to-end test drives the real binary against the real Docker
// engine, with internal/mesostest playing the agent. Nothing here runs
// before a test asks for it, so the unit tests run on machines without
// Docker: a test that needs the engine gets it from requireDocker (the
// helpers that launch a task or touch Docker call it), which skips the
// test there, or fails it under CI=true and in make test.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// testImage is built locally by scripts/test-image.sh (make test-image).
const testImage = "sidecar-executor/busybox:1.35"

var (
	// executorBinary is where the executor for these tests is built, with
	// -race when the tests have it. TestMain sets the path; the file exists
	// once requireExecutorBinary has returned.
	executorBinary string
	buildOnce      sync.Once
	buildErr       error

	// dockerClient is set by requireDocker; nil until a test has called it.
	dockerClient *docker.Client
	dockerOnce   sync.Once

	// plainBinary is the executor built without the race detector, for
	// tests that measure memory; built on first use.
	plainBinary     string
	plainBinaryOnce sync.Once
	plainBinaryErr  error
)

// requireDocker returns the client for the Docker engine, with the test
// image present, or ends the test: see testutil.RequireDocker. Call it
// before anything that touches Docker or dockerClient.
func requireDocker(t testing.TB) *docker.Client {
	t.Helper()
	client := testutil.RequireDocker(t, testImage)
	dockerOnce.Do(func() { dockerClient = client })
	return client
}

// requireExecutorBinary builds the executor once per run, on first use, and
// returns its path. Running it needs no Docker until a task is launched.
func requireExecutorBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		args := []string{"build", "-o", executorBinary, "-ldflags", testOperatorEnvLDFlags}
		if raceEnabled {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, ".")...)
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the executor for the end-to-end tests failed: %v", buildErr)
	}
	return executorBinary
}

// plainExecutorBinary returns an executor built without -race.
func plainExecutorBinary(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return requireExecutorBinary(t)
	}
	plainBinaryOnce.Do(func() {
		plainBinary = executorBinary + "-plain"
		build := exec.Command("go", "build", "-o", plainBinary, "-ldflags", testOperatorEnvLDFlags, ".")
		if out, err := build.CombinedOutput(); err != nil {
			plainBinaryErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if plainBinaryErr != nil {
		t.Fatalf("build the executor without -race: %v", plainBinaryErr)
	}
	return plainBinary
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests only chooses where the executor binary goes; the build and the
// Docker checks happen when a test first needs them.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sidecar-executor-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := writeDefaultOperatorFile(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	executorBinary = filepath.Join(dir, "sidecar-executor")
	return m.Run()
}

// testOperatorEnvVar names the variable from which the test builds of the
// executor read the path of the operator's file (operatorEnvOverrideVar);
// production builds always read /etc/sidecar-executor/environment.
const testOperatorEnvVar = "SIDECAR_EXECUTOR_TEST_OPERATOR_ENV"

var testOperatorEnvLDFlags = "-X main.operatorEnvOverrideVar=" + testOperatorEnvVar

var (
	// defaultOperatorFile is the operator file of every end-to-end test
	// that writes none: a path that does not exist, so that the machine's
	// own /etc/sidecar-executor/environment never takes part in a test,
	// unless the tests run against a Docker daemon named by DOCKER_HOST
	// and co., which only the operator's file can give the executor.
	defaultOperatorFile = "/nonexistent/sidecar-executor-test/environment"
	// dockerDaemonLines are those DOCKER_* settings of the test process,
	// for every operator file.
	dockerDaemonLines []string
)

// writeDefaultOperatorFile passes the test process's Docker daemon
// settings on to the executors through an operator file in dir.
func writeDefaultOperatorFile(dir string) error {
	for _, name := range dockerDaemonSettings {
		if value, ok := os.LookupEnv(name); ok {
			dockerDaemonLines = append(dockerDaemonLines, name+"='"+value+"'")
		}
	}
	if len(dockerDaemonLines) == 0 {
		return nil
	}
	defaultOperatorFile = filepath.Join(dir, "operator-environment")
	return os.WriteFile(defaultOperatorFile, []byte(strings.Join(dockerDaemonLines, "\n")+"\n"), 0o600)
}

// withOperatorFile writes lines ("NAME=value", comments, anything the
// operator's file may hold) to an operator file of the test's own and
// returns the setting that points the executor at it.
func withOperatorFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "environment")
	content := strings.Join(append(slices.Clone(dockerDaemonLines), lines...), "\n") + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return testOperatorEnvVar + "=" + path
}

// syncBuffer keeps its name for the tests that use it; the one
// implementation is in internal/testutil.
type syncBuffer = testutil.SyncBuffer

// executorProcess is a running executor binary.
type executorProcess struct {
	cmd     *exec.Cmd
	sandbox string
	stdout  *syncBuffer
	stderr  *syncBuffer
	exited  chan struct{}
	state   *os.ProcessState
}

// executorEnv is the environment an agent would give the executor, plus
// test settings (which override the defaults).
func executorEnv(agent *mesostest.Agent, sandbox string, settings ...string) []string {
	env := agent.Environment(sandbox)
	env = append(env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	for _, name := range []string{"GORACE"} {
		if value, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+value)
		}
	}
	// Sidecar is not part of these tests unless a test points at one:
	// nothing listens there, and no time is spent draining.
	env = append(env, "EXECUTOR_SIDECAR_URL=http://127.0.0.1:1/state.json", "EXECUTOR_SIDECAR_DRAINING_DURATION=0s")
	// Pulls of images that cannot be had (closed ports) retry quickly.
	env = append(env, "EXECUTOR_PULL_BACKOFF=100ms")
	// A setting from withOperatorFile comes later and wins.
	env = append(env, testOperatorEnvVar+"="+defaultOperatorFile)
	return append(env, settings...)
}

// startExecutor runs the executor binary with the given environment in a
// fresh sandbox directory.
func startExecutor(t *testing.T, agent *mesostest.Agent, settings ...string) *executorProcess {
	t.Helper()
	requireDocker(t)
	sandbox := t.TempDir()
	return startExecutorIn(t, agent, sandbox, executorBinary, executorEnv(agent, sandbox, settings...))
}

func startExecutorIn(t *testing.T, agent *mesostest.Agent, sandbox, program string, env []string, args ...string) *executorProcess {
	t.Helper()
	// program may be executor.sh, which runs the binary.
	requireExecutorBinary(t)
	p := newExecutorProcess(sandbox, env, program, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.launch(t, func() {
		t.Logf("executor stdout:\n%s", p.stdout.String())
		t.Logf("executor stderr:\n%s", p.stderr.String())
	})
	return p
}

// newExecutorProcess prepares (without starting) program run in sandbox
// with env.
func newExecutorProcess(sandbox string, env []string, program string, args ...string) *executorProcess {
	p := &executorProcess{sandbox: sandbox, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(program, args...)
	p.cmd.Dir = sandbox
	p.cmd.Env = env
	return p
}

// launch starts p.cmd, records its exit in p.state and p.exited, and
// registers the cleanup that kills it if still running and, when the test
// failed, calls dump to log what it wrote. closeAfterStart are the
// parent's copies of files handed to the child, closed once it started.
func (p *executorProcess) launch(t *testing.T, dump func(), closeAfterStart ...io.Closer) {
	t.Helper()
	err := p.cmd.Start()
	for _, c := range closeAfterStart {
		_ = c.Close()
	}
	if err != nil {
		t.Fatalf("start executor: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			dump()
		}
	})
}

// waitExit waits for the executor to exit and returns its exit code.
func (p *executorProcess) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.state.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("the executor did not exit within %s", timeout)
		return -1
	}
}

func (p *executorProcess) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal executor: %v", err)
	}
}

// output is everything the executor wrote.
func (p *executorProcess) output() string {
	return p.stdout.String() + p.stderr.String()
}

// newAgent starts an emulated agent with short, test-friendly timings.
func newAgent(t *testing.T, cfg mesostest.Config) *mesostest.Agent {
	t.Helper()
	if cfg.ShutdownGracePeriod == 0 {
		cfg.ShutdownGracePeriod = 10 * time.Second
	}
	if cfg.SubscriptionBackoffMax == 0 {
		cfg.SubscriptionBackoffMax = 500 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	return mesostest.NewAgent(t, cfg)
}

var unsafeIDChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// uniqueTaskID makes a task ID from the test name, unique per run, and
// removes the task's container when the test ends, whatever happened. A
// task runs in Docker, so this is where most end-to-end tests check for it.
func uniqueTaskID(t *testing.T) string {
	t.Helper()
	requireDocker(t)
	name := unsafeIDChars.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	id := fmt.Sprintf("e2e-%s-%d", name, time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		for _, c := range taskContainers(id) {
			removeContainerNamed(c.ID)
		}
	})
	return id
}

func removeContainerNamed(name string) {
	_ = dockerClient.RemoveContainer(docker.RemoveContainerOptions{ID: name, Force: true, RemoveVolumes: true})
}

// taskContainers lists the containers, running or not, that carry the
// task's ID label. Task IDs are unique per test run, so this finds the
// task's containers whatever framework ran them.
func taskContainers(taskID string) []docker.APIContainers {
	containers, err := dockerClient.ListContainers(docker.ListContainersOptions{All: true,
		Filters: map[string][]string{"label": {taskIDLabel + "=" + taskID}}})
	if err != nil {
		return nil
	}
	return containers
}

// taskOption adjusts a TaskInfo under construction.
type taskOption func(*mesos.TaskInfo)

// newDockerTask is a custom-executor task, shaped the way Singularity
// builds them: environment on the ExecutorInfo, command in a label.
func newDockerTask(t *testing.T, agent *mesostest.Agent, image string, opts ...taskOption) mesos.TaskInfo {
	t.Helper()
	id := uniqueTaskID(t)
	task := agent.NewDockerTask(id, image)
	task.Name = "test-" + id
	for _, opt := range opts {
		opt(&task)
	}
	return task
}

func strPtr(s string) *string { return &s }

func withShellCommand(command string) taskOption {
	return withLabel("executor.ShellCommand", command)
}

func withLabel(key, value string) taskOption {
	return func(task *mesos.TaskInfo) {
		if task.Labels == nil {
			task.Labels = &mesos.Labels{}
		}
		task.Labels.Labels = append(task.Labels.Labels, mesos.Label{Key: key, Value: strPtr(value)})
	}
}

func withEnv(name, value string) taskOption {
	return func(task *mesos.TaskInfo) {
		cmd := task.Executor.Command
		if cmd.Environment == nil {
			cmd.Environment = &mesos.Environment{}
		}
		cmd.Environment.Variables = append(cmd.Environment.Variables, mesos.Environment_Variable{Name: name, Value: strPtr(value)})
	}
}

func withDockerParameter(key, value string) taskOption {
	return func(task *mesos.TaskInfo) {
		d := task.Container.Docker
		d.Parameters = append(d.Parameters, mesos.Parameter{Key: key, Value: value})
	}
}

func withKillPolicy(grace time.Duration) taskOption {
	return func(task *mesos.TaskInfo) {
		task.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(grace)}}
	}
}

// testContext bounds a test step.
func testContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// waitState waits for the agent to accept an update with that state.
func waitState(t *testing.T, agent *mesostest.Agent, taskID string, state mesos.TaskState, timeout time.Duration) mesos.TaskStatus {
	t.Helper()
	update, err := agent.WaitForState(testContext(t, timeout), taskID, state)
	if err != nil {
		t.Fatalf("task %s never reached %s: %v; updates: %s", taskID, state, err, describeUpdates(agent.Accepted(taskID)))
	}
	return update.Status
}

// waitTerminal waits for the task's terminal update.
func waitTerminal(t *testing.T, agent *mesostest.Agent, taskID string, timeout time.Duration) mesos.TaskStatus {
	t.Helper()
	update, err := agent.WaitForUpdate(testContext(t, timeout), func(u mesostest.Update) bool {
		return u.Status.TaskID.Value == taskID && u.Dropped == "" && !u.Duplicate && isTerminal(u.Status.GetState())
	})
	if err != nil {
		t.Fatalf("task %s never reached a terminal state: %v; updates: %s", taskID, err, describeUpdates(agent.Accepted(taskID)))
	}
	return update.Status
}

// isTerminal keeps its name for the tests that use it; the definition is
// mesostest.IsTerminal.
var isTerminal = mesostest.IsTerminal

func describeUpdates(updates []mesostest.Update) string {
	var parts []string
	for _, u := range updates {
		parts = append(parts, fmt.Sprintf("%s(%s: %q)", u.Status.GetState(), u.Status.GetReason(), u.Status.GetMessage()))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// states lists the states of the accepted updates of a task, in order.
func states(agent *mesostest.Agent, taskID string) []mesos.TaskState {
	var out []mesos.TaskState
	for _, u := range agent.Accepted(taskID) {
		out = append(out, u.Status.GetState())
	}
	return out
}

// inspectTaskContainer returns the task's container, found by its task-id
// label, or nil when Docker has none.
func inspectTaskContainer(t *testing.T, taskID string) *docker.Container {
	t.Helper()
	requireDocker(t)
	containers, err := dockerClient.ListContainers(docker.ListContainersOptions{All: true,
		Filters: map[string][]string{"label": {taskIDLabel + "=" + taskID}}})
	if err != nil {
		t.Fatalf("list containers of %s: %v", taskID, err)
	}
	switch len(containers) {
	case 0:
		return nil
	case 1:
	default:
		t.Fatalf("task %s has %d containers, want at most one", taskID, len(containers))
	}
	c, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: containers[0].ID})
	var missing *docker.NoSuchContainer
	if errors.As(err, &missing) {
		return nil
	}
	if err != nil {
		t.Fatalf("inspect container of %s: %v", taskID, err)
	}
	return c
}

// eventually polls cond until it holds or the deadline passes
// (testutil.Eventually).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

// assertNoContainer checks that the task left no container behind.
func assertNoContainer(t *testing.T, taskID string) {
	t.Helper()
	if c := inspectTaskContainer(t, taskID); c != nil {
		t.Fatalf("container %s of task %s was left behind (state %s)", c.Name, taskID, c.State.StateString())
	}
}

// mustLaunch queues the task on the agent.
func mustLaunch(t *testing.T, agent *mesostest.Agent, task mesos.TaskInfo) {
	t.Helper()
	if err := agent.Launch(task); err != nil {
		t.Fatal(err)
	}
}

// mustKill sends KILL for the task, with an optional kill policy.
func mustKill(t *testing.T, agent *mesostest.Agent, taskID string, policy *mesos.KillPolicy) {
	t.Helper()
	if err := agent.Kill(taskID, policy); err != nil {
		t.Fatal(err)
	}
}

// startTask starts an agent, launches a task built from opts on it and
// starts the executor with the given settings.
func startTask(t *testing.T, cfg mesostest.Config, image string, opts []taskOption, settings ...string) (*mesostest.Agent, mesos.TaskInfo, *executorProcess) {
	t.Helper()
	agent := newAgent(t, cfg)
	task := newDockerTask(t, agent, image, opts...)
	mustLaunch(t, agent, task)
	return agent, task, startExecutor(t, agent, settings...)
}

// startRunningTask is startTask, then waitRunning: TASK_RUNNING and, for
// the commands with a SIGTERM trap, the trap set.
func startRunningTask(t *testing.T, cfg mesostest.Config, image string, opts []taskOption, settings ...string) (*mesostest.Agent, mesos.TaskInfo, *executorProcess) {
	t.Helper()
	agent, task, proc := startTask(t, cfg, image, opts, settings...)
	waitRunning(t, agent, task, 60*time.Second)
	return agent, task, proc
}

// trapSetLine is the line termRespecting and termIgnoring print once their
// SIGTERM trap is set.
const trapSetLine = "started"

// announcesTrap tells whether the task runs one of the commands that print
// trapSetLine after setting their SIGTERM trap.
func announcesTrap(task mesos.TaskInfo) bool {
	for _, l := range task.GetLabels().GetLabels() {
		if l.Key == "executor.ShellCommand" && (l.GetValue() == termRespecting || l.GetValue() == termIgnoring) {
			return true
		}
	}
	return false
}

// waitRunning waits for TASK_RUNNING and then, for a task whose command
// sets a SIGTERM trap (termRespecting, termIgnoring), for the container to
// say the trap is set. TASK_RUNNING only means Docker started the
// container: its shell, PID 1, may not have run the trap yet, and PID 1
// ignores the signals it has no handler for, so a KILL sent in between
// meets a container that cannot hear SIGTERM.
func waitRunning(t *testing.T, agent *mesostest.Agent, task mesos.TaskInfo, timeout time.Duration) mesos.TaskStatus {
	t.Helper()
	status := waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, timeout)
	if announcesTrap(task) {
		waitForTrap(t, task.TaskID.Value, 30*time.Second)
	}
	return status
}

// waitForTrap polls the task's container's logs until it has printed
// trapSetLine, failing the test if the container stops first or the
// deadline passes.
func waitForTrap(t *testing.T, taskID string, timeout time.Duration) {
	t.Helper()
	requireDocker(t)
	deadline := time.Now().Add(timeout)
	var last string
	for {
		c := inspectTaskContainer(t, taskID)
		if c != nil {
			var logs syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := dockerClient.Logs(docker.LogsOptions{Context: ctx, Container: c.ID, OutputStream: &logs, ErrorStream: &logs, Stdout: true, Stderr: true})
			cancel()
			last = logs.String()
			if err == nil && slices.Contains(strings.Split(last, "\n"), trapSetLine) {
				return
			}
			if !c.State.Running {
				t.Fatalf("the container of task %s stopped (%s) before saying its SIGTERM trap is set; its output: %q", taskID, c.State.StateString(), last)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container of task %s did not say %q (its SIGTERM trap is set) within %s; its output: %q", taskID, trapSetLine, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectFinal waits for the task's terminal update and fails the test
// unless it is in state want with a message that contains every one of
// mentions.
func expectFinal(t *testing.T, agent *mesostest.Agent, taskID string, timeout time.Duration, want mesos.TaskState, mentions ...string) mesos.TaskStatus {
	t.Helper()
	final := waitTerminal(t, agent, taskID, timeout)
	ok := final.GetState() == want
	for _, mention := range mentions {
		ok = ok && strings.Contains(final.GetMessage(), mention)
	}
	if !ok {
		t.Fatalf("final %s %q, want %s mentioning %q", final.GetState(), final.GetMessage(), want, mentions)
	}
	return final
}

// expectCleanExit waits for the executor to exit 0 and checks that it left
// no container of the task behind.
func expectCleanExit(t *testing.T, proc *executorProcess, taskID string, timeout time.Duration) {
	t.Helper()
	if code := proc.waitExit(t, timeout); code != 0 {
		t.Fatalf("executor exit code %d, want 0", code)
	}
	assertNoContainer(t, taskID)
}
