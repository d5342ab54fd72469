package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	log "github.com/sirupsen/logrus"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "cleanup" {
		os.Exit(cleanupOrphan())
	}
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(currentBuild())
		os.Exit(exitOK)
	}
	survivePipeClosed()
	launchProcessors()
	ensureTitleRoom()
	os.Exit(run())
}

// survivePipeClosed keeps the executor alive when its stdout or stderr is
// a pipe whose reader is gone (the agent's logrotate logger died): a Go
// program writing there is otherwise killed by SIGPIPE on the spot, its
// container left running and no terminal update sent. With SIGPIPE
// notified, the write fails with EPIPE and the executor goes on. (Notified,
// not ignored: an ignored signal would stay ignored in the processes the
// executor starts.)
func survivePipeClosed() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// processorsChosen: the executor's environment sets GOMAXPROCS, and the
// executor leaves the number of processors alone.
var processorsChosen = os.Getenv("GOMAXPROCS") != ""

// launchProcessors gives the launch up to two processors: it asks Docker
// two things at once and decodes answers while the agent waits for
// TASK_RUNNING.
func launchProcessors() {
	if !processorsChosen {
		runtime.GOMAXPROCS(min(runtime.NumCPU(), 2))
	}
}

// supervisionProcessors leaves one processor once the task has run for
// processorsSettle. One executor runs per task, and from then on it
// mostly waits on the agent, Docker and Sidecar: with one processor a
// goroutine woken (a timer, a socket) runs on the thread that woke it,
// where with one per core every wakeup also wakes an idle thread to look
// for work, and a garbage collection may take a quarter of the agent's
// cores. The wait lets TASK_RUNNING's delivery and the start of the
// supervision (the output stream, the health watchers) run side by side.
// BENCHMARKS.md has the figures.
func supervisionProcessors() {
	if !processorsChosen {
		time.AfterFunc(processorsSettle, func() { runtime.GOMAXPROCS(1) })
	}
}

const processorsSettle = time.Second

// ownerFromEnv names this executor as the agent named it in the MESOS_*
// environment, plus the instance ID executor.sh gave it; its containers
// carry these IDs as labels.
func ownerFromEnv(getenv func(string) string) containerOwner {
	return containerOwner{
		FrameworkID: getenv("MESOS_FRAMEWORK_ID"),
		ExecutorID:  getenv("MESOS_EXECUTOR_ID"),
		AgentID:     getenv("MESOS_SLAVE_ID"),
		Instance:    getenv("SIDECAR_EXECUTOR_INSTANCE"),
	}
}

// scrubVaultEnvironment removes the task's VAULT_* variables from the
// process environment once settingsEnv holds them. vault/api reads
// VAULT_* with os.Getenv whatever it is told (its DefaultConfig loads the
// CA and client certificate files they name, and fails on bad values), so
// this is the only way to keep a task from naming host files to it or
// breaking the host's Vault client. resolveVaultEnv gets every VAULT_*
// value from settingsEnv.vaultGetenv instead.
func scrubVaultEnvironment() {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "VAULT_") {
			os.Unsetenv(name)
		}
	}
}

// cleanupOrphan is run by executor.sh after the executor ended without
// exiting 0, from the same host-side copy of the binary: it stops and
// removes every container whose labels name this executor (framework,
// executor and agent IDs from the agent's MESOS_* environment, and the
// instance ID executor.sh gave it). It reads nothing from the sandbox: the
// container can write there.
func cleanupOrphan() int {
	settings, settingsEnv, settingsErr := loadConfig()
	configureLogging(settingsEnv.getenv)
	owner := ownerFromEnv(os.Getenv)
	logger := log.WithFields(log.Fields{"framework_id": owner.FrameworkID, "executor_id": owner.ExecutorID, "agent_id": owner.AgentID, "instance": owner.Instance})
	if owner.FrameworkID == "" || owner.ExecutorID == "" || owner.Instance == "" {
		logger.Error("cleanup: MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID and SIDECAR_EXECUTOR_INSTANCE (set by executor.sh) are needed to find this executor's containers; nothing was stopped")
		return exitBadEnvironment
	}
	settingsEnv.applyDockerDaemonSettings()
	grace := 5 * time.Second
	if settingsErr == nil {
		grace = time.Duration(settings.KillTaskTimeout) * time.Second
	}
	runtime, err := newDockerRuntime()
	if err != nil {
		logger.WithError(err).Error("cleanup: Docker is not usable")
		return exitFailure
	}
	containers, err := runtime.ownedContainers(context.Background(), owner)
	if err != nil {
		logger.WithError(err).Error("cleanup: cannot list this executor's containers")
		return exitFailure
	}
	if len(containers) == 0 {
		logger.Info("cleanup: no container labelled with this executor's IDs; nothing to do")
		return exitOK
	}
	code := exitOK
	for _, c := range containers {
		containerLogger := logger.WithFields(log.Fields{"container": shortID(c.ID), "task_id": c.Labels[taskIDLabel], "state": c.State})
		containerLogger.WithField("grace", grace.String()).Warn("cleanup: stopping and removing a container of this executor, which ended without removing it")
		if err := runtime.stopContainer(context.Background(), c.ID, grace); err != nil {
			containerLogger.WithError(err).Error("cleanup: could not stop the container")
		}
		if err := runtime.removeContainer(context.Background(), c.ID); err != nil {
			containerLogger.WithError(err).Error("cleanup: could not remove the container")
			code = exitFailure
			continue
		}
		containerLogger.Info("cleanup: container stopped and removed")
	}
	return code
}

