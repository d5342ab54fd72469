package main

// AWS credentials from Vault against the vaulttest double: settings, the
// role admission, the lease's renewals, the stop before expiry and the
// revocation at every end of a task (with the fake container runtime, no
// Docker).

import (
	"context"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
)

func TestAWSSettingsValidation(t *testing.T) {
	cases := []struct {
		name     string
		settings map[string]string
		problem  string // "" when valid
	}{
		{"defaults", nil, ""},
		{"ttl within max", map[string]string{"EXECUTOR_AWS_ROLE": "app", "EXECUTOR_AWS_ROLE_TTL": "1h", "EXECUTOR_AWS_ROLE_MAX_TTL": "2h"}, ""},
		{"ttl above max", map[string]string{"EXECUTOR_AWS_ROLE_TTL": "3h", "EXECUTOR_AWS_ROLE_MAX_TTL": "2h"},
			"EXECUTOR_AWS_ROLE_TTL (3h0m0s) must not be longer than EXECUTOR_AWS_ROLE_MAX_TTL (2h0m0s)"},
		{"max 0 disables the check", map[string]string{"EXECUTOR_AWS_ROLE_TTL": "3000h", "EXECUTOR_AWS_ROLE_MAX_TTL": "0"}, ""},
		{"negative ttl", map[string]string{"EXECUTOR_AWS_ROLE_TTL": "-1s"}, "EXECUTOR_AWS_ROLE_TTL must not be negative"},
		{"negative max", map[string]string{"EXECUTOR_AWS_ROLE_MAX_TTL": "-1s"}, "EXECUTOR_AWS_ROLE_MAX_TTL must not be negative"},
		{"role naming another path", map[string]string{"EXECUTOR_AWS_ROLE": "../sys/leases"}, `EXECUTOR_AWS_ROLE "../sys/leases" is not a Vault role name`},
		{"role with a query", map[string]string{"EXECUTOR_AWS_ROLE": "app?ttl=1"}, "is not a Vault role name"},
		{"bad allowed role", map[string]string{"EXECUTOR_ALLOWED_AWS_ROLES": "app, a/b"}, `EXECUTOR_ALLOWED_AWS_ROLES holds "a/b"`},
		{"bad ttl syntax", map[string]string{"EXECUTOR_AWS_ROLE_TTL": "soon"}, "EXECUTOR_AWS_ROLE_TTL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfigFrom(testSettingsEnv(tc.settings))
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("valid settings refused: %v", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("error %v, want one containing %q", err, tc.problem)
			}
		})
	}
	cfg := mustLoadConfig(t, testSettingsEnv(nil))
	if cfg.AWSRole != "" || cfg.AWSRoleTTL != 0 || cfg.AWSRoleMaxTTL != 744*time.Hour || len(cfg.AllowedAWSRoles) != 0 {
		t.Fatalf("defaults %+v, want upstream's (no role, TTL 0, max 744h) and no allowed list", cfg.AWSSettings)
	}
}

func TestAWSRoleIsTaskTunableButTheAllowedListIsOperatorOnly(t *testing.T) {
	env := testSettingsEnv(map[string]string{"EXECUTOR_ALLOWED_AWS_ROLES": "app,batch"},
		"EXECUTOR_AWS_ROLE=admin", "EXECUTOR_AWS_ROLE_TTL=1h", "EXECUTOR_ALLOWED_AWS_ROLES=admin")
	cfg := mustLoadConfig(t, env)
	if cfg.AWSRole != "admin" || cfg.AWSRoleTTL != time.Hour {
		t.Fatalf("the task's role settings were not taken: %+v", cfg.AWSSettings)
	}
	if !slices.Equal(cfg.AllowedAWSRoles, []string{"app", "batch"}) {
		t.Fatalf("allowed roles %v: the task's list must be ignored", cfg.AllowedAWSRoles)
	}
	err := cfg.AWSSettings.admitRole(false)
	if err == nil || !strings.Contains(err.Error(), "Vault role admin") || !strings.Contains(err.Error(), "EXECUTOR_ALLOWED_AWS_ROLES") {
		t.Fatalf("admission %v, want a refusal naming the role and the setting", err)
	}
	if err := cfg.AWSSettings.admitRole(true); err != nil {
		t.Fatalf("a task with its own Vault token was refused by the host's list: %v", err)
	}
	cfg.AWSRole = "batch"
	if err := cfg.AWSSettings.admitRole(false); err != nil {
		t.Fatalf("an allowed role was refused: %v", err)
	}
	cfg.AllowedAWSRoles = nil
	cfg.AWSRole = "anything"
	if err := cfg.AWSSettings.admitRole(false); err != nil {
		t.Fatalf("an empty list must allow any role: %v", err)
	}
}

