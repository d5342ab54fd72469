package main

// End-to-end tests: the built mesos-local runs the examples through the
// real executor binary against the real Docker engine, as make demo does.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"github.com/sidecar-executor/sidecar-executor/internal/executorshtest"
	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// repoRoot is where make runs, so example paths read as in the Makefile.
const repoRoot = "../.."

// testImage is built by scripts/test-image.sh (make test-image).
const testImage = "sidecar-executor/busybox:1.35"

var (
	buildOnce    sync.Once
	buildErr     error
	binDir       string
	mesosLocal   string
	executorBin  string
	dockerClient *docker.Client
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// needBinaries checks Docker and the test image (skipping the test without
// them, failing it under CI=true or make test: see testutil.RequireDocker),
// then builds mesos-local and the executor once per run (with the race
// detector when the tests have it).
func needBinaries(t *testing.T) {
	t.Helper()
	client := testutil.RequireDocker(t, testImage)
	buildOnce.Do(func() {
		dockerClient = client
		var err error
		binDir, err = os.MkdirTemp("", "mesos-local-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		mesosLocal = filepath.Join(binDir, "mesos-local")
		executorBin = filepath.Join(binDir, "sidecar-executor")
		// The executor reads its operator's file from testOperatorEnvVar
		// when a test sets it (-operator-env-var), else from
		// /etc/sidecar-executor/environment as a release build does.
		for _, b := range []struct{ out, pkg, ldflags string }{
			{mesosLocal, ".", ""},
			{executorBin, repoRoot, "-X main.operatorEnvOverrideVar=" + testOperatorEnvVar},
		} {
			args := []string{"build", "-o", b.out}
			if b.ldflags != "" {
				args = append(args, "-ldflags", b.ldflags)
			}
			if raceEnabled {
				args = append(args, "-race")
			}
			build := exec.Command("go", append(args, b.pkg)...)
			if output, err := build.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, output)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// localRun is a running mesos-local.
type localRun struct {
	cmd     *exec.Cmd
	output  *testutil.SyncBuffer // stdout and stderr
	sandbox string
	exited  chan struct{}
	code    int
}

// startLocal runs the built mesos-local from the repository root with the
// built executor, a sandbox of the test's, and only PATH, HOME and DOCKER_*
// of this environment plus env.
func startLocal(t *testing.T, args []string, env ...string) *localRun {
	t.Helper()
	needBinaries(t)
	r := &localRun{output: &testutil.SyncBuffer{}, sandbox: filepath.Join(t.TempDir(), "sandbox"), exited: make(chan struct{})}
	r.cmd = exec.Command(mesosLocal, append([]string{"-executor", executorBin, "-sandbox", r.sandbox}, args...)...)
	r.cmd.Dir = repoRoot
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "DOCKER_") {
			r.cmd.Env = append(r.cmd.Env, kv)
		}
	}
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Stdout, r.cmd.Stderr = r.output, r.output
	// A process group of its own, as a shell gives a foreground job: the
	// interrupt test signals the group like a terminal's Ctrl-C.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
		if id := r.taskID(); id != "" {
			for _, c := range taskContainers(t, id) {
				_ = dockerClient.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true})
			}
		}
		if t.Failed() {
			t.Logf("mesos-local output:\n%s", r.output.String())
			for _, name := range []string{"stdout", "stderr"} {
				if data, err := os.ReadFile(filepath.Join(r.sandbox, name)); err == nil {
					t.Logf("executor %s:\n%s", name, data)
				}
			}
		}
	})
	return r
}

var taskIDLine = regexp.MustCompile(`(?m)^mesos-local: task (\S+) from `)

func (r *localRun) taskID() string {
	if m := taskIDLine.FindStringSubmatch(r.output.String()); m != nil {
		return m[1]
	}
	return ""
}

// wait returns mesos-local's exit code.
func (r *localRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-r.exited:
		return r.code
	case <-time.After(timeout):
		t.Fatalf("mesos-local still running after %s", timeout)
		return -1
	}
}

