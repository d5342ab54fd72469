package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

// Sidecar statuses as state.json encodes them.
const (
	sidecarAlive     = 0
	sidecarTombstone = 1
	sidecarUnhealthy = 2
	sidecarUnknown   = 3
	sidecarDraining  = 4
)

// sidecarHost is the TASK_HOST of the tests' tasks and their Servers key.
const sidecarHost = "sidecar-e2e-host"

type sidecarRun struct {
	agent       *mesostest.Agent
	sidecar     *sidecartest.Server
	task        mesos.TaskInfo
	proc        *executorProcess
	containerID string
	runningAt   time.Time
}

func (r *sidecarRun) id12() string { return shortID(r.containerID) }

// sidecarSettings are fast settings for the tests; extra ones override.
func sidecarSettings(sidecar *sidecartest.Server, extra ...string) []string {
	return append([]string{
		"EXECUTOR_SIDECAR_URL=" + sidecar.StateURL(),
		"EXECUTOR_SIDECAR_BACKOFF=700ms",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=100ms",
		"EXECUTOR_HTTP_TIMEOUT=300ms",
		"EXECUTOR_SIDECAR_RETRY_COUNT=1",
		"EXECUTOR_SIDECAR_RETRY_DELAY=50ms",
		"EXECUTOR_SIDECAR_MAX_FAILS=3",
		"EXECUTOR_SIDECAR_DRAINING_DURATION=0s",
	}, extra...)
}

// runWithSidecar launches a long-running task watched by an emulated
// Sidecar. setup runs as soon as the container exists, well within the
// backoff, so the first poll already sees what it sets.
func runWithSidecar(t *testing.T, command string, setup func(r *sidecarRun), settings []string, opts ...taskOption) *sidecarRun {
	t.Helper()
	r := &sidecarRun{agent: newAgent(t, mesostest.Config{}), sidecar: sidecartest.NewServer(t)}
	// The Sidecar on the task's own host, as on a real agent.
	r.sidecar.SetHostname(sidecarHost)
	r.task = newDockerTask(t, r.agent, testImage, append([]taskOption{withShellCommand(command), withEnv("TASK_HOST", sidecarHost)}, opts...)...)
	mustLaunch(t, r.agent, r.task)
	r.proc = startExecutor(t, r.agent, sidecarSettings(r.sidecar, settings...)...)
	update, err := r.agent.WaitForState(testContext(t, 60*time.Second), r.task.TaskID.Value, mesos.TASK_RUNNING)
	if err != nil {
		t.Fatal(err)
	}
	r.runningAt = update.Received
	container := inspectTaskContainer(t, r.task.TaskID.Value)
	if container == nil {
		t.Fatal("no container")
	}
	r.containerID = container.ID
	if setup != nil {
		setup(r)
	}
	return r
}

// healthUpdates lists the healthy flags of the health-driven updates.
func healthUpdates(agent *mesostest.Agent, taskID string) []bool {
	var flags []bool
	for _, u := range agent.Accepted(taskID) {
		s := u.Status
		if s.GetState() == mesos.TASK_RUNNING && s.Healthy != nil {
			if s.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
				panic(fmt.Sprintf("health update without the health-check reason: %s", s.GetReason()))
			}
			flags = append(flags, s.GetHealthy())
		}
	}
	return flags
}

func (r *sidecarRun) waitPolls(t *testing.T, n int) {
	t.Helper()
	if err := r.sidecar.WaitForPolls(testContext(t, 30*time.Second), n); err != nil {
		t.Fatalf("Sidecar was not polled %d times: %v", n, err)
	}
}

// kill sends KILL for the task, with an optional kill policy, once a
// container with a SIGTERM trap has set it (see waitRunning).
func (r *sidecarRun) kill(t *testing.T, policy *mesos.KillPolicy) {
	t.Helper()
	if announcesTrap(r.task) {
		waitForTrap(t, r.task.TaskID.Value, 30*time.Second)
	}
	mustKill(t, r.agent, r.task.TaskID.Value, policy)
}

func (r *sidecarRun) killAndWait(t *testing.T) mesos.TaskStatus {
	t.Helper()
	r.kill(t, nil)
	return waitTerminal(t, r.agent, r.task.TaskID.Value, 30*time.Second)
}

