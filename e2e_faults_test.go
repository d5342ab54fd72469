package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

var restartRounds = flag.Int("restart-rounds", 20, "rounds of each agent-restart scenario in TestAgentRestartRounds")

// dockerProxy sits between the executor and the Docker socket so a test can
// cut the executor off from Docker (every connection closed, new ones
// refused) and restore it, as a daemon restart would.
type dockerProxy struct {
	t        *testing.T
	path     string
	upstream string

	mu       sync.Mutex
	listener net.Listener
	conns    map[net.Conn]bool
	serving  sync.WaitGroup
}

// proxySockets returns the Docker engine's unix socket, which a test proxy
// forwards to, and a new short directory for the proxy's own socket (unix
// socket paths are limited to 108 bytes); the caller removes it.
func proxySockets(t *testing.T, prefix string) (upstream, dir string) {
	t.Helper()
	requireDocker(t)
	upstream = "/var/run/docker.sock"
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		path, ok := strings.CutPrefix(host, "unix://")
		if !ok {
			t.Skipf("a Docker proxy needs a unix socket, DOCKER_HOST is %s", host)
		}
		upstream = path
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	return upstream, dir
}

func newDockerProxy(t *testing.T) *dockerProxy {
	t.Helper()
	upstream, dir := proxySockets(t, "dproxy")
	p := &dockerProxy{t: t, path: filepath.Join(dir, "docker.sock"), upstream: upstream, conns: map[net.Conn]bool{}}
	p.restore()
	t.Cleanup(func() {
		p.cut()
		p.serving.Wait()
		os.RemoveAll(dir)
	})
	return p
}

// dockerHost points the executor at the proxy, through the operator's
// file: the only place the executor takes DOCKER_HOST from.
func (p *dockerProxy) dockerHost(t *testing.T) string {
	return withOperatorFile(t, "DOCKER_HOST=unix://"+p.path)
}

// cut closes every connection and stops accepting new ones.
func (p *dockerProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener != nil {
		p.listener.Close()
		p.listener = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// restore listens again on the same path.
func (p *dockerProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	os.Remove(p.path)
	listener, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatalf("docker proxy: %v", err)
	}
	p.listener = listener
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		for {
			client, err := listener.Accept()
			if err != nil {
				return
			}
			p.serving.Add(1)
			go func() {
				defer p.serving.Done()
				p.pipe(client)
			}()
		}
	}()
}

