package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor/config"
	log "github.com/sirupsen/logrus"
)

// stopCause says why a task's container is being stopped; the first cause
// decides the terminal state.
type stopCause int

const (
	causeKill stopCause = iota + 1
	causeShutdown
	causeSignal
	causeAgentLost
	causeUnhealthy
	// causeHealthCheckFailed: the Mesos health check failed
	// consecutive_failures times (health.go), or Docker's HEALTHCHECK
	// stayed unhealthy past EXECUTOR_DOCKER_HEALTH_KILL_AFTER
	// (health_docker.go).
	causeHealthCheckFailed
	// causeAWSCredentialsExpiring: the AWS lease can no longer be
	// renewed (vault_aws.go).
	causeAWSCredentialsExpiring
	causeMaxCompletion // TaskInfo.max_completion_time reached (max_completion.go)
)

// executorsOwn tells the stops the executor decides on its own from those
// someone asked for (a kill, a shutdown, a signal) and the failed Mesos or
// Docker health checks, which Mesos handles as kills. Its own are not
// announced with TASK_KILLING, and one that comes during the launch, before
// a container runs, ends the task TASK_FAILED.
func (c stopCause) executorsOwn() bool {
	switch c {
	case causeUnhealthy, causeAgentLost, causeAWSCredentialsExpiring, causeMaxCompletion:
		return true
	}
	return false
}

// stopRequest asks a task to stop its container.
type stopRequest struct {
	cause stopCause
	// grace between the stop signal and SIGKILL; negative means the task's
	// default (TaskInfo.kill_policy, else EXECUTOR_KILL_TASK_TIMEOUT).
	grace time.Duration
	// deadline, when set, is when the terminal update must be on its way:
	// draining, the stop and the cleanup after it all fit before it.
	deadline time.Time
	message  string
}

// afterStopReserve is kept before a stop's deadline for what follows the
// container's exit: inspect, log copy, removal.
const afterStopReserve = time.Second

// defaultKillTaskTimeout is EXECUTOR_KILL_TASK_TIMEOUT's default, for tasks
// whose settings could not be read.
const defaultKillTaskTimeout = 5 * time.Second

// taskDeps is what every task shares with the rest of the process.
type taskDeps struct {
	settings    *Config
	settingsErr error
	// env is who set what (operator file, task environment): it decides
	// which Vault and which Docker credentials the task's launch may use.
	env *settingsEnv
	// docker is nil when dockerErr is set.
	docker    containerRuntime
	dockerErr error
	mesos     config.Config
	stdout    io.Writer
	stderr    io.Writer
	setTitle  func(string)
	// running is called once TASK_RUNNING is sent (main's
	// supervisionProcessors).
	running func()
	// dockerUnreachableLimit is how long Docker may stay away while the
	// task runs before the task is failed.
	dockerUnreachableLimit time.Duration
	// owner is this executor, as its containers' labels name it.
	owner containerOwner
}

// taskRunner owns one task's container from launch to terminal update.
// All its state is touched by its own goroutine only; other goroutines talk
// to it through Stop.
type taskRunner struct {
	info       mesos.TaskInfo
	env        launchEnv
	deps       *taskDeps
	send       func(status mesos.TaskStatus, terminal bool)
	markFailed func()
	logger     *log.Entry

	stops chan stopRequest
	done  chan struct{}

	spec *containerSpec
	// completion is the max_completion_time timer, started by run.
	completion *completionTimer
	// runningData is TASK_RUNNING's data: Docker's inspect answer of the
	// started container (running_status.go).
	runningData []byte
	// fromVault names the container variables whose values came from
	// Vault; they are never logged.
	fromVault []string
	// checks are the task's validated Mesos health check and check;
	// checkStatus carries the check's latest result (checks.go).
	checks      *checkPlan
	checkStatus *checkStatusTracker
	aws         awsTaskState
}

