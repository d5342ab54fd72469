package main

// Docker's HEALTHCHECK as the task's health: the settings, the reading of
// the container's HEALTHCHECK, the interpretation of Docker's verdicts
// (pure), and the task lifecycle against the fake runtime, which reports
// the verdicts a test sets (setHealth).

import (
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func dockerHealthOf(status string, streak, exitCode int, output string) docker.Health {
	h := docker.Health{Status: status, FailingStreak: streak}
	if status != "starting" {
		h.Log = []docker.HealthCheck{{ExitCode: exitCode, Output: output}}
	}
	return h
}

func TestDockerHealthStateReportsChangesAndKillsAfterTheSpell(t *testing.T) {
	s := &dockerHealthState{killAfter: dockerHealthKillAfter{after: 30 * time.Second}}
	start := time.Unix(1000, 0)
	type step struct {
		at      time.Duration
		health  docker.Health
		want    bool // a verdict
		update  bool
		healthy bool
		kill    bool
	}
	steps := []step{
		{0, dockerHealthOf("starting", 0, 0, ""), false, false, false, false},
		{1 * time.Second, dockerHealthOf("healthy", 0, 0, "ok"), true, true, true, false},
		{2 * time.Second, dockerHealthOf("healthy", 0, 0, "ok"), false, false, false, false},
		{3 * time.Second, dockerHealthOf("unhealthy", 3, 1, "down"), true, true, false, false},
		{20 * time.Second, dockerHealthOf("unhealthy", 4, 1, "down"), false, false, false, false},
		// Recovered: the spell ends, the next one counts from its start.
		{25 * time.Second, dockerHealthOf("healthy", 0, 0, "ok"), true, true, true, false},
		{40 * time.Second, dockerHealthOf("unhealthy", 3, 1, "down"), true, true, false, false},
		{69 * time.Second, dockerHealthOf("unhealthy", 5, 1, "down"), false, false, false, false},
		{70 * time.Second, dockerHealthOf("unhealthy", 6, 1, "still down"), true, false, false, true},
	}
	for i, st := range steps {
		v, ok := s.observe(st.health, start.Add(st.at))
		if ok != st.want || v.update != st.update || v.kill != st.kill || (ok && v.healthy != st.healthy) {
			t.Fatalf("step %d (%s at %s): verdict %+v (%v), want update=%v healthy=%v kill=%v (%v)",
				i, st.health.Status, st.at, v, ok, st.update, st.healthy, st.kill, st.want)
		}
		if st.update && !st.healthy && !strings.Contains(v.message, "Docker HEALTHCHECK failed 3 times in a row: last probe exited with status 1: down") {
			t.Errorf("step %d: message %q", i, v.message)
		}
		if st.kill && !strings.Contains(v.message, "unhealthy for 30s (EXECUTOR_DOCKER_HEALTH_KILL_AFTER=30s), 6 failures in a row: last probe exited with status 1: still down") {
			t.Errorf("step %d: kill message %q", i, v.message)
		}
	}
}

func TestDockerHealthStateStartingBreaksTheSpell(t *testing.T) {
	// After a daemon restart Docker starts the verdict over: the spell
	// seen before is not known to be unbroken.
	s := &dockerHealthState{killAfter: dockerHealthKillAfter{after: 10 * time.Second}}
	start := time.Unix(1000, 0)
	if v, _ := s.observe(dockerHealthOf("unhealthy", 1, 1, ""), start); !v.update || v.kill {
		t.Fatalf("first unhealthy: %+v", v)
	}
	if _, ok := s.observe(dockerHealthOf("starting", 0, 0, ""), start.Add(5*time.Second)); ok {
		t.Fatal("starting produced a verdict")
	}
	v, ok := s.observe(dockerHealthOf("unhealthy", 1, 1, ""), start.Add(12*time.Second))
	if ok {
		t.Fatalf("unhealthy again after starting: %+v, want nothing (no change, a new spell)", v)
	}
	if v, _ := s.observe(dockerHealthOf("unhealthy", 2, 1, ""), start.Add(22*time.Second)); !v.kill || v.update {
		t.Fatalf("10s into the new spell: %+v, want the kill alone", v)
	}
}

func TestDockerHealthStateKillAfterZeroAndNever(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &dockerHealthState{killAfter: dockerHealthKillAfter{}}
	if v, _ := s.observe(dockerHealthOf("unhealthy", 1, 1, "x"), now); !v.update || !v.kill || v.healthy {
		t.Errorf("kill after 0: %+v, want the update and the kill at once", v)
	}
	s = &dockerHealthState{killAfter: dockerHealthKillAfter{never: true}}
	s.observe(dockerHealthOf("unhealthy", 1, 1, "x"), now)
	if v, ok := s.observe(dockerHealthOf("unhealthy", 100, 1, "x"), now.Add(1000*time.Hour)); ok || v.kill {
		t.Errorf("kill after never: %+v", v)
	}
}

func TestDockerHealthStateOutputIsRedactedAndTruncated(t *testing.T) {
	s := &dockerHealthState{killAfter: dockerHealthKillAfter{never: true}, secrets: []string{"hunter2secret"}}
	long := strings.Repeat("a", 1000) + "\nDB_PASSWORD=hunter2secret\nAPI_TOKEN=abc123tok\nconnection refused"
	v, _ := s.observe(dockerHealthOf("unhealthy", 2, 1, long), time.Now())
	if strings.Contains(v.message, "hunter2secret") || strings.Contains(v.message, "abc123tok") {
		t.Errorf("secret in the message: %q", v.message)
	}
	if !strings.Contains(v.message, "DB_PASSWORD="+redactedValue) || !strings.HasSuffix(v.message, "connection refused") {
		t.Errorf("message %q does not end with the output's redacted tail", v.message)
	}
	if !strings.Contains(v.message, "…") || len(v.output) > dockerHealthOutputLimit+len("…") {
		t.Errorf("output %d bytes, want the last %d marked as cut: %q", len(v.output), dockerHealthOutputLimit, v.output)
	}
	if strings.Contains(v.output, "\n") {
		t.Errorf("output %q spans lines", v.output)
	}
	v, _ = (&dockerHealthState{}).observe(docker.Health{Status: "unhealthy", FailingStreak: 1,
		Log: []docker.HealthCheck{{ExitCode: -1, Output: "Health check exceeded timeout (1s)"}}}, time.Now())
	if !strings.Contains(v.message, "last probe did not complete: Health check exceeded timeout (1s)") {
		t.Errorf("timed-out probe: %q", v.message)
	}
}

func TestDockerHealthcheckOfTheContainer(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   *docker.HealthConfig
		want bool
	}{
		{"none in the config", nil, false},
		{"empty test", &docker.HealthConfig{}, false},
		{"NONE", &docker.HealthConfig{Test: []string{"NONE"}}, false},
		{"CMD", &docker.HealthConfig{Test: []string{"CMD", "test", "-f", "/tmp/ok"}}, true},
		{"CMD-SHELL", &docker.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}}, true},
	} {
		got := dockerHealthcheck(&docker.Container{Config: &docker.Config{Healthcheck: tc.hc}}) != nil
		if got != tc.want {
			t.Errorf("%s: has a HEALTHCHECK %v, want %v", tc.name, got, tc.want)
		}
	}
	if dockerHealthcheck(&docker.Container{}) != nil {
		t.Error("a container without config has a HEALTHCHECK")
	}
}

