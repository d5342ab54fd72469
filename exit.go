package main

// How a task's container ended: finishContainer turns the exit into the
// terminal outcome (exit code, signal, OOM kill, the stop that caused it),
// copies the container's recent output to the sandbox when it did not
// succeed and its output could not be streamed there (logs.go), and
// removes it. Moved out of task.go, which launches and supervises.

import (
	"context"
	"fmt"
	"syscall"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

// finishContainer turns the container's end into an outcome, copies its
// logs when it did not succeed and they were not streamed to the sandbox
// (streamed, logs.go), and removes it. A stop with a deadline
// (SHUTDOWN, a signal, a lost agent) bounds all of that: the terminal
// update matters more than the logs, and a container left behind is
// removed by executor.sh's cleanup once the executor exits non-zero.
func (t *taskRunner) finishContainer(id string, stoppedFor *stopRequest, deadline time.Time, waitErr error, streamed bool, logger *log.Entry) outcome {
	runtime := t.deps.docker
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	var result outcome
	var exitCode int
	if waitErr != nil {
		logger.WithError(waitErr).Error("lost track of the container")
		result = outcome{state: mesos.TASK_FAILED, message: waitErr.Error(), executorFailed: true}
	} else if inspected, err := runtime.inspectPatiently(ctx, id, t.deps.dockerUnreachableLimit, logger); err != nil {
		unknown := "the container exited but its exit status is unknown: " + err.Error()
		if stoppedFor != nil {
			// We stopped it (perhaps the deadline cut the inspect short):
			// the stop decides the state, as it does whatever the exit code.
			result = classifyExit(docker.State{}, stoppedFor, t.memoryLimit())
			result.message = stoppedFor.message + "; " + unknown
		} else {
			result = outcome{state: mesos.TASK_FAILED, message: unknown}
		}
	} else {
		state := inspected.State
		if stoppedFor == nil && state.ExitCode == 128+int(syscall.SIGKILL) && !state.OOMKilled && t.memoryLimit() > 0 {
			state.OOMKilled = t.lateOOMKill(id, logger)
		}
		exitCode = state.ExitCode
		result = classifyExit(state, stoppedFor, t.memoryLimit())
	}
	logger.WithFields(log.Fields{"state": result.state.String(), "exit_code": exitCode}).Info(result.message)

	if result.state != mesos.TASK_FINISHED && !streamed {
		logCtx, cancelLogs := ctx, context.CancelFunc(func() {})
		if end, ok := ctx.Deadline(); ok {
			// Half of what is left at most: the removal needs the rest.
			logCtx, cancelLogs = context.WithTimeout(ctx, time.Until(end)/2)
		}
		t.copyContainerLogs(logCtx, id, logger)
		cancelLogs()
	}
	if waitErr != nil {
		// Docker may still hold a running container: make sure it ends.
		if err := runtime.stopContainer(ctx, id, 0); err != nil {
			logger.WithError(err).Error("could not stop the container")
		}
	}
	if err := runtime.removeContainer(ctx, id); err != nil {
		// Exit non-zero: that is what makes executor.sh run its cleanup,
		// which finds the container by its labels and removes it.
		logger.WithError(err).Error("could not remove the container; the executor will exit non-zero so that executor.sh's cleanup removes it")
		t.markFailed()
	} else {
		logger.Debug("container removed")
	}
	return result
}

// oomGracePeriod is how long a SIGKILLed, memory-limited container is
// watched for a late OOM verdict.
const oomGracePeriod = time.Second

// lateOOMKill tells whether Docker marks the container OOM-killed shortly
// after its exit. Docker handles the kernel's OOM event and the process
// exit separately, so the exit can be visible first; a SIGKILL nobody here
// sent, in a container with a memory limit, is worth a second look.
func (t *taskRunner) lateOOMKill(id string, logger *log.Entry) bool {
	deadline := time.Now().Add(oomGracePeriod)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		inspected, err := t.deps.docker.inspectContainer(context.Background(), id)
		if err != nil {
			return false
		}
		if inspected.State.OOMKilled {
			logger.Info("Docker recorded the OOM kill after the exit")
			return true
		}
	}
	return false
}

