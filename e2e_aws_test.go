package main

// AWS credentials from Vault through the real binary, the real Docker
// engine and the vaulttest AWS engine: the keys reach the container, the
// lease is renewed, the task is stopped before the credentials expire,
// and the lease is revoked however the task ends.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/sidecar-executor/sidecar-executor/internal/mesostest"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

// awsEnvFile is where the e2e tasks write their environment, in the
// sandbox (mounted at /mnt/mesos/sandbox in the container).
const awsEnvFile = "aws-env"

// awsEnvCommand writes the container's environment to the sandbox and
// then exits with code, or with "run" keeps running until SIGTERM. The
// trap is set before the file appears, so once it is there a stop is heard.
func awsEnvCommand(code string) string {
	write := "env > /mnt/mesos/sandbox/" + awsEnvFile + ".tmp && mv /mnt/mesos/sandbox/" + awsEnvFile + ".tmp /mnt/mesos/sandbox/" + awsEnvFile
	if code == "run" {
		return `sh -c 'trap "exit 0" TERM; ` + write + `; while true; do sleep 0.05; done'`
	}
	return `sh -c '` + write + `; exit ` + code + `'`
}

// e2eAWSVault is the operator's Vault with the AWS role "app" and the
// operator file that gives the executor its address and the host token.
func e2eAWSVault(t *testing.T, role vaulttest.AWSRole) (*vaulttest.Server, string) {
	t.Helper()
	vault := vaulttest.NewServer(t)
	vault.AddAWSRole("app", role)
	vault.AddToken("hvs.e2e-host-token", time.Hour, "read:aws/creds/", "update:sys/leases/revoke")
	return vault, withOperatorFile(t, "VAULT_ADDR="+vault.URL(), "VAULT_TOKEN=hvs.e2e-host-token", "VAULT_MAX_RETRIES=0")
}

// readSandboxEnv waits for the task's environment file.
func readSandboxEnv(t *testing.T, proc *executorProcess) []string {
	t.Helper()
	path := filepath.Join(proc.sandbox, awsEnvFile)
	var content []byte
	eventually(t, 60*time.Second, "the container's environment in the sandbox", func() bool {
		var err error
		content, err = os.ReadFile(path)
		return err == nil
	})
	return strings.Split(string(content), "\n")
}

func TestAWSCredentialsReachTheContainerAndAreRevokedAtEveryEnd(t *testing.T) {
	requireDocker(t) // once for all subtests
	t.Parallel()
	ends := []struct {
		name    string
		command string
		cfg     mesostest.Config
		end     func(t *testing.T, agent *mesostest.Agent, task mesos.TaskInfo, proc *executorProcess)
		state   mesos.TaskState // 0: no terminal update reaches the agent
	}{
		{name: "finish", command: awsEnvCommand("0"), state: mesos.TASK_FINISHED},
		{name: "fail", command: awsEnvCommand("3"), state: mesos.TASK_FAILED},
		{name: "kill", command: awsEnvCommand("run"), state: mesos.TASK_KILLED,
			end: func(t *testing.T, agent *mesostest.Agent, task mesos.TaskInfo, _ *executorProcess) {
				mustKill(t, agent, task.TaskID.Value, nil)
			}},
		{name: "shutdown", command: awsEnvCommand("run"), state: mesos.TASK_KILLED,
			end: func(t *testing.T, agent *mesostest.Agent, _ mesos.TaskInfo, _ *executorProcess) {
				if err := agent.Shutdown(); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "agent lost", command: awsEnvCommand("run"), cfg: mesostest.Config{Checkpoint: false},
			end: func(t *testing.T, agent *mesostest.Agent, _ mesos.TaskInfo, _ *executorProcess) {
				agent.SetRefuse(mesostest.RefuseConnections)
			}},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vault, operator := e2eAWSVault(t, vaulttest.AWSRole{CredentialType: vaulttest.AWSAssumedRole})
			agent, task, proc := startTask(t, tc.cfg, testImage, []taskOption{withShellCommand(tc.command)},
				operator, "EXECUTOR_AWS_ROLE=app", "EXECUTOR_DEBUG=true")
			env := readSandboxEnv(t, proc)
			lease := onlyLease(t, vault)
			for _, want := range []string{"AWS_ACCESS_KEY_ID=" + lease.AccessKey, "AWS_SECRET_ACCESS_KEY=" + lease.SecretKey, "AWS_SESSION_TOKEN=" + lease.SessionToken} {
				if !containsLine(env, want) {
					t.Errorf("the container's environment lacks %s", strings.SplitN(want, "=", 2)[0])
				}
			}
			if tc.end != nil {
				waitState(t, agent, task.TaskID.Value, mesos.TASK_RUNNING, 60*time.Second)
				tc.end(t, agent, task, proc)
			}
			if tc.state != 0 {
				expectFinal(t, agent, task.TaskID.Value, 60*time.Second, tc.state)
			}
			code := proc.waitExit(t, 60*time.Second)
			if (code != 0) != (tc.state == 0) {
				t.Errorf("executor exit code %d", code)
			}
			revoked := onlyLease(t, vault)
			if !revoked.Revoked {
				t.Fatalf("the lease was not revoked when the task ended (%s)", tc.name)
			}
			if tc.state != 0 {
				accepted := agent.Accepted(task.TaskID.Value)
				if terminal := accepted[len(accepted)-1]; !revoked.RevokedAt.Before(terminal.Received) {
					t.Errorf("the lease was revoked at %s, after the terminal update arrived at %s", revoked.RevokedAt, terminal.Received)
				}
			}
			output := proc.output()
			for _, secret := range []string{lease.AccessKey, lease.SecretKey, lease.SessionToken, "hvs.e2e-host-token"} {
				if strings.Contains(output, secret) {
					t.Errorf("a credential appeared in the executor's output")
				}
				for _, u := range agent.Updates() {
					if strings.Contains(u.Status.GetMessage(), secret) {
						t.Errorf("a credential appeared in a %s status", u.Status.GetState())
					}
				}
			}
			assertNoContainer(t, task.TaskID.Value)
		})
	}
}