func TestDockerHealthPollInterval(t *testing.T) {
	for _, tc := range []struct {
		setting, image, want time.Duration
	}{
		{0, 0, 30 * time.Second},
		{0, 5 * time.Second, 5 * time.Second},
		{0, 10 * time.Millisecond, time.Second},
		{200 * time.Millisecond, 5 * time.Second, 200 * time.Millisecond},
	} {
		s := DockerHealthSettings{DockerHealthPollInterval: tc.setting}
		if got := s.pollInterval(&docker.HealthConfig{Interval: tc.image}); got != tc.want {
			t.Errorf("setting %s, image interval %s: %s, want %s", tc.setting, tc.image, got, tc.want)
		}
	}
}

func TestDockerHealthSettingsLoadAndValidate(t *testing.T) {
	cfg := mustLoadConfig(t, testSettingsEnv(nil))
	if cfg.DockerHealthKillAfter != (dockerHealthKillAfter{after: 30 * time.Second}) || cfg.DockerHealthPollInterval != 0 {
		t.Errorf("defaults: kill after %s, poll %s", cfg.DockerHealthKillAfter, cfg.DockerHealthPollInterval)
	}
	cfg = mustLoadConfig(t, testSettingsEnv(nil, "EXECUTOR_DOCKER_HEALTH_KILL_AFTER=never", "EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL=2s"))
	if !cfg.DockerHealthKillAfter.never || cfg.DockerHealthPollInterval != 2*time.Second {
		t.Errorf("task's values not taken: kill after %s, poll %s", cfg.DockerHealthKillAfter, cfg.DockerHealthPollInterval)
	}
	if got := cfg.settingsFields()["DockerHealthKillAfter"]; got != "never (task)" {
		t.Errorf("settings log shows %q", got)
	}
	for value, mention := range map[string]string{
		"EXECUTOR_DOCKER_HEALTH_KILL_AFTER=soon":     "EXECUTOR_DOCKER_HEALTH_KILL_AFTER",
		"EXECUTOR_DOCKER_HEALTH_KILL_AFTER=-1s":      "EXECUTOR_DOCKER_HEALTH_KILL_AFTER must not be negative",
		"EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL=1ms":   "EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL must be 0",
		"EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL=often": "EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL",
	} {
		_, err := loadConfigFrom(testSettingsEnv(nil, value))
		if err == nil || !strings.Contains(err.Error(), mention) {
			t.Errorf("%s: error %v, want one mentioning %q", value, err, mention)
		}
	}
}

