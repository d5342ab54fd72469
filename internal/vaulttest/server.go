// Package vaulttest runs an in-process HTTP server on 127.0.0.1 that answers
// like HashiCorp Vault for the endpoints the executor uses: KV v1 and v2
// reads, the KV mount lookup, token lookup-self, userpass login, and the
// AWS secrets engine with lease renewal and revocation (aws.go). Tests
// drive it through the real github.com/hashicorp/vault/api client by putting
// URL() in VAULT_ADDR, in the spirit of net/http/httptest.
//
// Policies are deliberately simpler than Vault's: "root" grants everything,
// "read:<prefix>" grants reads of every secret whose path, written the way
// the Vault CLI writes it (mount + secret path, without KV v2's "data/"),
// starts with <prefix>. Any other policy name grants nothing, like "default".
package vaulttest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sidecar-executor/sidecar-executor/internal/testutil"
)

// Request is what the server recorded about one request it received. The
// token itself is never kept, only whether one was sent.
type Request struct {
	Method       string
	Path         string
	TokenPresent bool
	// CarriedWatched says whether the request carried, anywhere in its
	// URL, headers or body, one of the values given to Watch. Which one,
	// and the value itself, are not kept.
	CarriedWatched bool
	Time           time.Time
}

// DefaultLoginTTL is the lifetime of a userpass token when the login does
// not ask for one: Vault's system default of 768 hours.
const DefaultLoginTTL = 768 * time.Hour

// kvDefaultLeaseSeconds is the lease_duration Vault reports for KV v1 reads.
const kvDefaultLeaseSeconds = 2764800

// Server is a Vault test double. All methods are safe for concurrent use.
type Server struct {
	tb testing.TB

	mu                  sync.Mutex
	hostPort            string
	httpServer          *http.Server
	serveDone           <-chan struct{}
	closed              bool
	down                bool
	reserved            io.Closer // holds the port while down
	sealed              bool
	mountLookupDisabled bool
	mounts              map[string]*kvMount
	tokens              map[string]*tokenEntry
	users               map[string]*userEntry
	requests            []Request
	logins              int
	watched             []string
	// The AWS secrets engine (aws.go); nil until a role is added.
	awsRoles      map[string]AWSRole
	awsLeases     map[string]*awsLeaseEntry
	awsLeaseOrder []string
	leaseCalls    []LeaseCall
}

type kvMount struct {
	path    string // with trailing slash, e.g. "secret/"
	version int
	secrets map[string]*kvSecret // keyed by path inside the mount
}

type kvSecret struct {
	data     map[string]any // KV v1: the only version
	versions []*kvVersion   // KV v2: oldest first
}

type kvVersion struct {
	data      map[string]any
	created   time.Time
	deleted   time.Time
	destroyed bool
}

type tokenEntry struct {
	accessor    string
	policies    []string
	issued      time.Time
	ttl         time.Duration // 0 = never expires
	expires     time.Time
	displayName string
	loginPath   string
	meta        map[string]string
}

type userEntry struct {
	password string
	policies []string
}

// NewServer starts a server and closes it when the test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start()
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server outside of a test (for a local runner); the caller
// must Close it.
func Start() (*Server, error) {
	listener, err := listen("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s := &Server{
		hostPort: listener.Addr().String(),
		mounts:   make(map[string]*kvMount),
		tokens:   make(map[string]*tokenEntry),
		users:    make(map[string]*userEntry),
	}
	s.serve(listener)
	return s, nil
}

func (s *Server) serve(listener net.Listener) {
	s.httpServer, s.serveDone = testutil.Serve(listener, http.HandlerFunc(s.handle))
}

// stopServing closes the listener and every open connection, and waits for
// the serving goroutine to end. Called with s.mu held.
func (s *Server) stopServing() {
	if s.httpServer == nil {
		return
	}
	_ = s.httpServer.Close()
	<-s.serveDone
	s.httpServer = nil
}

// Close stops the server. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.stopServing()
	if s.reserved != nil {
		_ = s.reserved.Close()
		s.reserved = nil
	}
}

