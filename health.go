package main

// Mesos health checks (TaskInfo.health_check) for the task's container:
// the check's settings with Mesos' defaults and validation, the schedule
// of attempts, and Mesos' interpretation of the results (grace period,
// consecutive failures, which results become a TASK_RUNNING update, when
// the task is killed). How one attempt reaches the container is
// health_probe.go's; TaskInfo.check (results only, never a kill) is
// checks.go's. task.go's supervise loop receives the verdicts and kills
// through the normal stop path.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

// checkTiming is when attempts happen: the first delay after the checker
// starts, each next one interval after the previous finished or timed out;
// an attempt is abandoned after timeout (0: never).
type checkTiming struct {
	delay, interval, timeout time.Duration
}

// healthCheckConfig is a validated TaskInfo.health_check.
type healthCheckConfig struct {
	checkTiming
	// grace: failures before the first success are ignored while the
	// checker has run for at most this long (the delay included).
	grace time.Duration
	// consecutiveFailures counted failures in a row kill the task.
	consecutiveFailures uint32
	probe               probeSpec
}

// parseSeconds reads one of the *_seconds fields: unset takes Mesos'
// default; negative or not a number is invalid.
func parseSeconds(field string, value *float64, def float64) (time.Duration, error) {
	seconds := def
	if value != nil {
		seconds = *value
	}
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds < 0 || seconds > 1e9 {
		return 0, fmt.Errorf("%s must be a non-negative number of seconds (got %v)", field, seconds)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// parseHealthCheck validates a TaskInfo.health_check as Mesos does and
// applies its defaults. Errors name the field, for the TASK_FAILED message.
func parseHealthCheck(hc *mesos.HealthCheck) (*healthCheckConfig, error) {
	cfg := &healthCheckConfig{consecutiveFailures: mesos.Default_HealthCheck_ConsecutiveFailures}
	var err error
	if cfg.checkTiming, err = parseTiming("health_check", hc.DelaySeconds, hc.IntervalSeconds, hc.TimeoutSeconds,
		mesos.Default_HealthCheck_DelaySeconds, mesos.Default_HealthCheck_IntervalSeconds, mesos.Default_HealthCheck_TimeoutSeconds); err != nil {
		return nil, err
	}
	if cfg.grace, err = parseSeconds("health_check.grace_period_seconds", hc.GracePeriodSeconds, mesos.Default_HealthCheck_GracePeriodSeconds); err != nil {
		return nil, err
	}
	if hc.ConsecutiveFailures != nil {
		cfg.consecutiveFailures = *hc.ConsecutiveFailures
	}
	switch hc.Type {
	case mesos.HealthCheck_COMMAND:
		if hc.Command == nil {
			return nil, errors.New("health_check.type is COMMAND but health_check.command is not set")
		}
		cfg.probe, err = commandProbeSpec("health_check.command", hc.Command)
		if err != nil {
			return nil, err
		}
	case mesos.HealthCheck_HTTP:
		http := hc.HTTP
		if http == nil {
			return nil, errors.New("health_check.type is HTTP but health_check.http is not set")
		}
		scheme := http.GetScheme()
		if http.Scheme == nil {
			scheme = "http"
		}
		if scheme != "http" && scheme != "https" {
			return nil, fmt.Errorf("health_check.http.scheme must be \"http\" or \"https\" (got %q)", scheme)
		}
		if cfg.probe, err = httpProbeSpec("health_check.http", scheme, http.Path, http.Port, http.GetProtocol() == mesos.IPv6); err != nil {
			return nil, err
		}
	case mesos.HealthCheck_TCP:
		if hc.TCP == nil {
			return nil, errors.New("health_check.type is TCP but health_check.tcp is not set")
		}
		if cfg.probe, err = tcpProbeSpec("health_check.tcp", hc.TCP.Port, hc.TCP.GetProtocol() == mesos.IPv6); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("health_check.type must be COMMAND, HTTP or TCP (got %s)", hc.Type)
	}
	return cfg, nil
}

// parseTiming reads the delay_seconds, interval_seconds and
// timeout_seconds of a check or health check (prefix names it in errors),
// unset ones taking the given defaults, in that order.
func parseTiming(prefix string, delay, interval, timeout *float64, defDelay, defInterval, defTimeout float64) (checkTiming, error) {
	var timing checkTiming
	var err error
	if timing.delay, err = parseSeconds(prefix+".delay_seconds", delay, defDelay); err != nil {
		return checkTiming{}, err
	}
	if timing.interval, err = parseSeconds(prefix+".interval_seconds", interval, defInterval); err != nil {
		return checkTiming{}, err
	}
	if timing.timeout, err = parseSeconds(prefix+".timeout_seconds", timeout, defTimeout); err != nil {
		return checkTiming{}, err
	}
	return timing, nil
}

// httpProbeSpec checks an HTTP check's path (absent, or starting with /)
// and port, field names under prefix, and returns its probe.
func httpProbeSpec(prefix, scheme string, path *string, port uint32, ipv6 bool) (probeSpec, error) {
	pathValue := ""
	if path != nil {
		pathValue = *path
		if !strings.HasPrefix(pathValue, "/") {
			return probeSpec{}, fmt.Errorf("%s.path must start with \"/\" (got %q)", prefix, pathValue)
		}
	}
	if err := checkPort(prefix+".port", port); err != nil {
		return probeSpec{}, err
	}
	return probeSpec{kind: probeHTTP, scheme: scheme, port: port, path: pathValue, ipv6: ipv6}, nil
}

// tcpProbeSpec checks a TCP check's port, named prefix.port, and returns
// its probe.
func tcpProbeSpec(prefix string, port uint32, ipv6 bool) (probeSpec, error) {
	if err := checkPort(prefix+".port", port); err != nil {
		return probeSpec{}, err
	}
	return probeSpec{kind: probeTCP, port: port, ipv6: ipv6}, nil
}

func checkPort(field string, port uint32) error {
	if port == 0 || port > 65535 {
		return fmt.Errorf("%s must be a port number from 1 to 65535 (got %d)", field, port)
	}
	return nil
}

// commandProbeSpec turns a check's CommandInfo into what runs in the
// container: `sh -c value` (shell form, the default) or value followed by
// the arguments. user and uris are ignored, as Mesos does.
func commandProbeSpec(field string, cmd *mesos.CommandInfo) (probeSpec, error) {
	if cmd.Value == nil || strings.TrimSpace(cmd.GetValue()) == "" {
		return probeSpec{}, fmt.Errorf("%s.value must be set to the command to run", field)
	}
	spec := probeSpec{kind: probeCommand}
	if cmd.GetShell() {
		spec.cmd = []string{"sh", "-c", cmd.GetValue()}
	} else {
		spec.cmd = append([]string{cmd.GetValue()}, cmd.Arguments...)
	}
	for i, v := range cmd.GetEnvironment().GetVariables() {
		if v.GetType() == mesos.Environment_Variable_SECRET {
			return probeSpec{}, fmt.Errorf("%s.environment.variables[%d] (%s): secret variables are not supported in checks", field, i, v.Name)
		}
		if v.Name == "" || strings.Contains(v.Name, "=") {
			return probeSpec{}, fmt.Errorf("%s.environment.variables[%d]: invalid variable name %q", field, i, v.Name)
		}
		spec.env = append(spec.env, v.Name+"="+v.GetValue())
	}
	return spec, nil
}

// healthState is Mesos' interpretation of a health check's results.
type healthState struct {
	grace               time.Duration
	consecutiveFailures uint32
	started             time.Time // when the checker started
	succeeded           bool      // a success was seen: no grace any more
	failures            uint32    // counted failures in a row
}

// healthVerdict is what one result of a health source, the Mesos health
// check or Docker's HEALTHCHECK (health_docker.go), asks of supervise: a
// TASK_RUNNING update, a kill, or both (onHealthVerdict).
type healthVerdict struct {
	healthy bool
	// update: a TASK_RUNNING update carries healthy and message. Every
	// verdict of the Mesos health check has one; Docker's asks for one
	// only when its verdict changed.
	update bool
	// kill: the Mesos health check's counted failures reached
	// consecutive_failures, or the container stayed unhealthy by Docker's
	// HEALTHCHECK for EXECUTOR_DOCKER_HEALTH_KILL_AFTER.
	kill    bool
	message string
	// output is Docker's last probe's output, redacted and truncated, for
	// the log (Docker's HEALTHCHECK only).
	output string
}

// observe takes one attempt's result (problem says why it failed) and
// returns the update it produces, if any: every counted failure, the first
// success ever and the first success after a failure.
func (s *healthState) observe(ok bool, problem string, now time.Time) (healthVerdict, bool) {
	if ok {
		report := !s.succeeded || s.failures > 0
		s.succeeded = true
		s.failures = 0
		return healthVerdict{healthy: true, update: true, message: "Mesos health check passed"}, report
	}
	if !s.succeeded && s.grace > 0 && now.Sub(s.started) <= s.grace {
		return healthVerdict{}, false
	}
	s.failures++
	v := healthVerdict{healthy: false, update: true, kill: s.failures >= s.consecutiveFailures}
	if v.kill {
		v.message = fmt.Sprintf("Mesos health check failed %d times in a row (consecutive_failures=%d): %s",
			s.failures, s.consecutiveFailures, problem)
	} else {
		v.message = fmt.Sprintf("Mesos health check failed (%d of %d): %s", s.failures, s.consecutiveFailures, problem)
	}
	return v, true
}

// checkPlan is the task's validated health check and check, ready to be
// started once the container runs.
type checkPlan struct {
	health *healthCheckConfig
	check  *checkConfig
}

// planChecks validates TaskInfo.health_check and TaskInfo.check.
func planChecks(info *mesos.TaskInfo) (*checkPlan, error) {
	plan := &checkPlan{}
	if info.HealthCheck != nil {
		cfg, err := parseHealthCheck(info.HealthCheck)
		if err != nil {
			return nil, fmt.Errorf("invalid health check: %w", err)
		}
		plan.health = cfg
	}
	if info.Check != nil {
		cfg, err := parseCheck(info.Check)
		if err != nil {
			return nil, fmt.Errorf("invalid check: %w", err)
		}
		plan.check = cfg
	}
	return plan, nil
}

// mesosChecks runs the task's health check and check in the background;
// supervise reads their results from verdicts and checkResults (nil
// channels when the task has no such check).
type mesosChecks struct {
	verdicts     chan healthVerdict
	checkResults chan *mesos.CheckStatusInfo
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// startMesosChecks starts the planned checks against the running
// container. They start now, when TASK_RUNNING has been sent, as under
// Mesos' Docker executor: delay and grace count from here.
func (t *taskRunner) startMesosChecks(plan *checkPlan, container *docker.Container, logger *log.Entry) *mesosChecks {
	ctx, cancel := context.WithCancel(context.Background())
	m := &mesosChecks{cancel: cancel}
	if plan == nil {
		return m
	}
	target := probeTargetFor(container, t.spec)
	secrets := t.containerSecrets()
	if plan.health != nil {
		cfg := plan.health
		m.verdicts = make(chan healthVerdict, 1)
		p := newProber(cfg.probe, target, t.deps.docker, container.ID, secrets)
		hlog := logger.WithFields(log.Fields{"health_check": p.describe(), "consecutive_failures": cfg.consecutiveFailures})
		hlog.WithFields(log.Fields{"delay": cfg.delay.String(), "interval": cfg.interval.String(),
			"timeout": cfg.timeout.String(), "grace_period": cfg.grace.String()}).Info("starting the Mesos health check")
		state := &healthState{grace: cfg.grace, consecutiveFailures: cfg.consecutiveFailures, started: time.Now()}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			runHealthCheck(ctx, cfg.checkTiming, p, state, time.Now, hlog, m.verdicts)
		}()
	}
	if plan.check != nil {
		cfg := plan.check
		m.checkResults = make(chan *mesos.CheckStatusInfo, 1)
		p := newProber(cfg.probe, target, t.deps.docker, container.ID, secrets)
		clog := logger.WithField("check", p.describe())
		clog.WithFields(log.Fields{"delay": cfg.delay.String(), "interval": cfg.interval.String(),
			"timeout": cfg.timeout.String()}).Info("starting the Mesos check")
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			runSchedule(ctx, cfg.checkTiming, p.attempt, func(out probeOutcome) bool {
				select {
				case m.checkResults <- checkStatusFrom(cfg.kind, out):
					return true
				case <-ctx.Done():
					return false
				}
			})
		}()
	}
	return m
}

// stop ends the checks and waits for them; safe to call many times.
func (m *mesosChecks) stop() {
	m.cancel()
	m.wg.Wait()
}

// runHealthCheck attempts the check on its schedule and hands each update
// the results produce to verdicts; it ends after the verdict that kills.
func runHealthCheck(ctx context.Context, timing checkTiming, p prober, state *healthState, now func() time.Time,
	logger *log.Entry, verdicts chan<- healthVerdict) {
	runSchedule(ctx, timing, p.attempt, func(out probeOutcome) bool {
		ok := p.healthy(out)
		problem := ""
		if !ok {
			problem = out.describe()
		}
		verdict, report := state.observe(ok, problem, now())
		if !report {
			if !ok {
				logger.WithField("problem", problem).Info("Mesos health check failed inside the grace period; not counted")
			}
			return true
		}
		entry := logger.WithField("healthy", verdict.healthy)
		if out.output != "" && !ok {
			entry = entry.WithField("output_tail", out.output)
		}
		if verdict.healthy {
			entry.Info("Mesos health check passed")
		} else {
			entry.WithField("problem", problem).Warn(verdict.message)
		}
		select {
		case verdicts <- verdict:
		case <-ctx.Done():
			return false
		}
		return !verdict.kill
	})
}

// minCheckInterval is the shortest wait between two attempts: Mesos
// accepts an interval of 0, which would make a failing check spin, and a
// COMMAND check load the host's Docker daemon that every task shares.
const minCheckInterval = 100 * time.Millisecond

// runSchedule makes attempts on Mesos' schedule until ctx ends or report
// returns false. An attempt still running at the timeout is abandoned and
// reported as timed out.
func runSchedule(ctx context.Context, timing checkTiming, attempt func(context.Context) probeOutcome, report func(probeOutcome) bool) {
	timing.interval = max(timing.interval, minCheckInterval)
	wait := timing.delay
	for {
		if !sleepContext(ctx, wait) {
			return
		}
		attemptCtx, cancel := ctx, context.CancelFunc(func() {})
		if timing.timeout > 0 {
			attemptCtx, cancel = context.WithTimeout(ctx, timing.timeout)
		}
		out := attempt(attemptCtx)
		if out.err != nil && errors.Is(attemptCtx.Err(), context.DeadlineExceeded) {
			out.timedOut = true
			out.err = fmt.Errorf("%s: timed out after %s", out.target, timing.timeout)
		}
		cancel()
		if ctx.Err() != nil || !report(out) {
			return
		}
		wait = timing.interval
	}
}
