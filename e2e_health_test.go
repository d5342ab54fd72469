package main

// End-to-end tests of Mesos health checks (TaskInfo.health_check) and
// checks (TaskInfo.check): the real executor, the real Docker engine,
// busybox httpd and nc in the container, the emulated agent. Intervals are
// short (0.2-0.3 s) so that a test takes seconds; deadlines are generous.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// httpServer serves /www/index.html (and /www/late.html once it appears)
// on the given port, with busybox httpd, stopping on SIGTERM.
func httpServer(port int, extra string) string {
	return `sh -c 'mkdir -p /www && echo ok > /www/index.html; trap "exit 0" TERM; ` + extra +
		` httpd -f -p ` + strconv.Itoa(port) + ` -h /www & while true; do sleep 0.05; done'`
}

func withBridgePort(hostPort, containerPort uint32) taskOption {
	return func(task *mesos.TaskInfo) {
		task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
		task.Container.Docker.PortMappings = append(task.Container.Docker.PortMappings,
			mesos.ContainerInfo_DockerInfo_PortMapping{HostPort: hostPort, ContainerPort: containerPort, Protocol: strPtr("tcp")})
	}
}

func withBridge() taskOption {
	return func(task *mesos.TaskInfo) {
		task.Container.Docker.Network = mesos.ContainerInfo_DockerInfo_BRIDGE.Enum()
	}
}

// freeHostPort is a port of this machine that nothing listens on now.
func freeHostPort(t *testing.T) int {
	t.Helper()
	l, err := testutil.Listen()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := strings.Cut(addr, ":")
	n, _ := strconv.Atoi(port)
	return n
}

// quickHealth is a health check with test-friendly timing: no delay, a
// short interval, no grace unless set.
//
// healthyService is quickHealth for a service that should pass: the grace
// period covers its start, as it would in production.
func healthyService(hc mesos.HealthCheck) mesos.HealthCheck {
	hc.GracePeriodSeconds = f64(60)
	return quickHealth(hc, 3)
}

func quickHealth(hc mesos.HealthCheck, failures uint32) mesos.HealthCheck {
	hc.DelaySeconds = f64(0)
	hc.IntervalSeconds = f64(0.3)
	if hc.GracePeriodSeconds == nil {
		hc.GracePeriodSeconds = f64(0)
	}
	hc.TimeoutSeconds = f64(5)
	hc.ConsecutiveFailures = u32(failures)
	return hc
}

func httpHealth(port uint32, path string) mesos.HealthCheck {
	return mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: port, Path: strPtr(path)}}
}

// agentHealthFlags lists the healthy flags of the health-check updates the
// agent accepted.
func agentHealthFlags(t *testing.T, agent *mesostest.Agent, taskID string) []bool {
	t.Helper()
	var flags []bool
	for _, u := range agent.Accepted(taskID) {
		if healthy, ok := healthUpdateFlag(t, &u.Status); ok {
			flags = append(flags, healthy)
		}
	}
	return flags
}

// loggedUnhealthy counts the healthy=false health updates the executor
// queued (its log), which the outbox may coalesce before the agent sees
// them when a newer update follows at once (the kill's TASK_KILLING).
func loggedUnhealthy(proc *executorProcess) int {
	n := 0
	for _, line := range strings.Split(proc.output(), "\n") {
		if strings.Contains(line, "status update: Mesos health check failed") && strings.Contains(line, "TASK_RUNNING") && (strings.Contains(line, "healthy=false") || strings.Contains(line, `"healthy":false`)) {
			n++
		}
	}
	return n
}