func TestWithAWSCredentialsReplacesTheTasksOwn(t *testing.T) {
	logs := &syncBuffer{}
	logger := log.New()
	logger.SetOutput(logs)
	env := []string{"A=1", "AWS_ACCESS_KEY_ID=task-key", "AWS_SESSION_TOKEN=stale", "AWS_REGION=eu-west-1"}
	got := withAWSCredentials(env, []string{"AWS_ACCESS_KEY_ID=vault-key", "AWS_SECRET_ACCESS_KEY=vault-secret"}, log.NewEntry(logger))
	want := []string{"A=1", "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=vault-key", "AWS_SECRET_ACCESS_KEY=vault-secret"}
	if !slices.Equal(got, want) {
		t.Fatalf("env %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "AWS_ACCESS_KEY_ID AWS_SESSION_TOKEN") || strings.Contains(logs.String(), "stale") {
		t.Fatalf("the log should name the replaced variables and no value: %s", logs.String())
	}
}

// awsVault is a Vault double with an AWS role and a host token that may
// read it and revoke leases.
func awsVault(t *testing.T, role vaulttest.AWSRole) *vaulttest.Server {
	t.Helper()
	vault := vaulttest.NewServer(t)
	vault.AddAWSRole("app", role)
	vault.AddToken("hvs.host", time.Hour, "read:aws/creds/app", "update:sys/leases/revoke")
	return vault
}

// awsOperator is the operator's settings pointing at vault, plus extra.
func awsOperator(vault *vaulttest.Server, extra ...string) map[string]string {
	settings := map[string]string{
		"VAULT_ADDR": vault.URL(), "VAULT_TOKEN": "hvs.host", "VAULT_MAX_RETRIES": "0",
		"EXECUTOR_AWS_ROLE": "app",
	}
	for _, kv := range extra {
		name, value, _ := strings.Cut(kv, "=")
		settings[name] = value
	}
	return settings
}

// onlyLease returns the one lease the engine issued.
func onlyLease(t *testing.T, vault *vaulttest.Server) vaulttest.AWSLease {
	t.Helper()
	leases := vault.AWSLeases()
	if len(leases) != 1 {
		t.Fatalf("%d leases issued, want 1", len(leases))
	}
	return leases[0]
}

// assertNoAWSSecret checks that none of the lease's keys reached the log
// or a status message.
func assertNoAWSSecret(t *testing.T, u *unitTask, lease vaulttest.AWSLease) {
	t.Helper()
	for _, secret := range []string{lease.AccessKey, lease.SecretKey, lease.SessionToken} {
		if secret == "" {
			continue
		}
		if strings.Contains(u.logs.String(), secret) {
			t.Errorf("an AWS key appeared in the executor's log")
		}
		for _, s := range u.statuses.all() {
			if strings.Contains(s.status.GetMessage(), secret) {
				t.Errorf("an AWS key appeared in a %s status", s.status.GetState())
			}
		}
	}
}

func TestTaskUnitAWSCredentialsReachTheContainerAndAreRevokedAtEveryEnd(t *testing.T) {
	ends := []struct {
		name   string
		end    func(u *unitTask, engine *fakeRuntime, c *fakeContainer)
		state  mesos.TaskState
		reason *mesos.TaskStatus_Reason
	}{
		{"finish", func(u *unitTask, engine *fakeRuntime, c *fakeContainer) { engine.exit(c.id, 0) }, mesos.TASK_FINISHED, nil},
		{"fail", func(u *unitTask, engine *fakeRuntime, c *fakeContainer) { engine.exit(c.id, 3) }, mesos.TASK_FAILED, nil},
		{"kill", func(u *unitTask, engine *fakeRuntime, c *fakeContainer) { u.kill(time.Second) }, mesos.TASK_KILLED, nil},
		{"shutdown", func(u *unitTask, engine *fakeRuntime, c *fakeContainer) {
			u.runner.Stop(budgetedStop(causeShutdown, 5*time.Second, "the agent shut the executor down"))
		}, mesos.TASK_KILLED, nil},
		{"agent lost", func(u *unitTask, engine *fakeRuntime, c *fakeContainer) {
			u.runner.Stop(budgetedStop(causeAgentLost, 5*time.Second, "the agent did not come back"))
		}, mesos.TASK_FAILED, mesos.REASON_AGENT_DISCONNECTED.Enum()},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vault := awsVault(t, vaulttest.AWSRole{CredentialType: vaulttest.AWSAssumedRole})
			engine := newUnitRuntime()
			info := unitTaskInfo(withEnv("AWS_SESSION_TOKEN", "the-tasks-own-stale-token"))
			u := startUnitTask(t, engine, unitConfig{info: info, operator: awsOperator(vault)})
			c := engine.running(t)
			u.waitState(t, mesos.TASK_RUNNING)
			lease := onlyLease(t, vault)
			tc.end(u, engine, c)
			final := u.finish(t)
			assertStatus(t, final, tc.state, tc.reason, "")

			env := u.runner.spec.Options.Config.Env
			for _, want := range []string{"AWS_ACCESS_KEY_ID=" + lease.AccessKey, "AWS_SECRET_ACCESS_KEY=" + lease.SecretKey, "AWS_SESSION_TOKEN=" + lease.SessionToken} {
				if !slices.Contains(env, want) {
					t.Errorf("the container's environment lacks %s", strings.SplitN(want, "=", 2)[0])
				}
			}
			if slices.Contains(env, "AWS_SESSION_TOKEN=the-tasks-own-stale-token") {
				t.Error("the task's own session token was left next to Vault's")
			}
			if lease = onlyLease(t, vault); !lease.Revoked {
				t.Fatalf("the lease was not revoked when the task ended (%s)", tc.name)
			}
			if !strings.Contains(u.logs.String(), "Revoked the AWS credentials' lease") {
				t.Error("the revocation was not logged")
			}
			assertNoAWSSecret(t, u, lease)
			assertNoFakeContainer(t, engine)
		})
	}
}

