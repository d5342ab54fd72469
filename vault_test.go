package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sidecar-executor/sidecar-executor/internal/vaulttest"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

var vaultReferenceCases = []struct {
	name      string
	value     string
	wantPath  string
	wantField string
	wantErr   string
}{
	{name: "default field", value: "vault://secret/app/db", wantPath: "secret/app/db", wantField: "value"},
	{name: "key", value: "vault://secret/app/db?key=password", wantPath: "secret/app/db", wantField: "password"},
	{name: "mount only one level", value: "vault://kv1/token", wantPath: "kv1/token", wantField: "value"},
	{name: "escaped path and key", value: "vault://secret/my%20app/db?key=pass%2Fword", wantPath: "secret/my app/db", wantField: "pass/word"},
	{name: "plus in key is a space", value: "vault://secret/a?key=b+c", wantPath: "secret/a", wantField: "b c"},
	{name: "empty query", value: "vault://secret/a?", wantPath: "secret/a", wantField: "value"},
	{name: "dots inside a segment", value: "vault://secret/app.v2/..db", wantPath: "secret/app.v2/..db", wantField: "value"},

	{name: "not vault", value: "https://secret/app", wantErr: "does not start with vault://"},
	{name: "upper-case scheme", value: "VAULT://secret/app", wantErr: "does not start with vault://"},
	{name: "empty path", value: "vault://", wantErr: "empty path"},
	{name: "empty path with key", value: "vault://?key=x", wantErr: "empty path"},
	{name: "absolute path", value: "vault:///x", wantErr: "must not start with /"},
	{name: "directory", value: "vault://secret/app/", wantErr: "not end with /"},
	{name: "double slash", value: "vault://secret//app", wantErr: "empty segment"},
	{name: "dot dot", value: "vault://secret/../sys/x", wantErr: `segment ".."`},
	{name: "trailing dot dot", value: "vault://secret/app/..", wantErr: "not allowed"},
	{name: "escaped dot dot", value: "vault://secret/%2E%2E/x", wantErr: `segment ".."`},
	{name: "dot", value: "vault://secret/./x", wantErr: `segment "."`},
	{name: "bad escape in path", value: "vault://secret/%zz", wantErr: "invalid percent-escape"},
	{name: "bad escape in query", value: "vault://secret/a?key=%zz", wantErr: "invalid query"},
	{name: "semicolon in query", value: "vault://secret/a?key=x;y", wantErr: "invalid query"},
	{name: "unknown parameter", value: "vault://secret/a?field=x", wantErr: `unknown query parameter "field"`},
	{name: "unknown next to key", value: "vault://secret/a?key=x&version=2", wantErr: `unknown query parameter "version"`},
	{name: "key twice", value: "vault://secret/a?key=x&key=y", wantErr: "more than once"},
	{name: "empty key", value: "vault://secret/a?key=", wantErr: "key is empty"},
	{name: "fragment", value: "vault://secret/a#b", wantErr: "fragment"},
	{name: "control character", value: "vault://secret/a%0Ab", wantErr: "non-printable"},
	{name: "control character in key", value: "vault://secret/a?key=a%00", wantErr: "non-printable"},
}

func TestParseVaultReference(t *testing.T) {
	for _, tc := range vaultReferenceCases {
		t.Run(tc.name, func(t *testing.T) {
			path, field, err := parseVaultReference(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseVaultReference(%q) error = %v, want one containing %q", tc.value, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseVaultReference(%q): %v", tc.value, err)
			}
			if path != tc.wantPath || field != tc.wantField {
				t.Errorf("parseVaultReference(%q) = (%q, %q), want (%q, %q)", tc.value, path, field, tc.wantPath, tc.wantField)
			}
		})
	}
}

// FuzzParseVaultReference checks the parser's invariants: an accepted
// reference names a relative path of non-empty, non-dot segments and a
// non-empty field, and writing them back in escaped form parses to the same.
func FuzzParseVaultReference(f *testing.F) {
	for _, tc := range vaultReferenceCases {
		f.Add(tc.value)
	}
	f.Fuzz(func(t *testing.T, value string) {
		path, field, err := parseVaultReference(value)
		if err != nil {
			if path != "" || field != "" {
				t.Fatalf("error %v returned with path %q field %q", err, path, field)
			}
			return
		}
		if field == "" || path == "" || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") {
			t.Fatalf("accepted %q as path %q field %q", value, path, field)
		}
		for _, segment := range strings.Split(path, "/") {
			if segment == "" || segment == "." || segment == ".." {
				t.Fatalf("accepted %q with path segment %q", value, segment)
			}
		}
		segments := strings.Split(path, "/")
		for i, segment := range segments {
			segments[i] = url.PathEscape(segment)
		}
		again := vaultScheme + strings.Join(segments, "/") + "?key=" + url.QueryEscape(field)
		path2, field2, err := parseVaultReference(again)
		if err != nil || path2 != path || field2 != field {
			t.Fatalf("%q → (%q, %q) but its escaped form %q → (%q, %q, %v)", value, path, field, again, path2, field2, err)
		}
	})
}

