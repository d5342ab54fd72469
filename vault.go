package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/hashicorp/vault/api"
	log "github.com/sirupsen/logrus"
	"golang.org/x/net/http/httpproxy"
)

// vaultScheme marks an environment value that must be replaced by a secret
// read from Vault before the container is created.
const vaultScheme = "vault://"

// defaultVaultField is the secret field used when a reference has no ?key=.
const defaultVaultField = "value"

// parseVaultReference splits "vault://secret/app/db?key=password" into the
// secret path as the Vault CLI writes it ("secret/app/db", mount included,
// without KV v2's "data/") and the field ("password", default "value").
// Path and field may be percent-escaped. The errors never repeat the whole
// reference.
func parseVaultReference(value string) (path string, field string, err error) {
	rest, ok := strings.CutPrefix(value, vaultScheme)
	if !ok {
		return "", "", fmt.Errorf("does not start with %s", vaultScheme)
	}
	if strings.Contains(rest, "#") {
		return "", "", errors.New("a fragment (#) is not allowed")
	}
	rawPath, rawQuery, _ := strings.Cut(rest, "?")
	if path, err = url.PathUnescape(rawPath); err != nil {
		return "", "", errors.New("invalid percent-escape in the path")
	}
	if err := validateVaultPath(path); err != nil {
		return "", "", err
	}

	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", errors.New("invalid query string")
	}
	field = defaultVaultField
	for name, values := range query {
		if name != "key" {
			return "", "", fmt.Errorf("unknown query parameter %q (only key is allowed)", name)
		}
		if len(values) != 1 {
			return "", "", errors.New("key is given more than once")
		}
		if field = values[0]; field == "" {
			return "", "", errors.New("key is empty")
		}
		if hasNonPrintable(field) {
			return "", "", errors.New("key contains non-printable characters")
		}
	}
	return path, field, nil
}

// validateVaultPath rejects paths that do not name exactly one secret:
// empty or absolute paths, empty, "." and ".." segments, directory paths.
func validateVaultPath(path string) error {
	switch {
	case path == "":
		return errors.New("empty path")
	case strings.HasPrefix(path, "/"):
		return errors.New("path must not start with /")
	case strings.HasSuffix(path, "/"):
		return errors.New("path must name a secret, not end with /")
	case hasNonPrintable(path):
		return errors.New("path contains non-printable characters")
	}
	for _, segment := range strings.Split(path, "/") {
		switch segment {
		case "":
			return errors.New("path contains an empty segment (//)")
		case ".", "..":
			return fmt.Errorf("path segment %q is not allowed", segment)
		}
	}
	return nil
}

func hasNonPrintable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0
}

// The executor's own Vault settings, next to the VAULT_* variables that
// vault/api itself understands.
const (
	envVaultTokenFile = "VAULT_TOKEN_FILE"
	envVaultUsername  = "VAULT_USERNAME"
	envVaultPassword  = "VAULT_PASSWORD"
	envVaultTTL       = "VAULT_TTL"
)

// resolveVaultEnv returns env ("K=V" in container order) with every
// vault:// value replaced by the secret field it names, and the names of the
// variables so replaced, for the caller to log as "[resolved from Vault]".
// resolver (newVaultResolver) is the task's Vault connection; it is used
// only when at least one value is a vault:// reference, so without any the
// executor needs no Vault configuration and Vault sees no request. Errors
// name the variable and the Vault path, never a value, token or password.
func resolveVaultEnv(ctx context.Context, env []string, resolver *vaultResolver) (resolved []string, fromVault []string, err error) {
	logger := resolver.logger
	type reference struct {
		index             int
		name, path, field string
	}
	var references []reference
	for i, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(value, vaultScheme) {
			continue
		}
		path, field, err := parseVaultReference(value)
		if err != nil {
			return nil, nil, fmt.Errorf("resolve %s from Vault: malformed reference: %w", name, err)
		}
		references = append(references, reference{index: i, name: name, path: path, field: field})
	}
	if len(references) == 0 {
		return env, nil, nil
	}

	resolved = slices.Clone(env)
	fromVault = make([]string, 0, len(references))
	for _, ref := range references {
		logger.WithFields(log.Fields{"variable": ref.name, "path": ref.path, "field": ref.field}).
			Info("Resolving environment variable from Vault")
		value, err := resolver.field(ctx, ref.path, ref.field)
		if err != nil {
			return nil, nil, fmt.Errorf("resolve %s from Vault path %s: %w", ref.name, ref.path, err)
		}
		resolved[ref.index] = ref.name + "=" + value
		fromVault = append(fromVault, ref.name)
	}
	return resolved, fromVault, nil
}

