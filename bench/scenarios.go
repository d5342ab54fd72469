package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

// settle is how long a container runs before the bench stops it, in the
// executor's runs and the baseline's alike.
const settle = 300 * time.Millisecond

// baseSettings are the executor settings of the latency runs. Sidecar is
// an emulator that is never polled within a run (the default 1m5s backoff
// is longer than any run); draining is off, or every KILL would wait the
// default 10 s of draining before stopping the container.
func baseSettings(sidecarURL string) []string {
	return []string{
		"EXECUTOR_SIDECAR_URL=" + sidecarURL,
		"EXECUTOR_SIDECAR_DRAINING_DURATION=0s",
	}
}

// launchKillResult holds the paired executor and baseline figures, in ms.
type launchKillResult struct {
	Launch  []float64 // LAUNCH written → TASK_RUNNING received
	BaseAPI []float64 // create + start through the Docker API
	// BaseAPIInspect is create + start + one inspect: the Docker work the
	// executor does before TASK_RUNNING (which carries the inspect).
	BaseAPIInspect []float64
	BaseCLI        []float64 // docker run -d, the CLI process
	Kill           []float64 // KILL written → TASK_KILLED received
	Stop           []float64 // POST /containers/{id}/stop through the API
	KillToDie      []float64 // KILL written → Docker's die event
	DieToKilled    []float64 // die event → TASK_KILLED received
	AckExit        []float64 // terminal ACKNOWLEDGED written → process exit
	RSSRunning     []float64 // VmRSS (MB) with the task running
	Threads        []float64
}

// exitResult is the container-exit path.
type exitResult struct {
	DieToFinished []float64 // exit 0: die event → TASK_FINISHED received
	DieToFailed   []float64 // exit 3: die event → TASK_FAILED received
	AckExit       []float64
}