// --- the task lifecycle, against the fake runtime ---

// quickDockerHealth makes the fake's containers declare a HEALTHCHECK and
// the executor read Docker's verdict often.
func quickDockerHealth(engine *fakeRuntime, killAfter string) map[string]string {
	engine.imageHealthcheck = &docker.HealthConfig{Test: []string{"CMD", "test", "-f", "/tmp/ok"}, Interval: time.Second, Retries: 1}
	return map[string]string{"EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL": "100ms", "EXECUTOR_DOCKER_HEALTH_KILL_AFTER": killAfter}
}

func TestTaskUnitDockerHealthReportsChangesAndKills(t *testing.T) {
	engine := newUnitRuntime()
	settings := quickDockerHealth(engine, "300ms")
	u := startUnitTask(t, engine, unitConfig{operator: settings, info: unitTaskInfo(withEnv("DB_PASSWORD", "hunter2secret"))})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	engine.setHealth(c.id, "starting", 0, 0, "")
	engine.setHealth(c.id, "healthy", 0, 0, "")
	eventually(t, 5*time.Second, "a healthy=true update", func() bool { return len(healthFlags(t, u.statuses.all())) == 1 })
	// "starting" is no verdict: the first update is the healthy one.
	if got := healthFlags(t, u.statuses.all()); !got[0] {
		t.Fatalf("health updates %v, want healthy first", got)
	}
	engine.setHealth(c.id, "unhealthy", 1, 1, "probe says DB_PASSWORD=hunter2secret is wrong")
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "Docker HEALTHCHECK failed: unhealthy for ")
	if final.Healthy == nil || final.GetHealthy() {
		t.Errorf("terminal healthy %v, want false", final.Healthy)
	}
	if !strings.Contains(final.GetMessage(), "last probe exited with status 1: probe says DB_PASSWORD="+redactedValue+" is wrong") {
		t.Errorf("message %q does not carry the last probe's redacted output", final.GetMessage())
	}
	// The kill came no earlier than the setting: the spell it reports is
	// the executor's own reading of the clock, at least 300ms.
	spell := final.GetMessage()[strings.Index(final.GetMessage(), "unhealthy for ")+len("unhealthy for "):]
	spell, _, _ = strings.Cut(spell, " ")
	if d, err := time.ParseDuration(spell); err != nil || d < 300*time.Millisecond {
		t.Errorf("killed after %q, want at least 300ms", spell)
	}
	if got := healthFlags(t, u.statuses.all()); len(got) != 2 || !got[0] || got[1] {
		t.Errorf("health updates %v, want [true false]", got)
	}
	for _, s := range u.statuses.all() {
		if strings.Contains(s.status.GetMessage(), "hunter2secret") {
			t.Errorf("a status carries the secret: %q", s.status.GetMessage())
		}
	}
	if strings.Contains(u.logs.String(), "hunter2secret") {
		t.Error("the log carries the secret")
	}
	states := u.statuses.states()
	if states[len(states)-2] != mesos.TASK_KILLING {
		t.Errorf("states %v: TASK_KILLING must precede the terminal update", states)
	}
	assertCleanEnd(t, u, engine, "a Docker health kill")
}

