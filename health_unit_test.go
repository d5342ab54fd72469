package main

// The task lifecycle with Mesos health checks and checks, driven against
// the fake runtime (COMMAND checks run through its scripted exec): the
// updates, the kill through the stop path, check_status on every update,
// and the refusal of an invalid health check.

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

func withHealthCheck(hc mesos.HealthCheck) taskOption {
	return func(task *mesos.TaskInfo) { task.HealthCheck = &hc }
}

func withCheck(c mesos.CheckInfo) taskOption {
	return func(task *mesos.TaskInfo) { task.Check = &c }
}

// quickCommandHealthCheck checks often, with no delay and no grace.
func quickCommandHealthCheck(failures uint32) mesos.HealthCheck {
	return mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: strPtr("test -f /healthy")},
		DelaySeconds: f64(0), IntervalSeconds: f64(0.01), GracePeriodSeconds: f64(0), ConsecutiveFailures: u32(failures)}
}

// healthFlags lists the healthy flags of the health-check updates, and
// fails the test on one without the health-check reason.
func healthFlags(t *testing.T, updates []sentStatus) []bool {
	t.Helper()
	var flags []bool
	for _, u := range updates {
		s := u.status
		if s.GetState() == mesos.TASK_RUNNING && s.GetReason() == mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
			if s.Healthy == nil {
				t.Errorf("health update without healthy: %q", s.GetMessage())
				continue
			}
			flags = append(flags, s.GetHealthy())
		}
	}
	return flags
}

func TestTaskUnitCommandHealthCheckKillsAfterConsecutiveFailures(t *testing.T) {
	engine := newUnitRuntime()
	engine.execResults = []fakeExec{{exitCode: 0}, {exitCode: 1, output: "not yet"}, {exitCode: 0},
		{exitCode: 1}, {exitCode: 2}, {exitCode: 1, output: "VAULT_TOKEN=s.secretvalue pw=hunter2secret broken"}}
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withHealthCheck(quickCommandHealthCheck(3)), withEnv("DB_PASSWORD", "hunter2secret"))})
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "Mesos health check failed 3 times in a row")
	if final.Healthy == nil || final.GetHealthy() {
		t.Errorf("terminal healthy %v, want false", final.Healthy)
	}
	if !strings.Contains(final.GetMessage(), "exited with status 1") {
		t.Errorf("message %q does not say how the last check failed", final.GetMessage())
	}
	got := healthFlags(t, u.statuses.all())
	want := []bool{true, false, true, false, false, false}
	if len(got) != len(want) {
		t.Fatalf("health updates %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("health updates %v, want %v", got, want)
		}
	}
	states := u.statuses.states()
	if states[len(states)-2] != mesos.TASK_KILLING {
		t.Errorf("states %v: TASK_KILLING must precede the terminal update", states)
	}
	if n := len(engine.callsOf("execInContainer")); n != 6 {
		t.Errorf("%d checks ran, want 6: none after the kill", n)
	}
	if logs := u.logs.String(); strings.Contains(logs, "s.secretvalue") || strings.Contains(logs, "pw=hunter2secret") || !strings.Contains(logs, "broken") {
		t.Errorf("a failed command's output tail must be logged, redacted:\n%s", logs)
	}
	assertCleanEnd(t, u, engine, "a health-check kill")
}

func TestTaskUnitHealthCheckFailuresInsideTheGraceDoNotCount(t *testing.T) {
	engine := newUnitRuntime()
	// The grace is long: these failures all fall inside it.
	engine.execResults = []fakeExec{{exitCode: 1}, {exitCode: 1}, {exitCode: 1}, {exitCode: 1}, {exitCode: 0}}
	hc := quickCommandHealthCheck(1)
	hc.GracePeriodSeconds = f64(3600)
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withHealthCheck(hc))})
	eventually(t, 5*time.Second, "a healthy update", func() bool { return len(healthFlags(t, u.statuses.all())) > 0 })
	if got := healthFlags(t, u.statuses.all()); len(got) != 1 || !got[0] {
		t.Errorf("health updates %v, want one healthy: failures in the grace are not reported", got)
	}
	if u.statuses.has(mesos.TASK_KILLING) {
		t.Error("failures inside the grace period killed the task")
	}
}

func TestTaskUnitHealthCheckStopsOnKill(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withHealthCheck(quickCommandHealthCheck(3)))})
	eventually(t, 5*time.Second, "a healthy update", func() bool { return len(healthFlags(t, u.statuses.all())) > 0 })
	u.kill(time.Second)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "killed by the scheduler")
	if final.Healthy != nil {
		t.Errorf("a scheduler's kill reports no health: %v", final.GetHealthy())
	}
	ran := len(engine.callsOf("execInContainer"))
	if ran == 0 {
		t.Fatal("the health check never ran")
	}
	if got := healthFlags(t, u.statuses.all()); len(got) != 1 {
		t.Errorf("health updates %v, want exactly the first healthy one", got)
	}
}

func TestTaskUnitInvalidHealthCheckFailsTheLaunch(t *testing.T) {
	engine := newUnitRuntime()
	hc := mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 8080, Path: strPtr("health")}}
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withHealthCheck(hc))})
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_TASK_INVALID.Enum(), `invalid health check: health_check.http.path must start with "/"`)
	if calls := engine.callsOf("createContainer"); len(calls) != 0 {
		t.Errorf("a container was created for an invalid task")
	}
	if !u.failed.Load() {
		t.Error("an invalid task must mark the executor failed")
	}
}