// runLaunchKill measures n paired repetitions (plus one warm-up of each
// that is not counted): the executor launching and killing a task, and
// Docker doing the same for an identical container.
//
// With alt set (an A/B comparison of two executor builds), every
// repetition also runs alt's executor, and altRes holds its figures.
func (h *harness) runLaunchKill(n int, sidecarURL string, proxy *dockerProxy, bd *breakdowns, alt *harness) (res, altRes *launchKillResult, err error) {
	res, altRes = &launchKillResult{}, &launchKillResult{}
	var template *docker.Container
	executorBlockFor := func(h *harness, res *launchKillResult) func(int, bool) error {
		return func(i int, record bool) error {
			return h.launchKillOnce(i, record, sidecarURL, proxy, bd, res, &template)
		}
	}
	executorBlock := executorBlockFor(h, res)
	baselineBlock := func(i int, record bool) error {
		if template == nil {
			return errors.New("no container configuration to copy for the baseline")
		}
		name := fmt.Sprintf("%s-baseline-%d", h.prefix(), i)
		config := *template.Config
		config.Labels = map[string]string{benchLabel: h.runID}
		hostConfig := *template.HostConfig
		start := time.Now()
		created, err := h.docker.client.CreateContainer(docker.CreateContainerOptions{Name: name, Config: &config, HostConfig: &hostConfig})
		if err != nil {
			return fmt.Errorf("baseline create: %w", err)
		}
		defer h.docker.client.RemoveContainer(docker.RemoveContainerOptions{ID: created.ID, Force: true}) //nolint:errcheck
		if err := h.docker.client.StartContainer(created.ID, nil); err != nil {
			return fmt.Errorf("baseline start: %w", err)
		}
		apiRun := time.Since(start)
		if _, err := h.docker.client.InspectContainerWithOptions(docker.InspectContainerOptions{ID: created.ID}); err != nil {
			return fmt.Errorf("baseline inspect: %w", err)
		}
		apiRunInspect := time.Since(start)
		time.Sleep(settle)
		stopStart := time.Now()
		if err := h.docker.client.StopContainer(created.ID, 5); err != nil {
			return fmt.Errorf("baseline stop: %w", err)
		}
		stop := time.Since(stopStart)
		if err := h.docker.client.RemoveContainer(docker.RemoveContainerOptions{ID: created.ID, Force: true}); err != nil {
			return fmt.Errorf("baseline remove: %w", err)
		}

		// The same with the docker CLI, as an operator would type it.
		cliName := name + "-cli"
		sandbox := filepath.Join(h.workDir, "baseline-cli")
		if err := os.MkdirAll(sandbox, 0o755); err != nil {
			return err
		}
		cliStart := time.Now()
		out, err := execOutput("docker", "run", "-d", "--name", cliName, "--network", "host",
			"--label", benchLabel+"="+h.runID, "-v", sandbox+":/mnt/mesos/sandbox:rw",
			"-e", "MESOS_SANDBOX=/mnt/mesos/sandbox", h.image, "sh", "-c", shellBody(termRespecting))
		cliRun := time.Since(cliStart)
		_ = h.docker.client.RemoveContainer(docker.RemoveContainerOptions{ID: cliName, Force: true})
		if err != nil {
			return fmt.Errorf("baseline docker run -d: %w", err)
		}
		if len(strings.TrimSpace(out)) < 12 {
			return fmt.Errorf("baseline docker run -d printed %q, not a container ID", out)
		}
		if record {
			res.BaseAPI = append(res.BaseAPI, ms(apiRun))
			res.BaseAPIInspect = append(res.BaseAPIInspect, ms(apiRunInspect))
			res.Stop = append(res.Stop, ms(stop))
			res.BaseCLI = append(res.BaseCLI, ms(cliRun))
		}
		return nil
	}

	// Warm-up: one of each, not recorded; it also provides the container
	// configuration the baseline copies.
	blocks := []func(int, bool) error{executorBlock, baselineBlock}
	if alt != nil {
		blocks = append(blocks, executorBlockFor(alt, altRes))
	}
	for _, block := range blocks {
		if err := block(-1, false); err != nil {
			return nil, nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	for i := 0; i < n; i++ {
		// Rotate which goes first, so none always follows another.
		for j := range blocks {
			if err := blocks[(i+j)%len(blocks)](i, true); err != nil {
				return nil, nil, fmt.Errorf("repetition %d: %w", i, err)
			}
		}
		h.progress("launch/kill %d/%d", i+1, n)
	}
	for name, set := range map[string][]float64{"launch": res.Launch, "create+start": res.BaseAPI, "docker run -d": res.BaseCLI,
		"kill": res.Kill, "stop": res.Stop, "kill→die": res.KillToDie, "die→killed": res.DieToKilled} {
		if err := checkSamples(name, set, n); err != nil {
			return nil, nil, err
		}
	}
	if err := checkSamplesFloor("ack→exit", res.AckExit, n, -ms(timestampSlack)); err != nil {
		return nil, nil, err
	}
	if alt != nil {
		if err := checkSamples("alternative launch", altRes.Launch, n); err != nil {
			return nil, nil, err
		}
	}
	return res, altRes, nil
}

// launchKillOnce is one executor repetition of runLaunchKill; the first
// container it runs becomes the baseline's template.
func (h *harness) launchKillOnce(i int, record bool, sidecarURL string, proxy *dockerProxy, bd *breakdowns, res *launchKillResult, template **docker.Container) error {
	taskID := fmt.Sprintf("%s-kill-%d", h.prefix(), i)
	if !record {
		taskID = fmt.Sprintf("%s-kill-warmup", h.prefix())
	}
	r, err := h.startExecutor(taskID, mesostest.Config{}, baseSettings(sidecarURL))
	if err != nil {
		return err
	}
	defer r.abort()
	task := h.benchTask(r.agent, taskID, termRespecting, nil)
	launchAt, err := r.launchAt(task)
	if err != nil {
		return err
	}
	running, err := r.waitState(taskID, mesos.TASK_RUNNING, 60*time.Second)
	if err != nil {
		return err
	}
	c, err := h.docker.client.InspectContainerWithOptions(docker.InspectContainerOptions{ID: r.containerName(taskID)})
	if err != nil {
		return r.failure(fmt.Errorf("inspect the task's container: %w", err))
	}
	if *template == nil {
		*template = c
	}
	time.Sleep(settle)
	rss, err := r.rss()
	if err != nil {
		return err
	}
	threads, err := threadCount(r.pid)
	if err != nil {
		return err
	}
	if err := r.agent.Kill(taskID, nil); err != nil {
		return r.failure(err)
	}
	killAt, err := r.eventTime(executor.Event_KILL, nil)
	if err != nil {
		return err
	}
	killed, err := r.waitTerminal(taskID, mesos.TASK_KILLED, 60*time.Second)
	if err != nil {
		return err
	}
	dieAt, ackExit, err := h.awaitEnd(r, taskID, killed)
	if err != nil {
		return err
	}
	if record && bd != nil && proxy != nil {
		bd.add("launch", launchAt, running.Received, proxy)
		bd.add("kill", killAt, killed.Received, proxy)
	}
	if !record {
		return nil
	}
	res.Launch = append(res.Launch, ms(running.Received.Sub(launchAt)))
	res.Kill = append(res.Kill, ms(killed.Received.Sub(killAt)))
	res.KillToDie = append(res.KillToDie, ms(dieAt.Sub(killAt)))
	res.DieToKilled = append(res.DieToKilled, ms(killed.Received.Sub(dieAt)))
	res.AckExit = append(res.AckExit, ms(ackExit))
	res.RSSRunning = append(res.RSSRunning, float64(rss)*1024/1e6)
	res.Threads = append(res.Threads, float64(threads))
	return nil
}

// shellBody is the script of a `sh -c '…'` command line.
func shellBody(command string) string {
	body := strings.TrimPrefix(command, "sh -c '")
	return strings.TrimSuffix(body, "'")
}

// runExits measures n containers that exit 0 and n that exit 3 on their own.
// With alt set, alt's executor runs each case too, into altRes.
func (h *harness) runExits(n int, sidecarURL string, proxy *dockerProxy, bd *breakdowns, alt *harness) (res, altRes *exitResult, err error) {
	res, altRes = &exitResult{}, &exitResult{}
	one := func(h *harness, res *exitResult, i, code int) error {
		taskID := fmt.Sprintf("%s-exit%d-%d", h.prefix(), code, i)
		r, err := h.startExecutor(taskID, mesostest.Config{}, baseSettings(sidecarURL))
		if err != nil {
			return err
		}
		defer r.abort()
		task := h.benchTask(r.agent, taskID, fmt.Sprintf(`sh -c 'sleep 0.3; exit %d'`, code), nil)
		if _, err := r.launchAt(task); err != nil {
			return err
		}
		want := mesos.TASK_FINISHED
		if code != 0 {
			want = mesos.TASK_FAILED
		}
		terminal, err := r.waitTerminal(taskID, want, 60*time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(terminal.Status.GetMessage(), fmt.Sprintf("status %d", code)) {
			return r.failure(fmt.Errorf("terminal message %q does not name exit status %d", terminal.Status.GetMessage(), code))
		}
		dieAt, ackExit, err := h.awaitEnd(r, taskID, terminal)
		if err != nil {
			return err
		}
		if bd != nil && proxy != nil {
			bd.add(fmt.Sprintf("exit%d", code), dieAt, terminal.Received, proxy)
			return nil
		}
		latency := ms(terminal.Received.Sub(dieAt))
		if code == 0 {
			res.DieToFinished = append(res.DieToFinished, latency)
		} else {
			res.DieToFailed = append(res.DieToFailed, latency)
		}
		res.AckExit = append(res.AckExit, ms(ackExit))
		return nil
	}
	type run struct {
		h   *harness
		res *exitResult
	}
	runs := []run{{h, res}}
	if alt != nil {
		runs = append(runs, run{alt, altRes})
	}
	for i := 0; i < n; i++ {
		for j := range runs {
			r := runs[(i+j)%len(runs)]
			for _, code := range []int{0, 3} {
				if err := one(r.h, r.res, i, code); err != nil {
					return nil, nil, fmt.Errorf("exit repetition %d: %w", i, err)
				}
			}
		}
		h.progress("exits %d/%d", i+1, n)
	}
	if bd != nil {
		return res, altRes, nil
	}
	for _, r := range runs {
		if err := checkSamples("die→finished", r.res.DieToFinished, n); err != nil {
			return nil, nil, err
		}
		if err := checkSamples("die→failed", r.res.DieToFailed, n); err != nil {
			return nil, nil, err
		}
	}
	return res, altRes, nil
}

// healthResult is the Sidecar verdict path.
type healthResult struct {
	Interval     time.Duration
	ChangeToSeen []float64 // status changed in the emulator → health update received (ms)
	PollToSeen   []float64 // the first poll after the change arrived → update received (ms)
}

// sidecarHostName is the TASK_HOST of the Sidecar runs and the Servers key.
const sidecarHostName = "bench-agent-host"

// runHealth flips the emulated Sidecar's verdict n times at random phases
// of the poll interval and times the TASK_RUNNING health update.
func (h *harness) runHealth(n int, interval time.Duration) (*healthResult, error) {
	sidecar, err := sidecartest.Start()
	if err != nil {
		return nil, err
	}
	defer sidecar.Close()
	sidecar.SetHostname(sidecarHostName)
	taskID := fmt.Sprintf("%s-health", h.prefix())
	settings := []string{
		"EXECUTOR_SIDECAR_URL=" + sidecar.StateURL(),
		"EXECUTOR_SIDECAR_BACKOFF=0s",
		"EXECUTOR_SIDECAR_POLL_INTERVAL=" + interval.String(),
		"EXECUTOR_SIDECAR_MAX_FAILS=1000000", // a flip to UNHEALTHY must never end the task
		"EXECUTOR_SIDECAR_DRAINING_DURATION=0s",
	}
	r, err := h.startExecutor(taskID, mesostest.Config{}, settings)
	if err != nil {
		return nil, err
	}
	defer r.abort()
	id12, err := h.runSidecarTask(r, taskID, termRespecting)
	if err != nil {
		return nil, err
	}
	sidecar.SetService(sidecarHostName, id12, sidecartest.StatusAlive)

	healthUpdates := func() []mesostest.Update {
		var out []mesostest.Update
		for _, u := range r.agent.Accepted(taskID) {
			if u.Status.GetState() == mesos.TASK_RUNNING && u.Status.Healthy != nil {
				out = append(out, u)
			}
		}
		return out
	}
	waitHealth := func(count int, healthy bool) (mesostest.Update, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*interval+10*time.Second)
		defer cancel()
		u, err := r.agent.WaitForUpdate(ctx, func(mesostest.Update) bool { return len(healthUpdates()) >= count })
		if err != nil {
			return u, r.failure(fmt.Errorf("health update %d never arrived: %w", count, err))
		}
		got := healthUpdates()[count-1]
		if got.Status.GetHealthy() != healthy || got.Status.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
			return got, r.failure(fmt.Errorf("health update %d is healthy=%t (%s), want healthy=%t", count, got.Status.GetHealthy(), got.Status.GetReason(), healthy))
		}
		return got, nil
	}
	if _, err := waitHealth(1, true); err != nil {
		return nil, err
	}
	res := &healthResult{Interval: interval}
	healthy := true
	for i := 0; i < n; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(interval))))
		healthy = !healthy
		status := sidecartest.StatusAlive
		if !healthy {
			status = sidecartest.StatusUnhealthy
		}
		changedAt := time.Now()
		sidecar.SetService(sidecarHostName, id12, status)
		u, err := waitHealth(i+2, healthy)
		if err != nil {
			return nil, err
		}
		var firstPoll time.Time
		for _, p := range sidecar.Polls() {
			if p.Time.After(changedAt) {
				firstPoll = p.Time
				break
			}
		}
		if firstPoll.IsZero() || firstPoll.After(u.Received) {
			return nil, r.failure(fmt.Errorf("flip %d: no poll between the change and the update", i))
		}
		res.ChangeToSeen = append(res.ChangeToSeen, ms(u.Received.Sub(changedAt)))
		res.PollToSeen = append(res.PollToSeen, ms(u.Received.Sub(firstPoll)))
	}
	if err := r.agent.Kill(taskID, nil); err != nil {
		return nil, r.failure(err)
	}
	killed, err := r.waitTerminal(taskID, mesos.TASK_KILLED, 60*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := r.ackToExit(killed); err != nil {
		return nil, err
	}
	if err := r.finish(taskID); err != nil {
		return nil, err
	}
	if err := checkSamples("sidecar change→update", res.ChangeToSeen, n); err != nil {
		return nil, err
	}
	h.progress("health: %d flips at a %s poll interval", n, interval)
	return res, nil
}