// Values that must never show up in an error or a log line.
const (
	testRootToken    = "hvs.root-token-do-not-print"
	testDBPassword   = "db-password-do-not-print"
	testDBUser       = "db-user-do-not-print"
	testAPIKey       = "api-key-do-not-print"
	testV1Value      = "v1-value-do-not-print"
	testUser         = "app"
	testUserPassword = "userpass-password-do-not-print"
)

var testSecretStrings = []string{testRootToken, testDBPassword, testDBUser, testAPIKey, testV1Value, testUserPassword}

// vaultFixture is a vaulttest server holding a few secrets, the executor
// environment pointing at it and a logger that records every entry.
type vaultFixture struct {
	server *vaulttest.Server
	env    map[string]string
	logger *log.Entry
	logs   *logtest.Hook
}

func newVaultFixture(t *testing.T) *vaultFixture {
	t.Helper()
	server := vaulttest.NewServer(t)
	server.MountKV("secret", 2)
	server.MountKV("kv1", 1)
	server.PutSecret("secret/app/db", map[string]any{"username": testDBUser, "password": "an older password"})
	server.PutSecret("secret/app/db", map[string]any{"username": testDBUser, "password": testDBPassword, "port": 5432})
	server.PutSecret("secret/app/api", map[string]any{"value": testAPIKey})
	server.PutSecret("kv1/app/legacy", map[string]any{"value": testV1Value, "enabled": true})
	server.AddToken(testRootToken, time.Hour, "root")
	server.AddUserpass(testUser, testUserPassword, "read:secret/app/", "read:kv1/app/")

	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(log.DebugLevel)
	return &vaultFixture{
		server: server,
		env: map[string]string{
			"VAULT_ADDR":           server.URL(),
			"VAULT_MAX_RETRIES":    "0",
			"VAULT_CLIENT_TIMEOUT": "10s",
		},
		logger: logger.WithField("task", "test-task"),
		logs:   hook,
	}
}

func (f *vaultFixture) getenv(name string) string { return f.env[name] }

func (f *vaultFixture) resolve(env ...string) ([]string, []string, error) {
	return resolveVaultEnv(context.Background(), env, newVaultResolver(f.getenv, f.logger))
}

// assertNothingSecretLogged fails if any log entry, fields included, holds a
// secret value, token or password.
func (f *vaultFixture) assertNothingSecretLogged(t *testing.T, extra ...string) {
	t.Helper()
	for _, entry := range f.logs.AllEntries() {
		line, err := entry.String()
		if err != nil {
			t.Fatalf("format log entry: %v", err)
		}
		for _, secret := range append(extra, testSecretStrings...) {
			if strings.Contains(line, secret) {
				t.Errorf("log line reveals a secret: %s", line)
			}
		}
	}
}