func newTaskRunner(info mesos.TaskInfo, env launchEnv, deps *taskDeps, send func(mesos.TaskStatus, bool), markFailed func(), logger *log.Entry) *taskRunner {
	return &taskRunner{
		info:       info,
		env:        env,
		deps:       deps,
		send:       send,
		markFailed: markFailed,
		logger:     logger.WithField("task_id", info.TaskID.Value),
		stops:      make(chan stopRequest, 16),
		done:       make(chan struct{}),
	}
}

// Stop implements taskHandle. It never blocks.
func (t *taskRunner) Stop(req stopRequest) {
	select {
	case t.stops <- req:
	default:
		t.logger.WithField("message", req.message).Warn("dropping a stop request: many are already pending")
	}
}

// Done implements taskHandle.
func (t *taskRunner) Done() <-chan struct{} { return t.done }

// outcome is how the task ended.
type outcome struct {
	state   mesos.TaskState
	reason  *mesos.TaskStatus_Reason
	message string
	healthy *bool
	// executorFailed marks a task the executor could not launch or lost
	// track of: bad input or an unusable environment (Docker, registry,
	// Vault). The executor then exits non-zero.
	executorFailed bool
}

func (t *taskRunner) run() {
	defer close(t.done)
	t.completion = startCompletionTimer(&t.info)
	defer t.completion.stop()
	t.attachCheckStatus()
	t.status(mesos.TASK_STARTING, nil, "launching the task's container")
	result := t.launchAndSupervise()
	t.releaseAWSCredentials()
	if result.executorFailed {
		t.markFailed()
		t.logger.WithField("error", result.message).Error("the task could not be launched or supervised")
	}
	status := newStatus(t.info.TaskID, result.state, result.reason, result.message)
	status.Healthy = result.healthy
	t.send(status, true)
}

func (t *taskRunner) status(state mesos.TaskState, reason *mesos.TaskStatus_Reason, message string) {
	t.send(newStatus(t.info.TaskID, state, reason, message), false)
}

func launchFailure(reason mesos.TaskStatus_Reason, message string) outcome {
	return outcome{state: mesos.TASK_FAILED, reason: reason.Enum(), message: message, executorFailed: true}
}

// launchAndSupervise launches the container and watches it until it ends.
func (t *taskRunner) launchAndSupervise() outcome {
	launchCtx, cancelLaunch := context.WithCancel(context.Background())
	defer cancelLaunch()

	// A stop request during the launch aborts it: the pull or the Docker
	// call in progress is cancelled.
	var earlyStop *stopRequest
	launchFinished := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case req := <-t.stops:
			earlyStop = &req
			cancelLaunch()
		case <-t.completion.channel():
			req := t.completion.expired()
			earlyStop = &req
			cancelLaunch()
		case <-launchFinished:
		}
	}()
	container, failure := t.launch(launchCtx)
	close(launchFinished)
	<-watcherDone

	if earlyStop != nil && container == nil && earlyStop.cause == causeMaxCompletion {
		t.logger.WithField("message", earlyStop.message).Info("max_completion_time reached during the launch; no container was left running")
		return outcome{state: mesos.TASK_FAILED, reason: mesos.REASON_MAX_COMPLETION_TIME_REACHED.Enum(),
			message: earlyStop.message + " during the launch"}
	}
	if earlyStop != nil && container == nil {
		t.logger.WithField("message", earlyStop.message).Info("stop requested during the launch; no container was left running")
		t.aws.deadline = earlyStop.deadline
		state := mesos.TASK_KILLED
		if earlyStop.cause.executorsOwn() {
			state = mesos.TASK_FAILED
		}
		return outcome{state: state, reason: mesos.REASON_TASK_KILLED_DURING_LAUNCH.Enum(),
			message: "killed during launch: " + earlyStop.message}
	}
	if failure != nil {
		return *failure
	}
	return t.supervise(container, earlyStop)
}

