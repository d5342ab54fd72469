// Command mesos-local runs one Mesos task on this machine through the real
// sidecar-executor, playing the Mesos agent (internal/mesostest) and, by
// default, Sidecar (internal/sidecartest). See usage for what it does.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const usageText = `Usage: mesos-local [flags] TASK.json
       mesos-local [flags] -            (the task on standard input)

Runs one Mesos task on this machine through the real sidecar-executor, the way
a Mesos agent runs it, with no cluster. TASK.json is a TaskInfo in Mesos' JSON
format (snake_case field names, enums by name, bytes in base64); see examples/.
A file that is not one, or lacks what the executor needs (a DOCKER container
with an image), is refused before anything starts.

mesos-local plays the agent: it creates the sandbox, starts the executor there
with the MESOS_* environment an agent gives, then the task's
executor.command.environment (applied by agents on top), plus PATH, HOME and
the DOCKER_*, VAULT_*, EXECUTOR_* and SIDECAR_EXECUTOR_* variables of its own
environment (as a host's site settings); the executor's stdout and stderr go to
files in the sandbox. It launches the task, acknowledges every status update and
prints each as one line: time since launch, state, reason, healthy, message.
The framework checkpoints nothing and has the TASK_KILLING_STATE capability.

Filled in when the file leaves them out, as a scheduler would:
  name, task_id   the file's name; the task ID adds the time and a random suffix
  agent_id, executor (a CUSTOM ExecutorInfo running -executor), its
                  executor_id and framework_id
  host_port 0     of container.docker.port_mappings: a free port of this
                  machine, added to the task's ports resource (as Singularity's
                  FROM_OFFER host ports)
  TASK_HOST, PORT, PORT0..PORTn
                  in executor.command.environment: this machine's hostname and
                  the task's ports (at most 100), as Singularity sets them
  EXECUTOR_SIDECAR_BACKOFF=1s, EXECUTOR_SIDECAR_POLL_INTERVAL=1s,
  EXECUTOR_SIDECAR_DRAINING_DURATION=1s
                  fast timings for trying things out, unless the task's executor
                  environment or your environment sets them
  EXECUTOR_SIDECAR_URL
                  always set: the embedded Sidecar, or -sidecar-url

Sidecar: by default an embedded Sidecar on 127.0.0.1, whose own hostname is the
task's TASK_HOST, lists the task's container (found through Docker by the label
sidecar-executor.task-id) as ALIVE as soon as it runs, unless the container has
the label SidecarDiscover=false; -unhealthy-after makes it UNHEALTHY later. -sidecar-url uses a real Sidecar instead.

Optional peers, for tasks that use upstream sidecar-executor's settings:
  -master         an embedded Mesos master on 127.0.0.1 whose /slaves lists this
                  machine (and -master-agents); the agent's /state names it as
                  master_hostname, so EXECUTOR_SEED_SIDECAR=true gives the
                  container SIDECAR_SEEDS. Its port reaches the executor as
                  EXECUTOR_MESOS_MASTER_PORT, an operator-only setting: -master
                  needs -operator-env-var.
  -syslog-addr    replaces the task's EXECUTOR_SYSLOG_ADDR, so that a task's
                  relayed log lines go to a collector of yours (e.g. rsyslogd or
                  nc -klu 5514).
  -operator-env-var NAME
                  for an executor built with
                    -ldflags '-X main.operatorEnvOverrideVar=NAME'
                  (a test build; a release build always reads
                  /etc/sidecar-executor/environment): mesos-local writes an
                  operator's file outside the sandbox and names it in NAME. It
                  holds the host's settings: the DOCKER_*, VAULT_* and EXECUTOR_*
                  variables of mesos-local's environment (which then are not in the
                  executor's environment, the task's) and -master's port. With a
                  release build, put such settings in that file yourself.

Ctrl-C (or SIGTERM) sends KILL; a second one sends SHUTDOWN. An executor that
has not exited a shutdown grace period after SHUTDOWN is killed, as an agent
destroys it, and so is one that has not subscribed within a minute.

Flags:
`

const exitCodesText = `
Exit codes:
  0    TASK_FINISHED; with -timeout-ok also TASK_KILLED by -timeout of a task
       that was running and last reported healthy when the timeout hit
  1    TASK_FAILED (also when the executor exited without a terminal update)
  2    bad flags or task file: nothing was started
  3    TASK_KILLED (Ctrl-C, SIGTERM)
  4    another terminal state (TASK_ERROR, TASK_LOST, TASK_DROPPED, TASK_GONE…)
  5    mesos-local could not run the task (sandbox, executor, agent, ports)
  124  TASK_KILLED by -timeout (without -timeout-ok, or not healthy then)