func (f *vaultFixture) countRequests(path string) int {
	n := 0
	for _, r := range f.server.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// countMountLookups counts the KV mount lookups Vault received.
func (f *vaultFixture) countMountLookups() int {
	n := 0
	for _, r := range f.server.Requests() {
		if strings.HasPrefix(r.Path, "/v1/sys/internal/ui/mounts/") {
			n++
		}
	}
	return n
}

func TestResolveVaultEnvReadsKVv1AndKVv2(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	f.env["VAULT_TOKEN"] = testRootToken

	env := []string{
		"PLAIN=hello",
		"DB_PASSWORD=vault://secret/app/db?key=password",
		"API_KEY=vault://secret/app/api",
		"LEGACY=vault://kv1/app/legacy",
		"UPPER=VAULT://secret/app/db",
		"MENTION=see vault://secret/app/db",
		"EMPTY=",
		"NO_EQUALS",
	}
	resolved, fromVault, err := f.resolve(env...)
	if err != nil {
		t.Fatalf("resolveVaultEnv: %v", err)
	}
	want := []string{
		"PLAIN=hello",
		"DB_PASSWORD=" + testDBPassword,
		"API_KEY=" + testAPIKey,
		"LEGACY=" + testV1Value,
		"UPPER=VAULT://secret/app/db",
		"MENTION=see vault://secret/app/db",
		"EMPTY=",
		"NO_EQUALS",
	}
	if !reflect.DeepEqual(resolved, want) {
		t.Errorf("resolved = %q\nwant       %q", resolved, want)
	}
	if wantNames := []string{"DB_PASSWORD", "API_KEY", "LEGACY"}; !reflect.DeepEqual(fromVault, wantNames) {
		t.Errorf("fromVault = %q, want %q", fromVault, wantNames)
	}
	if env[1] != "DB_PASSWORD=vault://secret/app/db?key=password" {
		t.Errorf("the input slice was modified: %q", env[1])
	}
	if n := f.countRequests("/v1/secret/data/app/db"); n != 1 {
		t.Errorf("KV v2 reads of secret/app/db = %d, want 1 through <mount>/data/", n)
	}
	if n := f.countRequests("/v1/kv1/app/legacy"); n != 1 {
		t.Errorf("KV v1 reads of kv1/app/legacy = %d, want 1", n)
	}

	infos := map[string]log.Fields{}
	mountVersions := map[any]any{}
	for _, entry := range f.logs.AllEntries() {
		if entry.Message == "Resolving environment variable from Vault" && entry.Level == log.InfoLevel {
			infos[fmt.Sprint(entry.Data["variable"])] = entry.Data
		}
		if entry.Message == "Vault mount" {
			mountVersions[entry.Data["mount"]] = entry.Data["kv_version"]
		}
	}
	for name, wantPathField := range map[string][2]string{
		"DB_PASSWORD": {"secret/app/db", "password"},
		"API_KEY":     {"secret/app/api", "value"},
		"LEGACY":      {"kv1/app/legacy", "value"},
	} {
		fields, ok := infos[name]
		if !ok || fields["path"] != wantPathField[0] || fields["field"] != wantPathField[1] {
			t.Errorf("Info log for %s = %v, want path %s field %s", name, fields, wantPathField[0], wantPathField[1])
		}
	}
	if !reflect.DeepEqual(mountVersions, map[any]any{"secret/": 2, "kv1/": 1}) {
		t.Errorf("debug mount versions = %v", mountVersions)
	}
	f.assertNothingSecretLogged(t)
}

func TestResolveVaultEnvReadsEachSecretAndMountOnce(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	f.env["VAULT_TOKEN"] = testRootToken

	resolved, fromVault, err := f.resolve(
		"DB_USER=vault://secret/app/db?key=username",
		"DB_PASSWORD=vault://secret/app/db?key=password",
		"API_KEY=vault://secret/app/api",
		"DB_PASSWORD_AGAIN=vault://secret/app/db?key=password",
	)
	if err != nil {
		t.Fatalf("resolveVaultEnv: %v", err)
	}
	want := []string{"DB_USER=" + testDBUser, "DB_PASSWORD=" + testDBPassword, "API_KEY=" + testAPIKey, "DB_PASSWORD_AGAIN=" + testDBPassword}
	if !reflect.DeepEqual(resolved, want) || len(fromVault) != 4 {
		t.Fatalf("resolved = %q, fromVault = %q", resolved, fromVault)
	}
	if n := f.countRequests("/v1/secret/data/app/db"); n != 1 {
		t.Errorf("reads of secret/app/db = %d, want 1", n)
	}
	if n := f.countRequests("/v1/secret/data/app/api"); n != 1 {
		t.Errorf("reads of secret/app/api = %d, want 1", n)
	}
	if lookups := f.countMountLookups(); lookups != 1 {
		t.Errorf("mount lookups = %d, want 1 for two secrets on one mount", lookups)
	}
}

func TestResolveVaultEnvWithoutReferencesTouchesNothing(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	var asked []string
	var mu sync.Mutex
	getenv := func(name string) string {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, name)
		return f.env[name]
	}
	env := []string{"A=1", "B=vault:/not/a/reference", "C=https://vault.example/v1/secret", "D"}
	resolved, fromVault, err := resolveVaultEnv(context.Background(), env, newVaultResolver(getenv, f.logger))
	if err != nil {
		t.Fatalf("resolveVaultEnv: %v", err)
	}
	if !reflect.DeepEqual(resolved, env) || len(fromVault) != 0 {
		t.Errorf("got %q / %q, want the input unchanged and nothing from Vault", resolved, fromVault)
	}
	if len(asked) != 0 {
		t.Errorf("looked up %q; no Vault configuration is needed without vault:// values", asked)
	}
	if requests := f.server.Requests(); len(requests) != 0 {
		t.Errorf("Vault received %d requests, want none", len(requests))
	}

	// Not even a configured environment is needed.
	resolved, _, err = resolveVaultEnv(context.Background(), env, newVaultResolver(func(string) string { return "" }, nil))
	if err != nil || !reflect.DeepEqual(resolved, env) {
		t.Errorf("with no Vault configured: %q, %v", resolved, err)
	}
}