// idleConfig is one idle executor: its poll interval and the size of the
// cluster its Sidecar reports.
type idleConfig struct {
	Interval time.Duration
	Services int
}

// parseIdleConfigs reads "30s:1000,1s:10000".
func parseIdleConfigs(spec string) ([]idleConfig, error) {
	var out []idleConfig
	for _, part := range strings.Split(spec, ",") {
		interval, services, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("idle configuration %q is not interval:services", part)
		}
		d, err := time.ParseDuration(interval)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("idle configuration %q: bad interval", part)
		}
		n, err := strconv.Atoi(services)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("idle configuration %q: bad service count", part)
		}
		out = append(out, idleConfig{Interval: d, Services: n})
	}
	if len(out) == 0 {
		return nil, errors.New("no idle configuration")
	}
	return out, nil
}

// idleResult is one executor's idle figures.
type idleResult struct {
	idleConfig
	Window        time.Duration
	Polls         int     // Sidecar polls inside the window
	CPUTicks      int64   // utime+stime over the window
	CPUSchedNs    int64   // sum of the threads' schedstat run time over the window
	CPUMsPerMin   float64 // the larger of utime+stime and schedstat, extrapolated to a minute
	CorePercent   float64
	RSSMaxMB      float64
	RSSEndMB      float64
	HWMMB         float64
	Smaps         map[string]int64 // KiB, at the end of the window
	Threads       int
	StateDocBytes int
}

