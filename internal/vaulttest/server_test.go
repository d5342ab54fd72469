package vaulttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

const rootToken = "root-token-for-tests"

// newClient builds a real Vault client for s with retries off, so that error
// answers come back at once.
func newClient(t *testing.T, s *Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatalf("vault config: %v", cfg.Error)
	}
	cfg.Address = s.URL()
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	if token == "" {
		client.ClearToken()
	} else {
		client.SetToken(token)
	}
	return client
}

func responseError(t *testing.T, err error) *api.ResponseError {
	t.Helper()
	var respErr *api.ResponseError
	if !errors.As(err, &respErr) {
		t.Fatalf("want an *api.ResponseError, got %T: %v", err, err)
	}
	return respErr
}

func TestKVv2ReadReturnsLatestVersion(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.MountKV("secret", 2)
	s.PutSecret("secret/app/db", map[string]any{"password": "old"})
	s.PutSecret("secret/app/db", map[string]any{"password": "new", "port": 5432})
	s.AddToken(rootToken, 0, "root")

	got, err := newClient(t, s, rootToken).KVv2("secret").Get(context.Background(), "app/db")
	if err != nil {
		t.Fatalf("KVv2 get: %v", err)
	}
	if got.Data["password"] != "new" {
		t.Errorf("password = %v, want the latest version's", got.Data["password"])
	}
	if got.Data["port"] != json.Number("5432") {
		t.Errorf("port = %#v, want json.Number 5432", got.Data["port"])
	}
	if got.VersionMetadata == nil || got.VersionMetadata.Version != 2 {
		t.Errorf("version metadata = %+v, want version 2", got.VersionMetadata)
	}
}

func TestKVv1Read(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.MountKV("kv1/", 1)
	s.PutSecret("kv1/app/db", map[string]any{"value": "v1-value"})
	s.AddToken(rootToken, 0, "root")

	secret, err := newClient(t, s, rootToken).Logical().Read("kv1/app/db")
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if secret == nil || secret.Data["value"] != "v1-value" || secret.LeaseDuration != kvDefaultLeaseSeconds {
		t.Fatalf("secret = %+v, want value v1-value with the default lease", secret)
	}
}

func TestKVv2DeletedAndDestroyedLatest(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.MountKV("secret", 2)
	s.PutSecret("secret/deleted", map[string]any{"value": "x"})
	s.DeleteLatest("secret/deleted")
	s.PutSecret("secret/destroyed", map[string]any{"value": "y"})
	s.DestroyLatest("secret/destroyed")
	s.AddToken(rootToken, 0, "root")
	kv := newClient(t, s, rootToken).KVv2("secret")

	deleted, err := kv.Get(context.Background(), "deleted")
	if err != nil {
		t.Fatalf("get deleted: %v", err)
	}
	if deleted.Data != nil || deleted.VersionMetadata == nil || deleted.VersionMetadata.DeletionTime.IsZero() {
		t.Errorf("deleted secret = %+v / %+v, want no data and a deletion time", deleted.Data, deleted.VersionMetadata)
	}
	destroyed, err := kv.Get(context.Background(), "destroyed")
	if err != nil {
		t.Fatalf("get destroyed: %v", err)
	}
	if destroyed.Data != nil || destroyed.VersionMetadata == nil || !destroyed.VersionMetadata.Destroyed {
		t.Errorf("destroyed secret = %+v / %+v, want no data and destroyed", destroyed.Data, destroyed.VersionMetadata)
	}
}

func TestMissingSecretIs404WithEmptyErrors(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.MountKV("secret", 2)
	s.AddToken(rootToken, 0, "root")

	_, err := newClient(t, s, rootToken).KVv2("secret").Get(context.Background(), "nothing/here")
	if !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("err = %v, want ErrSecretNotFound", err)
	}
	status, body := rawGet(t, s, "/v1/secret/data/nothing/here", rootToken)
	if status != http.StatusNotFound || strings.TrimSpace(body) != `{"errors":[]}` {
		t.Errorf("raw answer = %d %s, want 404 {\"errors\":[]}", status, body)
	}
}

