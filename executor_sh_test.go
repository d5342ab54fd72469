package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/executorshtest"
	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// testWrapper is a copy of executor.sh whose installed binary is binary and
// whose state directory is a fresh temporary directory.
func testWrapper(t *testing.T, binary string) executorshtest.Wrapper {
	t.Helper()
	script, err := filepath.Abs("executor.sh")
	if err != nil {
		t.Fatal(err)
	}
	return executorshtest.New(t, script, binary, "")
}

// startWrapperIn runs a test copy of executor.sh the way Mesos would: from
// the sandbox, with the agent's environment.
func startWrapperIn(t *testing.T, agent *mesostest.Agent, wrapper executorshtest.Wrapper, sandbox string, settings ...string) *executorProcess {
	t.Helper()
	return startExecutorIn(t, agent, sandbox, wrapper.Path, executorEnv(agent, sandbox, settings...))
}

func startWrapper(t *testing.T, agent *mesostest.Agent, wrapper executorshtest.Wrapper, settings ...string) *executorProcess {
	t.Helper()
	return startWrapperIn(t, agent, wrapper, t.TempDir(), settings...)
}

// fakeExecutor writes a shell script standing in for the executor binary.
func fakeExecutor(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-sidecar-executor")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(readFile(t, path)))
	return hex.EncodeToString(sum[:])
}

// assertNothingInSandbox fails when the sandbox holds anything named like the
// executor: nothing of the host's may live where the container can write.
func assertNothingInSandbox(t *testing.T, sandbox string) {
	t.Helper()
	entries, err := os.ReadDir(sandbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "sidecar-executor") {
			t.Errorf("executor.sh left %s in the sandbox", e.Name())
		}
	}
}

func TestExecutorShRunsAHostSideCopy(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand("true"))
	mustLaunch(t, agent, task)
	wrapper := testWrapper(t, executorBinary)
	proc := startWrapper(t, agent, wrapper)
	if final := waitTerminal(t, agent, task.TaskID.Value, 60*time.Second); final.GetState() != mesos.TASK_FINISHED {
		t.Fatalf("final %s %q", final.GetState(), final.GetMessage())
	}
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("executor.sh exit code %d, want the executor's 0", code)
	}
	want := filepath.Join(wrapper.StateDir, "bin", "sidecar-executor-"+sha256File(t, executorBinary))
	if copies := wrapper.SharedCopies(t); len(copies) != 1 || copies[0] != want {
		t.Fatalf("shared copies %q, want exactly %s", copies, want)
	}
	if got := sha256File(t, want); got != filepath.Base(want)[len("sidecar-executor-"):] {
		t.Fatalf("the shared copy's content hash %s does not match its name", got)
	}
	for _, dir := range []string{wrapper.StateDir, filepath.Join(wrapper.StateDir, "bin"), want} {
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v, want 0755", dir, info.Mode().Perm())
		}
	}
	if !strings.Contains(proc.stderr.String(), "running "+want) {
		t.Errorf("executor.sh did not say which binary it runs:\n%s", proc.stderr.String())
	}
	assertNothingInSandbox(t, proc.sandbox)
}

// A shared copy is reused only when its content matches its name: a file
// that does not is replaced by a fresh copy of the installed binary.
func TestExecutorShReplacesACorruptSharedCopy(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	binary := fakeExecutor(t, `echo "genuine executor ran: $*"`)
	wrapper := testWrapper(t, binary)
	copyPath := filepath.Join(wrapper.StateDir, "bin", "sidecar-executor-"+sha256File(t, binary))
	if err := os.MkdirAll(filepath.Dir(copyPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, []byte("#!/bin/sh\necho corrupt copy ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	proc := startWrapper(t, agent, wrapper)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, proc.output())
	}
	if out := proc.stdout.String(); !strings.Contains(out, "genuine executor ran") || strings.Contains(out, "corrupt") {
		t.Fatalf("the corrupt copy was run, or the genuine one was not:\n%s", out)
	}
	if sha256File(t, copyPath) != sha256File(t, binary) {
		t.Fatal("the corrupt copy was not replaced")
	}
	// A second run reuses the copy: same file, not rewritten.
	before, err := os.Stat(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	again := startWrapper(t, agent, wrapper)
	if code := again.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("second run exit code %d:\n%s", code, again.output())
	}
	after, err := os.Stat(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the second run did not reuse the shared copy")
	}
}

// When the state directory cannot be made (an unprivileged executor user),
// executor.sh runs the installed binary itself and says so; never anything
// in the sandbox.
func TestExecutorShFallsBackToTheInstalledBinary(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	binary := fakeExecutor(t, `echo "ran as $0"`)
	// A state directory under a regular file cannot be created, even by root.
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("executor.sh")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := executorshtest.New(t, script, binary, filepath.Join(blocker, "state"))
	proc := startWrapper(t, agent, wrapper)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, proc.output())
	}
	if !strings.Contains(proc.stdout.String(), "ran as "+binary) {
		t.Fatalf("the installed binary did not run:\n%s", proc.output())
	}
	if !strings.Contains(proc.stderr.String(), "running the installed binary directly") {
		t.Errorf("executor.sh did not explain the fallback:\n%s", proc.stderr.String())
	}
	assertNothingInSandbox(t, proc.sandbox)
}