// URL is the server's base URL, for VAULT_ADDR.
func (s *Server) URL() string {
	return "http://" + s.hostPort
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	return s.hostPort
}

// MountKV mounts a KV secrets engine of the given version (1 or 2) at path.
func (s *Server) MountKV(path string, version int) {
	if version != 1 && version != 2 {
		panic(fmt.Sprintf("vaulttest: KV version must be 1 or 2, got %d", version))
	}
	path = strings.Trim(path, "/") + "/"
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts[path] = &kvMount{path: path, version: version, secrets: make(map[string]*kvSecret)}
}

// PutSecret writes a secret at mount+path, e.g. "secret/app/db". On KV v2 it
// adds a new version; on KV v1 it replaces the secret.
func (s *Server) PutSecret(mountAndPath string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mount, rest := s.mustFindMount(mountAndPath)
	secret := mount.secrets[rest]
	if secret == nil {
		secret = &kvSecret{}
		mount.secrets[rest] = secret
	}
	copied := make(map[string]any, len(data))
	for k, v := range data {
		copied[k] = v
	}
	if mount.version == 1 {
		secret.data = copied
		return
	}
	secret.versions = append(secret.versions, &kvVersion{data: copied, created: time.Now().UTC()})
}

// DeleteLatest soft-deletes the latest version of a KV v2 secret.
func (s *Server) DeleteLatest(mountAndPath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustLatestVersion(mountAndPath).deleted = time.Now().UTC()
}

// DestroyLatest destroys the latest version of a KV v2 secret.
func (s *Server) DestroyLatest(mountAndPath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := s.mustLatestVersion(mountAndPath)
	latest.destroyed = true
	latest.data = nil
}

func (s *Server) mustLatestVersion(mountAndPath string) *kvVersion {
	mount, rest := s.mustFindMount(mountAndPath)
	if mount.version != 2 {
		panic(fmt.Sprintf("vaulttest: %s is not on a KV v2 mount", mountAndPath))
	}
	secret := mount.secrets[rest]
	if secret == nil || len(secret.versions) == 0 {
		panic(fmt.Sprintf("vaulttest: no secret at %s", mountAndPath))
	}
	return secret.versions[len(secret.versions)-1]
}

func (s *Server) mustFindMount(mountAndPath string) (*kvMount, string) {
	mount, rest := s.findMount(mountAndPath)
	if mount == nil || rest == "" {
		panic(fmt.Sprintf("vaulttest: %q is not a secret path under a mounted KV engine", mountAndPath))
	}
	return mount, rest
}

// findMount returns the mount with the longest path that contains p, and the
// rest of p inside it.
func (s *Server) findMount(p string) (*kvMount, string) {
	var best *kvMount
	for path, mount := range s.mounts {
		if strings.HasPrefix(p+"/", path) && (best == nil || len(path) > len(best.path)) {
			best = mount
		}
	}
	if best == nil {
		return nil, ""
	}
	if len(p) <= len(best.path) {
		return best, ""
	}
	return best, p[len(best.path):]
}

// AddToken registers a token. ttl 0 means it never expires.
func (s *Server) AddToken(token string, ttl time.Duration, policies ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addTokenLocked(token, ttl, policies, "token", "auth/token/create", nil)
}

func (s *Server) addTokenLocked(token string, ttl time.Duration, policies []string, displayName, loginPath string, meta map[string]string) *tokenEntry {
	now := time.Now().UTC()
	entry := &tokenEntry{
		accessor:    randomString(18),
		policies:    append([]string(nil), policies...),
		issued:      now,
		ttl:         ttl,
		displayName: displayName,
		loginPath:   loginPath,
		meta:        meta,
	}
	if ttl > 0 {
		entry.expires = now.Add(ttl)
	}
	s.tokens[token] = entry
	return entry
}

// AddUserpass registers a userpass user; the tokens it logs in with carry
// the given policies. Usernames are case-insensitive, as in Vault.
func (s *Server) AddUserpass(user, password string, policies ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(user)] = &userEntry{password: password, policies: append([]string(nil), policies...)}
}