func (t *taskRunner) memoryLimit() int64 {
	if t.spec == nil || t.spec.Options.HostConfig == nil {
		return 0
	}
	return t.spec.Options.HostConfig.Memory
}

// classifyExit maps how a container ended to a Mesos terminal state.
func classifyExit(state docker.State, stoppedFor *stopRequest, memoryLimit int64) outcome {
	code := state.ExitCode
	if stoppedFor != nil {
		exit := describeExitCode(code)
		switch stoppedFor.cause {
		case causeUnhealthy:
			unhealthy := false
			return outcome{state: mesos.TASK_FAILED, reason: mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum(),
				message: stoppedFor.message, healthy: &unhealthy}
		case causeHealthCheckFailed:
			// As Mesos: TASK_KILLED, no reason, healthy=false.
			unhealthy := false
			return outcome{state: mesos.TASK_KILLED, message: fmt.Sprintf("%s; container %s", stoppedFor.message, exit),
				healthy: &unhealthy}
		case causeMaxCompletion:
			return outcome{state: mesos.TASK_FAILED, reason: mesos.REASON_MAX_COMPLETION_TIME_REACHED.Enum(),
				message: fmt.Sprintf("%s; container %s", stoppedFor.message, exit)}
		case causeAgentLost:
			return outcome{state: mesos.TASK_FAILED, reason: mesos.REASON_AGENT_DISCONNECTED.Enum(),
				message: fmt.Sprintf("%s; container %s", stoppedFor.message, exit)}
		case causeAWSCredentialsExpiring:
			return outcome{state: mesos.TASK_FAILED, message: fmt.Sprintf("%s; container %s", stoppedFor.message, exit)}
		default:
			return outcome{state: mesos.TASK_KILLED, message: fmt.Sprintf("%s; container %s", stoppedFor.message, exit)}
		}
	}
	if state.OOMKilled {
		message := "container was killed by the kernel OOM killer"
		if memoryLimit > 0 {
			message += fmt.Sprintf(" (memory limit %d MiB)", memoryLimit>>20)
		}
		return outcome{state: mesos.TASK_FAILED, reason: mesos.REASON_CONTAINER_LIMITATION_MEMORY.Enum(),
			message: fmt.Sprintf("%s; container %s", message, describeExitCode(code))}
	}
	if code == 0 {
		return outcome{state: mesos.TASK_FINISHED, message: "container exited with status 0"}
	}
	message := "container " + describeExitCode(code)
	if state.Error != "" {
		message += ": " + state.Error
	}
	return outcome{state: mesos.TASK_FAILED, message: message}
}

// describeExitCode names the signal behind a 128+N exit code.
func describeExitCode(code int) string {
	text := fmt.Sprintf("exited with status %d", code)
	if code > 128 && code < 128+65 {
		if name := signalName(syscall.Signal(code - 128)); name != "" {
			text += " (" + name + ")"
		}
	}
	return text
}

func signalName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGILL: "SIGILL",
		syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
		syscall.SIGKILL: "SIGKILL", syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	}
	return names[sig]
}

// copyContainerLogs copies the container's recent output to the executor's
// stdout and stderr, framed so an operator can tell it from our own logs:
// the fallback for a container whose output was not streamed live.
func (t *taskRunner) copyContainerLogs(ctx context.Context, id string, logger *log.Entry) {
	since := time.Time{}
	if t.deps.settings != nil && t.deps.settings.LogsSince > 0 {
		since = time.Now().Add(-t.deps.settings.LogsSince)
	}
	tty := t.spec != nil && t.spec.Options.Config != nil && t.spec.Options.Config.Tty
	logger.Info("copying the container's recent logs to the executor's stdout and stderr")
	fmt.Fprintf(t.deps.stdout, "----- begin container %s stdout -----\n", shortID(id))
	fmt.Fprintf(t.deps.stderr, "----- begin container %s stderr -----\n", shortID(id))
	if err := t.deps.docker.copyLogs(ctx, id, since, tty, t.deps.stdout, t.deps.stderr); err != nil {
		logger.WithError(err).Warn("could not copy the container's logs")
	}
	fmt.Fprintf(t.deps.stdout, "----- end container %s stdout -----\n", shortID(id))
	fmt.Fprintf(t.deps.stderr, "----- end container %s stderr -----\n", shortID(id))
}
