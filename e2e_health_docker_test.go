package main

// End-to-end tests of Docker's HEALTHCHECK as the task's health: the real
// executor, the real Docker engine running an image built for the test
// with a HEALTHCHECK (test -f /tmp/ok, every second, one retry), the
// emulated agent. The test toggles /tmp/ok with docker exec.

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
)

// healthcheckedImage builds, from the test image, an image whose
// HEALTHCHECK passes while /tmp/ok exists, and removes it when the test
// ends. Building adds only metadata: nothing is pulled or run.
func healthcheckedImage(t *testing.T) string {
	t.Helper()
	client := requireDocker(t)
	name := fmt.Sprintf("sidecar-executor/busybox-healthcheck:e2e-%d", time.Now().UnixNano())
	dockerfile := "FROM " + testImage + "\nHEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD test -f /tmp/ok\n"
	var context bytes.Buffer
	tw := tar.NewWriter(&context)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(dockerfile)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	// A client of its own: the shared one's API-version check, which a
	// build makes, is not safe for concurrent use.
	builder, err := docker.NewClientFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	var output bytes.Buffer
	err = builder.BuildImage(docker.BuildImageOptions{Context: testContext(t, 2*time.Minute), Name: name,
		InputStream: &context, OutputStream: &output, RmTmpContainer: true, ForceRmTmpContainer: true})
	if err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, output.String())
	}
	t.Cleanup(func() {
		if err := client.RemoveImageExtended(name, docker.RemoveImageOptions{Force: true}); err != nil {
			t.Logf("removing %s: %v", name, err)
		}
	})
	image, err := client.InspectImage(name)
	if err != nil || image.Config == nil || image.Config.Healthcheck == nil || len(image.Config.Healthcheck.Test) == 0 {
		t.Fatalf("the built image has no HEALTHCHECK: %v", err)
	}
	return name
}

// dockerHealthSettings read Docker's verdict often and kill soon.
var dockerHealthSettings = []string{"EXECUTOR_DOCKER_HEALTH_POLL_INTERVAL=250ms", "EXECUTOR_DOCKER_HEALTH_KILL_AFTER=2s"}

// loggedDockerUnhealthy counts the healthy=false updates from Docker's
// verdict the executor queued (the outbox may coalesce one with the
// kill's TASK_KILLING before the agent sees it).
func loggedDockerUnhealthy(proc *executorProcess) int {
	n := 0
	for _, line := range strings.Split(proc.output(), "\n") {
		if strings.Contains(line, "status update: Docker HEALTHCHECK failed") && strings.Contains(line, "TASK_RUNNING") &&
			(strings.Contains(line, "healthy=false") || strings.Contains(line, `"healthy":false`)) {
			n++
		}
	}
	return n
}

func TestDockerHealthcheckReportsAndKills(t *testing.T) {
	t.Parallel()
	image := healthcheckedImage(t)
	agent, task, proc := startTask(t, mesostest.Config{}, image, []taskOption{
		withShellCommand(`sh -c 'touch /tmp/ok; trap "exit 0" TERM; while true; do sleep 0.05; done'`),
		withLabel("SidecarDiscover", "false"),
	}, dockerHealthSettings...)
	id := task.TaskID.Value
	eventually(t, 60*time.Second, "a healthy=true update", func() bool {
		flags := agentHealthFlags(t, agent, id)
		return len(flags) > 0
	})
	if flags := agentHealthFlags(t, agent, id); len(flags) != 1 || !flags[0] {
		t.Fatalf("health updates %v, want one healthy=true first ('starting' is no verdict)", flags)
	}
	container := inspectTaskContainer(t, id)
	if container == nil {
		t.Fatal("no container")
	}
	execIn(t, container.ID, "rm", "/tmp/ok")
	final := expectFinal(t, agent, id, 60*time.Second, mesos.TASK_KILLED,
		"Docker HEALTHCHECK failed: unhealthy for ", "EXECUTOR_DOCKER_HEALTH_KILL_AFTER=2s", "last probe exited with status 1")
	if final.Healthy == nil || final.GetHealthy() {
		t.Errorf("terminal healthy %v, want false", final.Healthy)
	}
	if final.Reason != nil {
		t.Errorf("terminal reason %s, want none (as a failed Mesos health check)", final.GetReason())
	}
	expectCleanExit(t, proc, id, 30*time.Second)
	if n := loggedDockerUnhealthy(proc); n != 1 {
		t.Errorf("%d healthy=false updates from Docker's verdict, want 1 (one per change)", n)
	}
	flags := agentHealthFlags(t, agent, id)
	if len(flags) < 1 || len(flags) > 2 || !flags[0] || (len(flags) == 2 && flags[1]) {
		t.Errorf("the agent got health updates %v, want [true false] (the last may be coalesced with TASK_KILLING)", flags)
	}
	if !strings.Contains(proc.output(), "watching Docker's HEALTHCHECK") {
		t.Error("the watch did not say it started")
	}
}

func TestDockerHealthcheckIsSidecarsBusinessWhenSidecarWatches(t *testing.T) {
	t.Parallel()
	image := healthcheckedImage(t)
	// SidecarDiscover unset: Sidecar watches the task (none answers here,
	// which is never a verdict). /tmp/ok never exists: Docker calls the
	// container unhealthy after its first probe.
	agent, task, proc := startTask(t, mesostest.Config{}, image, []taskOption{withShellCommand(termRespecting)},
		append([]string{"EXECUTOR_DOCKER_HEALTH_KILL_AFTER=0s"}, dockerHealthSettings[0])...)
	id := task.TaskID.Value
	waitRunning(t, agent, task, 60*time.Second)
	// Docker's verdict has been unhealthy for three probes: a watch
	// reading it every 250ms would have killed the task by now.
	eventually(t, 60*time.Second, "Docker's verdict: unhealthy three times", func() bool {
		c := inspectTaskContainer(t, id)
		return c != nil && c.State.Health.Status == "unhealthy" && c.State.Health.FailingStreak >= 3
	})
	if flags := agentHealthFlags(t, agent, id); len(flags) != 0 {
		t.Errorf("health updates %v from Docker's verdict while Sidecar watches", flags)
	}
	if strings.Contains(proc.output(), "watching Docker's HEALTHCHECK") {
		t.Error("Docker's HEALTHCHECK was watched although Sidecar watches the task")
	}
	mustKill(t, agent, id, nil)
	final := expectFinal(t, agent, id, 60*time.Second, mesos.TASK_KILLED)
	if final.Healthy != nil {
		t.Errorf("a scheduler's kill reports no health: %v", final.GetHealthy())
	}
	expectCleanExit(t, proc, id, 30*time.Second)
}