// launch goes from TaskInfo to a started container. On failure it returns
// an outcome and leaves no container behind.
func (t *taskRunner) launch(ctx context.Context) (*docker.Container, *outcome) {
	fail := func(reason mesos.TaskStatus_Reason, message string) (*docker.Container, *outcome) {
		o := launchFailure(reason, message)
		return nil, &o
	}
	if err := t.completion.invalid(); err != nil {
		return fail(mesos.REASON_TASK_INVALID, err.Error())
	}
	if t.deps.settingsErr != nil {
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, t.deps.settingsErr.Error())
	}
	settings := t.deps.settings

	spec, err := buildContainerSpec(specInput{
		Task:            &t.info,
		ExecutorInfo:    &t.env.executor,
		HostSandbox:     t.deps.mesos.Directory,
		AgentHostname:   t.env.agent.GetHostname(),
		Settings:        settings,
		Owner:           t.deps.owner,
		HostMemoryBytes: hostMemoryBytes(),
	})
	if err != nil {
		return fail(mesos.REASON_TASK_INVALID, err.Error())
	}
	t.spec = spec
	if t.checks, err = planChecks(&t.info); err != nil {
		return fail(mesos.REASON_TASK_INVALID, err.Error())
	}
	logger := t.logger.WithFields(log.Fields{"image": spec.Image, "container_name": spec.Name})
	for _, warning := range spec.Warnings {
		logger.Warn(warning)
	}
	// Admission comes before anything with an effect: a refused task must
	// not reach Vault, Docker or a registry.
	if err := admit(admissionInput{
		Options:     spec.Options,
		Task:        &t.info,
		HostSandbox: t.deps.mesos.Directory,
		DockerHost:  os.Getenv("DOCKER_HOST"),
		Settings:    settings.AdmissionSettings,
	}); err != nil {
		return fail(mesos.REASON_TASK_UNAUTHORIZED, err.Error())
	}
	if settings.AllowPrivileged {
		logger.Warn("admitted without checks: EXECUTOR_ALLOW_PRIVILEGED=true turns the admission policy off")
	} else {
		logger.Info("admitted by the admission policy")
	}
	if err := settings.AWSSettings.admitRole(t.deps.env.taskUsesOwnVault()); err != nil {
		return fail(mesos.REASON_TASK_UNAUTHORIZED, err.Error())
	}
	// The seeds are looked up alongside the rest of the launch and join
	// the environment just before the container is created.
	seeds := startSeedLookup(ctx, settings, t.deps.mesos.AgentEndpoint, logger)
	// One Vault connection serves the vault:// values and the AWS
	// credentials, made when the first of them needs it.
	vault := newVaultResolver(t.deps.env.vaultGetenv(), logger)
	resolved, fromVault, err := resolveVaultEnv(ctx, spec.Options.Config.Env, vault)
	if err != nil {
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, err.Error())
	}
	spec.Options.Config.Env = resolved
	t.fromVault = fromVault
	if failure := t.obtainAWSCredentials(ctx, vault, logger); failure != nil {
		return nil, failure
	}
	t.logContainerConfig(logger)

	if t.deps.dockerErr != nil {
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, t.deps.dockerErr.Error())
	}
	runtime := t.deps.docker
	// The start's client pings the daemon while the create below runs:
	// see pendingStart.
	start := runtime.prepareStart(ctx)
	// Until the daemon has answered the ping, a failure is reported as the
	// ping's when the ping failed too: an unreachable daemon fails every
	// call, and "unreachable" is what the operator needs to read.
	failDocker := func(err error) (*docker.Container, *outcome) {
		if pingErr := start.wait(ctx); pingErr != nil {
			return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, pingErr.Error())
		}
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, err.Error())
	}

	spec.Options.Config.Env = seeds.apply(ctx, spec.Options.Config.Env)
	logger.Info("creating the container")
	created, err := t.createContainer(ctx, logger)
	if err != nil {
		return failDocker(err)
	}
	logger = logger.WithField("container", shortID(created.ID))
	cleanup := func() {
		if err := runtime.removeContainer(context.Background(), created.ID); err != nil {
			logger.WithError(err).Error("could not remove the container after a failed launch")
		}
	}
	// A failed ping fails the launch even when the other calls went
	// through, as it did when the ping came first.
	if err := start.wait(ctx); err != nil {
		cleanup()
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, err.Error())
	}
	logger.Info("starting the container")
	if err := start.start(ctx, created.ID); err != nil {
		cleanup()
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, err.Error())
	}
	// TASK_RUNNING carries what Docker says of the started container (its
	// inspect answer and its addresses), on every network, the host's too.
	started, data, err := runtime.inspectStarted(context.Background(), created.ID)
	if err != nil {
		if stopErr := runtime.stopContainer(context.Background(), created.ID, 0); stopErr != nil {
			logger.WithError(stopErr).Error("could not stop the container after a failed launch")
		}
		cleanup()
		return fail(mesos.REASON_CONTAINER_LAUNCH_FAILED, err.Error())
	}
	if data == nil {
		logger.WithField("limit_bytes", maxRunningData).Warn("Docker's inspect answer is too large for TASK_RUNNING; sending TASK_RUNNING without it")
	} else if data, err = redactRunningData(data, started, t.fromVault); err != nil {
		logger.WithError(err).Warn("sending TASK_RUNNING without Docker's inspect answer")
	}
	t.runningData = data
	return started, nil
}

