package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// generatedEnd separates the generated part of BENCHMARKS.md from the
// hand-written analysis below it, which a run keeps as it is.
const generatedEnd = "<!-- END GENERATED: everything below is written by hand and kept by make bench -->"

type machineInfo struct {
	NProc           int
	MemTotal        string
	CPU             string
	Kernel          string
	Docker          string
	DockerCLI       string
	Go              string
	LoadStart       string
	LoadEnd         string
	OtherContainers int
}

func readMachine(d *dockerEnv) machineInfo {
	m := machineInfo{NProc: runtime.NumCPU(), CPU: cpuModel(), LoadStart: loadAverage(), OtherContainers: d.otherContainersRunning()}
	if kb, err := memTotalKB(); err == nil {
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			m.NProc = n
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	m.Docker = d.version
	if info, err := d.client.Info(); err == nil {
		m.Docker = fmt.Sprintf("%s (storage %s, cgroup driver %s)", info.ServerVersion, info.Driver, info.CgroupDriver)
	}
	m.DockerCLI = cliVersion()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	return m
}

type report struct {
	opts       options
	machine    machineInfo
	buildFlags string
	started    time.Time
	finished   time.Time
	launchKill *launchKillResult
	exits      *exitResult
	// The -compare binary's figures, from the same repetitions.
	altLaunchKill *launchKillResult
	altExits      *exitResult
	health        *healthResult
	idle          []*idleResult
	density       *densityResult
	pss           *pssResult
	breakdown     *breakdowns
	// logs holds the log-streaming runs, checks the health-check costs.
	logs    []*logResult
	checks  []checkCost
	goBench string
}

// row is one line of the figures table.
type row struct {
	metric, what, median, p99, target, met string
}

func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// verdict is the figures table's Met column; plainVerdict the same word
// for running text.
func verdict(ok bool) string {
	return "**" + plainVerdict(ok) + "**"
}

func plainVerdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// sidecarPollNs finds BenchmarkSidecarPoll/services=10000 in the Go
// benchmark output.
var sidecarPollLine = regexp.MustCompile(`(?m)^BenchmarkSidecarPoll/services=10000(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

func (r *report) rows() []row {
	var rows []row
	if lk := r.launchKill; lk != nil {
		l, api, cli := summarize(lk.Launch), summarize(lk.BaseAPI), summarize(lk.BaseCLI)
		rows = append(rows,
			row{"LAUNCH → TASK_RUNNING", "agent wrote LAUNCH → agent received TASK_RUNNING (image present, host network)", fmtMs(l.Median), fmtMs(l.P99), "", ""},
			row{"baseline: create+start", "Docker API create + start of an identical container (same Config/HostConfig)", fmtMs(api.Median), fmtMs(api.P99), "", ""},
		)
		paired := pairedDifferences(lk.Launch, lk.BaseAPI)
		rows = append(rows, row{"  paired overhead over create+start", "per repetition, LAUNCH → TASK_RUNNING minus the create+start run next to it (robust to load drifting during the run)", fmtMs(median(paired)), fmtMs(percentile(paired, 99)), "", ""})
		ratioMed, ratioP99 := l.Median/api.Median, l.P99/api.P99
		rows = append(rows,
			row{"ratio to create+start", "median ÷ median, p99 ÷ p99", fmt.Sprintf("%.2f×", ratioMed), fmt.Sprintf("%.2f×", ratioP99), "median ≤ 1.05×", verdict(ratioMed <= 1.05)},
		)
		if len(lk.BaseAPIInspect) > 0 {
			api2 := summarize(lk.BaseAPIInspect)
			rows = append(rows,
				row{"baseline: create+start+inspect", "the same, then one inspect of the started container: all the Docker work before TASK_RUNNING, which carries the inspect", fmtMs(api2.Median), fmtMs(api2.P99), "", ""},
				row{"ratio to create+start+inspect", "median ÷ median, p99 ÷ p99", fmt.Sprintf("%.2f×", l.Median/api2.Median), fmt.Sprintf("%.2f×", l.P99/api2.P99), "", ""},
			)
		}
		rows = append(rows,
			row{"baseline: `docker run -d` (CLI)", "the docker CLI process, start to exit (includes its own start-up and version negotiation)", fmtMs(cli.Median), fmtMs(cli.P99), "", ""},
			row{"ratio to `docker run -d`", "median ÷ median, p99 ÷ p99", fmt.Sprintf("%.2f×", l.Median/cli.Median), fmt.Sprintf("%.2f×", l.P99/cli.P99), "(≤ 1.0×)", verdict(l.Median <= cli.Median && l.P99 <= cli.P99)},
		)
	}
	if ex := r.exits; ex != nil {
		f, fl := summarize(ex.DieToFinished), summarize(ex.DieToFailed)
		rows = append(rows,
			row{"exit 0 → TASK_FINISHED", "Docker's die event (its timestamp) → agent received the terminal update", fmtMs(f.Median), fmtMs(f.P99), "p99 ≤ 50 ms", verdict(f.P99 <= 50)},
			row{"exit 3 → TASK_FAILED", "same; a failure also copies the container's logs", fmtMs(fl.Median), fmtMs(fl.P99), "p99 ≤ 50 ms", verdict(fl.P99 <= 50)},
		)
	}
	if lk := r.launchKill; lk != nil {
		k, s := summarize(lk.Kill), summarize(lk.Stop)
		over := pairedDifferences(lk.Kill, lk.Stop)
		overMed, overP99 := median(over), percentile(over, 99)
		rows = append(rows,
			row{"KILL → TASK_KILLED", "agent wrote KILL → agent received TASK_KILLED (container exits at once on SIGTERM; draining off)", fmtMs(k.Median), fmtMs(k.P99), "", ""},
			row{"baseline: stop", "Docker API stop (t=5) of an identical container", fmtMs(s.Median), fmtMs(s.P99), "", ""},
			row{"KILL overhead over stop", "per repetition, KILL → TASK_KILLED minus the stop run next to it", fmtMs(overMed), fmtMs(overP99), "≤ 50 ms", verdict(overMed <= 50 && overP99 <= 50)},
			row{"  unpaired", "median − median, p99 − p99", fmtMs(k.Median - s.Median), fmtMs(k.P99 - s.P99), "", ""},
			row{"  of which KILL → die", "agent wrote KILL → Docker's die event", fmtMs(median(lk.KillToDie)), fmtMs(percentile(lk.KillToDie, 99)), "", ""},
			row{"  of which die → TASK_KILLED", "die event → agent received TASK_KILLED", fmtMs(median(lk.DieToKilled)), fmtMs(percentile(lk.DieToKilled, 99)), "", ""},
		)
	}
	var ackExit []float64
	if r.launchKill != nil {
		ackExit = append(ackExit, r.launchKill.AckExit...)
	}
	if r.exits != nil {
		ackExit = append(ackExit, r.exits.AckExit...)
	}
	if len(ackExit) > 0 {
		a := summarize(ackExit)
		rows = append(rows, row{"terminal ack → process exit", fmt.Sprintf("agent wrote the terminal ACKNOWLEDGED → the bench reaped the process (%d runs: kill and exit paths)", a.N), fmtMs(a.Median), fmtMs(a.P99), "≤ 100 ms", verdict(a.P99 <= 100)})
	}
	if hr := r.health; hr != nil {
		c, p := summarize(hr.ChangeToSeen), summarize(hr.PollToSeen)
		iv := ms(hr.Interval)
		rows = append(rows,
			row{"Sidecar verdict change → health update", fmt.Sprintf("status changed in the emulator at a random phase → agent received TASK_RUNNING healthy=…, poll interval %s", hr.Interval), fmt.Sprintf("%s (%.2f× interval)", fmtMs(c.Median), c.Median/iv), fmt.Sprintf("%s (%.2f× interval)", fmtMs(c.P99), c.P99/iv), "(none; ≤ 1× interval expected)", verdict(c.P99 <= iv*1.1)},
			row{"  of which poll → health update", "the first poll after the change reached the emulator → update received", fmtMs(p.Median), fmtMs(p.P99), "", ""},
		)
	}
	if r.launchKill != nil {
		rs := summarize(r.launchKill.RSSRunning)
		rows = append(rows, row{"RSS, task running", fmt.Sprintf("VmRSS %s after TASK_RUNNING (Sidecar not yet polled), %d executors", settle, rs.N), fmt.Sprintf("%.1f MB", rs.Median), fmt.Sprintf("%.1f MB", rs.P99), "≤ 15 MB", verdict(rs.P99 <= 15)})
	}
	for _, idle := range r.idle {
		label := fmt.Sprintf("poll %s, %d services (%.1f MB state.json)", idle.Interval, idle.Services, float64(idle.StateDocBytes)/1e6)
		rows = append(rows,
			row{"idle CPU, " + label, fmt.Sprintf("CPU time over a %s window holding %d polls (the larger of utime+stime and the threads' schedstat), extrapolated to a minute; %% of one core", idle.Window.Round(time.Second), idle.Polls),
				fmt.Sprintf("%.0f ms/min = %.3f %%", idle.CPUMsPerMin, idle.CorePercent), "(one window)", r.cpuTarget(idle.Interval), r.cpuVerdict(idle)},
			row{"RSS, " + label, "VmRSS sampled every second over the window: max (median column); VmHWM, the peak since start (p99 column)", fmt.Sprintf("%.1f MB", idle.RSSMaxMB), fmt.Sprintf("HWM %.1f MB", idle.HWMMB), "≤ 15 MB", verdict(idle.HWMMB <= 15)},
		)
	}
	if dr := r.density; dr != nil {
		d := summarize(dr.DieToFinal)
		rows = append(rows,
			row{fmt.Sprintf("density: %d executors at once", dr.K), fmt.Sprintf("all %d reached TASK_RUNNING (last after %s from the first start), all exits reported, all exited 0", dr.K, dr.AllRunningIn.Round(100*time.Millisecond)), "all ok", "", "100 work", r.densityVerdict(dr)},
			row{"  total executor RSS", fmt.Sprintf("sum of VmRSS of the %d executors with their tasks running (mean in median column, max in p99 column)", dr.K), fmt.Sprintf("%.0f MB total, %.1f MB mean", dr.RSSTotalMB, dr.RSSMeanMB), fmt.Sprintf("%.1f MB max", dr.RSSMaxMB), "≤ 15 MB each", verdict(dr.RSSMaxMB <= 15)},
			row{"  exit → TASK_FINISHED, all at once", fmt.Sprintf("die event → update received, %d containers exiting within ~1 s", dr.K), fmtMs(d.Median), fmtMs(d.P99), "(p99 ≤ 50 ms)", verdict(d.P99 <= 50)},
		)
	}
	if p := r.pss; p != nil {
		pssTotal, pssMean, pssMax := pssTotals(p.Executors, func(m memKB) int64 { return m.Pss })
		_, anonMean, _ := pssTotals(p.Executors, func(m memKB) int64 { return m.PssAnon })
		_, fileMean, _ := pssTotals(p.Executors, func(m memKB) int64 { return m.PssFile })
		rssTotal, rssMean, rssMax := pssTotals(p.Executors, func(m memKB) int64 { return m.Rss })
		shTotal, shMean, _ := pssTotals(p.Wrappers, func(m memKB) int64 { return m.Pss })
		budget := 4.5 * float64(p.K)
		rows = append(rows,
			row{fmt.Sprintf("PSS, %d idle executors via executor.sh", p.K), fmt.Sprintf("sum of Pss (smaps_rollup) of the executor processes with their tasks running, all started through a test copy of executor.sh from one installed binary and so running its one shared copy (%.1f MB); mean in median column, max in p99 column", float64(p.BinaryBytes)/1e6),
				fmt.Sprintf("%.0f MB total, %.2f MB mean", pssTotal, pssMean), fmt.Sprintf("%.2f MB max", pssMax), fmt.Sprintf("≤ %.0f MB total (≤ 4.5 MB each)", budget), verdict(pssTotal <= budget)},
			row{"  of which anonymous / file-backed", "mean Pss_Anon / Pss_File per executor: the heap and stacks are the executor's own; the binary's pages are shared by all", fmt.Sprintf("%.2f / %.2f MB", anonMean, fileMean), "", "", ""},
			row{"  RSS of the same executors", "sum of Rss (smaps_rollup) of the same processes at the same moment: shared pages counted in full by each", fmt.Sprintf("%.0f MB total, %.1f MB mean", rssTotal, rssMean), fmt.Sprintf("%.1f MB max", rssMax), "≤ 15 MB each", verdict(rssMax <= 15)},
			row{"  executor.sh shells (not in the totals)", fmt.Sprintf("sum of Pss of the %d wrapper shells waiting on the executors", len(p.Wrappers)), fmt.Sprintf("%.1f MB total, %.2f MB mean", shTotal, shMean), "", "", ""},
		)
	}
	if len(r.logs) > 0 {
		var cpu, rss, rate []float64
		for _, res := range r.logs {
			cpu = append(cpu, res.CorePercent)
			rss = append(rss, max(res.RSSMaxMB, res.HWMMB))
			rate = append(rate, res.rate())
		}
		first := r.logs[0]
		runs := fmt.Sprintf("%d runs of %d s, %d-byte lines", len(r.logs), first.Seconds, first.LineBytes)
		rows = append(rows,
			row{"log streaming: executor CPU", fmt.Sprintf("a container writes 10 MB/s; the executor's utime+stime from 2 s after its first line reached the sandbox to 3 s before the last (%s; worst run in p99 column)", runs),
				fmt.Sprintf("%.1f %%", median(cpu)), fmt.Sprintf("%.1f %%", slices.Max(cpu)), "≤ 10 % of a core", verdict(median(cpu) <= 10)},
			row{"log streaming: executor RSS", "the larger of the largest VmRSS sampled every 200 ms and VmHWM, same runs", fmt.Sprintf("%.1f MB", median(rss)), fmt.Sprintf("%.1f MB", slices.Max(rss)), "≤ 20 MB", verdict(slices.Max(rss) <= 20)},
			row{"log streaming: rate into the sandbox", "bytes written ÷ (first line in the sandbox → end marker in the sandbox), same runs; slowest in p99 column", fmt.Sprintf("%.1f MB/s", median(rate)), fmt.Sprintf("%.1f MB/s", slices.Min(rate)), "", ""},
		)
	}
	if len(r.checks) > 0 {
		http := httpCheckPercent(r.checks)
		rows = append(rows, row{"1 s HTTP health check", fmt.Sprintf("the executor's CPU over %s with a Mesos HTTP health check every second (Sidecar off); the table below has TCP, COMMAND and the baseline", r.checks[0].window), fmt.Sprintf("%.3f %% of a core", http), "", fmt.Sprintf("≤ %.1f %%", checkCostTarget), verdict(http <= checkCostTarget)})
	}
	if m := sidecarPollLine.FindStringSubmatch(r.goBench); m != nil {
		ns, _ := strconv.ParseFloat(m[1], 64)
		rows = append(rows, row{"10,000-service state.json poll", "BenchmarkSidecarPoll/services=10000: GET over loopback + lookup, mean per poll", fmtMs(ns / 1e6), "(mean)", "≤ 20 ms", verdict(ns/1e6 <= 20)})
	}
	return rows
}

func (r *report) cpuTarget(interval time.Duration) string {
	if interval == 30*time.Second {
		return "≤ 0.2 %"
	}
	return "(none)"
}

func (r *report) cpuVerdict(idle *idleResult) string {
	if idle.Interval != 30*time.Second {
		return ""
	}
	return verdict(idle.CorePercent <= 0.2)
}

func (r *report) densityVerdict(dr *densityResult) string {
	if dr.K >= 100 {
		return verdict(true)
	}
	return fmt.Sprintf("not tested (K=%d; run with -k 100)", dr.K)
}

func (r *report) markdown() (string, error) {
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "<!-- Written by `make bench` (bench/main.go). Everything above the END GENERATED line is rewritten by each run. -->\n\n")
	fmt.Fprintf(&b, "Run of %s UTC, %s long, on this machine: `nproc` %d (%s), %s memory, Linux %s, Docker engine %s, docker CLI %s, %s. ",
		r.started.UTC().Format("2006-01-02 15:04"), r.finished.Sub(r.started).Round(time.Second), m.NProc, m.CPU, m.MemTotal, m.Kernel, m.Docker, m.DockerCLI, m.Go)
	fmt.Fprintf(&b, "Load average %s at the start, %s at the end; %d other containers were running at the start. ", m.LoadStart, m.LoadEnd, m.OtherContainers)
	fmt.Fprintf(&b, "Executor built with %s. N=%d repetitions per latency figure (plus one warm-up, not counted); ", r.buildFlags, r.opts.n)
	fmt.Fprintf(&b, "p99 is nearest-rank, so with fewer than 100 samples it is the largest sample. Milliseconds are wall-clock time on this machine; ratios compare with Docker doing the same work in the same run.\n\n")

	b.WriteString("## Figures\n\n")
	b.WriteString("| Metric | What exactly is measured | Median | p99 | Target | Met |\n|---|---|---|---|---|---|\n")
	for _, rw := range r.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", rw.metric, rw.what, rw.median, rw.p99, rw.target, rw.met)
	}
	b.WriteString("\nTimes of the agent (mesostest) are taken in the bench process: an event's time is when it was written and flushed to the executor's stream (so, on a loaded machine, a little after the executor may have read it: a terminal ack → exit can then come out slightly negative), an update's when its HTTP request was read. The die time is the daemon's own timestamp of the event. All executors run with `EXECUTOR_SIDECAR_DRAINING_DURATION=0s` (the default 10 s drain would dominate every kill) and an emulated Sidecar; tasks run `sidecar-executor/busybox:1.35` on the host network.\n\n")

	if len(r.logs) > 0 {
		b.WriteString("### Live container output\n\n")
		b.WriteString("The executor streams the output of a container running `bench/logwriter` (numbered lines at a steady 10 MB/s, written every millisecond, then an end marker) into the sandbox's `stdout` (default cap and rotation; default settings, so read from Docker's json-file log on this host); Sidecar off. One table per run.\n\n")
		for _, res := range r.logs {
			b.WriteString(res.markdown())
			b.WriteString("\n")
		}
	}
	if len(r.checks) > 0 {
		b.WriteString("### Mesos health checks\n\n")
		b.WriteString("One executor at a time, its task a busybox httpd on the host network, with no health check (the baseline), then an HTTP, a TCP and a COMMAND health check every second; Sidecar off. Executor CPU over the window, and the Docker daemon's and containerd's (a COMMAND check is an exec).\n\n")
		b.WriteString(checksMarkdown(r.checks))
		b.WriteString("\n")
	}
	if len(r.idle) > 0 {
		b.WriteString("### Idle executors\n\n")
		fmt.Fprintf(&b, "%d executors side by side, each with a running task and its own emulated Sidecar whose state holds the given number of services (20 per host); Sidecar backoff 2 s so that polling is steady before the window opens. Memory is in MB of 10^6 bytes, as the target.\n\n", len(r.idle))
		b.WriteString("| Poll interval | Services | Window | Polls | utime+stime | schedstat run time (live threads) | CPU per minute | Threads | Rss / Anonymous / file-backed (smaps_rollup) |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, idle := range r.idle {
			file := idle.Smaps["Rss"] - idle.Smaps["Anonymous"]
			fmt.Fprintf(&b, "| %s | %d | %s | %d | %d ticks (%d ms) | %.1f ms | %.0f ms (%.3f %% of a core) | %d | %.1f / %.1f / %.1f MB |\n",
				idle.Interval, idle.Services, idle.Window.Round(time.Second), idle.Polls, idle.CPUTicks, idle.CPUTicks*1000/r.clk(), float64(idle.CPUSchedNs)/1e6,
				idle.CPUMsPerMin, idle.CorePercent, idle.Threads,
				float64(idle.Smaps["Rss"])*1024/1e6, float64(idle.Smaps["Anonymous"])*1024/1e6, float64(file)*1024/1e6)
		}
		b.WriteString("\n")
	}
	if bd := r.breakdown; bd != nil {
		b.WriteString("### Where the time goes (Docker calls traced)\n\n")
		fmt.Fprintf(&b, "%d more runs of the launch/kill and exit paths, and one more density run, with the executor's `DOCKER_HOST` pointed at a tracing proxy in the bench; the proxy adds a hop to every call, so these totals are a little higher than the figures above. Offsets are medians from the start of the path; a call's duration is from the proxy receiving it to the proxy finishing the response. The slowest columns take each step's maximum over the runs, to show where tails come from.\n\n", r.opts.breakdownN)
		titles := map[string]string{"launch": "LAUNCH → TASK_RUNNING", "kill": "KILL → TASK_KILLED", "exit0": "die (exit 0) → TASK_FINISHED", "exit3": "die (exit 3) → TASK_FAILED", "burst": "die → TASK_FINISHED, all density containers exiting at once"}
		for _, path := range bd.order {
			rows, total := bd.summarizePath(path)
			fmt.Fprintf(&b, "**%s** (median total %s, slowest %s)\n\n| Step | Runs | Starts at (median) | Takes (median) | Starts at (slowest) | Takes (slowest) |\n|---|---|---|---|---|---|\n", titles[path], fmtMs(total.Median), fmtMs(total.Max))
			for _, rw := range rows {
				fmt.Fprintf(&b, "| %s | %d | +%s | %s | +%s | %s |\n", rw.Key, rw.Runs, fmtMs(rw.StartMedian), fmtMs(rw.DurMedian), fmtMs(rw.StartMax), fmtMs(rw.DurMax))
			}
			fmt.Fprintf(&b, "| update received by the agent | %d | +%s | | +%s | |\n\n", total.N, fmtMs(total.Median), fmtMs(total.Max))
		}
	}
	if a, bb := r.launchKill, r.altLaunchKill; a != nil && bb != nil && len(bb.Launch) > 0 {
		fmt.Fprintf(&b, "## A/B comparison\n\nA is %s, B is %s; both ran in every repetition, in rotating order.\n\n", r.buildFlags, r.opts.compare)
		b.WriteString("| Metric | A median | B median | A p99 | B p99 | B − A, paired per repetition: median |\n|---|---|---|---|---|---|\n")
		ab := func(name string, x, y []float64) {
			if len(x) == 0 || len(x) != len(y) {
				return
			}
			d := pairedDifferences(y, x)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", name, fmtMs(median(x)), fmtMs(median(y)), fmtMs(percentile(x, 99)), fmtMs(percentile(y, 99)), fmtMs(median(d)))
		}
		ab("LAUNCH → TASK_RUNNING", a.Launch, bb.Launch)
		ab("  minus create+start of the same repetition", pairedDifferences(a.Launch, a.BaseAPI), pairedDifferences(bb.Launch, a.BaseAPI))
		ab("KILL → TASK_KILLED", a.Kill, bb.Kill)
		ab("  die → TASK_KILLED", a.DieToKilled, bb.DieToKilled)
		if ea, eb := r.exits, r.altExits; ea != nil && eb != nil {
			ab("exit 0 → TASK_FINISHED", ea.DieToFinished, eb.DieToFinished)
			ab("exit 3 → TASK_FAILED", ea.DieToFailed, eb.DieToFailed)
			ab("terminal ack → exit (exit path)", ea.AckExit, eb.AckExit)
		}
		ab("terminal ack → exit (kill path)", a.AckExit, bb.AckExit)
		b.WriteString("\n")
	}
	if r.goBench != "" {
		b.WriteString("## Go benchmarks\n\n`go test -run '^$' -bench . -benchmem ./...` on the same machine, same run:\n\n```\n")
		for _, line := range strings.Split(strings.TrimSpace(r.goBench), "\n") {
			if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "goos") || strings.HasPrefix(line, "goarch") || strings.HasPrefix(line, "cpu:") || strings.HasPrefix(line, "pkg:") {
				b.WriteString(line + "\n")
			}
		}
		b.WriteString("```\n\n")
	}
	b.WriteString("## Rerunning\n\n")
	b.WriteString("`make bench` runs the Go benchmarks, then `go run ./bench -gobench bin/gobench.txt -samples bin/bench-samples.json` (every raw sample lands in that JSON file), and rewrites the part of this file above the line below. ")
	b.WriteString("Knobs: `make bench BENCH_FLAGS='-n 50 -k 100 -idle-window 120s'`; `go run ./bench -h` lists them (`-only launch,exit` prints a partial report without touching this file; `-keep` keeps the sandboxes and executor logs). ")
	b.WriteString("Compare two runs of the Go benchmarks with benchstat. The figures are only comparable on the same machine with nothing else loading it.\n\n")
	b.WriteString(generatedEnd + "\n")
	return b.String(), nil
}

func (r *report) clk() int64 {
	if v, err := clockTicks(); err == nil {
		return v
	}
	return 100
}

// writeReport writes text over the generated part of path and keeps the
// hand-written part after generatedEnd.
func writeReport(path, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if _, kept, ok := strings.Cut(string(old), generatedEnd+"\n"); ok {
		text += kept
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeSamples saves every raw sample, for looking into tails or comparing
// runs.
func (r *report) writeSamples(path string) error {
	data, err := json.MarshalIndent(map[string]any{
		"started":         r.started.UTC(),
		"machine":         r.machine,
		"launch_kill":     r.launchKill,
		"exits":           r.exits,
		"health":          r.health,
		"idle":            r.idle,
		"density":         r.density,
		"pss":             r.pss,
		"alt_launch_kill": r.altLaunchKill,
		"alt_exits":       r.altExits,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