// expectHealthy waits for a healthy=true update, then kills the task and
// checks that no failure was reported and the kill carries no health.
func expectHealthy(t *testing.T, agent *mesostest.Agent, task mesos.TaskInfo, proc *executorProcess) {
	t.Helper()
	id := task.TaskID.Value
	eventually(t, 60*time.Second, "a healthy=true update", func() bool {
		flags := agentHealthFlags(t, agent, id)
		return len(flags) > 0 && flags[0]
	})
	if flags := agentHealthFlags(t, agent, id); len(flags) != 1 || !flags[0] {
		t.Errorf("health updates %v, want exactly one healthy=true", flags)
	}
	mustKill(t, agent, id, nil)
	final := waitTerminal(t, agent, id, 30*time.Second)
	if final.GetState() != mesos.TASK_KILLED || final.Healthy != nil {
		t.Errorf("final %s healthy %v, want TASK_KILLED without health", final.GetState(), final.Healthy)
	}
	expectCleanExit(t, proc, id, 30*time.Second)
}

// expectHealthKill waits for the task's end by its health check and checks
// Mesos' outcome: exactly failures counted failures, TASK_KILLED,
// healthy=false, a message naming the check and mentioning each of
// mentions.
func expectHealthKill(t *testing.T, agent *mesostest.Agent, task mesos.TaskInfo, proc *executorProcess, failures int, mentions ...string) mesos.TaskStatus {
	t.Helper()
	id := task.TaskID.Value
	final := expectFinal(t, agent, id, 90*time.Second, mesos.TASK_KILLED,
		append([]string{"Mesos health check failed " + strconv.Itoa(failures) + " times in a row"}, mentions...)...)
	if final.Healthy == nil || final.GetHealthy() {
		t.Errorf("terminal healthy %v, want false", final.Healthy)
	}
	if final.Reason != nil {
		t.Errorf("terminal reason %s, want none (as Mesos)", final.GetReason())
	}
	proc.waitExit(t, 30*time.Second)
	if n := loggedUnhealthy(proc); n != failures {
		t.Errorf("%d healthy=false updates, want exactly consecutive_failures=%d", n, failures)
	}
	flags := agentHealthFlags(t, agent, id)
	unhealthy := 0
	for _, f := range flags {
		if !f {
			unhealthy++
		}
	}
	if unhealthy > failures || unhealthy < failures-1 {
		t.Errorf("the agent got %d healthy=false updates (%v), want %d (the last may be coalesced with TASK_KILLING)", unhealthy, flags, failures)
	}
	assertNoContainer(t, id)
	return final
}

func TestHealthCheckHTTPBridgeWithPortMappingHealthy(t *testing.T) {
	t.Parallel()
	hostPort := uint32(freeHostPort(t))
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(httpServer(8080, "")), withBridgePort(hostPort, 8080),
		withHealthCheck(healthyService(httpHealth(8080, "/index.html"))),
	})
	expectHealthy(t, agent, task, proc)
}

func TestHealthCheckHTTPHostNetworkHealthy(t *testing.T) {
	t.Parallel()
	port := freeHostPort(t)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(httpServer(port, "")),
		withHealthCheck(healthyService(httpHealth(uint32(port), "/"))),
	})
	expectHealthy(t, agent, task, proc)
}

func TestHealthCheckHTTPBrokenIsKilledAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(httpServer(8080, "")), withBridge(),
		withHealthCheck(quickHealth(httpHealth(8080, "/missing"), 3)),
	})
	expectHealthKill(t, agent, task, proc, 3, "404")
	if flags := agentHealthFlags(t, agent, task.TaskID.Value); len(flags) > 0 && flags[0] {
		t.Errorf("health updates %v: a service that never passed reported healthy", flags)
	}
}

func TestHealthCheckFailuresInsideTheGraceDoNotCount(t *testing.T) {
	t.Parallel()
	// The server starts late: the failures before it are inside the
	// grace period, and the first result reported is the success.
	hc := httpHealth(8080, "/")
	hc.GracePeriodSeconds = f64(60)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(httpServer(8080, "sleep 2;")), withBridge(),
		withHealthCheck(quickHealth(hc, 1)),
	})
	expectHealthy(t, agent, task, proc)
	if !strings.Contains(proc.output(), "failed inside the grace period; not counted") {
		t.Error("no failure was seen inside the grace period: the test proves nothing")
	}
}