func TestPermissionDenied(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.MountKV("secret", 2)
	s.PutSecret("secret/app/db", map[string]any{"value": "x"})
	s.AddToken("expired", time.Hour, "root")
	s.ExpireToken("expired")
	s.AddToken("other-app", time.Hour, "read:secret/other/")

	for _, token := range []string{"", "unknown", "expired", "other-app"} {
		t.Run(fmt.Sprintf("token=%q", token), func(t *testing.T) {
			_, err := newClient(t, s, token).Logical().Read("secret/data/app/db")
			respErr := responseError(t, err)
			if respErr.StatusCode != http.StatusForbidden || !reflect.DeepEqual(respErr.Errors, []string{"permission denied"}) {
				t.Errorf("got %d %q, want 403 [permission denied]", respErr.StatusCode, respErr.Errors)
			}
		})
	}
}

func TestMountLookup(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.MountKV("secret", 2)
	s.MountKV("kv1", 1)
	s.AddToken(rootToken, 0, "root")
	s.AddToken("kv1-only", 0, "read:kv1/app/")
	client := newClient(t, s, rootToken)

	v2, err := client.Logical().Read("sys/internal/ui/mounts/secret/app/db")
	if err != nil {
		t.Fatalf("mount lookup: %v", err)
	}
	if v2.Data["path"] != "secret/" || !reflect.DeepEqual(v2.Data["options"], map[string]any{"version": "2"}) {
		t.Errorf("v2 mount = %v, want path secret/ with options.version 2", v2.Data)
	}
	v1, err := client.Logical().Read("sys/internal/ui/mounts/kv1/app/db")
	if err != nil {
		t.Fatalf("mount lookup: %v", err)
	}
	if v1.Data["path"] != "kv1/" || v1.Data["options"] != nil {
		t.Errorf("v1 mount = %v, want path kv1/ with null options", v1.Data)
	}

	// No grant under the mount, or no mount at all: the same preflight 403.
	restricted := newClient(t, s, "kv1-only")
	for _, path := range []string{"secret/app/db", "nomount/app"} {
		_, err := restricted.Logical().Read("sys/internal/ui/mounts/" + path)
		respErr := responseError(t, err)
		want := fmt.Sprintf("preflight capability check returned 403, please ensure client's policies grant access to path %q", path+"/")
		if respErr.StatusCode != http.StatusForbidden || !reflect.DeepEqual(respErr.Errors, []string{want}) {
			t.Errorf("%s: got %d %q, want 403 %q", path, respErr.StatusCode, respErr.Errors, want)
		}
	}

	s.SetMountLookupMissing(true)
	missing, err := client.Logical().Read("sys/internal/ui/mounts/secret/app/db")
	if err != nil || missing != nil {
		t.Errorf("with the endpoint missing got %v, %v; want nil, nil (404)", missing, err)
	}
}

func TestUserpassLogin(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddUserpass("Alice", "correct horse", "read:secret/app/")
	client := newClient(t, s, "")

	_, err := client.Logical().Write("auth/userpass/login/alice", map[string]any{"password": "wrong"})
	respErr := responseError(t, err)
	if respErr.StatusCode != http.StatusBadRequest || !reflect.DeepEqual(respErr.Errors, []string{"invalid username or password"}) {
		t.Errorf("wrong password: got %d %q", respErr.StatusCode, respErr.Errors)
	}

	login, err := client.Logical().Write("auth/userpass/login/ALICE", map[string]any{"password": "correct horse", "ttl": "90s"})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if login.Auth == nil || login.Auth.ClientToken == "" || login.Auth.LeaseDuration != 90 {
		t.Fatalf("login auth = %+v, want a token with a 90 s lease", login.Auth)
	}
	if got := s.Logins(); got != 2 {
		t.Errorf("Logins() = %d, want 2 attempts", got)
	}

	client.SetToken(login.Auth.ClientToken)
	self, err := client.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	ttl, err := self.TokenTTL()
	if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("lookup-self ttl = %v (%v), want about 90s", ttl, err)
	}
	if policies, _ := self.TokenPolicies(); !reflect.DeepEqual(policies, []string{"read:secret/app/", "default"}) {
		t.Errorf("policies = %q", policies)
	}
	if self.Data["path"] != "auth/userpass/login/alice" {
		t.Errorf("path = %v, want the lower-cased login path", self.Data["path"])
	}
}

