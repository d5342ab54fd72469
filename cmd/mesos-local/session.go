package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mastertest"
	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/sidecartest"
)

const (
	// registrationTimeout is the agent's --executor_registration_timeout
	// default: an executor not subscribed by then is destroyed.
	registrationTimeout = time.Minute
	// defaultShutdownGrace is the agent's --executor_shutdown_grace_period
	// default, used when the ExecutorInfo sets none.
	defaultShutdownGrace = 5 * time.Second
)

// printer writes lines for the operator from several goroutines.
type printer struct {
	mu    sync.Mutex
	out   io.Writer
	start time.Time // the launch; times are printed relative to it
}

func (p *printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, s)
}

func (p *printer) event(event, format string, args ...any) {
	p.line(eventLine(p.since(time.Now()), event, fmt.Sprintf(format, args...)))
}

func (p *printer) since(t time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return t.Sub(p.start)
}

func (p *printer) startNow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = time.Now()
}

// session is one run of one task: the agent, the Sidecar, the executor
// process and what has been seen of the task.
type session struct {
	opts         options
	executorPath string
	source       string
	hostname     string
	filled       filledTask
	taskID       string
	stderr       io.Writer
	print        *printer

	agent      *mesostest.Agent
	sidecar    *sidecartest.Server // nil with -sidecar-url
	sidecarURL string
	master     *mastertest.Server // with -master
	operator   *operatorFile      // with -operator-env-var
	docker     *docker.Client     // nil when Docker cannot be configured
	sandbox    string
	grace      time.Duration

	seen        int // updates handled
	state       mesos.TaskState
	lastHealthy *bool
	final       *mesos.TaskStatus
}

func newSession(opts options, executorPath, source, hostname string, filled filledTask, stdout, stderr io.Writer) *session {
	s := &session{
		opts:         opts,
		executorPath: executorPath,
		source:       source,
		hostname:     hostname,
		filled:       filled,
		taskID:       filled.task.TaskID.Value,
		stderr:       stderr,
		print:        &printer{out: stdout, start: time.Now()},
		state:        mesos.TASK_STAGING,
		grace:        defaultShutdownGrace,
	}
	if d := filled.task.Executor.GetShutdownGracePeriod(); d != nil && d.Nanoseconds > 0 {
		s.grace = time.Duration(d.Nanoseconds)
	}
	return s
}

// start brings up everything the executor talks to and the sandbox.
func (s *session) start() error {
	dockerClient, err := docker.NewClientFromEnv()
	if err != nil {
		fmt.Fprintf(s.stderr, "mesos-local: warning: Docker cannot be configured from DOCKER_* (%v); the embedded Sidecar will not find the container\n", err)
	} else {
		s.docker = dockerClient
	}
	if s.opts.sidecarURL != "" {
		s.sidecarURL = s.opts.sidecarURL
	} else {
		server, err := sidecartest.Start()
		if err != nil {
			return fmt.Errorf("start the embedded Sidecar: %w", err)
		}
		taskHost, _ := taskEnv(s.filled.task, "TASK_HOST")
		server.SetHostname(taskHost)
		s.sidecar = server
		s.sidecarURL = server.StateURL()
	}
	var operatorExtra []string
	if s.opts.master {
		master, err := startMaster(s.masterAgentNames())
		if err != nil {
			return err
		}
		s.master = master
		operatorExtra = append(operatorExtra, "EXECUTOR_MESOS_MASTER_PORT="+master.Port())
	}
	if s.opts.operatorEnvVar != "" {
		operator, err := writeOperatorFile(os.Environ(), operatorExtra)
		if err != nil {
			return err
		}
		s.operator = operator
	}
	cfg := mesostest.Config{
		FrameworkID:         s.filled.frameworkID,
		ExecutorID:          s.filled.executorID,
		AgentID:             s.filled.agentID,
		AgentHostname:       s.hostname,
		Capabilities:        []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE},
		ShutdownGracePeriod: s.grace,
	}
	if s.master != nil {
		cfg.MasterHostname = masterHostname
	}
	if s.opts.verbose {
		cfg.Logf = func(format string, args ...any) { s.print.event("agent", format, args...) }
	}
	agent, err := mesostest.Start(cfg)
	if err != nil {
		return fmt.Errorf("start the agent: %w", err)
	}
	s.agent = agent
	sandbox, err := prepareSandbox(s.opts.sandbox)
	if err != nil {
		return err
	}
	s.sandbox = sandbox
	return nil
}

func (s *session) close() {
	if s.agent != nil {
		s.agent.Close()
	}
	if s.sidecar != nil {
		s.sidecar.Close()
	}
	if s.master != nil {
		s.master.Close()
	}
	s.operator.remove()
}