func (p *dockerProxy) pipe(client net.Conn) {
	server, err := net.Dial("unix", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.listener == nil {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go copyHalf(server, client)
	go copyHalf(client, server)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// exitOnDemand runs until the test writes an exit status to the sandbox
// file "exit", then exits with it.
const exitOnDemand = `sh -c 'trap "exit 0" TERM; while [ ! -f $MESOS_SANDBOX/exit ]; do sleep 0.05; done; exit $(cat $MESOS_SANDBOX/exit)'`

func requestExit(t *testing.T, proc *executorProcess, status int) {
	t.Helper()
	if err := writeFileAtomic(filepath.Join(proc.sandbox, "exit"), []byte(fmt.Sprint(status)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForDockerTrouble waits until the executor has noticed the outage.
func waitForDockerTrouble(t *testing.T, proc *executorProcess) {
	t.Helper()
	eventually(t, 20*time.Second, "the executor to notice Docker is gone", func() bool {
		return strings.Count(proc.output(), "Docker did not answer") >= 2
	})
}

func noTerminalYet(t *testing.T, agent *mesostest.Agent, taskID string) {
	t.Helper()
	for _, u := range agent.Accepted(taskID) {
		if isTerminal(u.Status.GetState()) {
			t.Fatalf("false terminal update during the Docker outage: %s %q", u.Status.GetState(), u.Status.GetMessage())
		}
	}
}

func TestDockerOutageWhileRunningIsRiddenOut(t *testing.T) {
	t.Parallel()
	proxy := newDockerProxy(t)
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(exitOnDemand)}, proxy.dockerHost(t))

	proxy.cut()
	waitForDockerTrouble(t, proc)
	noTerminalYet(t, agent, task.TaskID.Value)
	proxy.restore()

	requestExit(t, proc, 0)
	expectFinal(t, agent, task.TaskID.Value, 30*time.Second, mesos.TASK_FINISHED)
	proc.waitExit(t, 20*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

func TestDockerOutageContainerExitsMeanwhile(t *testing.T) {
	t.Parallel()
	proxy := newDockerProxy(t)
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(exitOnDemand)}, proxy.dockerHost(t))

	proxy.cut()
	waitForDockerTrouble(t, proc)
	requestExit(t, proc, 5)
	eventually(t, 20*time.Second, "the container to exit during the outage", func() bool {
		c := inspectTaskContainer(t, task.TaskID.Value)
		return c != nil && !c.State.Running
	})
	noTerminalYet(t, agent, task.TaskID.Value)
	proxy.restore()

	expectFinal(t, agent, task.TaskID.Value, 30*time.Second, mesos.TASK_FAILED, "exited with status 5")
	proc.waitExit(t, 20*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

func TestDockerOutageDuringStop(t *testing.T) {
	t.Parallel()
	proxy := newDockerProxy(t)
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(exitOnDemand)}, proxy.dockerHost(t))

	proxy.cut()
	mustKill(t, agent, task.TaskID.Value, nil)
	eventually(t, 20*time.Second, "a failed stop", func() bool {
		return strings.Contains(proc.output(), "Docker did not stop the container; trying again")
	})
	if c := inspectTaskContainer(t, task.TaskID.Value); c == nil || !c.State.Running {
		t.Fatal("the container stopped while the executor could not reach Docker")
	}
	noTerminalYet(t, agent, task.TaskID.Value)
	proxy.restore()

	expectFinal(t, agent, task.TaskID.Value, 30*time.Second, mesos.TASK_KILLED)
	proc.waitExit(t, 20*time.Second)
	assertNoContainer(t, task.TaskID.Value)
}

func TestDockerUnreachablePastTheBoundFailsTheTask(t *testing.T) {
	t.Parallel()
	proxy := newDockerProxy(t)
	agent, task, proc := startRunningTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(exitOnDemand)}, proxy.dockerHost(t), "EXECUTOR_DOCKER_UNREACHABLE_TIMEOUT=2s")
	proxy.cut()
	expectFinal(t, agent, task.TaskID.Value, 30*time.Second, mesos.TASK_FAILED, "unreachable")
	if code := proc.waitExit(t, 30*time.Second); code == 0 {
		t.Errorf("executor exited 0 after losing Docker")
	}
}

func TestStaleContainerOfADeadPredecessorIsReplaced(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	// A predecessor (another executor of this framework's task) died and
	// left its container behind, still running: its labels say so.
	cfg := agent.Config()
	stale := startForeignContainer(t, containerName(cfg.FrameworkID, task.TaskID.Value), map[string]string{
		frameworkIDLabel: cfg.FrameworkID, taskIDLabel: task.TaskID.Value, executorIDLabel: "a-dead-predecessor"})
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)
	waitRunning(t, agent, task, 60*time.Second)
	current := inspectTaskContainer(t, task.TaskID.Value)
	if current == nil || current.ID == stale {
		t.Fatal("the stale container was not replaced")
	}
	if _, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: stale}); err == nil {
		t.Error("the stale container still exists")
	}
	if !strings.Contains(proc.stdout.String(), "left by a previous executor") {
		t.Errorf("the executor did not say it removed the stale container")
	}
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
}