// createContainer creates the task's container. Docker's create checks
// what the launch used to ask beforehand, that the image is present and
// the name free, so the usual launch (image present, no container left by
// an earlier executor) is this one call, and the rest happens only when
// the create says so:
//   - no such image: the name is freed first (as below), then the image is
//     pulled with the task's credentials (ensureImage) and the create tried
//     again;
//   - the name is taken: removeStaleContainer removes the container if an
//     earlier executor of this task left it, or fails the launch if it is
//     anyone else's, and the create is tried again.
//
// force_pull_image pulls before the first create. A create that fails
// otherwise may still have been carried out by Docker (a KILL cancelled it
// in flight): no container of ours is left by that name.
func (t *taskRunner) createContainer(ctx context.Context, logger *log.Entry) (*docker.Container, error) {
	runtime, spec := t.deps.docker, t.spec
	freeName := func() error {
		return runtime.removeStaleContainer(ctx, spec.Name, t.deps.owner, t.info.TaskID.Value, logger)
	}
	pulled, freed := false, false
	if spec.ForcePull {
		pulled = true
		if err := t.ensureImage(ctx, logger); err != nil {
			return nil, err
		}
	}
	for {
		created, err := runtime.createContainer(ctx, spec.Options)
		switch {
		case err == nil:
			return created, nil
		case errors.Is(err, docker.ErrNoSuchImage) && !pulled:
			pulled = true
			if !freed {
				freed = true
				if err := freeName(); err != nil {
					return nil, err
				}
			}
			if err := t.ensureImage(ctx, logger); err != nil {
				return nil, err
			}
		case errors.Is(err, docker.ErrContainerAlreadyExists) && !freed:
			freed = true
			if err := freeName(); err != nil {
				return nil, err
			}
		default:
			// A name taken by someone else since it was freed is left alone.
			if removeErr := runtime.removeOwnContainerNamed(context.Background(), spec.Name, t.deps.owner, t.info.TaskID.Value, logger); removeErr != nil {
				logger.WithError(removeErr).Error("could not remove a container left by a failed create")
			}
			return nil, err
		}
	}
}