func TestExecutorShMissingBinary(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	missing := filepath.Join(t.TempDir(), "not-installed")
	proc := startWrapper(t, agent, testWrapper(t, missing))
	if code := proc.waitExit(t, 10*time.Second); code != 127 {
		t.Fatalf("exit code %d, want 127", code)
	}
	if !strings.Contains(proc.stderr.String(), "no sidecar-executor binary at "+missing) {
		t.Fatalf("unclear error: %q", proc.stderr.String())
	}
}

// The executor's environment is the task author's: the variables that used
// to name the binary to run and a file to source are ignored.
func TestExecutorShIgnoresPathsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	markers := t.TempDir()
	binaryMarker := filepath.Join(markers, "binary-ran")
	sourcedMarker := filepath.Join(markers, "file-sourced")
	authorBinary := fakeExecutor(t, "touch "+binaryMarker)
	authorFile := filepath.Join(t.TempDir(), "environment")
	if err := os.WriteFile(authorFile, []byte("touch "+sourcedMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	installed := fakeExecutor(t, `echo "installed executor ran"`)
	proc := startWrapper(t, agent, testWrapper(t, installed),
		"SIDECAR_EXECUTOR_PATH="+authorBinary, "SIDECAR_EXECUTOR_SITE_ENV="+authorFile, "ENV="+authorFile, "BASH_ENV="+authorFile)
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, proc.output())
	}
	if !strings.Contains(proc.stdout.String(), "installed executor ran") {
		t.Fatalf("the installed executor did not run:\n%s", proc.output())
	}
	for _, marker := range []string{binaryMarker, sourcedMarker} {
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("%s exists: executor.sh honoured a path from the task's environment", filepath.Base(marker))
		}
	}
}

