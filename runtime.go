package main

// The container-runtime seam: the Docker calls one task's life makes
// (task.go, stopper.go), so that the lifecycle can be driven against an
// in-memory engine in tests. dockerRuntime (docker.go) is the real one.

import (
	"context"
	"io"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	log "github.com/sirupsen/logrus"
)

// containerRuntime runs one task's container. Errors are written for the
// operator: the ones that end a task become its TaskStatus message.
type containerRuntime interface {
	// imagePuller pulls an image once; retries are pull.go's policy.
	imagePuller

	// prepareStart readies the start of the launch's container while the
	// launch's other calls run; its wait reports whether the engine
	// answers, and its start starts the created container.
	prepareStart(ctx context.Context) containerStart
	// removeStaleContainer frees the name for this task: a container of
	// that name left by an earlier executor of the task is removed; one
	// that is not the task's makes it fail.
	removeStaleContainer(ctx context.Context, name string, owner containerOwner, taskID string, logger *log.Entry) error
	// removeOwnContainerNamed removes the container of that name only if
	// its labels say this executor created it for this task.
	removeOwnContainerNamed(ctx context.Context, name string, owner containerOwner, taskID string, logger *log.Entry) error
	createContainer(ctx context.Context, opts docker.CreateContainerOptions) (*docker.Container, error)
	inspectContainer(ctx context.Context, id string) (*docker.Container, error)
	// inspectStarted inspects the launch's started container and also
	// returns TASK_RUNNING's data: Docker's answer as a JSON array of one
	// object, nil when it is too large (running_status.go).
	inspectStarted(ctx context.Context, id string) (*docker.Container, []byte, error)
	// waitContainer blocks until the container is no longer running,
	// riding out an engine outage of up to limit.
	waitContainer(ctx context.Context, id string, limit time.Duration, logger *log.Entry) error
	// inspectPatiently inspects, riding out an engine outage of up to limit.
	inspectPatiently(ctx context.Context, id string, limit time.Duration, logger *log.Entry) (*docker.Container, error)
	// stopContainer sends the container's stop signal, then SIGKILL after
	// grace, and returns once it has stopped; a stopped container is fine.
	stopContainer(ctx context.Context, id string, grace time.Duration) error
	// followLogs streams the container's output since the given time
	// (zero: from its start) as Docker records it, each record prefixed
	// with its timestamp, until the container stops (nil) or the stream
	// breaks; stdout gets everything when tty is set (logs.go).
	followLogs(ctx context.Context, id string, since time.Time, tty bool, stdout, stderr io.Writer) error
	// jsonLogFile is the path of the container's json-file log when the
	// executor can read it on this host (logs_file.go), else "".
	jsonLogFile(c *docker.Container) string
	// copyLogs writes the container's output since the given time.
	copyLogs(ctx context.Context, id string, since time.Time, tty bool, stdout, stderr io.Writer) error
	// removeContainer removes the container, running or not; a missing
	// one is fine.
	removeContainer(ctx context.Context, id string) error
	// execInContainer runs cmd in the running container (a COMMAND health
	// check or check) until it exits or ctx ends; see execResult.
	execInContainer(ctx context.Context, id string, cmd, env []string, outputLimit int) (execResult, error)
}

// execResult is how a command run in the container ended: its exit code
// and the last outputLimit bytes of its combined output.
type execResult struct {
	exitCode   int
	outputTail []byte
}

// containerStart is the start of one launch's container, readied ahead by
// prepareStart so that the start itself is a single call.
type containerStart interface {
	// wait returns once the engine has answered (nil) or is known to be
	// unreachable, or ctx ends.
	wait(ctx context.Context) error
	// start starts the created container; wait must have returned nil.
	start(ctx context.Context, id string) error
}
