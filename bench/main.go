// Command bench is the scenario benchmark of `make bench`: it builds the
// executor, drives the binary through the emulated Mesos agent
// (internal/mesostest) and Sidecar (internal/sidecartest) against the real
// Docker engine, measures it against Docker doing the same work, and writes
// BENCHMARKS.md.
//
//	go run ./bench [-n 20] [-k 50] [-pss-k 100] [-idle-window 60s] [-gobench file] [-out BENCHMARKS.md]
//
// Every container it creates carries the label sidecar-executor.bench=<run>
// and is removed at the end, on failure and on interrupt. A run that cannot
// measure something properly fails with an explanation instead of writing
// figures.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

type options struct {
	n              int
	k              int
	pssK           int
	idleWindow     time.Duration
	healthInterval time.Duration
	idle           string
	profile        string
	breakdownN     int
	out            string
	goBench        string
	executor       string
	tags           string
	image          string
	only           string
	keep           bool
	env            envList
	compare        string
	samples        string
	logSeconds     int
	logLineBytes   int
	logRuns        int
}

// envList collects repeated -env NAME=value flags.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("-env %q is not NAME=value", v)
	}
	*e = append(*e, v)
	return nil
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 20, "repetitions of each latency measurement")
	flag.IntVar(&o.k, "k", 50, "executors run at once in the density run (1..100)")
	flag.IntVar(&o.pssK, "pss-k", 100, "idle executors started through executor.sh in the PSS run (1..100)")
	flag.DurationVar(&o.idleWindow, "idle-window", 60*time.Second, "window over which idle CPU time is measured (at least 30s)")
	flag.DurationVar(&o.healthInterval, "health-interval", 500*time.Millisecond, "Sidecar poll interval of the verdict-change run")
	flag.StringVar(&o.idle, "idle", "30s:1000,1s:1000,30s:10000,1s:10000", "idle executors run side by side, as poll-interval:services-in-Sidecar's-state")
	flag.StringVar(&o.profile, "profile", "", "directory for CPU and heap profiles of the idle executors, and a CPU profile of the logs scenario (builds with -tags benchpprof; the report then goes to stdout only)")
	flag.IntVar(&o.breakdownN, "breakdown-n", 10, "repetitions traced through a Docker proxy for the time breakdown (0: none)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "report to write (empty: print to stdout only)")
	flag.StringVar(&o.goBench, "gobench", "", "output of the Go benchmarks to include in the report")
	flag.StringVar(&o.executor, "executor", "", "executor binary to measure (default: build it with make build's flags)")
	flag.StringVar(&o.tags, "tags", "", "build tags for the executor build")
	flag.StringVar(&o.image, "image", "sidecar-executor/busybox:1.35", "image of the tasks (must be present)")
	flag.StringVar(&o.only, "only", "", "comma-separated subset of launch,exit,health,idle,density,pss,breakdown,checks,logs (checks: the cost of Mesos health checks; logs: log streaming at 10 MB/s); the report then goes to stdout only")
	flag.IntVar(&o.logSeconds, "log-seconds", 30, "how long the logs scenario's container writes 10 MB/s")
	flag.IntVar(&o.logRuns, "log-runs", 3, "runs of the logs scenario (the report gives their median and worst)")
	flag.IntVar(&o.logLineBytes, "log-line-bytes", 100, "the length of the logs scenario's lines, newline included (16 to 10000)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (sandboxes, executor logs)")
	flag.StringVar(&o.samples, "samples", "", "also write every sample, in ms, as JSON to this file")
	flag.StringVar(&o.compare, "compare", "", "a second executor binary, run in every launch/kill and exit repetition next to the first for an A/B comparison (the report then goes to stdout only)")
	flag.Var(&o.env, "env", "extra NAME=value for every executor's environment, e.g. GOGC=50 (repeatable; the report then goes to stdout only)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: FAILED: %v\n", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	switch {
	case o.n < 1:
		return errors.New("-n must be at least 1")
	case o.k < 1 || o.k > 100:
		return errors.New("-k must be within 1..100")
	case o.pssK < 1 || o.pssK > 100:
		return errors.New("-pss-k must be within 1..100")
	case o.idleWindow < 30*time.Second:
		return errors.New("-idle-window must be at least 30s: a shorter window cannot hold a 30s poll")
	case o.healthInterval <= 0:
		return errors.New("-health-interval must be positive")
	case o.logSeconds < 10:
		return errors.New("-log-seconds must be at least 10")
	case o.logRuns < 1:
		return errors.New("-log-runs must be at least 1")
	case o.logLineBytes < 16 || o.logLineBytes > 10000:
		return errors.New("-log-line-bytes must be from 16 to 10000")
	case o.breakdownN < 0:
		return errors.New("-breakdown-n must not be negative")
	}
	for _, s := range strings.Split(o.only, ",") {
		switch strings.TrimSpace(s) {
		case "", "launch", "exit", "health", "idle", "density", "pss", "breakdown", "checks", "logs":
		default:
			return fmt.Errorf("-only: unknown part %q", s)
		}
	}
	return nil
}

func (o options) wants(part string) bool {
	if o.only == "" {
		return true
	}
	for _, s := range strings.Split(o.only, ",") {
		if strings.TrimSpace(s) == part {
			return true
		}
	}
	return false
}

func run(o options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if runtime.GOOS != "linux" {
		return errors.New("the bench reads /proc and needs Linux")
	}
	d, err := newDockerEnv()
	if err != nil {
		return err
	}
	if _, err := d.client.InspectImage(o.image); err != nil {
		return fmt.Errorf("image %s is not present (make test-image builds it): %w", o.image, err)
	}
	if n, err := d.removeLabelled(""); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(os.Stderr, "bench: removed %d containers left by an earlier run\n", n)
	}
	clk, err := clockTicks()
	if err != nil {
		return err
	}
	workDir, err := os.MkdirTemp("", "sidecar-executor-bench")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "bench: work directory %s is kept\n", workDir)
	} else {
		defer os.RemoveAll(workDir)
	}
	runIDBytes := make([]byte, 4)
	_, _ = rand.Read(runIDBytes)
	runID := hex.EncodeToString(runIDBytes)

	// Whatever happens, remove what this run created.
	cleanup := func() {
		if n, err := d.removeLabelled(runID); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cleanup: %v\n", err)
		} else if n > 0 {
			fmt.Fprintf(os.Stderr, "bench: cleanup removed %d containers\n", n)
		}
	}
	defer cleanup()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "bench: %v: cleaning up\n", sig)
		// Give the executors (same process group) a moment to stop theirs.
		time.Sleep(2 * time.Second)
		cleanup()
		if !o.keep {
			os.RemoveAll(workDir)
		}
		os.Exit(1)
	}()

	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
		if !strings.Contains(o.tags, "benchpprof") {
			o.tags = strings.TrimPrefix(o.tags+",benchpprof", ",")
		}
	}
	binary := o.executor
	buildFlags := "CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' (as make build)"
	if binary == "" {
		binary = filepath.Join(workDir, "sidecar-executor")
		if err := buildExecutor(binary, o.tags); err != nil {
			return err
		}
		if o.tags != "" {
			buildFlags += " -tags " + o.tags
		}
	} else {
		buildFlags = "prebuilt binary " + binary
	}
	machine := readMachine(d)
	fmt.Fprintf(os.Stderr, "bench: run %s on %d CPUs, Docker %s, load %s\n", runID, runtime.NumCPU(), d.version, machine.LoadStart)

	dies, err := d.watchDies(runID)
	if err != nil {
		return err
	}
	defer dies.close()
	h := &harness{binary: binary, image: o.image, runID: runID, workDir: workDir, docker: d, dies: dies, clkTck: clk}
	if o.profile != "" {
		h.extraEnv = append(h.extraEnv, "SIDECAR_EXECUTOR_PPROF_ADDR=127.0.0.1:0")
	}
	h.extraEnv = append(h.extraEnv, o.env...)
	sidecar, err := sidecartest.Start()
	if err != nil {
		return err
	}
	defer sidecar.Close()
	var alt *harness
	if o.compare != "" {
		if _, err := os.Stat(o.compare); err != nil {
			return fmt.Errorf("-compare: %w", err)
		}
		copied := *h
		copied.binary, copied.idPart = o.compare, "alt"
		alt = &copied
	}

	rep := &report{opts: o, machine: machine, buildFlags: buildFlags, started: time.Now()}
	if o.wants("launch") {
		if rep.launchKill, rep.altLaunchKill, err = h.runLaunchKill(o.n, sidecar.StateURL(), nil, nil, alt); err != nil {
			return err
		}
	}
	if o.wants("exit") {
		if rep.exits, rep.altExits, err = h.runExits(o.n, sidecar.StateURL(), nil, nil, alt); err != nil {
			return err
		}
	}
	if o.wants("health") {
		if rep.health, err = h.runHealth(o.n, o.healthInterval); err != nil {
			return err
		}
	}
	if o.wants("idle") {
		configs, err := parseIdleConfigs(o.idle)
		if err != nil {
			return err
		}
		if rep.idle, err = h.runIdle(configs, o.idleWindow, o.profile); err != nil {
			return err
		}
	}
	if o.wants("density") {
		if rep.density, err = h.runDensity(o.k, sidecar.StateURL(), nil, nil); err != nil {
			return err
		}
	}
	if o.wants("pss") {
		if rep.pss, err = h.runPSS(o.pssK, sidecar.StateURL()); err != nil {
			return err
		}
	}
	if o.wants("logs") {
		for i := range o.logRuns {
			res, err := h.runLogStream(o.logSeconds, o.logLineBytes, sidecar.StateURL(), o.profile)
			if err != nil {
				return err
			}
			h.progress("logs: run %d of %d: %.1f %% of a core", i+1, o.logRuns, res.CorePercent)
			rep.logs = append(rep.logs, res)
		}
	}
	if o.wants("breakdown") && o.breakdownN > 0 {
		if rep.breakdown, err = runBreakdown(h, o.breakdownN, o.k, sidecar.StateURL()); err != nil {
			return err
		}
	}
	if o.wants("checks") {
		if rep.checks, err = h.runChecks(o.idleWindow); err != nil {
			return err
		}
	}
	rep.finished = time.Now()
	rep.machine.LoadEnd = loadAverage()
	if o.goBench != "" {
		data, err := os.ReadFile(o.goBench)
		if err != nil {
			return fmt.Errorf("read the Go benchmark output: %w", err)
		}
		rep.goBench = string(data)
	}
	text, err := rep.markdown()
	if err != nil {
		return err
	}
	if o.samples != "" {
		if err := rep.writeSamples(o.samples); err != nil {
			return err
		}
	}
	if o.out == "" || o.only != "" || o.profile != "" || len(o.env) > 0 || o.compare != "" {
		fmt.Print(text)
		return nil
	}
	return writeReport(o.out, text)
}