// The task's PATH could name the sandbox, where the container writes:
// executor.sh runs its commands, and the executor, with the system's PATH.
func TestExecutorShIgnoresTheTasksPATH(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	marker := filepath.Join(t.TempDir(), "tool-ran")
	authorTools := t.TempDir()
	for _, tool := range []string{"date", "sha256sum", "cut", "cp", "mv", "mkdir", "rm", "chmod", "od", "tr"} {
		script := "#!/bin/sh\ntouch " + marker + "\nexit 1\n"
		if err := os.WriteFile(filepath.Join(authorTools, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	installed := fakeExecutor(t, `echo "installed executor ran with PATH=$PATH"`)
	proc := startWrapper(t, agent, testWrapper(t, installed), "PATH="+authorTools+":"+os.Getenv("PATH"))
	if code := proc.waitExit(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, proc.output())
	}
	if !strings.Contains(proc.stdout.String(), "installed executor ran with PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n") {
		t.Fatalf("the executor did not run with the system's PATH:\n%s", proc.output())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("executor.sh ran a command found through the task's PATH")
	}
}

// executorChild finds the executor process that executor.sh started.
func executorChild(t *testing.T, wrapperPID int) int {
	t.Helper()
	var child int
	eventually(t, 10*time.Second, "executor.sh to start the executor", func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", wrapperPID, wrapperPID))
		if err != nil {
			return false
		}
		fields := strings.Fields(string(data))
		if len(fields) != 1 {
			return false
		}
		child, err = strconv.Atoi(fields[0])
		return err == nil
	})
	return child
}

// startWrappedTask runs a SIGTERM-respecting task through executor.sh and
// waits for it to be running.
func startWrappedTask(t *testing.T) (*mesostest.Agent, mesos.TaskInfo, *executorProcess) {
	t.Helper()
	agent := newAgent(t, mesostest.Config{})
	task := newDockerTask(t, agent, testImage, withShellCommand(termRespecting))
	mustLaunch(t, agent, task)
	proc := startWrapper(t, agent, testWrapper(t, executorBinary))
	waitRunning(t, agent, task, 60*time.Second)
	return agent, task, proc
}

func TestExecutorShForwardsSigterm(t *testing.T) {
	t.Parallel()
	agent, task, proc := startWrappedTask(t)
	proc.signal(t, syscall.SIGTERM)
	expectFinal(t, agent, task.TaskID.Value, 30*time.Second, mesos.TASK_KILLED)
	expectCleanExit(t, proc, task.TaskID.Value, 20*time.Second)
}

func TestExecutorShCleansUpAfterAKilledExecutor(t *testing.T) {
	t.Parallel()
	_, task, proc := startWrappedTask(t)
	child := executorChild(t, proc.cmd.Process.Pid)
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := proc.waitExit(t, 30*time.Second); code == 0 {
		t.Errorf("executor.sh exited 0 although its executor was killed")
	}
	assertNoContainer(t, task.TaskID.Value)
	if !strings.Contains(proc.stderr.String(), "making sure no container of it is left running") ||
		!strings.Contains(proc.output(), "cleanup: container stopped and removed") {
		t.Errorf("executor.sh did not say it cleaned up:\n%s", proc.output())
	}
}

// The container is hostile and can write the sandbox: it replaces every
// file there, and plants files named like the binary copy and the container
// record that earlier versions kept there, with a script that would leave a
// marker on the host, and names a victim container in every record-like
// file. When its executor is SIGKILLed, executor.sh's cleanup must run
// nothing from the sandbox, leave the victim alone and still stop and
// remove this task's container.
func TestExecutorShTrustsNothingTheContainerWrites(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	hostDir := t.TempDir()
	marker := filepath.Join(hostDir, "pwned")
	victim := startForeignContainer(t, fmt.Sprintf("hostside-victim-%d", time.Now().UnixNano()),
		map[string]string{"hostside-test": strconv.FormatInt(time.Now().UnixNano(), 10)})

	sandbox := t.TempDir()
	// The payload names a host path: it leaves the marker only if the host
	// runs it.
	attack := `payload='#!/bin/sh
touch ` + marker + `
'
cd /mnt/mesos/sandbox || exit 1
for f in * .[!.]* sidecar-executor .sidecar-executor-container sidecar-executor.copy; do
	[ "$f" = attack.sh ] && continue
	[ -d "$f" ] && continue
	printf '%s' "$payload" > "$f"
	chmod 0755 "$f"
done
for f in .sidecar-executor-container container-id .container record; do
	echo ` + victim + ` > "$f"
done
touch attacked
trap 'exit 0' TERM
while true; do sleep 0.05; done
`
	if err := os.WriteFile(filepath.Join(sandbox, "attack.sh"), []byte(attack), 0o644); err != nil {
		t.Fatal(err)
	}
	task := newDockerTask(t, agent, testImage, withShellCommand("sh /mnt/mesos/sandbox/attack.sh"))
	mustLaunch(t, agent, task)
	proc := startWrapperIn(t, agent, testWrapper(t, executorBinary), sandbox)
	waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
	eventually(t, 30*time.Second, "the container to tamper with the sandbox", func() bool {
		_, err := os.Stat(filepath.Join(sandbox, "attacked"))
		return err == nil
	})
	if planted, err := os.ReadFile(filepath.Join(sandbox, "sidecar-executor")); err != nil || !bytes.Contains(planted, []byte(marker)) {
		t.Fatalf("the attack did not plant its script (%v): the test proves nothing", err)
	}

	child := executorChild(t, proc.cmd.Process.Pid)
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := proc.waitExit(t, 60*time.Second); code == 0 {
		t.Errorf("executor.sh exited 0 although its executor was killed")
	}
	eventually(t, 30*time.Second, "this task's container to be removed", func() bool {
		return inspectTaskContainer(t, task.TaskID.Value) == nil
	})
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the host ran a script the container wrote")
	}
	c, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: victim})
	if err != nil || !c.State.Running {
		t.Fatalf("the victim container named in the sandbox was stopped or removed (%v)", err)
	}
}