func TestHealthCheckHTTPTimeout(t *testing.T) {
	t.Parallel()
	// nc accepts every connection and never answers; the delay lets it
	// start listening, so that every failure is a timeout.
	hc := quickHealth(httpHealth(8080, "/"), 2)
	hc.TimeoutSeconds = f64(0.5)
	hc.DelaySeconds = f64(1)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		withShellCommand(`sh -c 'trap "exit 0" TERM; nc -ll -p 8080 -e sleep 1000 & while true; do sleep 0.05; done'`),
		withBridge(), withHealthCheck(hc),
	})
	expectHealthKill(t, agent, task, proc, 2, "timed out after 500ms")
}

func TestHealthCheckTCP(t *testing.T) {
	t.Parallel()
	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		hc := mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 8080}}
		agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
			withShellCommand(httpServer(8080, "")), withBridge(), withHealthCheck(healthyService(hc)),
		})
		expectHealthy(t, agent, task, proc)
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		hc := mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 9090}}
		agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
			withShellCommand(httpServer(8080, "")), withBridge(), withHealthCheck(quickHealth(hc, 2)),
		})
		expectHealthKill(t, agent, task, proc, 2, "connection refused")
	})
}

func TestHealthCheckCommandHealthyThenBroken(t *testing.T) {
	t.Parallel()
	hc := mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: strPtr(`test -f /tmp/ok && echo "$CHECK_GREETING"`),
		Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "CHECK_GREETING", Value: strPtr("greeting-from-the-check")}}}}}
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
		// Healthy until the flag is removed once the first check passed.
		withShellCommand(`sh -c 'trap "exit 0" TERM; touch /tmp/ok; while [ ! -f /tmp/seen ]; do sleep 0.05; done; rm /tmp/ok; while true; do sleep 0.05; done'`),
		withHealthCheck(quickHealth(hc, 3)),
	})
	id := task.TaskID.Value
	eventually(t, 60*time.Second, "a healthy=true update", func() bool {
		flags := agentHealthFlags(t, agent, id)
		return len(flags) > 0 && flags[0]
	})
	container := inspectTaskContainer(t, id)
	if container == nil {
		t.Fatal("no container")
	}
	execIn(t, container.ID, "touch", "/tmp/seen")
	expectHealthKill(t, agent, task, proc, 3, "command exited with status 1")
	if strings.Contains(proc.output(), "greeting-from-the-check") {
		t.Error("a passing command's output reached the executor's log")
	}
}

func TestHealthCheckCommandTimeoutKillsTheCommand(t *testing.T) {
	t.Parallel()
	hc := mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: strPtr(`exec sleep 300`)}}
	hc = quickHealth(hc, 100)
	hc.TimeoutSeconds = f64(0.5)
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting), withHealthCheck(hc)})
	id := task.TaskID.Value
	eventually(t, 60*time.Second, "a timed-out check", func() bool {
		flags := agentHealthFlags(t, agent, id)
		return len(flags) >= 2
	})
	container := inspectTaskContainer(t, id)
	if container == nil {
		t.Fatal("no container")
	}
	// Every attempt but the one in flight has been killed: at most one
	// sleep runs in the container.
	eventually(t, 30*time.Second, "the timed-out checks' commands killed", func() bool {
		out := execIn(t, container.ID, "sh", "-c", "ps | grep -c '[s]leep 300' || true")
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n <= 1
	})
	if !strings.Contains(proc.output(), "timed out after 500ms") {
		t.Error("the failures do not say the check timed out")
	}
	mustKill(t, agent, id, nil)
	waitTerminal(t, agent, id, 30*time.Second)
	expectCleanExit(t, proc, id, 30*time.Second)
}