func TestResolveVaultEnvAssumesKVv1WithoutMountLookup(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	f.env["VAULT_TOKEN"] = testRootToken
	f.server.SetMountLookupMissing(true)
	f.server.PutSecret("kv1/app/other", map[string]any{"value": "other"})

	resolved, _, err := f.resolve("LEGACY=vault://kv1/app/legacy", "OTHER=vault://kv1/app/other")
	if err != nil {
		t.Fatalf("resolveVaultEnv: %v", err)
	}
	if want := []string{"LEGACY=" + testV1Value, "OTHER=other"}; !reflect.DeepEqual(resolved, want) {
		t.Errorf("resolved = %q, want %q", resolved, want)
	}
	if lookups := f.countMountLookups(); lookups != 1 {
		t.Errorf("mount lookups = %d, want 1 (a 404 means the server has none)", lookups)
	}
}

func TestResolveVaultEnvFailures(t *testing.T) {
	t.Parallel()
	const ref = "DB_PASSWORD=vault://secret/app/db?key=password"
	const prefix = "resolve DB_PASSWORD from Vault path secret/app/db: "
	cases := []struct {
		name   string
		setup  func(f *vaultFixture)
		env    string
		want   string // the whole message, with ADDR standing for the server address
		logins int
	}{
		{
			name:  "unreachable",
			setup: func(f *vaultFixture) { f.server.SetDown(true) },
			want:  prefix + "Vault at ADDR unreachable: connection refused",
		},
		{
			name: "no grant under the mount",
			setup: func(f *vaultFixture) {
				f.server.AddToken("hvs.no-grants", time.Hour, "read:kv1/")
				f.env["VAULT_TOKEN"] = "hvs.no-grants"
			},
			want: prefix + "permission denied (HTTP 403)",
		},
		{
			name: "no grant on the secret",
			setup: func(f *vaultFixture) {
				f.server.AddToken("hvs.other-app", time.Hour, "read:secret/other/")
				f.env["VAULT_TOKEN"] = "hvs.other-app"
			},
			want: prefix + "permission denied (HTTP 403)",
		},
		{
			name: "expired VAULT_TOKEN is not replaced by a login",
			setup: func(f *vaultFixture) {
				f.server.ExpireToken(testRootToken)
				f.env["VAULT_USERNAME"], f.env["VAULT_PASSWORD"] = testUser, testUserPassword
			},
			want: prefix + "permission denied (HTTP 403)",
		},
		{
			name:  "sealed",
			setup: func(f *vaultFixture) { f.server.SetSealed(true) },
			want:  prefix + "Vault answered HTTP 503: Vault is sealed",
		},
		{
			name: "missing KV v2 secret",
			env:  "DB_PASSWORD=vault://secret/app/nothing?key=password",
			want: "resolve DB_PASSWORD from Vault path secret/app/nothing: secret not found (HTTP 404)",
		},
		{
			name: "missing KV v1 secret",
			env:  "DB_PASSWORD=vault://kv1/app/nothing",
			want: "resolve DB_PASSWORD from Vault path kv1/app/nothing: secret not found (HTTP 404)",
		},
		{
			name: "missing field",
			env:  "DB_PASSWORD=vault://secret/app/db?key=passwd",
			want: prefix + `field "passwd" not found`,
		},
		{
			name: "default field missing",
			env:  "DB_PASSWORD=vault://secret/app/db",
			want: prefix + `field "value" not found`,
		},
		{
			name: "number field",
			env:  "DB_PASSWORD=vault://secret/app/db?key=port",
			want: prefix + `field "port" is a number, not a string`,
		},
		{
			name: "boolean field on KV v1",
			env:  "DB_PASSWORD=vault://kv1/app/legacy?key=enabled",
			want: `resolve DB_PASSWORD from Vault path kv1/app/legacy: field "enabled" is a boolean, not a string`,
		},
		{
			name:  "latest version deleted",
			setup: func(f *vaultFixture) { f.server.DeleteLatest("secret/app/db") },
			want:  prefix + "the latest version (2) of the secret was deleted at ",
		},
		{
			name:  "latest version destroyed",
			setup: func(f *vaultFixture) { f.server.DestroyLatest("secret/app/db") },
			want:  prefix + "the latest version (2) of the secret is destroyed",
		},
		{
			name: "reference to a mount",
			env:  "DB_PASSWORD=vault://secret",
			want: "resolve DB_PASSWORD from Vault path secret: the path names a secrets engine mount, not a secret",
		},
		{
			name: "malformed reference",
			env:  "DB_PASSWORD=vault://secret/app/db?key=password&version=2",
			want: `resolve DB_PASSWORD from Vault: malformed reference: unknown query parameter "version" (only key is allowed)`,
		},
		{
			name:  "no token and no userpass credentials",
			setup: func(f *vaultFixture) { delete(f.env, "VAULT_TOKEN") },
			want:  prefix + "no Vault token: set VAULT_TOKEN, or VAULT_USERNAME and VAULT_PASSWORD to log in (with VAULT_TOKEN_FILE to share the token)",
		},
		{
			name: "wrong userpass password",
			setup: func(f *vaultFixture) {
				delete(f.env, "VAULT_TOKEN")
				f.env["VAULT_USERNAME"], f.env["VAULT_PASSWORD"] = testUser, "wrong-password-do-not-print"
			},
			want:   prefix + "userpass login as app: Vault answered HTTP 400: invalid username or password",
			logins: 1,
		},
		{
			name: "invalid VAULT_TTL",
			setup: func(f *vaultFixture) {
				delete(f.env, "VAULT_TOKEN")
				f.env["VAULT_USERNAME"], f.env["VAULT_PASSWORD"], f.env["VAULT_TTL"] = testUser, testUserPassword, "ten minutes"
			},
			want: prefix + `invalid VAULT_TTL "ten minutes": want a Go duration or whole seconds, at least 1s`,
		},
		{
			name: "https to a plain-HTTP server",
			setup: func(f *vaultFixture) {
				f.env["VAULT_ADDR"] = strings.Replace(f.server.URL(), "http://", "https://", 1)
			},
			want: prefix + "Vault at https://HOSTPORT unreachable: http: server gave HTTP response to HTTPS client",
		},
		{
			name:  "missing VAULT_CACERT file",
			setup: func(f *vaultFixture) { f.env["VAULT_CACERT"] = "/nonexistent/vault-ca.pem" },
			want:  prefix + "invalid Vault client settings: ",
		},
		{
			name:  "invalid VAULT_SKIP_VERIFY",
			setup: func(f *vaultFixture) { f.env["VAULT_SKIP_VERIFY"] = "maybe" },
			want:  prefix + `invalid Vault client settings: VAULT_SKIP_VERIFY "maybe" is not a boolean`,
		},
		{
			name:  "invalid VAULT_MAX_RETRIES",
			setup: func(f *vaultFixture) { f.env["VAULT_MAX_RETRIES"] = "-1" },
			want:  prefix + `invalid Vault client settings: VAULT_MAX_RETRIES "-1" is not a whole number`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newVaultFixture(t)
			f.env["VAULT_TOKEN"] = testRootToken
			if tc.setup != nil {
				tc.setup(f)
			}
			env := ref
			if tc.env != "" {
				env = tc.env
			}
			resolved, fromVault, err := f.resolve("PLAIN=1", env)
			if err == nil {
				t.Fatalf("resolveVaultEnv succeeded with %q / %q, want an error", resolved, fromVault)
			}
			if resolved != nil || fromVault != nil {
				t.Errorf("on error got resolved %q, fromVault %q; want nil", resolved, fromVault)
			}
			want := strings.ReplaceAll(tc.want, "ADDR", f.server.URL())
			want = strings.ReplaceAll(want, "HOSTPORT", f.server.Addr())
			if got := err.Error(); got != want && !(strings.HasSuffix(want, " ") && strings.HasPrefix(got, want)) {
				t.Errorf("error = %q\nwant    %q", got, want)
			}
			for _, secret := range append(testSecretStrings, "wrong-password-do-not-print", "hvs.no-grants", "hvs.other-app") {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals a secret: %q", err.Error())
				}
			}
			if got := f.server.Logins(); got != tc.logins {
				t.Errorf("logins = %d, want %d", got, tc.logins)
			}
			f.assertNothingSecretLogged(t, "wrong-password-do-not-print", "hvs.no-grants", "hvs.other-app")
		})
	}
}