// ExpireToken makes a token expire now; Vault then rejects it with 403.
func (s *Server) ExpireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if entry, ok := s.tokens[token]; ok {
		entry.expires = time.Now().Add(-time.Second)
	}
}

// SetDown closes the listener so that clients get "connection refused"
// (true), or listens again on the same port (false). While the server is
// down its port stays bound (on Linux), so that no other process can
// listen there and answer in its place: the refusal is certain.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.down == down {
		return
	}
	s.down = down
	if down {
		reserved, err := reservePort(s.hostPort)
		if err != nil {
			s.fail(fmt.Sprintf("vaulttest: hold %s while down: %v", s.hostPort, err))
			return
		}
		s.reserved = reserved
		s.stopServing()
		return
	}
	// The reservation holds the port, and this listener shares it
	// (SO_REUSEPORT) before the reservation lets go: no retries needed.
	listener, err := listen(s.hostPort)
	if err != nil {
		s.fail(fmt.Sprintf("vaulttest: listen again on %s: %v", s.hostPort, err))
		return
	}
	_ = s.reserved.Close()
	s.reserved = nil
	s.serve(listener)
}

func (s *Server) fail(msg string) {
	if s.tb != nil {
		s.tb.Fatal(msg)
	}
	panic(msg)
}

// SetSealed makes every request answer 503 "Vault is sealed".
func (s *Server) SetSealed(sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = sealed
}

// SetMountLookupMissing makes sys/internal/ui/mounts answer 404, as servers
// older than Vault 0.10 do; clients then assume KV v1.
func (s *Server) SetMountLookupMissing(missing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mountLookupDisabled = missing
}

// Requests returns every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Watch makes the server note, for every later request, whether it
// carried any of values (Request.CarriedWatched): a test hands it the
// credentials that must never reach this server.
func (s *Server) Watch(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" {
			s.watched = append(s.watched, v)
		}
	}
}

// carriesWatched reports whether the request, whose body is body, holds a
// watched value. Called with s.mu held.
func (s *Server) carriesWatched(r *http.Request, body []byte) bool {
	texts := []string{r.URL.String(), string(body)}
	for _, values := range r.Header {
		texts = append(texts, values...)
	}
	for _, watched := range s.watched {
		for _, text := range texts {
			if strings.Contains(text, watched) {
				return true
			}
		}
	}
	return false
}

// maxRequestBody bounds what the double reads of a request body.
const maxRequestBody = 1 << 20

