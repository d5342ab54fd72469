package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
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
	ensureTitleRoom()
	os.Exit(run())
}

// cleanupOrphan is run by executor.sh after the executor died without
// cleaning up: it stops and removes the container recorded in the sandbox.
func cleanupOrphan() int {
	configureLogging(os.Getenv)
	sandbox := os.Getenv("MESOS_SANDBOX")
	if sandbox == "" {
		sandbox = os.Getenv("MESOS_DIRECTORY")
	}
	if sandbox == "" {
		sandbox = "."
	}
	record := filepath.Join(sandbox, containerRecordFile)
	data, err := os.ReadFile(record)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("cleanup: no container recorded in the sandbox; nothing to do")
		return exitOK
	} else if err != nil {
		log.WithError(err).Error("cleanup: cannot read the container record")
		return exitFailure
	}
	id := strings.TrimSpace(string(data))
	grace := 5 * time.Second
	if settings, err := loadConfig(); err == nil {
		grace = time.Duration(settings.KillTaskTimeout) * time.Second
	}
	runtime, err := newDockerRuntime()
	if err != nil {
		log.WithError(err).Error("cleanup: Docker is not usable")
		return exitFailure
	}
	logger := log.WithField("container", shortID(id))
	logger.Warn("cleanup: stopping the container of an executor that died without cleaning up")
	if err := runtime.stopContainer(context.Background(), id, grace); err != nil {
		logger.WithError(err).Error("cleanup: could not stop the container")
	}
	if err := runtime.removeContainer(context.Background(), id); err != nil {
		logger.WithError(err).Error("cleanup: could not remove the container")
		return exitFailure
	}
	if err := os.Remove(record); err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.WithError(err).Warn("cleanup: could not remove the container record")
	}
	logger.Info("cleanup: container stopped and removed")
	return exitOK
}

// run wires the settings, Docker and the Mesos driver together and returns
// the process exit code.
func run() int {
	configureLogging(os.Getenv)
	logger := log.WithField("executor_id", os.Getenv("MESOS_EXECUTOR_ID"))

	mesosCfg, err := config.FromEnv()
	if err != nil {
		logger.WithError(err).Error("the MESOS_* environment is missing or invalid: sidecar-executor must be started by a Mesos agent as a task's custom executor")
		return exitBadEnvironment
	}
	// Like the C++ executor library, keep the agent token out of the
	// environment of anything this process starts.
	authToken := os.Getenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
	os.Unsetenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")

	logger.WithField("env", executorEnvForLog(os.Environ())).Info("sidecar-executor starting")
	settings, settingsErr := loadConfig()
	ackTimeout := time.Minute
	var dockerUnreachableLimit time.Duration
	if settingsErr != nil {
		logger.WithError(settingsErr).Error("the executor settings are invalid; the task will be failed")
	} else {
		settings.logSettings()
		ackTimeout = settings.AckTimeout
		dockerUnreachableLimit = settings.DockerUnreachableTimeout
	}

	runtime, dockerErr := newDockerRuntime()
	if dockerErr != nil {
		logger.WithError(dockerErr).Error("Docker is not usable; the task will be failed")
	}
	deps := &taskDeps{
		settings:               settings,
		settingsErr:            settingsErr,
		docker:                 runtime,
		dockerErr:              dockerErr,
		mesos:                  mesosCfg,
		stdout:                 os.Stdout,
		stderr:                 os.Stderr,
		setTitle:               setProcessTitle,
		dockerUnreachableLimit: dockerUnreachableLimit,
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