// ensureImage pulls the image, missing or forced (createContainer), with
// the credentials found for its registry (registry_auth.go) and the retry
// policy of the settings (pull.go).
func (t *taskRunner) ensureImage(ctx context.Context, logger *log.Entry) error {
	image := t.spec.Image
	if t.spec.ForcePull {
		logger.Info("force_pull_image is set; pulling the image even if it is present locally")
	} else {
		logger.Info("image not present locally; pulling it")
	}
	registry, err := registryForImage(image)
	if err != nil {
		return fmt.Errorf("cannot pull image %s: %w", image, err)
	}
	logger = logger.WithField("registry", registry)
	settings := t.deps.settings
	files := credentialFiles(t.deps.mesos.Sandbox, t.deps.env.hostDockerConfig())
	helpers := newHelperRunner(settings.RegistryHelperSettings, t.deps.env, logger)
	creds, err := credentialsFor(ctx, registry, files, settings.credentialFallback(), helpers, logger)
	if err != nil {
		return err
	}
	pull := &imagePull{
		image:    image,
		registry: registry,
		creds:    creds,
		policy:   pullPolicyFor(settings),
		puller:   t.deps.docker,
		logger:   logger,
	}
	return pull.run(ctx)
}

// logContainerConfig logs the container's environment (secrets redacted),
// and with EXECUTOR_DEBUG the TaskInfo and the full container config.
func (t *taskRunner) logContainerConfig(logger *log.Entry) {
	if t.spec.Options.Config != nil {
		logger.WithField("env", strings.Join(redactEnv(t.spec.Options.Config.Env, t.fromVault...), " ")).Info("Docker environment of the container")
		if len(t.fromVault) > 0 {
			logger.WithField("variables", strings.Join(t.fromVault, " ")).Info("values resolved from Vault (not logged)")
		}
	}
	if !logger.Logger.IsLevelEnabled(log.DebugLevel) {
		return
	}
	if taskJSON, err := json.Marshal(redactedTaskInfo(t.info)); err == nil {
		logger.WithField("task_info", string(taskJSON)).Debug("TaskInfo")
	}
	if optsJSON, err := json.Marshal(redactedOptions(t.spec.Options, t.fromVault...)); err == nil {
		logger.WithField("container_config", string(optsJSON)).Debug("container configuration")
	}
}

// supervise reports TASK_RUNNING and then waits for the container to end,
// stopping it on request or when Sidecar condemns it.
func (t *taskRunner) supervise(container *docker.Container, pending *stopRequest) outcome {
	runtime := t.deps.docker
	id := container.ID
	logger := t.logger.WithFields(log.Fields{"container": shortID(id), "image": t.spec.Image})
	if t.deps.setTitle != nil {
		t.deps.setTitle(fmt.Sprintf("sidecar-executor %s %s", shortID(id), t.spec.Image))
	}

	// The container's output streams to the sandbox from its first line;
	// more sinks (the syslog relay) are passed here.
	output := t.startOutput(container, logger, t.logRelaySinks(id, logger)...)
	waitCtx, cancelWait := context.WithCancel(context.Background())
	defer cancelWait()
	exited := make(chan error, 1)
	go func() { exited <- runtime.waitContainer(waitCtx, id, t.deps.dockerUnreachableLimit, logger) }()

	containerStatus := containerStatusFor(container)
	if pending == nil {
		running := newStatus(t.info.TaskID, mesos.TASK_RUNNING, nil, "container "+shortID(id)+" is running")
		running.ContainerStatus = containerStatus
		running.Data = t.runningData
		t.send(running, false)
		logger.Info("container running")
		if t.deps.running != nil {
			t.deps.running()
		}
	}

	health := t.watchHealth(id, dockerLabels(container), logger)
	defer health.stop()
	checks := &mesosChecks{cancel: func() {}}
	if pending == nil {
		checks = t.startMesosChecks(t.checks, container, logger)
	}
	defer checks.stop()
	// Docker's HEALTHCHECK speaks only where nothing else does (health_docker.go).
	dockerHealth := t.watchDockerHealth(container, health.watcher == nil && pending == nil, logger)
	defer dockerHealth.stop()
	stop := stopper{task: t, id: id, logger: logger, sidecar: health.watcher}
	defer stop.cancel()
	var waitErr error
loop:
	for {
		if pending != nil {
			health.stop()
			checks.stop()
			dockerHealth.stop()
			stop.request(*pending)
			pending = nil
		}
		select {
		case waitErr = <-exited:
			break loop
		case req := <-t.stops:
			pending = &req
		case change := <-health.changes:
			if stop.first == nil {
				t.sendHealthUpdate(change.healthy, change.detail, containerStatus)
			}
		case <-t.completion.channel():
			// Any stop already under way (a KILL, a SHUTDOWN, Sidecar's
			// verdict) cancels the timer.
			if stop.first == nil {
				req := t.completion.expired()
				logger.WithField("reason", req.message).Info("max_completion_time reached; stopping the container")
				pending = &req
			}
		case err := <-health.failed:
			logger.WithError(err).Error("Sidecar reports the container unhealthy; stopping it")
			pending = &stopRequest{cause: causeUnhealthy, grace: -1, message: err.Error()}
		case verdict := <-checks.verdicts:
			if stop.first == nil {
				pending = t.onHealthVerdict(verdict, mesosHealthKilling, containerStatus, logger)
			}
		case result := <-checks.checkResults:
			if stop.first == nil {
				t.onCheckResult(result, logger)
			}
		case verdict := <-dockerHealth.verdicts:
			if stop.first == nil {
				pending = t.onHealthVerdict(verdict, dockerHealthKilling, containerStatus, logger)
			}
		case accepted := <-stop.drained:
			stop.drainFinished(accepted)
		case <-stop.drainOver:
			stop.stopAfterDrain()
		case <-stop.retry:
			stop.retryStop()
		}
	}
	health.stop()
	checks.stop()
	dockerHealth.stop()
	t.aws.deadline = stop.budgetEnd
	streamed := output.finish(stop.budgetEnd)
	return t.finishContainer(id, stop.first, stop.budgetEnd, waitErr, streamed, logger)
}