func TestTaskUnitAWSLeaseRevokedWhenTheLaunchFailsAfterIt(t *testing.T) {
	vault := awsVault(t, vaulttest.AWSRole{})
	engine := newUnitRuntime()
	engine.failNext("createContainer", errFakeAPI(500, "no space left on device"))
	u := startUnitTask(t, engine, unitConfig{operator: awsOperator(vault)})
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(), "no space left on device")
	if lease := onlyLease(t, vault); !lease.Revoked {
		t.Fatal("a lease obtained before a failed launch was not revoked")
	}
	assertNoFakeContainer(t, engine)
}

func TestTaskUnitAWSLeaseRevokedWhenKilledDuringTheLaunch(t *testing.T) {
	vault := awsVault(t, vaulttest.AWSRole{})
	engine := newFakeRuntime() // no image: the launch pulls, and the pull blocks
	arrived := engine.block("pullImage")
	u := startUnitTask(t, engine, unitConfig{operator: awsOperator(vault)})
	waitClosed(t, arrived, "the pull")
	u.kill(-1)
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH.Enum(), "killed during launch")
	if lease := onlyLease(t, vault); !lease.Revoked {
		t.Fatal("the lease was not revoked after a kill during the launch")
	}
}

func TestTaskUnitAWSVaultRefusalFailsTheLaunch(t *testing.T) {
	cases := []struct {
		name     string
		operator func(vault *vaulttest.Server) map[string]string
		reason   mesos.TaskStatus_Reason
		message  []string
	}{
		{"unknown role", func(vault *vaulttest.Server) map[string]string {
			vault.AddToken("hvs.wide", time.Hour, "read:aws/creds/")
			return awsOperator(vault, "VAULT_TOKEN=hvs.wide", "EXECUTOR_AWS_ROLE=missing")
		}, mesos.REASON_CONTAINER_LAUNCH_FAILED, []string{"Vault role missing", `Role "missing" not found`, "HTTP 400"}},
		{"permission denied", func(vault *vaulttest.Server) map[string]string {
			vault.AddToken("hvs.narrow", time.Hour, "read:secret/")
			return awsOperator(vault, "VAULT_TOKEN=hvs.narrow")
		}, mesos.REASON_CONTAINER_LAUNCH_FAILED, []string{"Vault role app", "permission denied (HTTP 403)"}},
		{"vault down", func(vault *vaulttest.Server) map[string]string {
			vault.SetDown(true)
			return awsOperator(vault)
		}, mesos.REASON_CONTAINER_LAUNCH_FAILED, []string{"Vault role app", "unreachable"}},
		{"role not allowed on the host", func(vault *vaulttest.Server) map[string]string {
			return awsOperator(vault, "EXECUTOR_ALLOWED_AWS_ROLES=batch")
		}, mesos.REASON_TASK_UNAUTHORIZED, []string{"Vault role app", "EXECUTOR_ALLOWED_AWS_ROLES"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vault := awsVault(t, vaulttest.AWSRole{})
			engine := newUnitRuntime()
			u := startUnitTask(t, engine, unitConfig{operator: tc.operator(vault)})
			final := u.finish(t)
			assertStatus(t, final, mesos.TASK_FAILED, tc.reason.Enum(), "")
			for _, want := range tc.message {
				if !strings.Contains(final.GetMessage(), want) {
					t.Errorf("message %q lacks %q", final.GetMessage(), want)
				}
			}
			if strings.Contains(final.GetMessage(), "hvs.") {
				t.Errorf("the message %q carries a token", final.GetMessage())
			}
			if slices.Contains(engine.methods(), "createContainer") {
				t.Error("a container was created despite the failure")
			}
			if !u.failed.Load() {
				t.Error("the failed launch did not mark the executor failed")
			}
			if len(vault.AWSLeases()) != 0 {
				t.Error("a lease was issued")
			}
		})
	}
}