// run launches the task and follows it until the executor has gone.
func (s *session) run() int {
	defer s.close()
	if err := s.start(); err != nil {
		fmt.Fprintf(s.stderr, "mesos-local: %v\n", err)
		return exitLocal
	}
	stdoutPath := filepath.Join(s.sandbox, "stdout")
	stderrPath := filepath.Join(s.sandbox, "stderr")
	s.printHeader(stdoutPath, stderrPath)

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	s.print.startNow()
	if err := s.agent.Launch(s.filled.task); err != nil {
		fmt.Fprintf(s.stderr, "mesos-local: the agent refused the task: %v\n", err)
		return exitLocal
	}
	proc, err := s.startExecutor(stdoutPath, stderrPath)
	if err != nil {
		fmt.Fprintf(s.stderr, "mesos-local: %v\n", err)
		return exitLocal
	}
	s.print.event("executor", "started, pid %d", proc.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()

	ctx, cancel := context.WithCancel(context.Background())
	var background sync.WaitGroup
	defer func() {
		cancel()
		background.Wait()
	}()

	updates := make(chan []mesostest.Update)
	background.Add(1)
	go func() {
		defer background.Done()
		s.followUpdates(ctx, updates)
	}()
	if s.sidecar != nil && s.docker != nil {
		sidecar := s.embeddedSidecar()
		background.Add(1)
		go func() {
			defer background.Done()
			sidecar.run(ctx)
		}()
	}
	notSubscribed := make(chan struct{})
	background.Add(1)
	go func() {
		defer background.Done()
		waitCtx, stop := context.WithTimeout(ctx, registrationTimeout)
		defer stop()
		if err := s.agent.WaitForSubscriptions(waitCtx, 1); err != nil && ctx.Err() == nil {
			close(notSubscribed)
		}
	}()

	var timeoutC <-chan time.Time
	if s.opts.timeout > 0 {
		timer := time.NewTimer(s.opts.timeout)
		defer timer.Stop()
		timeoutC = timer.C
	}
	var graceC <-chan time.Time
	result := outcome{timeoutOK: s.opts.timeoutOK}
	interrupts := 0
	destroyedFor := ""
	var waitErr error
loop:
	for {
		select {
		case batch := <-updates:
			for _, u := range batch {
				s.handle(u)
			}
		case sig := <-signals:
			interrupts++
			switch interrupts {
			case 1:
				s.kill(proc, fmt.Sprintf("%s: sending KILL (again for SHUTDOWN)", signalName(sig)))
			case 2:
				s.print.event("interrupt", "%s: sending SHUTDOWN", signalName(sig))
				if err := s.agent.Shutdown(); err != nil {
					s.print.event("interrupt", "SHUTDOWN failed: %v", err)
				}
				graceC = time.After(s.grace)
			default:
				s.print.event("interrupt", "SHUTDOWN already sent; the executor is destroyed if it has not exited %s after it", s.grace)
			}
		case <-timeoutC:
			result.killedByTimeout = s.final == nil
			result.healthyAtTimeout = s.state == mesos.TASK_RUNNING && s.lastHealthy != nil && *s.lastHealthy
			s.kill(proc, fmt.Sprintf("-timeout %s reached: sending KILL", s.opts.timeout))
		case <-graceC:
			destroyedFor = fmt.Sprintf("Executor did not exit within the shutdown grace period %s", s.grace)
			s.destroy(proc, destroyedFor)
			graceC = nil
		case <-notSubscribed:
			destroyedFor = fmt.Sprintf("Executor did not register within %s", registrationTimeout)
			s.destroy(proc, destroyedFor)
			notSubscribed = nil
		case waitErr = <-exited:
			break loop
		}
	}

	reason := terminationReason(waitErr, destroyedFor)
	s.print.event("executor", "exited: %s", describeExit(waitErr))
	s.agent.ExecutorTerminated(reason)
	cancel()
	background.Wait()
	// What the follower had no time to pass on, and the agent's own
	// terminal update if the executor left the task non-terminal.
	for _, u := range s.agent.Updates()[s.seen:] {
		s.handle(u)
	}
	result.final = s.final
	code := result.exitCode()
	s.printSummary(result, code, waitErr, stdoutPath, stderrPath)
	return code
}

// followUpdates passes the agent's updates on in order until ctx ends.
func (s *session) followUpdates(ctx context.Context, out chan<- []mesostest.Update) {
	after := 0
	for {
		batch, err := s.agent.WaitForUpdates(ctx, after)
		if err != nil {
			return
		}
		select {
		case out <- batch:
			after += len(batch)
		case <-ctx.Done():
			return
		}
	}
}

// handle prints one update and tracks the task's state.
func (s *session) handle(u mesostest.Update) {
	s.seen++
	if u.Duplicate {
		return // a resend the agent acknowledged again
	}
	s.print.line(statusLine(s.print.since(u.Received), u))
	if u.Dropped != "" || u.Status.TaskID.Value != s.taskID {
		return
	}
	state := u.Status.GetState()
	s.state = state
	if state == mesos.TASK_RUNNING && u.Status.Healthy != nil {
		healthy := *u.Status.Healthy
		s.lastHealthy = &healthy
	}
	if mesostest.IsTerminal(state) && s.final == nil {
		status := u.Status
		s.final = &status
	}
}

// kill asks for the task to be killed the way a scheduler does.
func (s *session) kill(proc *exec.Cmd, why string) {
	if state, _ := s.agent.TaskState(s.taskID); s.final != nil || mesostest.IsTerminal(state) {
		return
	}
	s.print.event("kill", "%s", why)
	if err := s.agent.Kill(s.taskID, nil); err != nil {
		// No subscription to send it on: a SIGTERM makes the executor
		// stop the task all the same.
		s.print.event("kill", "%v; sending SIGTERM to the executor instead", err)
		_ = proc.Process.Signal(syscall.SIGTERM)
	}
}

// destroy kills the executor's process group, as an agent destroys an
// executor's container.
func (s *session) destroy(proc *exec.Cmd, why string) {
	s.print.event("executor", "%s: killing it, as an agent destroys it", why)
	_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
}

func (s *session) startExecutor(stdoutPath, stderrPath string) (*exec.Cmd, error) {
	stdoutFile, err := os.OpenFile(stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create the executor's stdout file: %w", err)
	}
	defer stdoutFile.Close()
	stderrFile, err := os.OpenFile(stderrPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create the executor's stderr file: %w", err)
	}
	defer stderrFile.Close()
	cmd := exec.Command(s.executorPath)
	cmd.Dir = s.sandbox
	extras := envExtras{sidecarURL: s.sidecarURL, syslogAddr: s.opts.syslogAddr}
	if s.operator != nil {
		extras.operatorVar, extras.operatorFile = s.opts.operatorEnvVar, s.operator.path
	}
	cmd.Env = executorEnvironment(os.Environ(), s.agent.Environment(s.sandbox), s.filled.task, extras)
	cmd.Stdout, cmd.Stderr = stdoutFile, stderrFile
	// Its own process group: Ctrl-C in the terminal is for mesos-local,
	// which turns it into KILL, as the scheduler would.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the executor %s: %w", s.executorPath, err)
	}
	return cmd, nil
}