// waitForLine polls the output until a line matches pattern and returns
// the match's groups.
func (r *localRun) waitForLine(t *testing.T, timeout time.Duration, pattern string) []string {
	t.Helper()
	re := regexp.MustCompile("(?m)" + pattern)
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(r.output.String()); m != nil {
			return m
		}
		select {
		case <-r.exited:
			if m := re.FindStringSubmatch(r.output.String()); m != nil {
				return m
			}
			t.Fatalf("mesos-local exited (%d) without printing a line matching %q", r.code, pattern)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line matching %q within %s", pattern, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertLinesInOrder checks that each pattern matches a line after the
// line the previous one matched.
func assertLinesInOrder(t *testing.T, output string, patterns ...string) {
	t.Helper()
	lines := strings.Split(output, "\n")
	at := 0
	for _, pattern := range patterns {
		re := regexp.MustCompile(pattern)
		found := false
		for ; at < len(lines); at++ {
			if re.MatchString(lines[at]) {
				found = true
				at++
				break
			}
		}
		if !found {
			t.Fatalf("no line matching %q after the previous ones in:\n%s", pattern, output)
		}
	}
}

func (r *localRun) sandboxFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.sandbox, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func taskContainers(t *testing.T, taskID string) []docker.APIContainers {
	t.Helper()
	containers, err := dockerClient.ListContainers(docker.ListContainersOptions{
		All:     true,
		Filters: map[string][]string{"label": {taskIDLabel + "=" + taskID}},
	})
	if err != nil {
		t.Fatalf("list the task's containers: %v", err)
	}
	return containers
}

func assertNoContainerLeft(t *testing.T, r *localRun) {
	t.Helper()
	id := r.taskID()
	if id == "" {
		t.Fatal("mesos-local printed no task ID")
	}
	if left := taskContainers(t, id); len(left) > 0 {
		t.Errorf("the task left container %s (%s) behind", left[0].ID[:12], left[0].State)
	}
}

// demoArgs are the arguments make demo gives mesos-local.
func demoArgs(t *testing.T) []string {
	t.Helper()
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DEMO_ARGS\s*:?=\s*(.+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile defines no DEMO_ARGS")
	}
	return strings.Fields(string(m[1]))
}

// demoTestTimeout replaces make demo's -timeout in TestDemo.
const demoTestTimeout = 30 * time.Second

// TestDemo runs what make demo runs: the web-server example, killed by
// -timeout, which -timeout-ok turns into success for a healthy task.
func TestDemo(t *testing.T) {
	t.Parallel()
	// make demo's -timeout is sized for a person watching on an idle
	// machine, and the task must be running and healthy when it fires. On
	// a loaded one Docker alone has taken 5s of the 8 to start the
	// container, and the task was killed during its launch: the test gives
	// it demoTestTimeout instead. Everything else is make demo's.
	args := demoArgs(t)
	i := slices.Index(args, "-timeout")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("the demo's arguments %q set no -timeout", args)
	}
	args[i+1] = demoTestTimeout.String()
	r := startLocal(t, args)
	port := r.waitForLine(t, 30*time.Second, `container 8080/tcp is this machine's port (\d+)`)[1]
	r.waitForLine(t, 60*time.Second, `TASK_RUNNING .*healthy=true`)

	// The assigned host port reaches the web server, whose page shows the
	// environment the task was given.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatalf("the web server is not reachable on the assigned port %s: %v", port, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	hostname, _ := os.Hostname()
	if want := fmt.Sprintf("hello from web-server on %s, port %s", hostname, port); !strings.Contains(string(body), want) {
		t.Errorf("page %q lacks %q", body, want)
	}

	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0 for a healthy task stopped by -timeout with -timeout-ok", code)
	}
	output := r.output.String()
	// The task's life as the executor reported it, in order.
	assertLinesInOrder(t, output,
		`^mesos-local: task web-server-\d+-[0-9a-f]{4} from examples/web-server.json$`,
		`^  sandbox +`+regexp.QuoteMeta(r.sandbox)+`$`,
		`^  executor stdout +`+regexp.QuoteMeta(filepath.Join(r.sandbox, "stdout"))+`$`,
		`^  executor stderr +`+regexp.QuoteMeta(filepath.Join(r.sandbox, "stderr"))+`$`,
		`^ +\+\d+\.\d{3}s  TASK_STARTING `,
		`^ +\+\d+\.\d{3}s  TASK_RUNNING +message="container [0-9a-f]{12} is running"$`,
		`^ +\+\d+\.\d{3}s  TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=true  message="service [0-9a-f]{12} on Sidecar host \\"[^"\\]+\\" is ALIVE"$`,
		`^ +\+\d+\.\d{3}s  kill +-timeout `+demoTestTimeout.String()+` reached: sending KILL`,
		`^ +\+\d+\.\d{3}s  TASK_KILLED +message="killed by the scheduler`,
		`^  exit code +0 `,
	)
	// The embedded Sidecar's side of it: it lists the container the
	// executor started, ALIVE, and the executor reports it healthy because
	// of that, so the Sidecar's line comes before the health update. It
	// finds the container by polling Docker, which may show it running
	// before the executor's TASK_RUNNING is printed: the two are not
	// ordered.
	running := regexp.MustCompile(`(?m)  TASK_RUNNING +message="container ([0-9a-f]{12}) is running"$`).FindStringSubmatch(output)[1]
	assertLinesInOrder(t, output,
		`^ +\+\d+\.\d{3}s  sidecar +service web-server, container `+running+`: ALIVE on host \S+$`,
		`^ +\+\d+\.\d{3}s  TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=true  message="service `+running+` on Sidecar host `,
	)
	if strings.Contains(output, "TASK_FAILED") {
		t.Error("a TASK_FAILED was printed")
	}
	if log := r.sandboxFile(t, "stdout"); !strings.Contains(log, "KILL received from the agent") {
		t.Error("the executor's log in the sandbox's stdout does not show the KILL")
	}
	assertNoContainerLeft(t, r)
}