// runIdle runs one executor per configuration side by side, each with its
// own emulated Sidecar, and measures CPU time and RSS over window once they
// are in their steady state. With profileDir set (a benchpprof build), it
// also saves a CPU profile of the window and a heap profile at its end.
func (h *harness) runIdle(configs []idleConfig, window time.Duration, profileDir string) ([]*idleResult, error) {
	type idleRun struct {
		r       *execRun
		sidecar *sidecartest.Server
		taskID  string
		res     *idleResult
	}
	var runs []*idleRun
	defer func() {
		for _, run := range runs {
			run.r.abort()
			run.sidecar.Close()
		}
	}()
	for i, cfg := range configs {
		sidecar, err := sidecartest.Start()
		if err != nil {
			return nil, err
		}
		sidecar.SetHostname(sidecarHostName)
		// A cluster of cfg.Services services, 20 per host, ours among them.
		for s := 0; s < cfg.Services; s++ {
			host := fmt.Sprintf("bench-host-%04d", s/20)
			if s/20 == 0 {
				host = sidecarHostName
			}
			sidecar.SetService(host, sidecartest.GeneratedID(s), sidecartest.StatusAlive,
				sidecartest.WithName(fmt.Sprintf("service-%03d", s%300)),
				sidecartest.WithPorts(sidecartest.Port{Type: "tcp", Port: 31000 + s%1000, ServicePort: 10000 + s%300, IP: "10.1.2.3"}))
		}
		taskID := fmt.Sprintf("%s-idle-%d", h.prefix(), i)
		settings := []string{
			"EXECUTOR_SIDECAR_URL=" + sidecar.StateURL(),
			// Long enough to register the container before the first poll.
			"EXECUTOR_SIDECAR_BACKOFF=2s",
			"EXECUTOR_SIDECAR_POLL_INTERVAL=" + cfg.Interval.String(),
			"EXECUTOR_SIDECAR_DRAINING_DURATION=0s",
		}
		r, err := h.startExecutor(taskID, mesostest.Config{}, settings)
		if err != nil {
			sidecar.Close()
			return nil, err
		}
		run := &idleRun{r: r, sidecar: sidecar, taskID: taskID, res: &idleResult{idleConfig: cfg, Window: window}}
		runs = append(runs, run)
		id12, err := h.runSidecarTask(r, taskID, idleCommand)
		if err != nil {
			return nil, err
		}
		sidecar.SetService(sidecarHostName, id12, sidecartest.StatusAlive)
	}
	// Steady state: each has reported the container healthy once.
	for _, run := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := run.r.agent.WaitForUpdate(ctx, func(u mesostest.Update) bool {
			return u.Status.GetState() == mesos.TASK_RUNNING && u.Status.Healthy != nil && u.Status.GetHealthy()
		})
		cancel()
		if err != nil {
			return nil, run.r.failure(fmt.Errorf("no healthy report: %w", err))
		}
		resp, err := http.Get(run.sidecar.StateURL())
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		run.res.StateDocBytes = int(n)
	}
	time.Sleep(2 * time.Second)

	type reading struct {
		ticks, schedNs int64
		polls          int
	}
	read := func(run *idleRun) (reading, error) {
		ticks, sched, err := cpuReading(run.r.pid)
		if err != nil {
			return reading{}, err
		}
		return reading{ticks: ticks, schedNs: sched, polls: len(run.sidecar.Polls())}, nil
	}
	starts := make([]reading, len(runs))
	for i, run := range runs {
		var err error
		if starts[i], err = read(run); err != nil {
			return nil, err
		}
	}
	windowStart := time.Now()
	var profiles sync.WaitGroup
	profileErrs := make([]error, len(runs))
	if profileDir != "" {
		for i, run := range runs {
			profiles.Add(1)
			go func() {
				defer profiles.Done()
				name := fmt.Sprintf("cpu-%s-%d.pprof", run.res.Interval, run.res.Services)
				profileErrs[i] = run.r.fetchProfile(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(window.Seconds())), filepath.Join(profileDir, name))
			}()
		}
	}
	rssMax := make([]int64, len(runs))
	for time.Since(windowStart) < window {
		time.Sleep(time.Second)
		for i, run := range runs {
			v, err := run.r.rss()
			if err != nil {
				return nil, err
			}
			rssMax[i] = max(rssMax[i], v)
		}
	}
	elapsed := time.Since(windowStart)
	var results []*idleResult
	for i, run := range runs {
		end, err := read(run)
		if err != nil {
			return nil, err
		}
		res := run.res
		res.Window = elapsed
		res.Polls = end.polls - starts[i].polls
		res.CPUTicks = end.ticks - starts[i].ticks
		res.CPUSchedNs = end.schedNs - starts[i].schedNs
		// utime+stime comes in whole ticks (10 ms), too coarse for an idle
		// process over a minute; the threads' schedstat run time is exact
		// but misses threads that exited. The larger of the two is used.
		cpuMs := max(float64(res.CPUTicks)*1000/float64(h.clkTck), float64(res.CPUSchedNs)/1e6)
		res.CPUMsPerMin = cpuMs * float64(time.Minute) / float64(elapsed)
		res.CorePercent = cpuMs / ms(elapsed) * 100
		res.RSSMaxMB = float64(rssMax[i]) * 1024 / 1e6
		endRSS, err := run.r.rss()
		if err != nil {
			return nil, err
		}
		res.RSSEndMB = float64(endRSS) * 1024 / 1e6
		hwm, err := statusKB(run.r.pid, "VmHWM")
		if err != nil {
			return nil, err
		}
		res.HWMMB = float64(hwm) * 1024 / 1e6
		if res.Smaps, err = smapsRollup(run.r.pid); err != nil {
			return nil, err
		}
		if res.Threads, err = threadCount(run.r.pid); err != nil {
			return nil, err
		}
		wantPolls := int(elapsed / res.Interval)
		if res.Polls < wantPolls-1 || res.Polls > wantPolls+1 {
			return nil, run.r.failure(fmt.Errorf("%d Sidecar polls in %s at a %s interval: the executor is not polling as configured", res.Polls, elapsed.Round(time.Millisecond), res.Interval))
		}
		results = append(results, res)
	}
	if profileDir != "" {
		profiles.Wait()
		if err := errors.Join(profileErrs...); err != nil {
			return nil, err
		}
		for _, run := range runs {
			base := fmt.Sprintf("heap-%s-%d", run.res.Interval, run.res.Services)
			if err := run.r.fetchProfile("/debug/pprof/heap", filepath.Join(profileDir, base+".pprof")); err != nil {
				return nil, err
			}
			if err := run.r.fetchProfile("/debug/pprof/heap?debug=1", filepath.Join(profileDir, base+".txt")); err != nil {
				return nil, err
			}
		}
	}
	// End the tasks cleanly.
	for _, run := range runs {
		if err := run.r.agent.Kill(run.taskID, nil); err != nil {
			return nil, run.r.failure(err)
		}
	}
	for _, run := range runs {
		killed, err := run.r.waitTerminal(run.taskID, mesos.TASK_KILLED, 60*time.Second)
		if err != nil {
			return nil, err
		}
		if _, err := run.r.ackToExit(killed); err != nil {
			return nil, err
		}
		if err := run.r.finish(run.taskID); err != nil {
			return nil, err
		}
	}
	h.progress("idle: %d executors over %s", len(runs), window)
	return results, nil
}