// The task's environment can override the MESOS_* IDs the agent sets. An
// executor given another executor's IDs fails to subscribe and, when it
// dies, its cleanup runs under those IDs: it must still not stop that other
// executor's containers, even when the task also names their instance ID:
// executor.sh chooses the instance ID, nobody else.
func TestExecutorShCleanupIgnoresForgedOwnerIDs(t *testing.T) {
	t.Parallel()
	agent := newAgent(t, mesostest.Config{})
	agent.AllowViolations()
	cfg := agent.Config()
	victimFramework, victimExecutor, victimInstance := "hostside-victim-fw-"+uuid.NewString(), "hostside-victim-ex-"+uuid.NewString(), strings.ReplaceAll(uuid.NewString(), "-", "")
	victim := startForeignContainer(t, "hostside-victim-"+uuid.NewString(), map[string]string{
		frameworkIDLabel: victimFramework, executorIDLabel: victimExecutor, agentIDLabel: cfg.AgentID,
		instanceLabel: victimInstance, taskIDLabel: "hostside-victim-task"})
	proc := startWrapper(t, agent, testWrapper(t, executorBinary),
		"MESOS_FRAMEWORK_ID="+victimFramework, "MESOS_EXECUTOR_ID="+victimExecutor, "SIDECAR_EXECUTOR_INSTANCE="+victimInstance)
	// The executor keeps trying to subscribe for a minute; a SIGKILL ends
	// it at once, the way any crash would.
	eventually(t, 30*time.Second, "the executor to try subscribing under the forged IDs", func() bool {
		return strings.Contains(proc.stdout.String(), "could not subscribe to the agent")
	})
	if err := syscall.Kill(executorChild(t, proc.cmd.Process.Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := proc.waitExit(t, 60*time.Second); code == 0 {
		t.Fatalf("executor.sh exited 0 under forged IDs:\n%s", proc.output())
	}
	if !strings.Contains(proc.output(), "cleanup: no container labelled with this executor's IDs") {
		t.Errorf("the cleanup did not run or found something:\n%s", proc.output())
	}
	c, err := dockerClient.InspectContainerWithOptions(docker.InspectContainerOptions{ID: victim})
	if err != nil || !c.State.Running {
		t.Fatalf("the container of the executor whose IDs were forged was stopped or removed (%v)", err)
	}
}

// The old wait loop asked `kill -0 $child` whether the executor still ran;
// once reaped, its PID can belong to another process, and the loop then
// never ends. This reproduces that: in a PID namespace of its own, the
// executor's PID goes to a new process the moment the executor is reaped,
// while strace holds executor.sh's kill(2) calls for a moment so the reuse
// happens first. executor.sh must exit promptly all the same.
func TestExecutorShWaitIsNotFooledByAReusedPID(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"unshare", "strace"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireOrSkip(t, tool+" is needed to reproduce PID reuse: "+err.Error())
		}
	}
	if os.Geteuid() != 0 {
		requireOrSkip(t, "root is needed to set ns_last_pid in a PID namespace")
	}
	dir := t.TempDir()
	binary := fakeExecutor(t, `echo $$ > `+dir+`/pid
while [ ! -e `+dir+`/go ]; do sleep 0.01; done
exit 0`)
	wrapper := testWrapper(t, binary)
	driver := filepath.Join(dir, "driver.sh")
	// The driver is PID 1 of the namespace: nothing else forks there, so
	// the next process after ns_last_pid = P-1 gets P.
	script := `set -u
dir=$1
strace -f -qq -o /dev/null -e trace=kill -e inject=kill:delay_enter=2000000 "$2" &
traced=$!
while [ ! -s "$dir/pid" ]; do sleep 0.01; done
pid=$(cat "$dir/pid")
: > "$dir/go"
while kill -0 "$pid" 2>/dev/null; do :; done
echo $((pid - 1)) > /proc/sys/kernel/ns_last_pid
sleep 120 &
echo "$! $pid" > "$dir/reuse"
wait "$traced"
echo $? > "$dir/status"
`
	if err := os.WriteFile(driver, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", driver, dir, wrapper.Path)
	var output syncBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	eventually(t, 20*time.Second, "the executor's PID to be taken by another process", func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "reuse"))
		return err == nil && strings.Count(string(data), " ") == 1 && strings.HasSuffix(string(data), "\n")
	})
	data, _ := os.ReadFile(filepath.Join(dir, "reuse"))
	if holder, pid, _ := strings.Cut(strings.TrimSpace(string(data)), " "); holder != pid {
		t.Fatalf("could not reproduce PID reuse: the new process got %s, the executor had %s", holder, pid)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("executor.sh still waits 15s after its executor exited: it took the PID's new owner for its executor\n%s", output.String())
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil || strings.TrimSpace(string(status)) != "0" {
		t.Fatalf("executor.sh exit status %q (%v), want the executor's 0\n%s", status, err, output.String())
	}
}

// requireOrSkip skips a test that needs a tool this machine lacks, except
// under CI, where every test must run.
func requireOrSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}