func TestSidecarUnhealthyFromTheStartFailsAfterMaxFails(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarUnhealthy)
	}, nil)
	final := waitTerminal(t, r.agent, r.task.TaskID.Value, 30*time.Second)
	if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
		t.Fatalf("final %s/%s %q, want TASK_FAILED with the health-check reason", final.GetState(), final.GetReason(), final.GetMessage())
	}
	if !strings.Contains(final.GetMessage(), "unhealthy 3 times in a row") || final.Healthy == nil || final.GetHealthy() {
		t.Errorf("final message %q healthy %v", final.GetMessage(), final.Healthy)
	}
	r.proc.waitExit(t, 20*time.Second)
	if polls := len(r.sidecar.Polls()); polls != 3 {
		t.Errorf("Sidecar was polled %d times, want exactly SidecarMaxFails=3", polls)
	}
	if got := healthUpdates(r.agent, r.task.TaskID.Value); len(got) != 1 || got[0] {
		t.Errorf("health updates %v, want one unhealthy report", got)
	}
	if !strings.Contains(r.proc.stdout.String(), "got TERM") {
		t.Errorf("the container was not stopped through SIGTERM or its logs were not copied")
	}
	assertNoContainer(t, r.task.TaskID.Value)
}

func TestSidecarTombstoneCountsAsUnhealthy(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarTombstone)
	}, nil)
	if final := waitTerminal(t, r.agent, r.task.TaskID.Value, 30*time.Second); final.GetState() != mesos.TASK_FAILED {
		t.Fatalf("final %s, want TASK_FAILED", final.GetState())
	}
}

func TestSidecarAliveKeepsTheTaskRunning(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarAlive)
	}, nil)
	r.waitPolls(t, 15)
	if c := inspectTaskContainer(t, r.task.TaskID.Value); c == nil || !c.State.Running {
		t.Fatal("a healthy task's container is not running")
	}
	if got := healthUpdates(r.agent, r.task.TaskID.Value); len(got) != 1 || !got[0] {
		t.Errorf("health updates %v, want exactly one healthy report", got)
	}
	if final := r.killAndWait(t); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s", final.GetState())
	}
}

func TestSidecarHealthUpdatesOnlyOnChanges(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.Script(sidecarHost, r.id12(),
			sidecarAlive, sidecarAlive, sidecarAlive,
			sidecarUnhealthy, sidecarUnhealthy,
			sidecarUnknown, sidecarDraining,
			sidecarAlive, sidecarAlive, sidecarAlive)
	}, nil)
	r.waitPolls(t, 14)
	want := []bool{true, false, true}
	got := healthUpdates(r.agent, r.task.TaskID.Value)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("health updates %v, want %v", got, want)
	}
	if final := r.killAndWait(t); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s: two unhealthy checks must not reach SidecarMaxFails=3", final.GetState())
	}
}

func TestSidecarAlternatingNeverKills(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		var statuses []int
		for i := 0; i < 10; i++ {
			statuses = append(statuses, sidecarUnhealthy, sidecarUnhealthy, sidecarAlive)
		}
		r.sidecar.Script(sidecarHost, r.id12(), statuses...)
	}, nil)
	r.waitPolls(t, 30)
	if final := r.killAndWait(t); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q: UNHEALTHY/UNHEALTHY/ALIVE never reaches 3 in a row", final.GetState(), final.GetMessage())
	}
}

// sidecarPaths are the two ways the executor asks Sidecar: state.json
// (a container without a ServiceName label) and the per-service route.
var sidecarPaths = []struct {
	name    string
	options []taskOption
	record  []sidecartest.ServiceOption
}{
	{"state.json", nil, nil},
	{"service-route", []taskOption{withDockerParameter("label", "ServiceName="+e2eServiceName)}, []sidecartest.ServiceOption{sidecartest.WithName(e2eServiceName)}},
}

// e2eServiceName is the ServiceName label of the per-service tests.
const e2eServiceName = "e2e-billing"