func TestTaskUnitAWSRenewsThenStopsBeforeExpiry(t *testing.T) {
	cases := []struct {
		name     string
		role     vaulttest.AWSRole
		extra    []string
		renewals bool
		reason   string
		setup    func(vault *vaulttest.Server)
	}{
		{"vault's max ttl", vaulttest.AWSRole{TTL: 8 * time.Second, MaxTTL: 16 * time.Second}, nil, true, "maximum TTL is reached", nil},
		{"executor's max ttl", vaulttest.AWSRole{TTL: 8 * time.Second}, []string{"EXECUTOR_AWS_ROLE_MAX_TTL=16s"}, true, "EXECUTOR_AWS_ROLE_MAX_TTL (16s) is reached", nil},
		{"not renewable", vaulttest.AWSRole{CredentialType: vaulttest.AWSFederationToken, TTL: 8 * time.Second}, nil, false, "non-renewable lease", nil},
		{"ttl shorter than the lease", vaulttest.AWSRole{TTL: 8 * time.Second}, []string{"EXECUTOR_AWS_ROLE_TTL=4s", "EXECUTOR_AWS_ROLE_MAX_TTL=14s"}, true, "EXECUTOR_AWS_ROLE_MAX_TTL (14s) is reached", nil},
		{"token expiry", vaulttest.AWSRole{TTL: 8 * time.Second}, []string{"VAULT_TOKEN=hvs.short"}, true, "the Vault token that obtained them expires then",
			func(vault *vaulttest.Server) {
				vault.AddToken("hvs.short", 16*time.Second, "read:aws/creds/app", "update:sys/leases/revoke")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vault := awsVault(t, tc.role)
			if tc.setup != nil {
				tc.setup(vault)
			}
			engine := newUnitRuntime()
			u := startUnitTask(t, engine, unitConfig{operator: awsOperator(vault, tc.extra...)})
			c := engine.running(t)
			select {
			case <-u.runner.Done():
			case <-time.After(60 * time.Second):
				t.Fatalf("the task was not stopped before its credentials expired; updates %v", u.statuses.states())
			}
			final := u.finish(t)
			assertStatus(t, final, mesos.TASK_FAILED, nil, "the AWS credentials of Vault role app expire at")
			if !strings.Contains(final.GetMessage(), tc.reason) || !strings.Contains(final.GetMessage(), "container exited") {
				t.Errorf("message %q lacks the reason %q and the container's exit", final.GetMessage(), tc.reason)
			}
			if u.statuses.has(mesos.TASK_KILLING) {
				t.Error("TASK_KILLING sent for the executor's own stop")
			}
			if signals := engine.signalsOf(c); len(signals) == 0 {
				t.Error("the container was not stopped")
			}
			lease := onlyLease(t, vault)
			if tc.renewals && lease.Renewals == 0 {
				t.Error("the lease was never renewed")
			}
			if calls := len(vault.LeaseCalls()); calls > 20 {
				t.Errorf("%d renew and revoke calls in a few seconds: the renewals do not pace themselves", calls)
			}
			if !lease.Revoked {
				t.Error("the lease was not revoked at the end")
			}
			// The stop came before the credentials expired.
			for _, call := range vault.LeaseCalls() {
				if call.Op == "revoke" && !call.Time.Before(lease.Expires) {
					t.Errorf("revoked at %s, after the lease expired at %s", call.Time, lease.Expires)
				}
			}
			if u.failed.Load() {
				t.Error("a stop before expiry marked the executor failed")
			}
			assertNoFakeContainer(t, engine)
		})
	}
}