func (s *session) embeddedSidecar() *embeddedSidecar {
	taskHost, _ := taskEnv(s.filled.task, "TASK_HOST")
	name := s.filled.task.Name
	if value, ok := serviceNameLabel(s.filled.task); ok {
		name = value
	}
	return &embeddedSidecar{
		server:         s.sidecar,
		host:           taskHost,
		docker:         s.docker,
		taskID:         s.taskID,
		serviceName:    name,
		image:          s.filled.task.Container.Docker.Image,
		ports:          s.filled.published,
		unhealthyAfter: s.opts.unhealthyAfter,
		say:            s.print.event,
	}
}

// serviceNameLabel is the ServiceName label Sidecar names services by: a
// docker `label` parameter, else a task label.
func serviceNameLabel(task mesos.TaskInfo) (string, bool) {
	for _, p := range task.Container.Docker.Parameters {
		if name, value, ok := strings.Cut(p.Value, "="); p.Key == "label" && ok && name == "ServiceName" {
			return value, true
		}
	}
	for _, l := range task.GetLabels().GetLabels() {
		if l.Key == "ServiceName" && l.Value != nil {
			return *l.Value, true
		}
	}
	return "", false
}

func (s *session) printHeader(stdoutPath, stderrPath string) {
	row := func(name, format string, args ...any) {
		s.print.line(fmt.Sprintf("  %-16s %s", name, fmt.Sprintf(format, args...)))
	}
	s.print.line(fmt.Sprintf("mesos-local: task %s from %s", s.taskID, s.source))
	row("sandbox", "%s", s.sandbox)
	row("executor", "%s", s.executorPath)
	if value := s.filled.task.Executor.GetCommand().GetValue(); value != "" && value != s.executorPath {
		row("", "(executor.command.value %q is not run: mesos-local runs -executor)", value)
	}
	row("executor stdout", "%s", stdoutPath)
	row("executor stderr", "%s", stderrPath)
	if s.sidecar != nil {
		row("sidecar", "embedded, %s, host %s", s.sidecarURL, s.sidecar.Hostname())
	} else {
		row("sidecar", "%s", s.sidecarURL)
	}
	if s.master != nil {
		row("master", "embedded, %s/slaves (master_hostname %s), agents %s", s.master.URL(), masterHostname, strings.Join(s.masterAgentNames(), ","))
	}
	if s.opts.syslogAddr != "" {
		row("syslog", "EXECUTOR_SYSLOG_ADDR=%s (-syslog-addr)", s.opts.syslogAddr)
	}
	if s.operator != nil {
		row("operator file", "%s (in %s; removed at the end)", s.operator.path, s.opts.operatorEnvVar)
	}
	for _, p := range s.filled.published {
		hint := ""
		if strings.Contains(p.protocols, "tcp") {
			hint = fmt.Sprintf(" (e.g. http://127.0.0.1:%d/)", p.hostPort)
		}
		row("port", "container %d/%s is this machine's port %d%s", p.containerPort, p.protocols, p.hostPort, hint)
	}
	for i, note := range s.filled.notes {
		name := ""
		if i == 0 {
			name = "filled in"
		}
		row(name, "%s", note)
	}
	stop := "Ctrl-C sends KILL, a second Ctrl-C SHUTDOWN"
	if s.opts.timeout > 0 {
		stop += fmt.Sprintf("; -timeout kills the task after %s", s.opts.timeout)
	}
	s.print.line("  " + stop)
}