func TestSidecarFaultsNeverKill(t *testing.T) {
	requireDocker(t) // once for all subtests
	t.Parallel()
	faults := []sidecartest.Fault{
		sidecartest.FaultClosed, sidecartest.FaultHTTP500, sidecartest.FaultGarbage, sidecartest.FaultTruncated,
		sidecartest.FaultSlow, sidecartest.FaultWrongTypes,
	}
	for _, path := range sidecarPaths {
		for _, fault := range faults {
			t.Run(path.name+"/"+fault.String(), func(t *testing.T) {
				t.Parallel()
				r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
					r.sidecar.SetService(sidecarHost, r.id12(), sidecarUnhealthy, path.record...)
					r.sidecar.SetFault(fault)
				}, []string{"EXECUTOR_SIDECAR_MAX_FAILS=1"}, path.options...)
				// Long enough for many polls (each with its retry) at 100ms.
				eventually(t, 20*time.Second, "several rounds against the faulty Sidecar", func() bool {
					return strings.Count(r.proc.stdout.String(), "no health verdict this round") >= 5
				})
				if c := inspectTaskContainer(t, r.task.TaskID.Value); c == nil || !c.State.Running {
					t.Fatalf("Sidecar's own trouble (%s) killed the task", fault)
				}
				if path.options != nil {
					// The route's trouble is no reason to fetch state.json.
					if st := r.sidecar.Stats(sidecartest.RouteState); st.Requests != 0 {
						t.Errorf("state.json fetched %d times on the per-service path", st.Requests)
					}
				}
				if final := r.killAndWait(t); final.GetState() != mesos.TASK_KILLED {
					t.Fatalf("final %s %q", final.GetState(), final.GetMessage())
				}
			})
		}
	}
}

// assertOnlyServiceRoute checks that every poll went to the service's own
// document and none to state.json.
func (r *sidecarRun) assertOnlyServiceRoute(t *testing.T) {
	t.Helper()
	if st := r.sidecar.Stats(sidecartest.RouteState); st.Requests != 0 {
		t.Errorf("state.json was fetched %d times (%d bytes)", st.Requests, st.Bytes)
	}
	for _, p := range r.sidecar.Polls() {
		if p.Path != "/api/services/"+e2eServiceName+".json" {
			t.Errorf("polled %s", p.Path)
		}
	}
}

func TestSidecarServiceRouteHealthy(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		// A 1,000-service cluster around our service.
		r.sidecar.SetState(sidecartest.GenerateState(50, 1000))
		r.sidecar.SetHostname(sidecarHost)
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarAlive, sidecartest.WithName(e2eServiceName))
		r.sidecar.SetService("host-0001", "0123456789ab", sidecarUnhealthy, sidecartest.WithName(e2eServiceName))
	}, nil, withDockerParameter("label", "ServiceName="+e2eServiceName))
	r.waitPolls(t, 10)
	if got := healthUpdates(r.agent, r.task.TaskID.Value); len(got) != 1 || !got[0] {
		t.Errorf("health updates %v, want exactly one healthy report", got)
	}
	r.assertOnlyServiceRoute(t)
	// A poll is seen when it arrives and counted in the stats once served.
	eventually(t, 10*time.Second, "the emulator to count 10 served service documents", func() bool {
		return r.sidecar.Stats(sidecartest.RouteService).Requests >= 10
	})
	sv := r.sidecar.Stats(sidecartest.RouteService)
	t.Logf("%d service document requests, %d bytes each on average", sv.Requests, sv.Bytes/int64(max(sv.Requests, 1)))
	if per := sv.Bytes / int64(max(sv.Requests, 1)); sv.Requests < 10 || per > 4<<10 {
		t.Errorf("%d requests of %d bytes on average: want one small document (two instances) per poll", sv.Requests, per)
	}
	if !strings.Contains(r.proc.stdout.String(), "asking Sidecar for this service only") {
		t.Error("the executor did not log which route it uses")
	}
	if final := r.killAndWait(t); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s", final.GetState())
	}
}

