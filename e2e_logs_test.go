package main

// End-to-end tests of the live container output (logs.go,
// logs_sandbox.go) through the real binary and Docker: the executor is
// given real stdout and stderr files in the sandbox, as the agent's
// default container logger does.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// startExecutorWithSandboxFiles starts the executor binary with its
// stdout and stderr on the files sandbox/stdout and sandbox/stderr,
// opened append-only as the agent's default logger opens them. plant runs
// on the sandbox before the executor starts.
func startExecutorWithSandboxFiles(t *testing.T, agent *mesostest.Agent, plant func(sandbox string), settings ...string) *executorProcess {
	t.Helper()
	requireDocker(t)
	requireExecutorBinary(t)
	sandbox := t.TempDir()
	if plant != nil {
		plant(sandbox)
	}
	open := func(name string) *os.File {
		f, err := os.OpenFile(filepath.Join(sandbox, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	stdout, stderr := open("stdout"), open("stderr")
	p := newExecutorProcess(sandbox, executorEnv(agent, sandbox, settings...), executorBinary)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.launch(t, func() {
		entries, _ := os.ReadDir(sandbox)
		for _, e := range entries {
			info, _ := e.Info()
			t.Logf("sandbox entry %s %s %d", e.Name(), info.Mode(), info.Size())
		}
		for _, name := range []string{"stdout", "stderr"} {
			data, _ := os.ReadFile(filepath.Join(sandbox, name))
			if len(data) > 20000 {
				data = data[len(data)-20000:]
			}
			t.Logf("sandbox %s (end):\n%s", name, data)
		}
	}, stdout, stderr)
	return p
}

// sandboxLines reads a sandbox file's lines, without the executor's own
// log lines (logrus text lines start with time=").
func sandboxLines(t *testing.T, path string) (container []string, executor []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, `time="`) {
			executor = append(executor, line)
		} else {
			container = append(container, line)
		}
	}
	return container, executor
}

// numbered checks that lines are prefix0 … prefixN-1 in order and
// returns N.
func numbered(t *testing.T, what string, lines []string, prefix string) int {
	t.Helper()
	for i, line := range lines {
		if line != fmt.Sprintf("%s%d", prefix, i) {
			t.Fatalf("%s line %d is %q, want %s%d (lines in order, each once, no prefix)", what, i, line, prefix, i)
		}
	}
	return len(lines)
}

// TestContainerOutputReachesTheSandboxLive runs with each source of the
// output: Docker's json-file log read directly (the default) and Docker's
// logs API (EXECUTOR_READ_DOCKER_LOG_FILE=false).
func TestContainerOutputReachesTheSandboxLive(t *testing.T) {
	t.Parallel()
	for _, source := range []struct {
		name, setting, logLine string
	}{
		{"json-file log", "", "reading the container's output from Docker's json-file log"},
		{"logs API", "EXECUTOR_READ_DOCKER_LOG_FILE=false", ""},
	} {
		t.Run(source.name, func(t *testing.T) {
			t.Parallel()
			var settings []string
			if source.setting != "" {
				settings = append(settings, withOperatorFile(t, source.setting))
			}
			outputReachesTheSandboxLive(t, source.logLine, settings...)
		})
	}
}

// outputReachesTheSandboxLive checks the live output; logLine is the
// executor's line that names the source ("" for none).
func outputReachesTheSandboxLive(t *testing.T, logLine string, settings ...string) {
	agent := newAgent(t, mesostest.Config{})
	const lines = 60
	task := newDockerTask(t, agent, testImage, withShellCommand(
		fmt.Sprintf(`sh -c 'i=0; while [ $i -lt %d ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); sleep 0.1; done'`, lines)))
	mustLaunch(t, agent, task)
	proc := startExecutorWithSandboxFiles(t, agent, nil, settings...)
	waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)

	// Note when each line shows up in the sandbox while the container runs.
	stdoutPath := filepath.Join(proc.sandbox, "stdout")
	seen := map[string]time.Time{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d lines reached the sandbox's stdout within a minute", len(seen))
		}
		out, _ := sandboxLines(t, stdoutPath)
		now := time.Now()
		for _, line := range out {
			if _, ok := seen[line]; !ok {
				seen[line] = now
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Docker's own timestamps say when the container wrote them.
	c := inspectTaskContainer(t, task.TaskID.Value)
	if c == nil || !c.State.Running {
		t.Fatal("the container ended before its output was checked: the lines were not live")
	}
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dockerClient.Logs(docker.LogsOptions{Context: ctx, Container: c.ID, OutputStream: &logs, ErrorStream: &syncBuffer{}, Stdout: true, Timestamps: true}); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, record := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		stamp, line, _ := strings.Cut(record, " ")
		written, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t.Fatalf("docker logs record %q: %v", record, err)
		}
		if at, ok := seen[line]; ok {
			checked++
			if delay := at.Sub(written); delay > time.Second {
				t.Errorf("%s reached the sandbox %s after the container wrote it, want within 1s", line, delay)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d lines matched Docker's record", checked)
	}

	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)
	out, executor := sandboxLines(t, stdoutPath)
	if n := numbered(t, "stdout", out, "out-"); n != lines {
		t.Errorf("%d container lines in the sandbox's stdout, want %d", n, lines)
	}
	errLines, _ := sandboxLines(t, filepath.Join(proc.sandbox, "stderr"))
	if n := numbered(t, "stderr", errLines, "err-"); n != lines {
		t.Errorf("%d container lines in the sandbox's stderr, want %d", n, lines)
	}
	if len(executor) == 0 {
		t.Error("the executor's own log is not in the sandbox's stdout")
	}
	named := strings.Contains(strings.Join(executor, "\n"), "Docker's json-file log")
	if logLine != "" && !strings.Contains(strings.Join(executor, "\n"), logLine) {
		t.Errorf("the executor's log does not say %q:\n%s", logLine, strings.Join(executor, "\n"))
	} else if logLine == "" && named {
		t.Errorf("the executor read Docker's json-file log although the operator turned it off:\n%s", strings.Join(executor, "\n"))
	}
}

func TestContainerOutputIsCappedAndRotated(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	operator := withOperatorFile(t, "EXECUTOR_LOG_MAX_SIZE=1MB", "EXECUTOR_LOG_ROTATE_KEEP=3")
	// 520000 numbered lines of 98 bytes: about 50 MB.
	const lines = 520000
	task := newDockerTask(t, agent, testImage, withShellCommand(
		fmt.Sprintf(`sh -c 'seq -w 0 %d | sed "s/$/ $(printf %%090d 0)/"'`, lines-1)))
	mustLaunch(t, agent, task)
	victim := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(victim, []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := startExecutorWithSandboxFiles(t, agent, func(sandbox string) {
		// The container (or anyone with the sandbox) planted a link.
		if err := os.Symlink(victim, filepath.Join(sandbox, "stdout.1")); err != nil {
			t.Fatal(err)
		}
	}, operator)
	expectFinal(t, agent, task.TaskID.Value, 5*time.Minute, mesos.TASK_FINISHED)
	expectCleanExit(t, proc, task.TaskID.Value, 60*time.Second)

	if data, _ := os.ReadFile(victim); string(data) != "host data\n" {
		t.Errorf("the host file behind the planted stdout.1 link was written: %q", data)
	}
	const maxSize = 1 << 20
	var kept []string
	for _, name := range []string{"stdout.3", "stdout.2", "stdout.1", "stdout"} {
		path := filepath.Join(proc.sandbox, name)
		info, err := os.Lstat(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !info.Mode().IsRegular() {
			t.Errorf("%s is not a regular file (%s)", name, info.Mode())
		}
		// One write may pass the cap only when a single line is longer
		// than the cap: these lines are not.
		if info.Size() > maxSize {
			t.Errorf("%s has %d bytes, over the cap of %d", name, info.Size(), maxSize)
		}
		out, _ := sandboxLines(t, path)
		kept = append(kept, out...)
	}
	if _, err := os.Lstat(filepath.Join(proc.sandbox, "stdout.4")); !os.IsNotExist(err) {
		t.Errorf("stdout.4 exists: more rotated copies than EXECUTOR_LOG_ROTATE_KEEP=3")
	}
	// The files hold the end of the output, whole lines, in order.
	if len(kept) < 3*maxSize/98 {
		t.Fatalf("only %d lines kept in four files of up to 1 MiB", len(kept))
	}
	first, err := strconv.Atoi(strings.Fields(kept[0])[0])
	if err != nil {
		t.Fatalf("first kept line %q", kept[0])
	}
	for i, line := range kept {
		want := fmt.Sprintf("%06d %090d", first+i, 0)
		if line != want {
			t.Fatalf("kept line %d is %q, want %q: lines lost, repeated or cut", i, line, want)
		}
	}
	if last := first + len(kept) - 1; last != lines-1 {
		t.Errorf("the last line kept is %d, want %d", last, lines-1)
	}
}

func TestUnreadableLogDriverIsReportedOnce(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(`sh -c 'echo hello; sleep 1'`), withDockerParameter("log-driver", "none"))
	mustLaunch(t, agent, task)
	proc := startExecutorWithSandboxFiles(t, agent, nil)
	expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FINISHED)
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)
	out, executor := sandboxLines(t, filepath.Join(proc.sandbox, "stdout"))
	if len(out) != 0 {
		t.Errorf("container lines in the sandbox although Docker kept none: %q", out)
	}
	reports := 0
	for _, line := range executor {
		if strings.Contains(line, "Docker cannot read back this container's output") {
			reports++
			if !strings.Contains(line, "log_driver=none") {
				t.Errorf("the report does not name the driver: %s", line)
			}
		}
	}
	if reports != 1 {
		t.Errorf("the unreadable log driver was reported %d times, want once", reports)
	}
}