func TestTaskUnitCheckStatusOnEveryUpdateAndChanges(t *testing.T) {
	engine := newUnitRuntime()
	engine.execResults = []fakeExec{{exitCode: 0}, {exitCode: 0}, {exitCode: 3}, {exitCode: 3}, {exitCode: 0}}
	check := mesos.CheckInfo{Type: mesos.CheckInfo_COMMAND, Command: &mesos.CheckInfo_Command{Command: mesos.CommandInfo{Value: strPtr("exit 0")}},
		DelaySeconds: f64(0), IntervalSeconds: f64(0.01)}
	u := startUnitTask(t, engine, unitConfig{info: unitTaskInfo(withCheck(check))})
	eventually(t, 5*time.Second, "five checks", func() bool { return len(engine.callsOf("execInContainer")) >= 5 })
	eventually(t, 5*time.Second, "three check updates", func() bool { return len(checkCodes(u.statuses.all())) >= 3 })
	u.kill(0)
	final := u.finish(t)
	for _, s := range u.statuses.all() {
		cs := s.status.CheckStatus
		if cs == nil {
			t.Errorf("%s without check_status", s.status.GetState())
			continue
		}
		if msg := validateCheckStatusShape(cs); msg != "" || cs.GetType() != mesos.CheckInfo_COMMAND {
			t.Errorf("%s: check_status %v: %s", s.status.GetState(), cs, msg)
		}
	}
	first := u.statuses.all()[0].status
	if first.GetState() != mesos.TASK_STARTING || first.CheckStatus.Command.ExitCode != nil {
		t.Errorf("TASK_STARTING carries an empty check_status, got %v", first.CheckStatus)
	}
	if got := checkCodes(u.statuses.all()); strings.Join(got, ",") != "0,3,0" {
		t.Errorf("check updates %v, want one per change: 0,3,0", got)
	}
	if final.CheckStatus.Command.GetExitCode() != 0 {
		t.Errorf("the terminal update carries the latest result, got %v", final.CheckStatus)
	}
}

// checkCodes lists the exit codes of the check-driven updates.
func checkCodes(updates []sentStatus) []string {
	var codes []string
	for _, u := range updates {
		s := u.status
		if s.GetState() == mesos.TASK_RUNNING && s.GetReason() == mesos.REASON_TASK_CHECK_STATUS_UPDATED {
			codes = append(codes, describeCheckStatus(s.CheckStatus)[len("command exit code "):])
		}
	}
	return codes
}

// sidecarAndMesos runs a task watched by both Sidecar (the emulator, on
// the script given) and a Mesos COMMAND health check (the fake exec's
// results).
func sidecarAndMesos(t *testing.T, execResults []fakeExec, script ...int) (*unitTask, *fakeRuntime, *sidecartest.Server) {
	t.Helper()
	sidecar := sidecartest.NewServer(t)
	sidecar.SetHostname("agent-host")
	engine := newUnitRuntime()
	engine.execResults = execResults
	info := unitTaskInfo(withHealthCheck(quickCommandHealthCheck(2)))
	info.Labels = nil // Sidecar on
	u := startUnitTask(t, engine, unitConfig{info: info, operator: map[string]string{
		"EXECUTOR_SIDECAR_URL":               sidecar.StateURL(),
		"EXECUTOR_SIDECAR_BACKOFF":           "1ms",
		"EXECUTOR_SIDECAR_POLL_INTERVAL":     "20ms",
		"EXECUTOR_SIDECAR_MAX_FAILS":         "2",
		"EXECUTOR_SIDECAR_DRAINING_DURATION": "50ms",
	}})
	c := engine.running(t)
	sidecar.Script("agent-host", shortID(c.id), script...)
	return u, engine, sidecar
}

func TestTaskUnitMesosHealthCheckFailsWhileSidecarSaysAlive(t *testing.T) {
	var results []fakeExec
	for i := 0; i < 3; i++ {
		results = append(results, fakeExec{exitCode: 0})
	}
	results = append(results, fakeExec{exitCode: 1}, fakeExec{exitCode: 1})
	u, engine, sidecar := sidecarAndMesos(t, results, sidecartest.StatusAlive)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "Mesos health check failed 2 times in a row")
	if final.Healthy == nil || final.GetHealthy() {
		t.Errorf("terminal healthy %v, want false", final.Healthy)
	}
	if len(sidecar.Drains()) == 0 {
		t.Error("a task killed by its Mesos health check was not drained in Sidecar first")
	}
	assertCleanEnd(t, u, engine, "a Mesos health-check kill under Sidecar")
}

func TestTaskUnitSidecarFailsWhileTheMesosHealthCheckPasses(t *testing.T) {
	u, engine, _ := sidecarAndMesos(t, nil, sidecartest.StatusAlive, sidecartest.StatusUnhealthy)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(), "Sidecar")
	if strings.Contains(final.GetMessage(), "Mesos health check") {
		t.Errorf("message %q blames the Mesos health check", final.GetMessage())
	}
	passed := false
	for _, s := range u.statuses.all() {
		if strings.Contains(s.status.GetMessage(), "Mesos health check passed") {
			passed = true
		}
	}
	if !passed {
		t.Error("the Mesos health check's verdict was not reported alongside Sidecar's")
	}
	assertCleanEnd(t, u, engine, "a Sidecar failure with a passing Mesos check")
}