// densityResult is K executors at once.
type densityResult struct {
	K            int
	AllRunningIn time.Duration // from the first process start to the last TASK_RUNNING
	RSSTotalMB   float64
	RSSMeanMB    float64
	RSSMaxMB     float64
	DieToFinal   []float64 // die event → TASK_FINISHED, all K exiting at once (ms)
	AckExit      []float64
}

// launchIdle spawns an executor for taskID, without waiting for it, and
// launches an idle task on it: queued until the executor subscribes, then
// sent at once. Once the executor is spawned, its run comes back, for the
// caller to abort, even when the launch fails.
func (h *harness) launchIdle(taskID, sidecarURL string) (*execRun, error) {
	r, err := h.spawnExecutor(taskID, mesostest.Config{}, baseSettings(sidecarURL))
	if err != nil {
		return nil, err
	}
	if err := r.agent.Launch(h.benchTask(r.agent, taskID, idleCommand, nil)); err != nil {
		return r, r.failure(err)
	}
	return r, nil
}

// waitAllRunning waits, for all runs at once, until the task of each (taskIDs
// in the same order) is TASK_RUNNING, and gives when each of those updates
// came.
func waitAllRunning(runs []*execRun, taskIDs []string) ([]time.Time, error) {
	received := make([]time.Time, len(runs))
	err := eachRun(runs, func(i int, r *execRun) error {
		u, err := r.waitState(taskIDs[i], mesos.TASK_RUNNING, 5*time.Minute)
		received[i] = u.Received
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("not all %d executors reached TASK_RUNNING: %w", len(runs), err)
	}
	return received, nil
}

// eachRun calls f for every run (and its index) at once, and joins what
// they return.
func eachRun(runs []*execRun, f func(i int, r *execRun) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, r)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runDensity starts k executors with one task each at once, waits until
// all run, reads their memory, then makes every container exit at once and
// checks that every executor reports it and exits 0.
func (h *harness) runDensity(k int, sidecarURL string, proxy *dockerProxy, bd *breakdowns) (*densityResult, error) {
	runs := make([]*execRun, 0, k)
	defer func() {
		for _, r := range runs {
			r.abort()
		}
	}()
	taskIDs := make([]string, k)
	start := time.Now()
	for i := 0; i < k; i++ {
		taskIDs[i] = fmt.Sprintf("%s-density-%d", h.prefix(), i)
		r, err := h.launchIdle(taskIDs[i], sidecarURL)
		if r != nil {
			runs = append(runs, r)
		}
		if err != nil {
			return nil, err
		}
	}
	lastRunning, err := waitAllRunning(runs, taskIDs)
	if err != nil {
		return nil, err
	}
	res := &densityResult{K: k}
	for _, t := range lastRunning {
		res.AllRunningIn = max(res.AllRunningIn, t.Sub(start))
	}
	h.progress("density: %d tasks running after %s", k, res.AllRunningIn.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	var total int64
	for _, r := range runs {
		v, err := r.rss()
		if err != nil {
			return nil, err
		}
		total += v
		res.RSSMaxMB = max(res.RSSMaxMB, float64(v)*1024/1e6)
	}
	res.RSSTotalMB = float64(total) * 1024 / 1e6
	res.RSSMeanMB = res.RSSTotalMB / float64(k)
	ids := make([]string, k)
	for i := range runs {
		c, err := h.docker.client.InspectContainerWithOptions(docker.InspectContainerOptions{ID: runs[i].containerName(taskIDs[i])})
		if err != nil {
			return nil, fmt.Errorf("inspect container of %s: %w", taskIDs[i], err)
		}
		ids[i] = c.ID
	}

	// Every container exits by itself within about a second.
	for _, r := range runs {
		if err := os.WriteFile(filepath.Join(r.sandbox, "finish"), nil, 0o644); err != nil {
			return nil, err
		}
	}
	dieToFinal := make([]float64, k)
	ackExit := make([]float64, k)
	err = eachRun(runs, func(i int, r *execRun) error {
		u, err := r.waitTerminal(taskIDs[i], mesos.TASK_FINISHED, 2*time.Minute)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dieAt, err := h.dies.wait(ctx, r.containerName(taskIDs[i]))
		if err != nil {
			return err
		}
		dieToFinal[i] = ms(u.Received.Sub(dieAt))
		d, err := r.ackToExit(u)
		if err != nil {
			return err
		}
		// After the exit, so that the proxy has recorded every call.
		if bd != nil && proxy != nil {
			bd.add("burst", dieAt, u.Received, proxy, ids[i], r.containerName(taskIDs[i]))
		}
		ackExit[i] = ms(d)
		return r.finish(taskIDs[i])
	})
	if err != nil {
		return nil, fmt.Errorf("not every exit of the %d containers was reported: %w", k, err)
	}
	res.DieToFinal, res.AckExit = dieToFinal, ackExit
	if err := checkSamples("density die→finished", res.DieToFinal, k); err != nil {
		return nil, err
	}
	h.progress("density: all %d exits reported, all executors exited 0", k)
	return res, nil
}

func (h *harness) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