func TestFailingJobExample(t *testing.T) {
	t.Parallel()
	r := startLocal(t, []string{"examples/failing-job.json"})
	if code := r.wait(t, 60*time.Second); code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	assertLinesInOrder(t, r.output.String(),
		`TASK_RUNNING `,
		`TASK_FAILED +message="container exited with status 3"$`,
		`^  exit code +1 \(TASK_FAILED\)$`,
	)
	// The executor copied the container's output into the sandbox.
	if stdout := r.sandboxFile(t, "stdout"); !strings.Contains(stdout, "connecting to postgres://db.invalid:5432/orders") {
		t.Errorf("the sandbox's stdout lacks the job's output:\n%s", stdout)
	}
	if stderr := r.sandboxFile(t, "stderr"); !strings.Contains(stderr, "error: postgres://db.invalid:5432/orders: connection refused") {
		t.Errorf("the sandbox's stderr lacks the job's error output:\n%s", stderr)
	}
	assertNoContainerLeft(t, r)
}

func TestUnhealthyExample(t *testing.T) {
	t.Parallel()
	// The executor's first Sidecar poll comes 1s (EXECUTOR_SIDECAR_BACKOFF)
	// after its TASK_RUNNING, and the embedded Sidecar may list the container
	// ALIVE before that update: -unhealthy-after must leave that first poll
	// time to see ALIVE on a loaded machine, or the healthy=true update
	// never comes.
	r := startLocal(t, []string{"-unhealthy-after", "5s", "examples/unhealthy-service.json"})
	if code := r.wait(t, 60*time.Second); code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	assertLinesInOrder(t, r.output.String(),
		`TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=true `,
		`sidecar +service unhealthy-service, container [0-9a-f]{12}: UNHEALTHY \(-unhealthy-after 5s\)$`,
		`TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=false `,
		// EXECUTOR_SIDECAR_MAX_FAILS=2 from the task's executor environment.
		`TASK_FAILED +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED  healthy=false  message="Sidecar reported the container unhealthy 2 times in a row`,
		`^  exit code +1 \(TASK_FAILED\)$`,
	)
	assertNoContainerLeft(t, r)
}

// The batch job runs through executor.sh, the way Mesos starts the executor.
func TestBatchJobExampleThroughExecutorSh(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	wrapper := testWrapper(t, executorBin)
	// The last -executor wins over startLocal's.
	r := startLocal(t, []string{"-executor", wrapper.Path, "examples/batch-job.json"})
	if code := r.wait(t, 60*time.Second); code != exitFinished {
		t.Errorf("exit code %d, want %d", code, exitFinished)
	}
	assertLinesInOrder(t, r.output.String(),
		`sidecar +container [0-9a-f]{12} has the label SidecarDiscover=false: not listed$`,
		`TASK_FINISHED +message="container exited with status 0"$`,
		`^  exit code +0 \(TASK_FINISHED\)$`,
	)
	if result := r.sandboxFile(t, "result.txt"); result != "finished\n" {
		t.Errorf("result.txt in the sandbox holds %q", result)
	}
	if copies := wrapper.SharedCopies(t); len(copies) != 1 {
		t.Errorf("executor.sh did not run a shared copy of the executor: %q", copies)
	}
	assertNoContainerLeft(t, r)
}