func TestTaskUnitDockerOutageIsNoVerdict(t *testing.T) {
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{operator: quickDockerHealth(engine, "0s")})
	c := engine.running(t)
	engine.setHealth(c.id, "healthy", 0, 0, "")
	eventually(t, 5*time.Second, "a healthy=true update", func() bool { return len(healthFlags(t, u.statuses.all())) == 1 })
	engine.setUnreachable(true)
	before := len(engine.callsOf("inspectContainer"))
	eventually(t, 5*time.Second, "reads while Docker is down", func() bool { return len(engine.callsOf("inspectContainer")) >= before+3 })
	engine.setUnreachable(false)
	after := len(engine.callsOf("inspectContainer"))
	eventually(t, 5*time.Second, "reads once Docker is back", func() bool { return len(engine.callsOf("inspectContainer")) >= after+2 })
	if got := healthFlags(t, u.statuses.all()); len(got) != 1 || u.statuses.has(mesos.TASK_KILLING) {
		t.Errorf("health updates %v (killing: %v), want the healthy one alone: an outage is no verdict", got, u.statuses.has(mesos.TASK_KILLING))
	}
	if !strings.Contains(u.logs.String(), "no verdict until Docker answers") {
		t.Error("the outage was not logged")
	}
	u.kill(time.Second)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "killed by the scheduler")
	if final.Healthy != nil {
		t.Errorf("a scheduler's kill reports no health: %v", final.GetHealthy())
	}
}

func TestTaskUnitDockerHealthOnlyWithoutOtherSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		info mesos.TaskInfo
	}{
		// A Mesos health check is the task's: Docker's verdict is ignored.
		{"with a Mesos health check", unitTaskInfo(withHealthCheck(quickCommandHealthCheck(3)))},
		// Sidecar watches the task (SidecarDiscover unset): Docker's
		// verdict is Sidecar's business.
		{"with Sidecar", func() mesos.TaskInfo {
			info := unitTaskInfo()
			info.Labels = nil
			return info
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := newUnitRuntime()
			settings := quickDockerHealth(engine, "0s")
			settings["EXECUTOR_SIDECAR_DRAINING_DURATION"] = "0s"
			u := startUnitTask(t, engine, unitConfig{operator: settings, info: tc.info})
			c := engine.running(t)
			engine.setHealth(c.id, "unhealthy", 5, 1, "broken")
			u.waitState(t, mesos.TASK_RUNNING)
			if tc.info.HealthCheck != nil {
				eventually(t, 5*time.Second, "the Mesos health check at work", func() bool { return len(engine.callsOf("execInContainer")) >= 3 })
			}
			u.kill(time.Second)
			// supervise waits for the watch it started to end: once the
			// task has ended, a started watch has logged its start.
			final := u.finish(t)
			assertStatus(t, final, mesos.TASK_KILLED, nil, "killed by the scheduler")
			assertDockerHealthNotWatched(t, u, engine)
		})
	}
}

// assertDockerHealthNotWatched checks, once the task has ended, that
// Docker's health was never read: no watch started, no inspect beyond the
// launch's, no update from Docker's verdict.
func assertDockerHealthNotWatched(t *testing.T, u *unitTask, engine *fakeRuntime) {
	t.Helper()
	if strings.Contains(u.logs.String(), "watching Docker's HEALTHCHECK") {
		t.Error("the Docker health watch started")
	}
	if n := len(engine.callsOf("inspectContainer")); n > 0 {
		t.Errorf("%d inspects beyond the launch's, want none", n)
	}
	for _, s := range u.statuses.all() {
		if strings.Contains(s.status.GetMessage(), "Docker HEALTHCHECK") {
			t.Errorf("update from Docker's verdict: %q", s.status.GetMessage())
		}
	}
}

func TestTaskUnitDockerHealthcheckNONEIsNotWatched(t *testing.T) {
	engine := newUnitRuntime()
	settings := quickDockerHealth(engine, "0s")
	engine.imageHealthcheck = &docker.HealthConfig{Test: []string{"NONE"}}
	u := startUnitTask(t, engine, unitConfig{operator: settings, info: bridgeTaskInfo()})
	c := engine.running(t)
	engine.setHealth(c.id, "unhealthy", 5, 1, "broken")
	u.waitState(t, mesos.TASK_RUNNING)
	u.kill(time.Second)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, nil, "killed by the scheduler")
	assertDockerHealthNotWatched(t, u, engine)
}