func TestRequiresVaultRequestHeader(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddToken(rootToken, 0, "root")
	req, err := http.NewRequest(http.MethodGet, s.URL()+"/v1/auth/token/lookup-self", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", rootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400 without X-Vault-Request", resp.StatusCode)
	}
}

func TestSealed(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddToken(rootToken, 0, "root")
	s.SetSealed(true)
	_, err := newClient(t, s, rootToken).Auth().Token().LookupSelf()
	respErr := responseError(t, err)
	if respErr.StatusCode != http.StatusServiceUnavailable || !reflect.DeepEqual(respErr.Errors, []string{"Vault is sealed"}) {
		t.Errorf("got %d %q, want 503 [Vault is sealed]", respErr.StatusCode, respErr.Errors)
	}
	s.SetSealed(false)
	if _, err := newClient(t, s, rootToken).Auth().Token().LookupSelf(); err != nil {
		t.Errorf("after unsealing: %v", err)
	}
}

func TestSetDownRefusesAndReopensOnSamePort(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddToken(rootToken, 0, "root")
	client := newClient(t, s, rootToken)
	if _, err := client.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("before: %v", err)
	}
	addr := s.URL()

	s.SetDown(true)
	_, err := client.Auth().Token().LookupSelf()
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("while down: err = %v, want connection refused", err)
	}
	// The port stays held: no one else can listen there meanwhile and
	// answer (or reset) in the server's place.
	if runtime.GOOS == "linux" {
		if l, err := net.Listen("tcp", strings.TrimPrefix(addr, "http://")); err == nil {
			l.Close()
			t.Fatal("while down, another listener could take the server's port")
		}
	}

	s.SetDown(false)
	if s.URL() != addr {
		t.Errorf("address changed from %s to %s", addr, s.URL())
	}
	if _, err := client.Auth().Token().LookupSelf(); err != nil {
		t.Errorf("after reopening: %v", err)
	}
}

func TestRequestsRecordTokenPresenceNotValue(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddToken(rootToken, 0, "root")
	if _, err := newClient(t, s, rootToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	_, _ = newClient(t, s, "").Logical().Read("secret/x")

	requests := s.Requests()
	if len(requests) != 2 {
		t.Fatalf("recorded %d requests, want 2", len(requests))
	}
	if r := requests[0]; r.Method != http.MethodGet || r.Path != "/v1/auth/token/lookup-self" || !r.TokenPresent || r.Time.IsZero() {
		t.Errorf("first request = %+v", r)
	}
	if requests[1].TokenPresent {
		t.Errorf("second request recorded a token that was not sent")
	}
	if strings.Contains(fmt.Sprintf("%+v", requests), rootToken) {
		t.Errorf("recorded requests print the token")
	}
}

func TestWatchNotesWatchedValuesWithoutKeepingThem(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	const password = "watched-password-5150"
	s.AddUserpass("host", password, "root")
	s.AddToken(rootToken, 0, "root")
	s.Watch(password, rootToken)

	if _, err := newClient(t, s, "").Logical().Write("auth/userpass/login/host", map[string]any{"password": password}); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, s, rootToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	_, _ = newClient(t, s, "hvs.some-other-token").Auth().Token().LookupSelf()

	requests := s.Requests()
	if len(requests) != 3 {
		t.Fatalf("recorded %d requests, want 3", len(requests))
	}
	for i, want := range []bool{true, true, false} {
		if requests[i].CarriedWatched != want {
			t.Errorf("request %d (%s): CarriedWatched %v, want %v", i, requests[i].Path, requests[i].CarriedWatched, want)
		}
	}
	if printed := fmt.Sprintf("%+v", requests); strings.Contains(printed, password) || strings.Contains(printed, rootToken) {
		t.Errorf("recorded requests print a watched value")
	}
	if s.Logins() != 1 {
		t.Errorf("the login was not served after its body was read for watching (%d logins)", s.Logins())
	}
}

func rawGet(t *testing.T, s *Server, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Request", "true")
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