// awsTestLease obtains a lease from vault as the launch would.
func awsTestLease(t *testing.T, vault *vaulttest.Server, settings AWSSettings) (*awsLease, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := log.New()
	logger.SetOutput(logs)
	getenv := func(name string) string {
		return map[string]string{"VAULT_ADDR": vault.URL(), "VAULT_TOKEN": "hvs.host", "VAULT_MAX_RETRIES": "0"}[name]
	}
	lease, err := requestAWSCredentials(context.Background(), settings, newVaultResolver(getenv, nil), log.NewEntry(logger))
	if err != nil {
		t.Fatal(err)
	}
	return lease, logs
}

func TestAWSRenewalFailuresAreRetriedThenTheTaskIsStopped(t *testing.T) {
	t.Parallel()
	vault := awsVault(t, vaulttest.AWSRole{TTL: 12 * time.Second})
	lease, logs := awsTestLease(t, vault, AWSSettings{AWSRole: "app", AWSRoleMaxTTL: time.Hour})
	vault.SetDown(true)
	expiring := make(chan string, 1)
	lease.startRenewing(func(message string) { expiring <- message })
	var message string
	select {
	case message = <-expiring:
	case <-time.After(60 * time.Second):
		t.Fatal("no stop was asked for before the credentials expired")
	}
	if !time.Now().Before(lease.expires) {
		t.Errorf("the stop was asked for at %s, after the expiry at %s", time.Now(), lease.expires)
	}
	if !strings.Contains(message, "renewing them failed") || !strings.Contains(message, "unreachable") {
		t.Errorf("message %q does not say the renewals failed and why", message)
	}
	if n := strings.Count(logs.String(), "Could not renew"); n < 2 {
		t.Errorf("%d failed renewals logged, want retries", n)
	}
	vault.SetDown(false)
	lease.release(time.Time{})
	if !onlyLease(t, vault).Revoked {
		t.Error("the lease was not revoked once Vault was back")
	}
}