`

// options are the parsed command line.
type options struct {
	taskFile       string
	executorPath   string
	sandbox        string
	timeout        time.Duration
	timeoutOK      bool
	unhealthyAfter time.Duration
	sidecarURL     string
	check          bool
	verbose        bool
	master         bool
	masterAgents   []string
	syslogAddr     string
	operatorEnvVar string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a command line mesos-local cannot act on.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	flags := flag.NewFlagSet("mesos-local", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usageText)
		flags.PrintDefaults()
		fmt.Fprint(stderr, exitCodesText)
	}
	flags.StringVar(&o.executorPath, "executor", "", "the `path` of the executor to run: the sidecar-executor binary, or executor.sh\n(which runs the installed /opt/mesos/sidecar-executor) (default: sidecar-executor in mesos-local's own directory)")
	flags.StringVar(&o.sandbox, "sandbox", "", "the task's sandbox `directory`, created if missing and otherwise required to be empty\n(default: a new directory under $TMPDIR); it is kept afterwards")
	flags.DurationVar(&o.timeout, "timeout", 0, "kill the task this `duration` after launch (0: never)")
	flags.BoolVar(&o.timeoutOK, "timeout-ok", false, "with -timeout: exit 0 when the timeout kills a task that is running and last reported healthy\nand it ends TASK_KILLED (a smoke test of a service; make demo uses it)")
	flags.DurationVar(&o.unhealthyAfter, "unhealthy-after", 0, "have the embedded Sidecar report the container UNHEALTHY this `duration` after listing it")
	flags.StringVar(&o.sidecarURL, "sidecar-url", "", "use the real Sidecar whose state.json is at this `URL` instead of the embedded one")
	flags.BoolVar(&o.check, "check", false, "check the task file, fill it in and print the TaskInfo that would be launched; start nothing")
	flags.BoolVar(&o.verbose, "v", false, "also print the emulated agent's trace of calls and events")
	flags.BoolVar(&o.master, "master", false, "run an embedded Mesos master whose /slaves lists this machine, for EXECUTOR_SEED_SIDECAR\n(needs -operator-env-var)")
	masterAgents := flags.String("master-agents", "", "with -master: more agent host `names` (comma list) the master lists")
	flags.StringVar(&o.syslogAddr, "syslog-addr", "", "send the task's relayed log lines to this UDP `host:port`: replaces EXECUTOR_SYSLOG_ADDR")
	flags.StringVar(&o.operatorEnvVar, "operator-env-var", "", "the variable `NAME` from which the executor reads its operator's file\n(a build with -ldflags '-X main.operatorEnvOverrideVar=NAME'); mesos-local writes that file")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, &usageError{msg: err.Error()}
	}
	switch {
	case flags.NArg() == 0:
		return o, &usageError{msg: "name the task file (or - for standard input); see mesos-local -h"}
	case flags.NArg() > 1:
		return o, &usageError{msg: fmt.Sprintf("one task file only, got %d arguments: %s", flags.NArg(), strings.Join(flags.Args(), " "))}
	case o.timeout < 0:
		return o, &usageError{msg: "-timeout must not be negative"}
	case o.timeoutOK && o.timeout == 0:
		return o, &usageError{msg: "-timeout-ok needs -timeout"}
	case o.unhealthyAfter < 0:
		return o, &usageError{msg: "-unhealthy-after must not be negative"}
	case o.unhealthyAfter > 0 && o.sidecarURL != "":
		return o, &usageError{msg: "-unhealthy-after scripts the embedded Sidecar; it cannot be used with -sidecar-url"}
	}
	if err := o.checkPeers(*masterAgents); err != nil {
		return o, err
	}
	if o.sidecarURL != "" {
		if u, err := url.Parse(o.sidecarURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, &usageError{msg: fmt.Sprintf("-sidecar-url %q is not an http(s) URL of Sidecar's state.json", o.sidecarURL)}
		}
	}
	o.taskFile = flags.Arg(0)
	return o, nil
}

// resolveExecutor finds the executor program and makes its path absolute:
// the executor starts in the sandbox.
func resolveExecutor(path string) (string, error) {
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return "", &usageError{msg: fmt.Sprintf("cannot find mesos-local's own directory (%v); name the executor with -executor", err)}
		}
		path = filepath.Join(filepath.Dir(self), "sidecar-executor")
		if _, err := os.Stat(path); err != nil {
			return "", &usageError{msg: fmt.Sprintf("no executor at %s; build it (make build) and name it with -executor, e.g. -executor bin/sidecar-executor", path)}
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", &usageError{msg: fmt.Sprintf("-executor %s: %v", path, err)}
	}
	info, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", &usageError{msg: fmt.Sprintf("-executor %s: %v", path, err)}
	case info.IsDir():
		return "", &usageError{msg: fmt.Sprintf("-executor %s is a directory, not a program", path)}
	case info.Mode().Perm()&0o111 == 0:
		return "", &usageError{msg: fmt.Sprintf("-executor %s is not executable", path)}
	}
	return abs, nil
}

func readTaskFile(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, &usageError{msg: fmt.Sprintf("reading the task from standard input: %v", err)}
		}
		return data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("cannot read the task file: %v", err)}
	}
	return data, nil
}

// checkSandboxFlag refuses a -sandbox that holds something already: an
// earlier run's files would mix with this one's.
func checkSandboxFlag(dir string) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return &usageError{msg: fmt.Sprintf("-sandbox %s is not empty; name a new or empty directory, or leave -sandbox out", dir)}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return &usageError{msg: fmt.Sprintf("-sandbox %s: %v", dir, err)}
	}
	return nil
}

// prepareSandbox creates the sandbox directory, absolute because Docker
// mounts it into the container.
func prepareSandbox(dir string) (string, error) {
	if dir == "" {
		created, err := os.MkdirTemp("", "mesos-local-")
		if err != nil {
			return "", fmt.Errorf("create a sandbox directory: %w", err)
		}
		dir = created
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("sandbox %s: %w", dir, err)
		}
		dir = abs
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create the sandbox: %w", err)
		}
	}
	// Like a Mesos sandbox: readable by the task whatever its user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("sandbox %s: %w", dir, err)
	}
	return dir, nil
}

// run is mesos-local; it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitFinished
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "mesos-local: %v\n", err)
		return code
	}
	if err != nil {
		return fail(exitUsage, err)
	}
	executorPath, err := resolveExecutor(opts.executorPath)
	if err != nil {
		if !opts.check {
			return fail(exitUsage, err)
		}
		executorPath = "sidecar-executor" // -check starts nothing
	}
	if err := checkSandboxFlag(opts.sandbox); err != nil {
		return fail(exitUsage, err)
	}
	data, err := readTaskFile(opts.taskFile, stdin)
	if err != nil {
		return fail(exitUsage, err)
	}
	source := opts.taskFile
	if source == "-" {
		source = "standard input"
	}
	task, err := parseTaskFile(source, data)
	if err != nil {
		return fail(exitUsage, err)
	}

	hostname, err := os.Hostname()
	if err != nil || hostname == "" {
		hostname = "localhost"
	}
	picker := &portPicker{}
	filled, err := fillTask(task, fillSettings{
		source:       opts.taskFile,
		hostname:     hostname,
		executorPath: executorPath,
		now:          time.Now(),
		suffix:       randomSuffix(),
		pickPort:     picker.pick,
	})
	picker.release()
	if err != nil {
		return fail(exitLocal, err)
	}
	if opts.check {
		return printCheck(stdout, stderr, source, filled)
	}
	return newSession(opts, executorPath, source, hostname, filled, stdout, stderr).run()
}

// printCheck prints the filled-in TaskInfo as JSON, for -check.
func printCheck(stdout, stderr io.Writer, source string, filled filledTask) int {
	body, err := filled.task.MarshalJSON()
	if err != nil {
		fmt.Fprintf(stderr, "mesos-local: %s: render the TaskInfo: %v\n", source, err)
		return exitLocal
	}
	fmt.Fprintf(stdout, "mesos-local: %s is a TaskInfo mesos-local can launch.\n", source)
	for _, n := range filled.notes {
		fmt.Fprintf(stdout, "  filled in: %s\n", n)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, body, "", "  "); err != nil {
		indented.Reset()
		indented.Write(body)
	}
	fmt.Fprintf(stdout, "%s\n", indented.Bytes())
	return exitFinished
}

func randomSuffix() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