func TestVaultExample(t *testing.T) {
	t.Parallel()
	const token, password = "hvs.example-token-5521", "example-password-never-printed"
	vault := vaulttest.NewServer(t)
	vault.MountKV("secret/", 2)
	vault.PutSecret("secret/demo/db", map[string]any{"password": password})
	vault.AddToken(token, time.Hour, "read:secret/demo/")
	r := startLocal(t, []string{"examples/vault-secret.json"}, "VAULT_ADDR="+vault.URL(), "VAULT_TOKEN="+token, "VAULT_MAX_RETRIES=0")
	if code := r.wait(t, 60*time.Second); code != exitFinished {
		t.Errorf("exit code %d, want %d", code, exitFinished)
	}
	assertLinesInOrder(t, r.output.String(), `TASK_FINISHED `)
	for _, where := range []string{r.output.String(), r.sandboxFile(t, "stdout"), r.sandboxFile(t, "stderr")} {
		if strings.Contains(where, password) || strings.Contains(where, token) {
			t.Fatal("a secret was printed")
		}
	}
	assertNoContainerLeft(t, r)
}

// Ctrl-C in a terminal signals the whole foreground process group: the
// executor, in a group of its own, must hear of it only as a KILL.
func TestInterruptSendsKill(t *testing.T) {
	t.Parallel()
	r := startLocal(t, []string{"examples/web-server.json"})
	r.waitForLine(t, 60*time.Second, `TASK_RUNNING +message="container`)
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 60*time.Second); code != exitKilled {
		t.Errorf("exit code %d, want %d", code, exitKilled)
	}
	assertLinesInOrder(t, r.output.String(),
		`kill +Ctrl-C \(SIGINT\): sending KILL \(again for SHUTDOWN\)$`,
		`TASK_KILLING `,
		`TASK_KILLED +message="killed by the scheduler`,
		`^  exit code +3 \(TASK_KILLED\)$`,
	)
	if log := r.sandboxFile(t, "stdout"); strings.Contains(log, "the executor received") {
		t.Error("the executor received the terminal's signal itself")
	}
	assertNoContainerLeft(t, r)
}

// A missing executor binary behind executor.sh: the executor process fails
// at once, and the agent reports the task as a real one does.
func TestExecutorThatDiesIsReportedByTheAgent(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	wrapper := testWrapper(t, "/nonexistent/sidecar-executor")
	// The last -executor wins over startLocal's.
	r := startLocal(t, []string{"-executor", wrapper.Path, "examples/batch-job.json"})
	if code := r.wait(t, 60*time.Second); code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	assertLinesInOrder(t, r.output.String(),
		`executor +exited: status 127$`,
		`TASK_FAILED +reason=REASON_EXECUTOR_TERMINATED  message="Abnormal executor termination: status 127"  \(sent by the agent\)$`,
		`last lines of .*/stderr:`,
		`no sidecar-executor binary at /nonexistent/sidecar-executor`,
	)
}

// testWrapper is a copy of the repository's executor.sh that runs binary
// and keeps its shared copies in a temporary directory.
func testWrapper(t *testing.T, binary string) executorshtest.Wrapper {
	t.Helper()
	script, err := filepath.Abs(filepath.Join(repoRoot, "executor.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return executorshtest.New(t, script, binary, "")
}

// The health-checked example: the Mesos health check reports the service
// healthy, the Mesos check reports its command's exit code, and removing
// the page makes the health check kill the task.
func TestHealthCheckedExample(t *testing.T) {
	t.Parallel()
	r := startLocal(t, []string{"examples/health-checked.json"})
	r.waitForLine(t, 60*time.Second, `TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED +healthy=true +message="Mesos health check passed"`)
	r.waitForLine(t, 60*time.Second, `TASK_RUNNING +reason=REASON_TASK_CHECK_STATUS_UPDATED .*message="check status updated: command exit code 0"`)
	container := r.waitForLine(t, 5*time.Second, `container ([0-9a-f]{12}) is running`)[1]
	if out, err := exec.Command("docker", "exec", container, "rm", "/www/index.html").CombinedOutput(); err != nil {
		t.Fatalf("docker exec rm: %v: %s", err, out)
	}
	if code := r.wait(t, 90*time.Second); code != exitKilled {
		t.Errorf("exit code %d, want %d (TASK_KILLED)", code, exitKilled)
	}
	assertLinesInOrder(t, r.output.String(),
		`TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED +healthy=false +message="Mesos health check failed \(1 of 3\)`,
		`TASK_RUNNING +reason=REASON_TASK_HEALTH_CHECK_STATUS_UPDATED +healthy=false +message="Mesos health check failed \(2 of 3\)`,
		`TASK_KILLED +healthy=false +message="Mesos health check failed 3 times in a row .*404`,
	)
	assertNoContainerLeft(t, r)
}