func TestAWSRenewalReconnectsWhenTheTokenIsRefused(t *testing.T) {
	t.Parallel()
	vault := awsVault(t, vaulttest.AWSRole{TTL: time.Minute, MaxTTL: time.Hour})
	vault.AddUserpass("executor", "host-password", "read:aws/creds/app", "update:sys/leases/revoke")
	tokenFile := t.TempDir() + "/token"
	logs := &syncBuffer{}
	logger := log.New()
	logger.SetOutput(logs)
	getenv := func(name string) string {
		return map[string]string{"VAULT_ADDR": vault.URL(), "VAULT_USERNAME": "executor", "VAULT_PASSWORD": "host-password",
			"VAULT_TOKEN_FILE": tokenFile, "VAULT_MAX_RETRIES": "0"}[name]
	}
	lease, err := requestAWSCredentials(context.Background(), AWSSettings{AWSRole: "app", AWSRoleTTL: 2 * time.Minute}, newVaultResolver(getenv, nil), log.NewEntry(logger))
	if err != nil {
		t.Fatal(err)
	}
	vault.ExpireToken(lease.resolver.client.Token())
	// One renewal, as the loop makes it, without waiting for its time.
	if err := lease.renew(context.Background()); err != nil {
		t.Fatalf("renewal after the token was refused: %v", err)
	}
	if onlyLease(t, vault).Renewals != 1 {
		t.Fatal("the lease was not renewed with a fresh token")
	}
	lease.release(time.Time{})
	if vault.Logins() != 2 {
		t.Errorf("%d logins, want the launch's and one after the refusal", vault.Logins())
	}
	if !onlyLease(t, vault).Revoked {
		t.Error("the lease was not revoked")
	}
	if strings.Contains(logs.String(), "host-password") {
		t.Error("the password appeared in the log")
	}
}

func TestAWSRevocationIsBoundedWhenVaultHangs(t *testing.T) {
	t.Parallel()
	vault := awsVault(t, vaulttest.AWSRole{})
	lease, logs := awsTestLease(t, vault, AWSSettings{AWSRole: "app"})
	// A server that accepts connections and never answers.
	listener, err := testutil.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) }(conn)
		}
	}()
	if err := lease.resolver.client.SetAddress("http://" + listener.Addr().String()); err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() {
		lease.release(time.Now().Add(300 * time.Millisecond))
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(awsRevokeTimeout - time.Second):
		t.Fatal("the revocation ignored the stop's deadline while Vault did not answer")
	}
	if !strings.Contains(logs.String(), "Could not revoke") {
		t.Errorf("the failed revocation was not logged: %s", logs.String())
	}
	if onlyLease(t, vault).Revoked {
		t.Error("the lease was revoked on a Vault that never answered")
	}
}