// vaultResolver is one task's Vault connection, shared by its vault://
// values and its AWS credentials: it holds the client and its token, the
// KV version of each mount and each secret read.
type vaultResolver struct {
	getenv func(string) string
	logger *log.Entry

	client    *api.Client
	address   string
	tokenFile string
	// usingCachedToken is true while the token in use came from the token
	// file: if Vault rejects it, one fresh login replaces it.
	usingCachedToken bool
	// hidden holds the token(s) and password, scrubbed from any text Vault
	// sends back before it goes into an error.
	hidden []string

	// mounts caches the mount lookups. Vault refuses to mount an engine
	// inside another, so the first cached mount containing a path is its
	// mount.
	mounts []vaultMount
	// noMountLookup is set when the server lacks sys/internal/ui/mounts;
	// like the Vault CLI we then treat every mount as KV v1.
	noMountLookup bool
	secrets       map[string]map[string]any
}

// newVaultResolver makes a task's resolver, which connects on first use.
// getenv is the executor's Vault settings lookup (settingsEnv.vaultGetenv:
// the operator's Vault, or the task's own when it brings a token), and
// logger (nil: the standard logger's) gets the resolver's notices.
func newVaultResolver(getenv func(string) string, logger *log.Entry) *vaultResolver {
	if logger == nil {
		logger = log.NewEntry(log.StandardLogger())
	}
	return &vaultResolver{getenv: getenv, logger: logger, secrets: make(map[string]map[string]any)}
}

type vaultMount struct {
	path    string // with its trailing slash, as Vault reports it
	version int
}

// vaultCallError describes a failed Vault call in words fit for an
// operator, keeping the HTTP status for decisions (403 ⇒ log in again).
type vaultCallError struct {
	status  int
	message string
}

func (e *vaultCallError) Error() string { return e.message }

func isPermissionDenied(err error) bool {
	var callErr *vaultCallError
	return errors.As(err, &callErr) && callErr.status == http.StatusForbidden
}

// field returns one string field of the secret at path.
func (r *vaultResolver) field(ctx context.Context, path, field string) (string, error) {
	if err := r.connect(ctx); err != nil {
		return "", err
	}
	data, err := r.secret(ctx, path)
	if err != nil {
		return "", err
	}
	raw, ok := data[field]
	if !ok {
		return "", fmt.Errorf("field %q not found", field)
	}
	value, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("field %q is %s, not a string", field, jsonKind(raw))
	}
	return value, nil
}

// connect builds the client and gets it a token: VAULT_TOKEN, else the
// token cached in VAULT_TOKEN_FILE if Vault still accepts it, else a
// userpass login.
func (r *vaultResolver) connect(ctx context.Context) error {
	if r.client != nil {
		return nil
	}
	client, err := newVaultClient(r.getenv)
	if err != nil {
		return err
	}
	r.client = client
	r.address = client.Address()

	if token := r.getenv(api.EnvVaultToken); token != "" {
		r.hidden = append(r.hidden, token)
		client.SetToken(token)
		r.logger.WithField("vault", r.address).Info("Using the Vault token from VAULT_TOKEN")
		return nil
	}
	r.tokenFile = r.getenv(envVaultTokenFile)
	token := r.readCachedToken()
	if token == "" {
		return r.login(ctx)
	}
	r.hidden = append(r.hidden, token)
	client.SetToken(token)
	if _, err := client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		described := r.describe(err)
		if !isPermissionDenied(described) {
			return fmt.Errorf("check the cached Vault token: %w", described)
		}
		r.logger.WithField("file", r.tokenFile).Info("Vault rejected the cached token; logging in again")
		return r.login(ctx)
	}
	r.usingCachedToken = true
	r.logger.WithFields(log.Fields{"vault": r.address, "file": r.tokenFile}).Info("Using the cached Vault token")
	return nil
}