// run wires the settings, Docker and the Mesos driver together and returns
// the process exit code.
func run() int {
	// The settings view snapshots the process environment (the task's)
	// before scrubVaultEnvironment changes it.
	settingsEnv, operatorErr := loadSettingsEnv(operatorEnvPath(), upstreamEnvPath())
	configureLogging(settingsEnv.getenv)
	logger := log.WithField("executor_id", os.Getenv("MESOS_EXECUTOR_ID"))
	logger.WithFields(currentBuild().fields()).Info("sidecar-executor starting")

	mesosCfg, err := config.FromEnv()
	if err != nil {
		logger.WithError(err).Error("the MESOS_* environment is missing or invalid: sidecar-executor must be started by a Mesos agent as a task's custom executor")
		return exitBadEnvironment
	}
	// Like the C++ executor library, keep the agent token out of the
	// environment of anything this process starts.
	authToken := os.Getenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
	os.Unsetenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
	scrubVaultEnvironment()
	settingsEnv.applyDockerDaemonSettings()

	logger.WithField("env", executorEnvForLog(os.Environ())).Info("executor environment")
	settings, settingsErr := (*Config)(nil), operatorErr
	settingsEnv.logOperatorFileNotes(logger)
	if operatorErr == nil {
		logger.WithFields(log.Fields{"file": settingsEnv.operatorPath, "drop_in_file": upstreamEnvPath(), "drop_in_variables": len(settingsEnv.operatorOrigin), "variables": len(settingsEnv.operator)}).Info("operator settings read")
		settings, settingsErr = loadConfigFrom(settingsEnv)
	}
	settingsEnv.logUnknownSettings(logger)
	settingsEnv.logIgnoredTaskSettings(logger)
	ackTimeout := time.Minute
	var dockerUnreachableLimit time.Duration
	if settingsErr != nil {
		logger.WithError(settingsErr).Error("the executor settings are invalid; the task will be failed")
	} else {
		settings.logSettings()
		ackTimeout = settings.AckTimeout
		dockerUnreachableLimit = settings.DockerUnreachableTimeout
	}

	// The sandbox's stdout and stderr carry the container's lines and the
	// executor's log, capped and rotated (logs_sandbox.go).
	stdout, stderr := io.Writer(os.Stdout), io.Writer(os.Stderr)
	if settingsErr == nil {
		sandboxStdout, sandboxStderr := openSandboxOutput(os.Stdout, os.Stderr, mesosCfg.Directory, settings.OutputSettings, logger)
		log.SetOutput(sandboxStdout)
		stdout, stderr = sandboxStdout, sandboxStderr
	}

	// A nil *dockerRuntime must not become a non-nil interface value.
	var runtime containerRuntime
	engine, dockerErr := newDockerRuntime()
	if dockerErr != nil {
		logger.WithError(dockerErr).Error("Docker is not usable; the task will be failed")
	} else {
		runtime = engine
		// Ends on its own within a few milliseconds; see warmDockerJSON.
		go warmDockerJSON()
	}
	deps := &taskDeps{
		settings:               settings,
		settingsErr:            settingsErr,
		env:                    settingsEnv,
		docker:                 runtime,
		dockerErr:              dockerErr,
		mesos:                  mesosCfg,
		stdout:                 stdout,
		stderr:                 stderr,
		setTitle:               setProcessTitle,
		running:                supervisionProcessors,
		dockerUnreachableLimit: dockerUnreachableLimit,
		owner:                  ownerFromEnv(os.Getenv),
	}

	var d *driver
	launch := func(task mesos.TaskInfo, env launchEnv) taskHandle {
		runner := newTaskRunner(task, env, deps, d.sendStatus, d.markFailed, logger)
		go runner.run()
		return runner
	}
	d = newDriver(mesosCfg, authToken, ackTimeout, launch, logger)
	if settingsErr != nil {
		d.markFailed()
	}

	signals := make(chan os.Signal, 2)
	// SIGHUP too: its default action kills the process on the spot, with
	// no terminal update and the container left running; executor.sh
	// forwards it like the others.
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	go func() {
		for sig := range signals {
			name := sig.String()
			if unixSignal, ok := sig.(syscall.Signal); ok && signalName(unixSignal) != "" {
				name = signalName(unixSignal)
			}
			d.requestStop("the executor received " + name)
		}
	}()

	code := d.run(context.Background())
	logger.WithField("exit_code", code).Info("sidecar-executor exiting")
	return code
}