// A container that has the task's name but not its owner labels is someone
// else's: the launch fails saying so, and that container keeps running.
func TestForeignContainerWithTheTasksNameIsLeftAlone(t *testing.T) {
	t.Parallel()
	cases := map[string]func(cfg mesostest.Config, taskID string) map[string]string{
		"no labels": func(mesostest.Config, string) map[string]string { return nil },
		"other framework": func(_ mesostest.Config, taskID string) map[string]string {
			return map[string]string{frameworkIDLabel: "another-framework", taskIDLabel: taskID}
		},
		"other task": func(cfg mesostest.Config, _ string) map[string]string {
			return map[string]string{frameworkIDLabel: cfg.FrameworkID, taskIDLabel: "another-task"}
		},
	}
	for name, labels := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			agent := newAgent(t, mesostest.Config{})
			task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
			cfg := agent.Config()
			containerName := containerName(cfg.FrameworkID, task.TaskID.Value)
			foreign := startForeignContainer(t, containerName, labels(cfg, task.TaskID.Value))
			mustLaunch(t, agent, task)
			proc := startExecutor(t, agent)
			final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second)
			if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
				!strings.Contains(final.GetMessage(), "a container named "+containerName) ||
				!strings.Contains(final.GetMessage(), "is not one of this task's") ||
				!strings.Contains(final.GetMessage(), "left untouched") {
				t.Fatalf("final %s/%s %q, want TASK_FAILED/REASON_CONTAINER_LAUNCH_FAILED naming the container and why", final.GetState(), final.GetReason(), final.GetMessage())
			}
			proc.waitExit(t, 30*time.Second)
			c, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: foreign})
			if err != nil {
				t.Fatalf("the foreign container is gone: %v", err)
			}
			if !c.State.Running {
				t.Fatalf("the foreign container was stopped (%s)", c.State.StateString())
			}
		})
	}
}

// Task IDs are unique only within a framework. Two frameworks launch the
// same task ID on one agent (one Docker engine), through executors that even
// share an executor ID: both containers run side by side, and when one
// executor is SIGKILLed, executor.sh's cleanup removes its container only.
func TestTwoFrameworksWithTheSameTaskID(t *testing.T) {
	t.Parallel()
	shared := mesostest.Config{ExecutorID: "hostside-shared-executor", AgentID: "hostside-agent-" + uuid.NewString()}
	cfgA, cfgB := shared, shared
	cfgA.FrameworkID = "hostside-framework-a-" + uuid.NewString()
	cfgB.FrameworkID = "hostside-framework-b-" + uuid.NewString()
	agentA, agentB := newAgent(t, cfgA), newAgent(t, cfgB)
	taskA := newDockerTask(t, agentA, testImage, withShellCommand(termRespecting))
	taskB := newDockerTask(t, agentB, testImage, withShellCommand(termRespecting))
	taskB.TaskID = taskA.TaskID
	taskB.Name = taskA.Name
	taskID := taskA.TaskID.Value
	mustLaunch(t, agentA, taskA)
	mustLaunch(t, agentB, taskB)
	procA := startWrapper(t, agentA, testWrapper(t, executorBinary))
	startExecutor(t, agentB)
	waitState(t, agentA, taskID, mesos.TASK_RUNNING, 60*time.Second)
	waitState(t, agentB, taskID, mesos.TASK_RUNNING, 60*time.Second)

	nameA, nameB := containerName(cfgA.FrameworkID, taskID), containerName(cfgB.FrameworkID, taskID)
	if nameA == nameB {
		t.Fatalf("both frameworks' containers are named %s", nameA)
	}
	containerB, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: nameB})
	if err != nil || !containerB.State.Running {
		t.Fatalf("framework B's container %s is not running (%v)", nameB, err)
	}
	if c, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: nameA}); err != nil || !c.State.Running {
		t.Fatalf("framework A's container %s is not running (%v)", nameA, err)
	}

	child := executorChild(t, procA.cmd.Process.Pid)
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procA.waitExit(t, 60*time.Second)
	eventually(t, 30*time.Second, "framework A's container to be removed", func() bool {
		_, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: nameA})
		var missing *docker.NoSuchContainer
		return errors.As(err, &missing)
	})
	after, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: nameB})
	if err != nil || after.ID != containerB.ID || !after.State.Running {
		t.Fatalf("framework B's container did not survive the cleanup of framework A's (%v)", err)
	}
	for _, u := range agentB.Accepted(taskID) {
		if isTerminal(u.Status.GetState()) {
			t.Fatalf("framework B's task ended: %s %q", u.Status.GetState(), u.Status.GetMessage())
		}
	}
	mustKill(t, agentB, taskID, nil)
	if final := waitTerminal(t, agentB, taskID, 30*time.Second); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("framework B's task: final %s %q, want TASK_KILLED", final.GetState(), final.GetMessage())
	}
}