func TestResolveVaultEnvMalformedReferenceSendsNothing(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	f.env["VAULT_TOKEN"] = testRootToken
	_, _, err := f.resolve("API_KEY=vault://secret/app/api", "BAD=vault:///absolute")
	if err == nil || !strings.HasPrefix(err.Error(), "resolve BAD from Vault: malformed reference:") {
		t.Fatalf("err = %v, want a malformed reference error naming BAD", err)
	}
	if n := len(f.server.Requests()); n != 0 {
		t.Errorf("Vault received %d requests; references are checked before any is resolved", n)
	}
}

func TestResolveVaultEnvCancelledContext(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	f.env["VAULT_TOKEN"] = testRootToken
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := resolveVaultEnv(ctx, []string{"API_KEY=vault://secret/app/api"}, newVaultResolver(f.getenv, f.logger))
	if err == nil || !strings.Contains(err.Error(), "resolve API_KEY from Vault path secret/app/api: cancelled") {
		t.Fatalf("err = %v, want a cancellation naming the variable", err)
	}
}

func TestResolveVaultEnvTimesOutOnASilentServer(t *testing.T) {
	t.Parallel()
	// Accepts connections and never answers, like a hung Vault.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	t.Cleanup(func() {
		listener.Close()
		held.Wait()
	})
	held.Add(1)
	go func() {
		defer held.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()

	f := newVaultFixture(t)
	f.env["VAULT_ADDR"] = "http://" + listener.Addr().String()
	f.env["VAULT_TOKEN"] = testRootToken
	f.env["VAULT_CLIENT_TIMEOUT"] = "200ms"
	_, _, err = f.resolve("API_KEY=vault://secret/app/api")
	want := fmt.Sprintf("resolve API_KEY from Vault path secret/app/api: Vault at http://%s did not answer in time (VAULT_CLIENT_TIMEOUT 200ms)", listener.Addr())
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

// The executor's getenv is authoritative: VAULT_* in the process
// environment, which vault/api would read by itself, must not leak in.
func TestResolveVaultEnvIgnoresProcessEnvironment(t *testing.T) {
	f := newVaultFixture(t)
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", testRootToken)
	t.Setenv("VAULT_MAX_RETRIES", "5")
	t.Setenv("VAULT_NAMESPACE", "elsewhere")

	_, _, err := f.resolve("API_KEY=vault://secret/app/api")
	if err == nil || !strings.HasSuffix(err.Error(), ": no Vault token: set VAULT_TOKEN, or VAULT_USERNAME and VAULT_PASSWORD to log in (with VAULT_TOKEN_FILE to share the token)") {
		t.Fatalf("err = %v, want no token: the process's VAULT_TOKEN must be ignored", err)
	}

	f.env["VAULT_TOKEN"] = testRootToken
	resolved, _, err := f.resolve("API_KEY=vault://secret/app/api")
	if err != nil || resolved[0] != "API_KEY="+testAPIKey {
		t.Fatalf("with getenv's VAULT_ADDR and token: %v", err)
	}

	// VAULT_MAX_RETRIES=0 from getenv, not 5 from the process: one request
	// to the sealed server, answered at once.
	f.server.SetSealed(true)
	before := len(f.server.Requests())
	if _, _, err := f.resolve("API_KEY=vault://secret/app/api"); err == nil {
		t.Fatal("resolved from a sealed Vault")
	}
	if n := len(f.server.Requests()) - before; n != 1 {
		t.Errorf("sealed Vault got %d requests, want 1 (no retries)", n)
	}
}

// lookupTokenTTL asks Vault, through the real client, how long token has
// left; it fails the test if Vault does not know the token.
func lookupTokenTTL(t *testing.T, server *vaulttest.Server, token string) time.Duration {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = server.URL()
	cfg.MaxRetries = 0
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	client.SetToken(token)
	self, err := client.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self of a token from the token file: %v", err)
	}
	ttl, err := self.TokenTTL()
	if err != nil {
		t.Fatalf("token ttl: %v", err)
	}
	return ttl
}