// Logins counts userpass login attempts, successful or not.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// handle serves one request. The whole request runs under s.mu: the double
// favours simple consistency over throughput.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	token := r.Header.Get("X-Vault-Token")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "cannot read the request body")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.Path, TokenPresent: token != "",
		CarriedWatched: s.carriesWatched(r, body), Time: time.Now(),
	})

	if r.Header.Get("X-Vault-Request") != "true" {
		writeErrors(w, http.StatusBadRequest, "missing required header X-Vault-Request")
		return
	}
	if s.sealed {
		writeErrors(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}

	if user, ok := strings.CutPrefix(path, "auth/userpass/login/"); ok {
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		s.login(w, r, user)
		return
	}

	entry := s.tokens[token]
	if token == "" || entry == nil || (!entry.expires.IsZero() && !time.Now().Before(entry.expires)) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if s.handleAWS(w, r, path, entry) {
		return
	}
	if r.Method != http.MethodGet {
		writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
		return
	}

	switch {
	case path == "auth/token/lookup-self":
		s.lookupSelf(w, token, entry)
	case strings.HasPrefix(path, "sys/internal/ui/mounts/"):
		s.mountInfo(w, strings.TrimPrefix(path, "sys/internal/ui/mounts/"), entry)
	default:
		s.readSecret(w, path, entry)
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, user string) {
	s.logins++
	var body struct {
		Password string          `json:"password"`
		TTL      json.RawMessage `json:"ttl"`
	}
	decoder := json.NewDecoder(r.Body)
	if err := decoder.Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	user = strings.ToLower(user)
	account := s.users[user]
	if account == nil || body.Password == "" || body.Password != account.password {
		writeErrors(w, http.StatusBadRequest, "invalid username or password")
		return
	}
	ttl := DefaultLoginTTL
	if len(body.TTL) > 0 && string(body.TTL) != "null" {
		parsed, err := parseTTL(body.TTL)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		ttl = parsed
	}
	token := "hvs." + randomString(24)
	entry := s.addTokenLocked(token, ttl, account.policies, "userpass-"+user, "auth/userpass/login/"+user, map[string]string{"username": user})
	policies := append(append([]string(nil), entry.policies...), "default")
	response := envelope(nil, map[string]any{
		"client_token":    token,
		"accessor":        entry.accessor,
		"policies":        policies,
		"token_policies":  policies,
		"metadata":        entry.meta,
		"lease_duration":  int64(ttl / time.Second),
		"renewable":       true,
		"entity_id":       uuid.NewString(),
		"token_type":      "service",
		"orphan":          true,
		"mfa_requirement": nil,
		"num_uses":        0,
	})
	response["mount_type"] = ""
	writeJSON(w, http.StatusOK, response)
}

// parseTTL accepts what Vault accepts for a duration field: a number of
// seconds, or a string holding seconds or a Go duration.
func parseTTL(raw json.RawMessage) (time.Duration, error) {
	var seconds int64
	if err := json.Unmarshal(raw, &seconds); err == nil {
		if seconds <= 0 {
			return 0, errors.New("ttl must be positive")
		}
		return time.Duration(seconds) * time.Second, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return 0, errors.New("invalid ttl")
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		if n <= 0 {
			return 0, errors.New("ttl must be positive")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return 0, errors.New("invalid ttl")
	}
	return d, nil
}

func (s *Server) lookupSelf(w http.ResponseWriter, token string, entry *tokenEntry) {
	var expireTime any
	var ttlLeft int64
	if !entry.expires.IsZero() {
		expireTime = entry.expires.Format(time.RFC3339Nano)
		ttlLeft = int64(time.Until(entry.expires) / time.Second)
	}
	meta := any(nil)
	if entry.meta != nil {
		meta = entry.meta
	}
	writeJSON(w, http.StatusOK, envelope(map[string]any{
		"accessor":         entry.accessor,
		"creation_time":    entry.issued.Unix(),
		"creation_ttl":     int64(entry.ttl / time.Second),
		"display_name":     entry.displayName,
		"entity_id":        "",
		"expire_time":      expireTime,
		"explicit_max_ttl": 0,
		"id":               token,
		"issue_time":       entry.issued.Format(time.RFC3339Nano),
		"meta":             meta,
		"num_uses":         0,
		"orphan":           true,
		"path":             entry.loginPath,
		"policies":         append(append([]string(nil), entry.policies...), "default"),
		"renewable":        entry.ttl > 0,
		"ttl":              ttlLeft,
		"type":             "service",
	}, nil))
}

func (s *Server) mountInfo(w http.ResponseWriter, path string, entry *tokenEntry) {
	if s.mountLookupDisabled {
		writeErrors(w, http.StatusNotFound)
		return
	}
	sanitized := strings.TrimSuffix(path, "/") + "/"
	mount, _ := s.findMount(strings.TrimSuffix(path, "/"))
	if mount == nil || !entry.mayUseMount(mount.path) {
		writeErrors(w, http.StatusForbidden, fmt.Sprintf("preflight capability check returned 403, please ensure client's policies grant access to path %q", sanitized))
		return
	}
	options := any(nil)
	if mount.version == 2 {
		options = map[string]any{"version": "2"}
	}
	writeJSON(w, http.StatusOK, envelope(map[string]any{
		"path":                    mount.path,
		"type":                    "kv",
		"options":                 options,
		"description":             "key/value secret storage",
		"accessor":                "kv_" + strings.ReplaceAll(strings.TrimSuffix(mount.path, "/"), "/", "_"),
		"local":                   false,
		"seal_wrap":               false,
		"external_entropy_access": false,
		"uuid":                    uuid.NewString(),
		"plugin_version":          "",
		"running_plugin_version":  "v0.24.0+builtin",
		"running_sha256":          "",
		"config": map[string]any{
			"default_lease_ttl": kvDefaultLeaseSeconds,
			"max_lease_ttl":     kvDefaultLeaseSeconds,
			"force_no_cache":    false,
		},
	}, nil))
}

func (s *Server) readSecret(w http.ResponseWriter, path string, entry *tokenEntry) {
	mount, rest := s.findMount(path)
	if mount == nil {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
		return
	}
	if mount.version == 1 {
		if rest == "" || !entry.may("read", mount.path+rest) {
			writeErrors(w, http.StatusForbidden, "permission denied")
			return
		}
		secret := mount.secrets[rest]
		if secret == nil || secret.data == nil {
			writeErrors(w, http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, secretResponse(kvDefaultLeaseSeconds, secret.data))
		return
	}

	inner, ok := strings.CutPrefix(rest, "data/")
	if !ok || inner == "" {
		// Vault answers v1-shaped paths on a v2 mount with a warning and no data.
		response := envelope(nil, nil)
		response["warnings"] = []string{"Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."}
		writeJSON(w, http.StatusNotFound, response)
		return
	}
	if !entry.may("read", mount.path+inner) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	secret := mount.secrets[inner]
	if secret == nil || len(secret.versions) == 0 {
		writeErrors(w, http.StatusNotFound)
		return
	}
	latest := secret.versions[len(secret.versions)-1]
	deletionTime := ""
	if !latest.deleted.IsZero() {
		deletionTime = latest.deleted.Format(time.RFC3339Nano)
	}
	var data any
	status := http.StatusOK
	if latest.destroyed || !latest.deleted.IsZero() {
		status = http.StatusNotFound
	} else {
		data = latest.data
	}
	writeJSON(w, status, secretResponse(0, map[string]any{
		"data": data,
		"metadata": map[string]any{
			"created_time":    latest.created.Format(time.RFC3339Nano),
			"custom_metadata": nil,
			"deletion_time":   deletionTime,
			"destroyed":       latest.destroyed,
			"version":         len(secret.versions),
		},
	}))
}

func secretResponse(leaseSeconds int, data map[string]any) map[string]any {
	response := envelope(data, nil)
	response["lease_duration"] = leaseSeconds
	response["mount_type"] = "kv"
	return response
}

// envelope is the body Vault wraps every answer in: data for reads and
// lookups, auth for logins, no lease.
func envelope(data map[string]any, auth map[string]any) map[string]any {
	return map[string]any{
		"request_id":     uuid.NewString(),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           data,
		"wrap_info":      nil,
		"warnings":       nil,
		"auth":           auth,
	}
}

// grants returns the path prefixes the token may use for op ("read",
// "update": its "<op>:<prefix>" policies), or all=true for root.
func (e *tokenEntry) grants(op string) (prefixes []string, all bool) {
	for _, policy := range e.policies {
		if policy == "root" {
			return nil, true
		}
		if prefix, ok := strings.CutPrefix(policy, op+":"); ok {
			prefixes = append(prefixes, prefix)
		}
	}
	return prefixes, false
}

// may reports whether the token may use path for op: root, or an
// "<op>:<prefix>" policy covering it.
func (e *tokenEntry) may(op, path string) bool {
	prefixes, all := e.grants(op)
	if all {
		return true
	}
	for _, prefix := range prefixes {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// mayUseMount mirrors Vault's preflight check: the token needs some grant
// inside the mount (or one covering all of it).
func (e *tokenEntry) mayUseMount(mountPath string) bool {
	prefixes, all := e.grants("read")
	if all {
		return true
	}
	for _, prefix := range prefixes {
		if strings.HasPrefix(prefix, mountPath) || strings.HasPrefix(mountPath, prefix) {
			return true
		}
	}
	return false
}

func writeErrors(w http.ResponseWriter, status int, messages ...string) {
	if messages == nil {
		messages = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": messages})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func randomString(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(buf)
}