func TestTaskUnitAWSFromTheTasksOwnVaultUsesNoHostCredential(t *testing.T) {
	hostVault := awsVault(t, vaulttest.AWSRole{})
	hostVault.Watch("hvs.host")
	taskVault := vaulttest.NewServer(t)
	taskVault.AddAWSRole("app", vaulttest.AWSRole{})
	taskVault.AddToken("hvs.task", time.Hour, "read:aws/creds/app", "update:sys/leases/revoke")
	taskVault.Watch("hvs.host")
	operator := awsOperator(hostVault, "EXECUTOR_ALLOWED_AWS_ROLES=batch")
	engine := newUnitRuntime()
	u := startUnitTask(t, engine, unitConfig{operator: operator, deps: func(d *taskDeps) {
		d.env = testSettingsEnv(operator, "VAULT_ADDR="+taskVault.URL(), "VAULT_TOKEN=hvs.task")
	}})
	c := engine.running(t)
	engine.exit(c.id, 0)
	assertStatus(t, u.finish(t), mesos.TASK_FINISHED, nil, "")
	lease := onlyLease(t, taskVault)
	if !lease.Revoked || !slices.Contains(u.runner.spec.Options.Config.Env, "AWS_ACCESS_KEY_ID="+lease.AccessKey) {
		t.Fatalf("the task's own Vault did not provide (and get back) the credentials: %+v", lease)
	}
	if reqs := hostVault.Requests(); len(reqs) != 0 {
		t.Errorf("the host's Vault received %d requests for a task with its own token", len(reqs))
	}
	for _, r := range taskVault.Requests() {
		if r.CarriedWatched {
			t.Errorf("the host's token reached the task's Vault (%s %s)", r.Method, r.Path)
		}
	}
}

func TestTaskUnitAWSExpiryDuringTheLaunchFailsTheTask(t *testing.T) {
	// A non-renewable lease that runs out while the image is still being
	// pulled: the launch is aborted, and the task fails.
	vault := awsVault(t, vaulttest.AWSRole{CredentialType: vaulttest.AWSFederationToken, TTL: 2 * time.Second})
	engine := newFakeRuntime() // no image: the launch pulls, and the pull blocks
	arrived := engine.block("pullImage")
	u := startUnitTask(t, engine, unitConfig{operator: awsOperator(vault)})
	waitClosed(t, arrived, "the pull")
	select {
	case <-u.runner.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the launch was not aborted before the credentials expired")
	}
	final := u.finish(t)
	assertStatus(t, final, mesos.TASK_FAILED, mesos.REASON_TASK_KILLED_DURING_LAUNCH.Enum(), "the AWS credentials of Vault role app expire at")
	if !onlyLease(t, vault).Revoked {
		t.Error("the lease was not revoked")
	}
	assertNoFakeContainer(t, engine)
}

