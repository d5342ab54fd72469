package main

// The cost of Mesos health checks (part of the full run, or -only checks):
// one executor at a time, its task a busybox httpd on the host network,
// with no health check (the baseline), then an HTTP, a TCP and a COMMAND
// health check every second. For each, the executor's CPU time over the
// window (and, for context, the Docker daemon's and containerd's: a
// COMMAND check is an exec, which they do most of the work of). Sidecar is
// left out (SidecarDiscover=false), so the executor does nothing else. The
// table goes into the report, the HTTP check's cost into its figures.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// checkCostTarget is the target for a 1 s HTTP check, % of one core.
const checkCostTarget = 0.5

type checkCost struct {
	name      string
	execMs    float64 // the executor's CPU, ms per minute
	daemonMs  float64 // dockerd + containerd, ms per minute
	window    time.Duration
	unhealthy int // healthy=false updates during the window (must be 0)
}

// runChecks measures each kind of health check in turn over window.
func (h *harness) runChecks(window time.Duration) ([]checkCost, error) {
	daemons := daemonPIDs()
	kinds := []string{"none", "HTTP", "TCP", "COMMAND"}
	var costs []checkCost
	for _, kind := range kinds {
		cost, err := h.checkCostOf(kind, window, daemons)
		if err != nil {
			return nil, fmt.Errorf("checks (%s): %w", kind, err)
		}
		costs = append(costs, cost)
		h.progress("checks: %s: %.0f ms/min", kind, cost.execMs)
	}
	return costs, nil
}

// httpCheckPercent is the executor's CPU, % of a core, with a 1 s HTTP
// check (costs as runChecks returns them).
func httpCheckPercent(costs []checkCost) float64 {
	return costs[1].execMs / 600
}

// checksMarkdown is the table of runChecks' costs and the target's verdict.
func checksMarkdown(costs []checkCost) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| Health check (1 s interval) | Executor CPU per minute | %% of a core | over the baseline | dockerd+containerd CPU per minute |\n|---|---|---|---|---|\n")
	for _, c := range costs {
		over := "—"
		if c.name != "none" {
			over = fmt.Sprintf("%+.0f ms/min", c.execMs-costs[0].execMs)
		}
		fmt.Fprintf(&b, "| %s | %.0f ms | %.3f %% | %s | %.0f ms |\n", c.name, c.execMs, c.execMs/600, over, c.daemonMs)
	}
	http := httpCheckPercent(costs)
	fmt.Fprintf(&b, "\nTarget: a 1 s HTTP check ≤ %.1f %% of a core: %.3f %% — %s. Window %s each, run one after the other.\n",
		checkCostTarget, http, plainVerdict(http <= checkCostTarget), costs[0].window)
	return b.String()
}