func TestSidecarServiceRouteUnhealthyFailsTheTask(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarUnhealthy, sidecartest.WithName(e2eServiceName))
	}, nil, withDockerParameter("label", "ServiceName="+e2eServiceName))
	final := waitTerminal(t, r.agent, r.task.TaskID.Value, 30*time.Second)
	if final.GetState() != mesos.TASK_FAILED || final.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED ||
		!strings.Contains(final.GetMessage(), "unhealthy 3 times in a row") {
		t.Fatalf("final %s/%s %q, want TASK_FAILED after 3 unhealthy checks", final.GetState(), final.GetReason(), final.GetMessage())
	}
	r.proc.waitExit(t, 20*time.Second)
	if sv := r.sidecar.Stats(sidecartest.RouteService); sv.Requests != 3 {
		t.Errorf("%d service document requests, want exactly SidecarMaxFails=3", sv.Requests)
	}
	r.assertOnlyServiceRoute(t)
	assertNoContainer(t, r.task.TaskID.Value)
}

func TestSidecarWithoutServiceRouteFallsBackToStateJSON(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetServiceRoute(false) // an older Sidecar
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarUnhealthy, sidecartest.WithName(e2eServiceName))
	}, nil, withDockerParameter("label", "ServiceName="+e2eServiceName))
	final := waitTerminal(t, r.agent, r.task.TaskID.Value, 30*time.Second)
	if final.GetState() != mesos.TASK_FAILED || !strings.Contains(final.GetMessage(), "unhealthy 3 times in a row") {
		t.Fatalf("final %s %q, want TASK_FAILED through state.json", final.GetState(), final.GetMessage())
	}
	r.proc.waitExit(t, 20*time.Second)
	sv, st := r.sidecar.Stats(sidecartest.RouteService), r.sidecar.Stats(sidecartest.RouteState)
	if sv.Requests != 1 || st.Requests != 3 {
		t.Errorf("%d route and %d state.json requests, want the route once, then state.json for each of the 3 polls", sv.Requests, st.Requests)
	}
	if n := strings.Count(r.proc.stdout.String(), "Sidecar has no per-service route"); n != 1 {
		t.Errorf("the missing route was logged %d times, want once", n)
	}
}

func TestSidecarServiceNotYetDiscoveredIsNoVerdict(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		// Another container is unhealthy on our host; ours is unknown to Sidecar.
		r.sidecar.SetService(sidecarHost, "0123456789ab", sidecarUnhealthy)
	}, []string{"EXECUTOR_SIDECAR_MAX_FAILS=1"})
	r.waitPolls(t, 8)
	if final := r.killAndWait(t); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q", final.GetState(), final.GetMessage())
	}
}

func TestSidecarDiscoverFalseDisablesChecks(t *testing.T) {
	t.Parallel()
	r := runWithSidecar(t, `sh -c 'sleep 2'`, nil,
		[]string{"EXECUTOR_SIDECAR_BACKOFF=0s", "EXECUTOR_SIDECAR_DRAINING_DURATION=5s"},
		withDockerParameter("label", "SidecarDiscover=false"))
	if final := waitTerminal(t, r.agent, r.task.TaskID.Value, 30*time.Second); final.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("final %s", final.GetState())
	}
	if polls := len(r.sidecar.Polls()); polls != 0 {
		t.Fatalf("Sidecar polled %d times for a task labelled SidecarDiscover=false", polls)
	}
}

func TestSidecarBackoffIsRespected(t *testing.T) {
	t.Parallel()
	const backoff = 1500 * time.Millisecond
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarAlive)
	}, []string{"EXECUTOR_SIDECAR_BACKOFF=" + backoff.String()})
	r.waitPolls(t, 1)
	first := r.sidecar.Polls()[0].Time
	if gap := first.Sub(r.runningAt); gap < backoff-50*time.Millisecond {
		t.Fatalf("first poll %s after TASK_RUNNING, before the %s backoff", gap, backoff)
	}
	r.killAndWait(t)
}