func TestHealthCheckInvalidFailsTheLaunch(t *testing.T) {
	t.Parallel()
	hc := mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 8080, Scheme: strPtr("gopher")}}
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand(termRespecting), withHealthCheck(hc)})
	final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED, "health_check.http.scheme")
	if final.GetReason() != mesos.REASON_TASK_INVALID {
		t.Errorf("reason %s, want REASON_TASK_INVALID", final.GetReason())
	}
	if code := proc.waitExit(t, 30*time.Second); code == 0 {
		t.Error("the executor exited 0 after an invalid task")
	}
	assertNoContainer(t, task.TaskID.Value)
}

// execIn runs a command in a container through the test's Docker client
// and returns its output.
func execIn(t *testing.T, containerID string, cmd ...string) string {
	t.Helper()
	client := requireDocker(t)
	exec, err := client.CreateExec(docker.CreateExecOptions{Container: containerID, Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	var out syncBuffer
	if err := client.StartExec(exec.ID, docker.StartExecOptions{OutputStream: &out, ErrorStream: &out}); err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return out.String()
}

// checkUpdates lists the check_status of every check update, failing
// the test on an update without one or of the wrong type.
func checkUpdates(t *testing.T, agent *mesostest.Agent, taskID string, kind mesos.CheckInfo_Type) []string {
	t.Helper()
	var changes []string
	for _, u := range agent.Accepted(taskID) {
		s := u.Status
		if s.CheckStatus == nil || s.CheckStatus.GetType() != kind {
			t.Fatalf("%s update without a %s check_status: %v", s.GetState(), kind, s.CheckStatus)
		}
		if s.GetReason() == mesos.REASON_TASK_CHECK_STATUS_UPDATED {
			changes = append(changes, describeCheckStatus(s.CheckStatus))
		}
	}
	return changes
}

func TestCheckStatusUpdates(t *testing.T) {
	t.Parallel()
	quick := func(c mesos.CheckInfo) mesos.CheckInfo {
		// The delay lets the container's command set its starting state.
		c.DelaySeconds, c.IntervalSeconds, c.TimeoutSeconds = f64(0.5), f64(0.2), f64(5)
		return c
	}
	cases := []struct {
		name    string
		command string
		check   mesos.CheckInfo
		want    []string
	}{
		{"command", `sh -c 'trap "exit 0" TERM; touch /tmp/flag; sleep 2; rm /tmp/flag; while true; do sleep 0.05; done'`,
			mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND, Command: &mesos.CheckInfo_Command{Command: mesos.CommandInfo{Value: strPtr("test -f /tmp/flag")}}},
			[]string{"command exit code 0", "command exit code 1"}},
		{"http", httpServer(8080, "(sleep 2; echo late > /www/late.html) &"),
			mesos.CheckInfo{Type: mesos.CheckInfo_HTTP, HTTP: &mesos.CheckInfo_Http{Port: 8080, Path: strPtr("/late.html")}},
			[]string{"HTTP status 404", "HTTP status 200"}},
		{"tcp", httpServer(8080, "sleep 2;"),
			mesos.CheckInfo{Type: mesos.CheckInfo_TCP, TCP: &mesos.CheckInfo_Tcp{Port: 8080}},
			[]string{"TCP connection succeeded: false", "TCP connection succeeded: true"}},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{
				withShellCommand(c.command), withBridge(), withCheck(quick(c.check)),
			})
			id := task.TaskID.Value
			eventually(t, 60*time.Second, "the check's result changing", func() bool {
				return len(checkUpdates(t, agent, id, c.check.Type)) >= 2
			})
			mustKill(t, agent, id, nil)
			waitTerminal(t, agent, id, 30*time.Second)
			expectCleanExit(t, proc, id, 30*time.Second)
			got := checkUpdates(t, agent, id, c.check.Type)
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("check updates %q, want %q: one per change", got, c.want)
			}
		})
	}
}