func (s *session) printSummary(result outcome, code int, waitErr error, stdoutPath, stderrPath string) {
	ended := "without a terminal update"
	if s.final != nil {
		ended = "in " + s.final.GetState().String()
	}
	s.print.line(fmt.Sprintf("mesos-local: task %s ended %s after %.1fs", s.taskID, ended, s.print.since(time.Now()).Seconds()))
	s.print.line(fmt.Sprintf("  %-16s %s (kept)", "sandbox", s.sandbox))
	if waitErr != nil {
		for _, path := range []string{stdoutPath, stderrPath} {
			if tail := tailLines(path, 8); tail != "" {
				s.print.line(fmt.Sprintf("  last lines of %s:\n%s", path, tail))
			}
		}
	}
	s.warnLeftoverContainers()
	s.print.line(fmt.Sprintf("  %-16s %d (%s)", "exit code", code, explainExit(result, code)))
}

// warnLeftoverContainers names a container of the task that outlived its
// executor (an executor killed before cleaning up, when run without
// executor.sh): nothing else will remove it.
func (s *session) warnLeftoverContainers() {
	if s.docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	containers, err := s.docker.ListContainers(docker.ListContainersOptions{
		All:     true,
		Filters: map[string][]string{"label": {taskIDLabel + "=" + s.taskID}},
		Context: ctx,
	})
	if err != nil {
		return
	}
	for _, c := range containers {
		s.print.line(fmt.Sprintf("  warning: the task's container %s (%s) is still there; remove it with: docker rm -f %s", c.ID[:12], c.State, c.ID[:12]))
	}
}

func explainExit(result outcome, code int) string {
	switch code {
	case exitFinished:
		if result.final.GetState() == mesos.TASK_KILLED {
			return "killed by -timeout while running and healthy, with -timeout-ok"
		}
		return "TASK_FINISHED"
	case exitFailed:
		return "TASK_FAILED"
	case exitKilled:
		return "TASK_KILLED"
	case exitTimedOut:
		if result.timeoutOK {
			return "TASK_KILLED by -timeout, but the task was not running and healthy then"
		}
		return "TASK_KILLED by -timeout"
	case exitOther:
		return result.final.GetState().String()
	}
	return "no terminal update"
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "Ctrl-C (SIGINT)"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// terminationReason is the message of the agent's own terminal update when
// the executor left the task non-terminal, in the agent's words.
func terminationReason(waitErr error, destroyedFor string) string {
	if destroyedFor != "" {
		return destroyedFor
	}
	if waitErr == nil {
		return "Executor terminated"
	}
	return "Abnormal executor termination: " + describeExit(waitErr)
}

func describeExit(waitErr error) string {
	var exitErr *exec.ExitError
	if !errors.As(waitErr, &exitErr) {
		if waitErr == nil {
			return "status 0"
		}
		return waitErr.Error()
	}
	if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return "killed by signal " + status.Signal().String()
	}
	return fmt.Sprintf("status %d", exitErr.ExitCode())
}

// tailLines returns the last n lines of a file, indented, or "".
func tailLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// masterAgentNames are the host names the embedded master lists.
func (s *session) masterAgentNames() []string {
	taskHost, _ := taskEnv(s.filled.task, "TASK_HOST")
	names := []string{taskHost}
	for _, name := range s.opts.masterAgents {
		if name != taskHost {
			names = append(names, name)
		}
	}
	return names
}