func TestSidecarDrainBeforeStop(t *testing.T) {
	t.Parallel()
	const draining = 1500 * time.Millisecond
	r := runWithSidecar(t, termRespecting, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarAlive)
	}, []string{"EXECUTOR_SIDECAR_DRAINING_DURATION=" + draining.String()})
	r.kill(t, nil)
	drain, err := r.sidecar.WaitForDrain(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if drain.ID != r.id12() {
		t.Fatalf("drained %q, want the container's %q", drain.ID, r.id12())
	}
	if c := inspectTaskContainer(t, r.task.TaskID.Value); c == nil || !c.State.Running {
		t.Fatal("the container was stopped before draining")
	}
	final, err := r.agent.WaitForUpdate(testContext(t, 20*time.Second), func(u mesostest.Update) bool {
		return u.Status.TaskID.Value == r.task.TaskID.Value && u.Status.GetState() == mesos.TASK_KILLED
	})
	if err != nil {
		t.Fatal(err)
	}
	if gap := final.Received.Sub(drain.Time); gap < draining {
		t.Fatalf("the container was stopped %s after the drain, before the %s draining duration", gap, draining)
	}
}

func TestSidecarDrainCutShortWhenContainerExits(t *testing.T) {
	t.Parallel()
	// The container ignores SIGTERM but exits 1s after the drain starts
	// (when the executor touches nothing: it just finishes its own work).
	r := runWithSidecar(t, `sh -c 'while [ ! -f $MESOS_SANDBOX/finish ]; do sleep 0.05; done; echo finishing'`, func(r *sidecarRun) {
		r.sidecar.SetService(sidecarHost, r.id12(), sidecarAlive)
	}, []string{"EXECUTOR_SIDECAR_DRAINING_DURATION=30s"})
	mustKill(t, r.agent, r.task.TaskID.Value, nil)
	drain, err := r.sidecar.WaitForDrain(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(r.proc.sandbox+"/finish", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	final := waitTerminal(t, r.agent, r.task.TaskID.Value, 20*time.Second)
	if final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q", final.GetState(), final.GetMessage())
	}
	if elapsed := time.Since(drain.Time); elapsed > 15*time.Second {
		t.Fatalf("waited %s: the draining was not cut short by the container's own exit", elapsed)
	}
}

// peakRSS is the process's high-water resident memory (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// TestSidecarHugeStateKeepsMemoryBounded serves 50 MB state documents:
// the executor must neither crash, nor kill the healthy task, nor let its
// memory grow with the document. The body streams through the lookup's
// window of a few KB, so the peak stays near an idle executor's, whatever
// the size; 40 MiB leaves a wide margin.
func TestSidecarHugeStateKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	sidecar := sidecartest.NewServer(t)
	sidecar.SetHostname(sidecarHost)
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting), withEnv("TASK_HOST", sidecarHost))
	mustLaunch(t, agent, task)
	sandbox := t.TempDir()
	proc := startExecutorIn(t, agent, sandbox, plainExecutorBinary(t),
		executorEnv(agent, sandbox, sidecarSettings(sidecar, "EXECUTOR_SIDECAR_MAX_FAILS=1", "EXECUTOR_HTTP_TIMEOUT=10s")...))
	waitRunning(t, agent, task, 60*time.Second)
	container := inspectTaskContainer(t, task.TaskID.Value)
	sidecar.SetService(sidecarHost, shortID(container.ID), sidecarAlive)
	sidecar.SetHugeSize(50 << 20)
	sidecar.SetFault(sidecartest.FaultHuge)
	if err := sidecar.WaitForPolls(testContext(t, 60*time.Second), 6); err != nil {
		t.Fatal(err)
	}
	if got := healthUpdates(agent, task.TaskID.Value); len(got) != 1 || !got[0] {
		t.Fatalf("health updates %v: the container listed ALIVE at the end of a 50 MB document was not found healthy", got)
	}
	const bound = 40 << 20
	peak := peakRSS(t, proc.cmd.Process.Pid)
	t.Logf("peak RSS with 50 MB state documents: %d MiB", peak>>20)
	if peak > bound {
		t.Fatalf("peak RSS %d MiB with 50 MB state documents, bound %d MiB", peak>>20, bound>>20)
	}
	if final := func() mesos.TaskStatus {
		mustKill(t, agent, task.TaskID.Value, nil)
		return waitTerminal(t, agent, task.TaskID.Value, 30*time.Second)
	}(); final.GetState() != mesos.TASK_KILLED {
		t.Fatalf("final %s %q", final.GetState(), final.GetMessage())
	}
}