func readTokenFile(t *testing.T, path string) string {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("token file mode = %o, want 600", mode)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	return strings.TrimSpace(string(content))
}

func assertOnlyTokenFileInDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "vault-token" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("token directory holds %q, want only vault-token (no temporary files left)", names)
	}
}

func (f *vaultFixture) useUserpass(t *testing.T) (tokenFile string) {
	t.Helper()
	tokenFile = filepath.Join(t.TempDir(), "vault-token")
	f.env["VAULT_TOKEN_FILE"] = tokenFile
	f.env["VAULT_USERNAME"] = testUser
	f.env["VAULT_PASSWORD"] = testUserPassword
	return tokenFile
}

func TestVaultLoginWritesTokenFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vaultTTL string
		want     time.Duration
	}{
		{"90s", 90 * time.Second},
		{"120", 120 * time.Second},
		{"1h30m", 90 * time.Minute},
	} {
		t.Run("VAULT_TTL="+tc.vaultTTL, func(t *testing.T) {
			t.Parallel()
			f := newVaultFixture(t)
			tokenFile := f.useUserpass(t)
			f.env["VAULT_TTL"] = tc.vaultTTL

			resolved, _, err := f.resolve("API_KEY=vault://secret/app/api")
			if err != nil || resolved[0] != "API_KEY="+testAPIKey {
				t.Fatalf("resolveVaultEnv: %q, %v", resolved, err)
			}
			if got := f.server.Logins(); got != 1 {
				t.Errorf("logins = %d, want 1", got)
			}
			token := readTokenFile(t, tokenFile)
			if ttl := lookupTokenTTL(t, f.server, token); ttl > tc.want || ttl < tc.want-10*time.Second {
				t.Errorf("token ttl = %v, want about %v (VAULT_TTL sent as the login's ttl)", ttl, tc.want)
			}
			assertOnlyTokenFileInDir(t, filepath.Dir(tokenFile))
			f.assertNothingSecretLogged(t, token)
		})
	}
}