// runBreakdown repeats the launch/kill and exit paths, and the density
// run's burst of exits, with the executor's Docker calls going through the
// tracing proxy.
func runBreakdown(h *harness, n, k int, sidecarURL string) (*breakdowns, error) {
	proxy, err := h.docker.startProxy(h.workDir)
	if err != nil {
		return nil, err
	}
	defer proxy.close()
	traced := *h
	traced.extraEnv = append(append([]string(nil), h.extraEnv...), "DOCKER_HOST="+proxy.dockerHost())
	traced.idPart = "traced"
	bd := newBreakdowns()
	if _, _, err := traced.runLaunchKill(n, sidecarURL, proxy, bd, nil); err != nil {
		return nil, fmt.Errorf("breakdown: %w", err)
	}
	if _, _, err := traced.runExits(n, sidecarURL, proxy, bd, nil); err != nil {
		return nil, fmt.Errorf("breakdown: %w", err)
	}
	if _, err := traced.runDensity(k, sidecarURL, proxy, bd); err != nil {
		return nil, fmt.Errorf("breakdown: %w", err)
	}
	return bd, nil
}

// buildExecutor builds the executor as make build does.
func buildExecutor(out, tags string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the executor: %w", err)
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench from inside the sidecar-executor module")
	}
	return filepath.Dir(mod), nil
}