func (h *harness) checkCostOf(kind string, window time.Duration, daemons []int) (checkCost, error) {
	cost := checkCost{name: kind, window: window}
	port, err := freePort()
	if err != nil {
		return cost, err
	}
	taskID := fmt.Sprintf("%s-checks-%s", h.prefix(), strings.ToLower(kind))
	r, err := h.startExecutor(taskID, mesostest.Config{}, []string{"EXECUTOR_SIDECAR_URL=http://127.0.0.1:1/state.json"})
	if err != nil {
		return cost, err
	}
	defer r.abort()
	command := fmt.Sprintf(`sh -c 'mkdir -p /www && echo ok > /www/index.html; trap "exit 0" TERM; httpd -f -p %d -h /www & wait'`, port)
	task := h.benchTask(r.agent, taskID, command, nil)
	// Without the bench's label: a bench started meanwhile (another
	// checkout on this engine) removes every container that has it. The
	// container is removed here instead, whatever happens.
	task.Container.Docker.Parameters = nil
	defer func() {
		_ = h.docker.client.RemoveContainer(docker.RemoveContainerOptions{ID: r.containerName(taskID), Force: true})
	}()
	value := "false"
	task.Labels.Labels = append(task.Labels.Labels, mesos.Label{Key: "SidecarDiscover", Value: &value})
	seconds := func(v float64) *float64 { return &v }
	hc := &mesos.HealthCheck{DelaySeconds: seconds(0), IntervalSeconds: seconds(1), GracePeriodSeconds: seconds(30), TimeoutSeconds: seconds(5)}
	switch kind {
	case "HTTP":
		path := "/index.html"
		hc.Type, hc.HTTP = mesos.HealthCheck_HTTP, &mesos.HealthCheck_HTTPCheckInfo{Port: uint32(port), Path: &path}
	case "TCP":
		hc.Type, hc.TCP = mesos.HealthCheck_TCP, &mesos.HealthCheck_TCPCheckInfo{Port: uint32(port)}
	case "COMMAND":
		cmd := "test -f /www/index.html"
		hc.Type, hc.Command = mesos.HealthCheck_COMMAND, &mesos.CommandInfo{Value: &cmd}
	default:
		hc = nil
	}
	task.HealthCheck = hc
	if err := r.agent.Launch(task); err != nil {
		return cost, r.failure(err)
	}
	if _, err := r.waitState(taskID, mesos.TASK_RUNNING, 60*time.Second); err != nil {
		return cost, err
	}
	if hc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := r.agent.WaitForUpdate(ctx, func(u mesostest.Update) bool {
			return u.Status.GetState() == mesos.TASK_RUNNING && u.Status.Healthy != nil && u.Status.GetHealthy()
		})
		cancel()
		if err != nil {
			return cost, r.failure(fmt.Errorf("no healthy report: %w", err))
		}
	}
	time.Sleep(2 * time.Second)
	execStart, err := processCPUNs(r.pid, h.clkTck)
	if err != nil {
		return cost, err
	}
	daemonStart := daemonsCPUNs(daemons, h.clkTck)
	updatesBefore := len(r.agent.Accepted(taskID))
	start := time.Now()
	time.Sleep(window)
	elapsed := time.Since(start)
	execEnd, err := processCPUNs(r.pid, h.clkTck)
	if err != nil {
		return cost, err
	}
	daemonEnd := daemonsCPUNs(daemons, h.clkTck)
	perMinute := func(ns int64) float64 { return float64(ns) / 1e6 * float64(time.Minute) / float64(elapsed) }
	cost.execMs = perMinute(execEnd - execStart)
	cost.daemonMs = perMinute(daemonEnd - daemonStart)
	for _, u := range r.agent.Accepted(taskID)[updatesBefore:] {
		if u.Status.Healthy != nil && !u.Status.GetHealthy() {
			cost.unhealthy++
		}
	}
	if cost.unhealthy > 0 {
		return cost, r.failure(fmt.Errorf("%d healthy=false updates during the window: the check did not pass steadily", cost.unhealthy))
	}
	if err := r.agent.Kill(taskID, nil); err != nil {
		return cost, r.failure(err)
	}
	if _, err := r.waitTerminal(taskID, mesos.TASK_KILLED, 60*time.Second); err != nil {
		return cost, err
	}
	return cost, r.finish(taskID)
}

// processCPUNs is a process's CPU time: the larger of utime+stime and its
// live threads' schedstat run time (see runIdle).
func processCPUNs(pid int, clkTck int64) (int64, error) {
	ticks, sched, err := cpuReading(pid)
	if err != nil {
		return 0, err
	}
	return max(ticks*int64(time.Second)/clkTck, sched), nil
}

// daemonPIDs finds dockerd and containerd on this machine (none when the
// engine runs elsewhere).
func daemonPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "dockerd", "containerd":
			pids = append(pids, pid)
		}
	}
	return pids
}

func daemonsCPUNs(pids []int, clkTck int64) int64 {
	var total int64
	for _, pid := range pids {
		if ticks, err := cpuTicks(pid); err == nil {
			total += ticks * int64(time.Second) / clkTck
		}
	}
	return total
}

// freePort is a port of this machine nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