func TestVaultTokenFileReusedWithoutLogin(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	tokenFile := f.useUserpass(t)
	f.server.AddToken("hvs.cached-do-not-print", time.Hour, "read:secret/")
	if err := os.WriteFile(tokenFile, []byte("hvs.cached-do-not-print\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		resolved, _, err := f.resolve("API_KEY=vault://secret/app/api")
		if err != nil || resolved[0] != "API_KEY="+testAPIKey {
			t.Fatalf("resolve %d: %q, %v", i, resolved, err)
		}
	}
	if got := f.server.Logins(); got != 0 {
		t.Errorf("logins = %d, want 0 with a valid cached token", got)
	}
	requests := f.server.Requests()
	if len(requests) == 0 || requests[0].Path != "/v1/auth/token/lookup-self" || !requests[0].TokenPresent {
		t.Errorf("first request = %+v, want lookup-self with the cached token", requests)
	}
	if got := readTokenFile(t, tokenFile); got != "hvs.cached-do-not-print" {
		t.Error("the token file was rewritten although its token was valid")
	}
	f.assertNothingSecretLogged(t, "hvs.cached-do-not-print")
}

func TestVaultLoginTokenReusedByNextResolver(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	tokenFile := f.useUserpass(t)
	for i := range 3 {
		if _, _, err := f.resolve("API_KEY=vault://secret/app/api"); err != nil {
			t.Fatalf("resolve %d: %v", i, err)
		}
	}
	if got := f.server.Logins(); got != 1 {
		t.Errorf("logins = %d, want 1: later resolvers reuse the cached token", got)
	}
	readTokenFile(t, tokenFile)
}

func TestVaultCachedTokenRejected(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(s *vaulttest.Server)
	}{
		// lookup-self answers 403.
		{"expired", func(s *vaulttest.Server) {
			s.AddToken("hvs.cached-do-not-print", time.Hour, "root")
			s.ExpireToken("hvs.cached-do-not-print")
		}},
		{"unknown to Vault", func(*vaulttest.Server) {}},
		// lookup-self passes, the mount lookup answers 403.
		{"no grant under the mount", func(s *vaulttest.Server) { s.AddToken("hvs.cached-do-not-print", time.Hour, "default") }},
		// lookup-self and the mount lookup pass, the read answers 403.
		{"no grant on the secret", func(s *vaulttest.Server) { s.AddToken("hvs.cached-do-not-print", time.Hour, "read:secret/other/") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newVaultFixture(t)
			tokenFile := f.useUserpass(t)
			tc.setup(f.server)
			if err := os.WriteFile(tokenFile, []byte("hvs.cached-do-not-print\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			resolved, _, err := f.resolve("DB_USER=vault://secret/app/db?key=username", "API_KEY=vault://secret/app/api")
			if err != nil {
				t.Fatalf("resolveVaultEnv: %v", err)
			}
			if want := []string{"DB_USER=" + testDBUser, "API_KEY=" + testAPIKey}; !reflect.DeepEqual(resolved, want) {
				t.Errorf("resolved = %q", resolved)
			}
			if got := f.server.Logins(); got != 1 {
				t.Errorf("logins = %d, want exactly 1", got)
			}
			token := readTokenFile(t, tokenFile)
			if token == "hvs.cached-do-not-print" {
				t.Fatal("the rejected token is still in the token file")
			}
			lookupTokenTTL(t, f.server, token)
			assertOnlyTokenFileInDir(t, filepath.Dir(tokenFile))
			f.assertNothingSecretLogged(t, "hvs.cached-do-not-print", token)
		})
	}
}

func TestVaultLogsInAgainOnlyOnce(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	tokenFile := f.useUserpass(t)
	f.server.AddToken("hvs.cached-do-not-print", time.Hour, "default")
	if err := os.WriteFile(tokenFile, []byte("hvs.cached-do-not-print"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The user's own policies do not grant the path either.
	_, _, err := f.resolve("SECRET=vault://secret/ops/root")
	if err == nil || err.Error() != "resolve SECRET from Vault path secret/ops/root: permission denied (HTTP 403)" {
		t.Fatalf("err = %v, want permission denied", err)
	}
	if got := f.server.Logins(); got != 1 {
		t.Errorf("logins = %d, want 1: a rejected cached token earns one login, not a loop", got)
	}
}

func TestVaultFreshLoginIsNotRepeatedOn403(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	f.useUserpass(t)
	_, _, err := f.resolve("SECRET=vault://secret/ops/root")
	if err == nil || !strings.HasSuffix(err.Error(), "permission denied (HTTP 403)") {
		t.Fatalf("err = %v, want permission denied", err)
	}
	if got := f.server.Logins(); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
}

func TestVaultCachedTokenRejectedWithoutCredentials(t *testing.T) {
	t.Parallel()
	f := newVaultFixture(t)
	tokenFile := filepath.Join(t.TempDir(), "vault-token")
	f.env["VAULT_TOKEN_FILE"] = tokenFile
	if err := os.WriteFile(tokenFile, []byte("hvs.cached-do-not-print"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.resolve("API_KEY=vault://secret/app/api")
	if err == nil || !strings.Contains(err.Error(), "resolve API_KEY from Vault path secret/app/api: no Vault token") {
		t.Fatalf("err = %v, want no token", err)
	}
}

// Executors of one host start together and share the token file: each must
// succeed, and a reader must only ever see a whole token in the file.
func TestVaultConcurrentResolversShareTokenFile(t *testing.T) {
	t.Parallel()
	// A torn write shows up only when a read lands inside it: several rounds
	// make that likely if the write is not atomic.
	for round := range 5 {
		t.Run(fmt.Sprintf("round %d", round), testConcurrentResolversShareTokenFile)
	}
}

func testConcurrentResolversShareTokenFile(t *testing.T) {
	f := newVaultFixture(t)
	tokenFile := f.useUserpass(t)
	if err := os.WriteFile(tokenFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	const resolvers = 6
	start := make(chan struct{})
	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	observed := map[string]bool{}
	var readErrors []error
	var emptyAfterToken bool
	go func() {
		defer close(watcherDone)
		sawToken := false
		for {
			select {
			case <-stop:
				return
			default:
			}
			content, err := os.ReadFile(tokenFile)
			if err != nil {
				readErrors = append(readErrors, err)
				continue
			}
			if len(content) == 0 {
				emptyAfterToken = emptyAfterToken || sawToken
				continue
			}
			sawToken = true
			observed[string(content)] = true
		}
	}()

	var wg sync.WaitGroup
	results := make([][]string, resolvers)
	errs := make([]error, resolvers)
	for i := range resolvers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], _, errs[i] = resolveVaultEnv(context.Background(),
				[]string{"DB_PASSWORD=vault://secret/app/db?key=password"}, newVaultResolver(f.getenv, f.logger))
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	<-watcherDone

	for i := range resolvers {
		if errs[i] != nil {
			t.Errorf("resolver %d: %v", i, errs[i])
		} else if results[i][0] != "DB_PASSWORD="+testDBPassword {
			t.Errorf("resolver %d resolved the wrong value", i)
		}
	}
	if len(readErrors) > 0 {
		t.Errorf("the token file could not be read %d times while being replaced: %v", len(readErrors), readErrors[0])
	}
	if emptyAfterToken {
		t.Error("the token file was seen empty after holding a token")
	}
	if logins := f.server.Logins(); logins < 1 || logins > resolvers {
		t.Errorf("logins = %d, want between 1 and %d", logins, resolvers)
	}
	final := readTokenFile(t, tokenFile)
	observed[final+"\n"] = true
	for content := range observed {
		token, ok := strings.CutSuffix(content, "\n")
		if !ok || strings.ContainsAny(token, "\n ") {
			t.Errorf("token file held a partial or mangled token (%d bytes)", len(content))
			continue
		}
		lookupTokenTTL(t, f.server, token)
	}
	assertOnlyTokenFileInDir(t, filepath.Dir(tokenFile))
}

func TestWriteTokenFileReplacesAndKeepsModePrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenFile(path, "new-token"); err != nil {
		t.Fatalf("writeTokenFile: %v", err)
	}
	if got := readTokenFile(t, path); got != "new-token" {
		t.Errorf("content = %q", got)
	}
	assertOnlyTokenFileInDir(t, filepath.Dir(path))

	err := writeTokenFile(filepath.Join(t.TempDir(), "missing-dir", "vault-token"), "x")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("writing into a missing directory: err = %v, want not-exist", err)
	}
}