// A cached token that Vault refuses for aws/creds earns one login and one
// more read; a refusal of any other token, or a failed login, ends the
// request with Vault's answer.
func TestAWSCredentialsRequestLogsInAgainOnlyForACachedToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		env      map[string]string
		cached   bool
		password string
		wantErr  string
		logins   int
		requests []string
	}{
		{name: "cached token refused", cached: true, password: "host-password", logins: 1, requests: []string{
			"GET auth/token/lookup-self", "GET aws/creds/app", "PUT auth/userpass/login/executor", "GET aws/creds/app", "GET auth/token/lookup-self",
		}},
		{name: "login refused after the cached token", cached: true, password: "wrong-password", logins: 1,
			wantErr: "get AWS credentials for Vault role app: userpass login as executor: ", requests: []string{
				"GET auth/token/lookup-self", "GET aws/creds/app", "PUT auth/userpass/login/executor",
			}},
		{name: "VAULT_TOKEN refused", env: map[string]string{"VAULT_TOKEN": "hvs.narrow"},
			wantErr: "get AWS credentials for Vault role app: aws/creds/app: permission denied (HTTP 403)", requests: []string{
				"GET aws/creds/app",
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vault := awsVault(t, vaulttest.AWSRole{TTL: time.Minute})
			vault.AddUserpass("executor", "host-password", "read:aws/creds/app", "update:sys/leases/revoke")
			vault.AddToken("hvs.narrow", time.Hour, "read:secret/")
			tokenFile := t.TempDir() + "/token"
			if tc.cached {
				if err := os.WriteFile(tokenFile, []byte("hvs.narrow\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"VAULT_ADDR": vault.URL(), "VAULT_USERNAME": "executor", "VAULT_PASSWORD": tc.password,
				"VAULT_TOKEN_FILE": tokenFile, "VAULT_MAX_RETRIES": "0"}
			for name, value := range tc.env {
				env[name] = value
			}
			logs := &syncBuffer{}
			logger := log.New()
			logger.SetOutput(logs)
			lease, err := requestAWSCredentials(context.Background(), AWSSettings{AWSRole: "app"}, newVaultResolver(func(name string) string { return env[name] }, nil), log.NewEntry(logger))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("requestAWSCredentials: %v", err)
				}
				lease.release(time.Time{})
			} else if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if got := vault.Logins(); got != tc.logins {
				t.Errorf("logins = %d, want %d", got, tc.logins)
			}
			var requests []string
			for _, r := range vault.Requests() {
				requests = append(requests, r.Method+" "+strings.TrimPrefix(r.Path, "/v1/"))
			}
			if tc.wantErr == "" {
				requests = slices.DeleteFunc(requests, func(r string) bool { return strings.HasPrefix(r, "PUT sys/leases/revoke") })
			}
			if !slices.Equal(requests, tc.requests) {
				t.Errorf("requests = %q, want %q", requests, tc.requests)
			}
			refused := strings.Contains(logs.String(), "Vault refused the cached token; logging in again")
			if refused != tc.cached {
				t.Errorf("logged the refusal of the cached token: %v, want %v", refused, tc.cached)
			}
			if strings.Contains(logs.String(), "host-password") {
				t.Error("the password appeared in the log")
			}
		})
	}
}

// A task with vault:// values and AWS credentials connects to Vault once:
// one login serves both.
func TestTaskUnitVaultValuesAndAWSCredentialsShareOneLogin(t *testing.T) {
	t.Parallel()
	vault := awsVault(t, vaulttest.AWSRole{})
	vault.MountKV("secret/", 2)
	vault.PutSecret("secret/app/config", map[string]any{"value": "from-vault"})
	vault.AddUserpass("executor", "host-password", "read:secret/app/", "read:aws/creds/app", "update:sys/leases/revoke")
	operator := map[string]string{
		"VAULT_ADDR": vault.URL(), "VAULT_USERNAME": "executor", "VAULT_PASSWORD": "host-password", "VAULT_MAX_RETRIES": "0",
		"EXECUTOR_AWS_ROLE": "app",
	}
	engine := newUnitRuntime()
	info := unitTaskInfo(withEnv("FROM_VAULT", "vault://secret/app/config"))
	u := startUnitTask(t, engine, unitConfig{info: info, operator: operator})
	c := engine.running(t)
	u.waitState(t, mesos.TASK_RUNNING)
	lease := onlyLease(t, vault)
	engine.exit(c.id, 0)
	assertStatus(t, u.finish(t), mesos.TASK_FINISHED, nil, "")

	env := u.runner.spec.Options.Config.Env
	for _, want := range []string{"FROM_VAULT=from-vault", "AWS_ACCESS_KEY_ID=" + lease.AccessKey} {
		if !slices.Contains(env, want) {
			t.Errorf("the container's environment lacks %s", strings.SplitN(want, "=", 2)[0])
		}
	}
	if got := vault.Logins(); got != 1 {
		t.Errorf("logins = %d, want 1 for the vault:// values and the AWS credentials", got)
	}
	if n := strings.Count(u.logs.String(), "Logged in to Vault with userpass"); n != 1 {
		t.Errorf("%d logins logged, want 1", n)
	}
	if !onlyLease(t, vault).Revoked {
		t.Error("the lease was not revoked")
	}
	if strings.Contains(u.logs.String(), "host-password") {
		t.Error("the password appeared in the log")
	}
	assertNoAWSSecret(t, u, lease)
}