func containsLine(lines []string, want string) bool {
	for _, line := range lines {
		if line == want {
			return true
		}
	}
	return false
}

func TestAWSLeaseRenewedThenTaskStoppedBeforeExpiry(t *testing.T) {
	t.Parallel()
	vault, operator := e2eAWSVault(t, vaulttest.AWSRole{TTL: 10 * time.Second, MaxTTL: 20 * time.Second})
	agent, task, proc := startTask(t, mesostest.Config{Capabilities: []mesos.FrameworkInfo_Capability_Type{mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}},
		testImage, []taskOption{withShellCommand(awsEnvCommand("run"))}, operator, "EXECUTOR_AWS_ROLE=app")
	readSandboxEnv(t, proc)
	final := expectFinal(t, agent, task.TaskID.Value, 90*time.Second, mesos.TASK_FAILED,
		"the AWS credentials of Vault role app expire at", "maximum TTL is reached", "container exited with status 0")
	lease := onlyLease(t, vault)
	if lease.Renewals == 0 {
		t.Error("the lease was never renewed")
	}
	if !lease.Revoked {
		t.Error("the lease was not revoked")
	}
	if final.Reason != nil {
		t.Errorf("reason %s, want none", final.GetReason())
	}
	for _, s := range states(agent, task.TaskID.Value) {
		if s == mesos.TASK_KILLING {
			t.Error("TASK_KILLING sent for the executor's own stop")
		}
	}
	expectCleanExit(t, proc, task.TaskID.Value, 30*time.Second)
}

func TestAWSUnknownRoleFailsTheLaunch(t *testing.T) {
	t.Parallel()
	vault, operator := e2eAWSVault(t, vaulttest.AWSRole{})
	agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand("true")},
		operator, "EXECUTOR_AWS_ROLE=missing")
	final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED, "Vault role missing", `Role "missing" not found`)
	if final.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED {
		t.Errorf("reason %s, want REASON_CONTAINER_LAUNCH_FAILED", final.GetReason())
	}
	if code := proc.waitExit(t, 30*time.Second); code == 0 {
		t.Error("executor exited 0 after a failed launch")
	}
	if strings.Contains(proc.output(), "hvs.e2e-host-token") {
		t.Error("the host's token appeared in the executor's output")
	}
	if len(vault.AWSLeases()) != 0 {
		t.Error("a lease was issued")
	}
	assertNoContainer(t, task.TaskID.Value)
}

func TestAWSBadSettingsAndRefusedRolesFailBeforeVault(t *testing.T) {
	requireDocker(t) // once for all subtests
	t.Parallel()
	cases := []struct {
		name     string
		settings []string
		operator []string
		reason   mesos.TaskStatus_Reason
		message  []string
	}{
		{name: "ttl longer than max", settings: []string{"EXECUTOR_AWS_ROLE=app", "EXECUTOR_AWS_ROLE_TTL=2h", "EXECUTOR_AWS_ROLE_MAX_TTL=1h"},
			reason: mesos.REASON_CONTAINER_LAUNCH_FAILED, message: []string{"EXECUTOR_AWS_ROLE_TTL (2h0m0s) must not be longer than EXECUTOR_AWS_ROLE_MAX_TTL (1h0m0s)"}},
		{name: "role naming another path", settings: []string{"EXECUTOR_AWS_ROLE=../../sys/raw"},
			reason: mesos.REASON_CONTAINER_LAUNCH_FAILED, message: []string{"EXECUTOR_AWS_ROLE", "is not a Vault role name"}},
		{name: "role the operator does not allow", settings: []string{"EXECUTOR_AWS_ROLE=app", "EXECUTOR_ALLOWED_AWS_ROLES=app"},
			operator: []string{"EXECUTOR_ALLOWED_AWS_ROLES=batch,reports"},
			reason:   mesos.REASON_TASK_UNAUTHORIZED, message: []string{"Vault role app", "batch, reports", "EXECUTOR_ALLOWED_AWS_ROLES"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vault := vaulttest.NewServer(t)
			vault.AddAWSRole("app", vaulttest.AWSRole{})
			vault.AddToken("hvs.e2e-host-token", time.Hour, "read:aws/creds/", "update:sys/leases/revoke")
			operator := append([]string{"VAULT_ADDR=" + vault.URL(), "VAULT_TOKEN=hvs.e2e-host-token", "VAULT_MAX_RETRIES=0"}, tc.operator...)
			agent, task, proc := startTask(t, mesostest.Config{}, testImage, []taskOption{withShellCommand("true")},
				append([]string{withOperatorFile(t, operator...)}, tc.settings...)...)
			final := expectFinal(t, agent, task.TaskID.Value, 60*time.Second, mesos.TASK_FAILED, tc.message...)
			if final.GetReason() != tc.reason {
				t.Errorf("reason %s, want %s", final.GetReason(), tc.reason)
			}
			if code := proc.waitExit(t, 30*time.Second); code == 0 {
				t.Error("executor exited 0 after a refused launch")
			}
			if reqs := vault.Requests(); len(reqs) != 0 {
				t.Errorf("Vault received %d requests for a task that was refused", len(reqs))
			}
			assertNoContainer(t, task.TaskID.Value)
		})
	}
}