// TestAgentRestartRounds restarts the agent (checkpointing on) during the
// pull, while the task runs, and between the terminal update and its
// acknowledgement, many times each. Every round: exactly one terminal
// update reaches the agent, nothing is lost, the container never restarts.
func TestAgentRestartRounds(t *testing.T) {
	requireDocker(t) // once for all subtests
	t.Parallel()
	registry := hangingRegistry(t)
	scenarios := map[string]func(t *testing.T){
		"during-pull":      func(t *testing.T) { restartDuringPull(t, registry) },
		"while-running":    restartWhileRunning,
		"before-final-ack": restartBeforeTerminalAck,
	}
	// Bounded parallelism: each round is an executor and a container.
	slots := make(chan struct{}, 6)
	for name, scenario := range scenarios {
		for round := 1; round <= *restartRounds; round++ {
			t.Run(fmt.Sprintf("%s/%d", name, round), func(t *testing.T) {
				t.Parallel()
				slots <- struct{}{}
				defer func() { <-slots }()
				scenario(t)
			})
		}
	}
}

func newRestartAgent(t *testing.T) *mesostest.Agent {
	return newAgent(t, mesostest.Config{Checkpoint: true, RecoveryTimeout: time.Minute, SubscriptionBackoffMax: 200 * time.Millisecond,
		Logf: func(string, ...any) {}})
}

// restartAgent drops the executor's connection and refuses it until the
// executor has failed to reconnect at least once, then lets it back in.
func restartAgent(t *testing.T, agent *mesostest.Agent, proc *executorProcess, subscriptionsSoFar int) {
	t.Helper()
	failedBefore := strings.Count(proc.output(), "could not subscribe to the agent")
	agent.SetRefuse(mesostest.RefuseConnections)
	eventually(t, 20*time.Second, "a refused resubscription", func() bool {
		return strings.Count(proc.output(), "could not subscribe to the agent") > failedBefore
	})
	agent.SetRefuse(mesostest.RefuseNone)
	if err := agent.WaitForSubscriptions(testContext(t, 30*time.Second), subscriptionsSoFar+1); err != nil {
		t.Fatalf("no resubscription: %v", err)
	}
}

// exactlyOneTerminal checks the agent's record: one accepted terminal
// update, and every other update with a terminal state a same-uuid
// duplicate of it.
func exactlyOneTerminal(t *testing.T, agent *mesostest.Agent, taskID string) mesos.TaskStatus {
	t.Helper()
	var terminal []mesostest.Update
	for _, u := range agent.Accepted(taskID) {
		if isTerminal(u.Status.GetState()) {
			terminal = append(terminal, u)
		}
	}
	if len(terminal) != 1 {
		t.Fatalf("%d terminal updates accepted, want exactly 1: %s", len(terminal), describeUpdates(agent.Accepted(taskID)))
	}
	for _, u := range agent.Updates() {
		if u.Status.TaskID.Value == taskID && isTerminal(u.Status.GetState()) && u.Dropped != "" {
			t.Fatalf("a second terminal update was sent and dropped: %s %q (%s)", u.Status.GetState(), u.Status.GetMessage(), u.Dropped)
		}
	}
	return terminal[0].Status
}