// readCachedToken returns the token in the token file, or "" when there is
// none worth trying.
func (r *vaultResolver) readCachedToken() string {
	if r.tokenFile == "" {
		return ""
	}
	content, err := os.ReadFile(r.tokenFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.logger.WithError(err).Warn("Cannot read the cached Vault token; logging in instead")
		}
		return ""
	}
	token := strings.TrimSpace(string(content))
	if hasNonPrintable(token) || strings.ContainsAny(token, " \t") {
		r.logger.WithField("file", r.tokenFile).Warn("The cached Vault token file holds no usable token; logging in instead")
		return ""
	}
	return token
}

// login logs in with VAULT_USERNAME/VAULT_PASSWORD and, when
// VAULT_TOKEN_FILE is set, caches the new token there for the other
// executors of this host.
func (r *vaultResolver) login(ctx context.Context) error {
	r.usingCachedToken = false
	user, password := r.getenv(envVaultUsername), r.getenv(envVaultPassword)
	if user == "" || password == "" {
		return errors.New("no Vault token: set VAULT_TOKEN, or VAULT_USERNAME and VAULT_PASSWORD to log in (with VAULT_TOKEN_FILE to share the token)")
	}
	r.hidden = append(r.hidden, password)
	body := map[string]any{"password": password}
	requestedTTL := time.Duration(0)
	if raw := r.getenv(envVaultTTL); raw != "" {
		ttl, err := parseSecondsOrDuration(raw)
		if err != nil || ttl < time.Second {
			return fmt.Errorf("invalid %s %q: want a Go duration or whole seconds, at least 1s", envVaultTTL, raw)
		}
		requestedTTL = ttl
		body["ttl"] = int64((ttl + time.Second - 1) / time.Second)
	}

	// A rejected token must not ride along with the login.
	r.client.ClearToken()
	secret, err := r.client.Logical().WriteWithContext(ctx, "auth/userpass/login/"+user, body)
	if err != nil {
		return fmt.Errorf("userpass login as %s: %w", user, r.describe(err))
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return fmt.Errorf("userpass login as %s: Vault returned no token", user)
	}
	token := secret.Auth.ClientToken
	r.hidden = append(r.hidden, token)
	r.client.SetToken(token)
	r.logger.WithFields(log.Fields{
		"vault":         r.address,
		"user":          user,
		"requested_ttl": requestedTTL.String(),
		"granted_ttl":   (time.Duration(secret.Auth.LeaseDuration) * time.Second).String(),
	}).Info("Logged in to Vault with userpass")

	if r.tokenFile != "" {
		if err := writeTokenFile(r.tokenFile, token); err != nil {
			// The token still works for this task; only the sharing is lost.
			r.logger.WithError(err).Warn("Cannot cache the Vault token for the other executors")
		} else {
			r.logger.WithField("file", r.tokenFile).Info("Cached the Vault token")
		}
	}
	return nil
}

// writeTokenFile replaces the token file atomically (temporary file in the
// same directory, then rename) so that a concurrent reader sees the old
// token or the new one, never part of one; the file is private (0600).
func writeTokenFile(path, token string) error {
	return writeFileAtomic(path, []byte(token+"\n"), 0o600)
}