// healthChange is a change of Sidecar's verdict on the container.
type healthChange struct {
	healthy bool
	detail  string
}

// healthWatch runs the Sidecar watcher of one container in the background.
type healthWatch struct {
	watcher *sidecarWatcher // nil when Sidecar checks are off
	changes chan healthChange
	failed  chan error
	cancel  context.CancelFunc
	done    chan struct{}
}

// watchHealth starts polling Sidecar for the container unless the task
// opted out with the label SidecarDiscover=false. labels are the
// container's as the launch's inspect reported them (the image's included,
// and always the executor's own), the ones Sidecar names it by.
func (t *taskRunner) watchHealth(containerID string, labels map[string]string, logger *log.Entry) *healthWatch {
	h := &healthWatch{changes: make(chan healthChange, 4), failed: make(chan error, 1), done: make(chan struct{})}
	if value, ok := t.spec.Label("SidecarDiscover"); ok && strings.EqualFold(strings.TrimSpace(value), "false") {
		logger.Info("SidecarDiscover=false: no Sidecar health checks and no draining for this task")
		close(h.done)
		h.cancel = func() {}
		return h
	}
	h.watcher = newSidecarWatcher(t.deps.settings, containerID, t.sidecarHostKeys(), logger)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		h.watcher.useServiceRoute(labels)
		err := h.watcher.Run(ctx, func(healthy bool, detail string) {
			select {
			case h.changes <- healthChange{healthy: healthy, detail: detail}:
			case <-ctx.Done():
			}
		})
		if err != nil {
			h.failed <- err
		}
	}()
	return h
}

// stop ends the polling and waits for it; safe to call many times.
func (h *healthWatch) stop() {
	h.cancel()
	<-h.done
}

// sidecarHostKeys are the names this container's host may have in
// Sidecar's state: the task's TASK_HOST (the agent's hostname as the
// scheduler knows it), then the agent's own idea of it, then this machine's.
func (t *taskRunner) sidecarHostKeys() []string {
	var keys []string
	add := func(key string) {
		if key != "" && !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	for _, kv := range t.spec.Options.Config.Env {
		if value, ok := strings.CutPrefix(kv, "TASK_HOST="); ok {
			add(value)
		}
	}
	add(t.env.agent.GetHostname())
	if hostname, err := os.Hostname(); err == nil {
		add(hostname)
	}
	return keys
}