func restartDuringPull(t *testing.T, registry string) {
	agent := newRestartAgent(t)
	task := newDockerTask(t, agent, registry+"/stuck/image:1")
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)
	waitState(t, agent, task.TaskID.Value, mesos.TASK_STARTING, 30*time.Second)
	eventually(t, 30*time.Second, "the pull to start", func() bool { return strings.Contains(proc.output(), "pulling the image") })
	restartAgent(t, agent, proc, 1)
	mustKill(t, agent, task.TaskID.Value, nil)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if final := exactlyOneTerminal(t, agent, task.TaskID.Value); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s", final.GetState())
	}
	assertNoContainer(t, task.TaskID.Value)
}

func restartWhileRunning(t *testing.T) {
	agent := newRestartAgent(t)
	task := newDockerTask(t, agent, testImage, withShellCommand(exitOnDemand))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)
	waitRunning(t, agent, task, 60*time.Second)
	before := inspectTaskContainer(t, task.TaskID.Value)
	restartAgent(t, agent, proc, 1)
	after := inspectTaskContainer(t, task.TaskID.Value)
	if after == nil || after.ID != before.ID || after.RestartCount != 0 || !after.State.StartedAt.Equal(before.State.StartedAt) {
		t.Fatal("the container was restarted or replaced across the agent restart")
	}
	requestExit(t, proc, 0)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if final := exactlyOneTerminal(t, agent, task.TaskID.Value); final.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("final %s", final.GetState())
	}
	want := "[TASK_STARTING TASK_RUNNING TASK_FINISHED]"
	if got := fmt.Sprint(states(agent, task.TaskID.Value)); got != want {
		t.Fatalf("states %s, want %s", got, want)
	}
}

func restartBeforeTerminalAck(t *testing.T) {
	agent := newRestartAgent(t)
	task := newDockerTask(t, agent, testImage, withShellCommand(exitOnDemand))
	mustLaunch(t, agent, task)
	proc := startExecutor(t, agent)
	waitRunning(t, agent, task, 60*time.Second)
	agent.SetWithholdAcks(true)
	requestExit(t, proc, 0)
	waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	restartAgent(t, agent, proc, 1)
	agent.SetWithholdAcks(false)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d: the terminal update resent in SUBSCRIBE was not acknowledged", code)
	}
	if final := exactlyOneTerminal(t, agent, task.TaskID.Value); final.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("final %s", final.GetState())
	}
	// The resubscription carried the terminal update (a same-uuid duplicate).
	resent := false
	for _, u := range agent.Updates() {
		if u.Via == "subscribe" && u.Status.GetState() == mesos.TASK_FINISHED {
			resent = true
			if !u.Duplicate {
				t.Errorf("the resent terminal update has a new uuid")
			}
		}
	}
	if !resent {
		t.Fatal("the unacknowledged terminal update was not resent in SUBSCRIBE")
	}
}

// startForeignContainer starts a container the executor did not create,
// named and labelled as given, and removes it when the test ends.
func startForeignContainer(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	// Skips without Docker (fails under CI=true) instead of failing on
	// the create below.
	requireDocker(t)
	id, err := createRunningContainer(name, labels)
	t.Cleanup(func() {
		if id != "" {
			removeContainerNamed(id)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// createRunningContainer starts a container the executor does not know.
// It uses a client of its own: go-dockerclient's StartContainer
// initialises the client's API version lazily, without a lock, which races
// with other tests sharing dockerClient.
func createRunningContainer(name string, labels map[string]string) (string, error) {
	client, err := docker.NewClientFromEnv()
	if err != nil {
		return "", err
	}
	container, err := client.CreateContainer(docker.CreateContainerOptions{
		Name:   name,
		Config: &docker.Config{Image: testImage, Cmd: []string{"sleep", "600"}, Labels: labels},
	})
	if err != nil {
		return "", err
	}
	return container.ID, client.StartContainer(container.ID, nil)
}