// secret returns the fields of the secret at path, read once per call. A
// cached token rejected on the read is replaced by one fresh login.
func (r *vaultResolver) secret(ctx context.Context, path string) (map[string]any, error) {
	if data, ok := r.secrets[path]; ok {
		r.logger.WithField("path", path).Debug("Vault secret already read in this call")
		return data, nil
	}
	var data map[string]any
	notice := r.logger.WithFields(log.Fields{"path": path, "file": r.tokenFile})
	err := r.retryDenied(ctx, reloginCachedToken, notice, "Vault refused the cached token; logging in again", func() error {
		var err error
		data, err = r.readSecret(ctx, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.secrets[path] = data
	return data, nil
}

// How retryDenied gets a new token when Vault refuses the one in use.
type tokenRefresh int

const (
	// reloginCachedToken replaces only a token read from the token file,
	// by one fresh login: a token from VAULT_TOKEN, or one just obtained
	// by logging in, would be refused again.
	reloginCachedToken tokenRefresh = iota
	// reconnectAnyToken connects again the way connect first did
	// (VAULT_TOKEN, the token file, else a login), whatever the token in
	// use: long after the launch, the token may have expired, or another
	// executor may have cached a newer one.
	reconnectAnyToken
)

// retryDenied runs call and, when Vault refuses the token (HTTP 403),
// logs message on notice, gets a new token as refresh says and runs call
// once more. call must use r.client as it is when call runs (the refresh
// may replace it) and return its Vault errors through r.describe, wrapped
// or not. The error of a failed refresh is returned as is.
func (r *vaultResolver) retryDenied(ctx context.Context, refresh tokenRefresh, notice *log.Entry, message string, call func() error) error {
	err := call()
	if !isPermissionDenied(err) {
		return err
	}
	switch refresh {
	case reloginCachedToken:
		if !r.usingCachedToken {
			return err
		}
		notice.Info(message)
		if err := r.login(ctx); err != nil {
			return err
		}
	case reconnectAnyToken:
		notice.Info(message)
		if err := r.reconnect(ctx); err != nil {
			return err
		}
	}
	return call()
}

// reconnect drops the client and connects again. When not even a new
// client can be built, the previous one stays, for the calls still to
// come (the revocation at the task's end).
func (r *vaultResolver) reconnect(ctx context.Context) error {
	previous := r.client
	r.client = nil
	err := r.connect(ctx)
	if r.client == nil {
		r.client = previous
	}
	return err
}

func (r *vaultResolver) readSecret(ctx context.Context, path string) (map[string]any, error) {
	mount, err := r.mount(ctx, path)
	if err != nil {
		return nil, err
	}
	if mount.path != "" && path+"/" == mount.path {
		return nil, errors.New("the path names a secrets engine mount, not a secret")
	}
	if mount.version == 1 {
		secret, err := r.client.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return nil, r.describe(err)
		}
		if secret == nil || secret.Data == nil {
			return nil, &vaultCallError{status: http.StatusNotFound, message: "secret not found (HTTP 404)"}
		}
		return secret.Data, nil
	}

	kv, err := r.client.KVv2(strings.TrimSuffix(mount.path, "/")).Get(ctx, strings.TrimPrefix(path, mount.path))
	if err != nil {
		return nil, r.describe(err)
	}
	// Data is nil, with the version's metadata, when the latest version is
	// deleted or destroyed; a deletion time in the future is only scheduled.
	if kv.Data != nil {
		return kv.Data, nil
	}
	meta := kv.VersionMetadata
	switch {
	case meta != nil && meta.Destroyed:
		return nil, fmt.Errorf("the latest version (%d) of the secret is destroyed", meta.Version)
	case meta != nil && !meta.DeletionTime.IsZero():
		return nil, fmt.Errorf("the latest version (%d) of the secret was deleted at %s", meta.Version, meta.DeletionTime.UTC().Format(time.RFC3339))
	default:
		return nil, &vaultCallError{status: http.StatusNotFound, message: "secret not found (HTTP 404)"}
	}
}

// mount finds the mount holding path and its KV version through
// sys/internal/ui/mounts (options.version "2" ⇔ KV v2).
func (r *vaultResolver) mount(ctx context.Context, path string) (vaultMount, error) {
	for _, m := range r.mounts {
		if strings.HasPrefix(path+"/", m.path) {
			return m, nil
		}
	}
	if r.noMountLookup {
		return vaultMount{version: 1}, nil
	}
	secret, err := r.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err != nil {
		return vaultMount{}, r.describe(err)
	}
	if secret == nil {
		r.noMountLookup = true
		r.logger.Debug("Vault has no mount lookup (HTTP 404); treating mounts as KV v1")
		return vaultMount{version: 1}, nil
	}
	mountPath, _ := secret.Data["path"].(string)
	if mountPath == "" || !strings.HasSuffix(mountPath, "/") || !strings.HasPrefix(path+"/", mountPath) {
		return vaultMount{}, fmt.Errorf("the mount lookup answered mount %q, which does not hold the path", mountPath)
	}
	m := vaultMount{path: mountPath, version: 1}
	if options, ok := secret.Data["options"].(map[string]any); ok && fmt.Sprint(options["version"]) == "2" {
		m.version = 2
	}
	r.mounts = append(r.mounts, m)
	r.logger.WithFields(log.Fields{"mount": m.path, "kv_version": m.version}).Debug("Vault mount")
	return m, nil
}

// describe turns an error from vault/api into a *vaultCallError whose text
// says what went wrong without URLs, tokens or request bodies.
func (r *vaultResolver) describe(err error) error {
	var respErr *api.ResponseError
	var urlErr *url.Error
	switch {
	case errors.As(err, &respErr):
		if respErr.StatusCode == http.StatusForbidden {
			return &vaultCallError{status: http.StatusForbidden, message: "permission denied (HTTP 403)"}
		}
		message := fmt.Sprintf("Vault answered HTTP %d", respErr.StatusCode)
		if details := r.vaultMessages(respErr.Errors); details != "" {
			message += ": " + details
		}
		return &vaultCallError{status: respErr.StatusCode, message: message}
	case errors.Is(err, api.ErrSecretNotFound):
		return &vaultCallError{status: http.StatusNotFound, message: "secret not found (HTTP 404)"}
	case errors.Is(err, context.Canceled):
		return &vaultCallError{message: "cancelled while waiting for Vault at " + r.address}
	case errors.Is(err, context.DeadlineExceeded):
		return &vaultCallError{message: fmt.Sprintf("Vault at %s did not answer in time (%s %s)", r.address, api.EnvVaultClientTimeout, r.client.ClientTimeout())}
	case errors.As(err, &urlErr):
		return &vaultCallError{message: fmt.Sprintf("Vault at %s unreachable: %s", r.address, networkReason(urlErr.Err))}
	default:
		// Library errors about unexpected answers may quote the answer.
		return &vaultCallError{message: fmt.Sprintf("unexpected answer from Vault at %s", r.address)}
	}
}

// vaultMessages joins the errors in a Vault answer on one line, with any
// token or password they might echo scrubbed.
func (r *vaultResolver) vaultMessages(messages []string) string {
	var parts []string
	for _, m := range messages {
		if m = strings.Join(strings.Fields(m), " "); m != "" {
			parts = append(parts, m)
		}
	}
	joined := strings.Join(parts, "; ")
	for _, secret := range r.hidden {
		if secret != "" {
			joined = strings.ReplaceAll(joined, secret, redactedValue)
		}
	}
	return joined
}

// networkReason keeps the operating system's reason ("connection refused")
// and drops the request URL around it.
func networkReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	return err.Error()
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// parseSecondsOrDuration reads "90" (seconds) or a Go duration ("90s",
// "1h30m"), as Vault does for its TTL settings.
func parseSecondsOrDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > math.MaxInt64/uint64(time.Second) {
			return 0, fmt.Errorf("%s seconds is too long", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("negative duration")
	}
	return d, nil
}

// newVaultClient builds a vault/api client from the VAULT_* variables that
// getenv returns. vault/api reads its environment with os.Getenv only
// (DefaultConfig, ReadEnvironment and NewClient all do), so this starts
// from the library's defaults and sets again, from getenv, every variable
// the library would have read: the executor's view of its environment wins
// over the process's. The library still does all the HTTP.
//
// Not applied: VAULT_RATE_LIMIT (the executor makes a handful of requests
// per task, and honouring it would add golang.org/x/time/rate as a direct
// dependency).
func newVaultClient(getenv func(string) string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("invalid VAULT_* setting in the executor's process environment: %w", cfg.Error)
	}
	if err := configureVaultFromEnv(cfg, getenv); err != nil {
		return nil, fmt.Errorf("invalid Vault client settings: %w", err)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("invalid Vault client settings: %w", err)
	}
	// NewClient took VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the process environment; replace them with getenv's.
	client.ClearToken()
	headers := http.Header{}
	headers.Set(api.RequestHeaderName, "true")
	if raw := getenv(api.EnvVaultHeaders); raw != "" {
		var extra map[string]any
		if err := json.Unmarshal([]byte(raw), &extra); err != nil {
			return nil, fmt.Errorf("invalid %s: not a JSON object", api.EnvVaultHeaders)
		}
		for name, value := range extra {
			text, ok := value.(string)
			if !ok {
				return nil, fmt.Errorf("invalid %s: header %s is not a string", api.EnvVaultHeaders, name)
			}
			if strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Vault-") {
				return nil, fmt.Errorf("invalid %s: header %s is reserved for Vault", api.EnvVaultHeaders, name)
			}
			headers.Add(name, text)
		}
	}
	client.SetHeaders(headers)
	if namespace := getenv(api.EnvVaultNamespace); namespace != "" {
		client.SetNamespace(namespace)
	}
	return client, nil
}

func configureVaultFromEnv(cfg *api.Config, getenv func(string) string) error {
	cfg.Address = api.DefaultAddress
	if v := getenv(api.EnvVaultAddress); v != "" {
		cfg.Address = v
	}
	cfg.AgentAddress = getenv(api.EnvVaultAgentAddr)
	cfg.MaxRetries = 2
	if v := getenv(api.EnvVaultMaxRetries); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%s %q is not a whole number", api.EnvVaultMaxRetries, v)
		}
		cfg.MaxRetries = int(n)
	}
	cfg.Timeout = 60 * time.Second
	if v := getenv(api.EnvVaultClientTimeout); v != "" {
		timeout, err := parseSecondsOrDuration(v)
		if err != nil || timeout == 0 {
			return fmt.Errorf("%s %q is not a duration", api.EnvVaultClientTimeout, v)
		}
		cfg.Timeout = timeout
	}
	var err error
	bools := []struct {
		name   string
		target *bool
	}{
		{api.EnvVaultSRVLookup, &cfg.SRVLookup},
		{api.EnvVaultDisableRedirects, &cfg.DisableRedirects},
	}
	for _, b := range bools {
		if *b.target, err = parseOptionalBool(b.name, getenv(b.name)); err != nil {
			return err
		}
	}
	cfg.Limiter = nil

	transport, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return fmt.Errorf("unexpected HTTP transport %T", cfg.HttpClient.Transport)
	}
	// The proxy settings come from getenv too, not from the process
	// environment (http.ProxyFromEnvironment): a proxy sees the requests,
	// and the host's login must not be routed through one the task chose.
	proxies := &httpproxy.Config{
		HTTPProxy:  getenv(api.EnvHTTPProxy),
		HTTPSProxy: getenv("HTTPS_PROXY"),
		NoProxy:    getenv("NO_PROXY"),
	}
	if v := getenv(api.EnvVaultProxyAddr); v != "" {
		proxies = &httpproxy.Config{HTTPProxy: v, HTTPSProxy: v}
	}
	proxyFor := proxies.ProxyFunc()
	transport.Proxy = func(request *http.Request) (*url.URL, error) { return proxyFor(request.URL) }

	// Start TLS from the library's defaults (minimum version, HTTP/2
	// protocols) without whatever the process environment added.
	tlsConfig := transport.TLSClientConfig.Clone()
	tlsConfig.RootCAs = nil
	tlsConfig.Certificates = nil
	tlsConfig.GetClientCertificate = nil
	tlsConfig.InsecureSkipVerify = false
	tlsConfig.ServerName = ""
	transport.TLSClientConfig = tlsConfig
	insecure, err := parseOptionalBool(api.EnvVaultSkipVerify, getenv(api.EnvVaultSkipVerify))
	if err != nil {
		return err
	}
	return cfg.ConfigureTLS(&api.TLSConfig{
		CACert:        getenv(api.EnvVaultCACert),
		CACertBytes:   []byte(getenv(api.EnvVaultCACertBytes)),
		CAPath:        getenv(api.EnvVaultCAPath),
		ClientCert:    getenv(api.EnvVaultClientCert),
		ClientKey:     getenv(api.EnvVaultClientKey),
		TLSServerName: getenv(api.EnvVaultTLSServerName),
		Insecure:      insecure,
	})
}

func parseOptionalBool(name, value string) (bool, error) {
	if value == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, fmt.Errorf("%s %q is not a boolean", name, value)
	}
	return b, nil
}
