package main

// AWS credentials from Vault's AWS secrets engine (EXECUTOR_AWS_ROLE*):
// which role a task may ask for, the credentials read at launch and put in
// the container's environment, the lease renewed while the task runs, the
// stop asked for before the credentials expire when Vault can extend them
// no further, and the lease revoked whichever way the task ends. Vault is
// reached through vault.go's client and token handling, with the same
// trust boundary: the operator's Vault with the host's token, or the
// task's own Vault when the task brings its own VAULT_TOKEN.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	log "github.com/sirupsen/logrus"
)

// AWSSettings choose the AWS credentials a task gets from Vault. The role
// and its TTLs are the task's to tune (as upstream, where they come from
// the task's environment); which roles the host's Vault token may read is
// the operator's Vault policy, and EXECUTOR_ALLOWED_AWS_ROLES narrows it
// further on this host (operator-only, like every EXECUTOR_ALLOWED_*).
type AWSSettings struct {
	// AWSRole is the role of the AWS secrets engine mounted at aws/;
	// empty: no AWS credentials.
	AWSRole string `envconfig:"AWS_ROLE"`
	// AWSRoleTTL is the lease asked for: the ttl of the creds request (the
	// STS credential types honour it) and the increment of each renewal.
	// 0: Vault's default, and renewals ask for the first lease's length.
	AWSRoleTTL time.Duration `envconfig:"AWS_ROLE_TTL" default:"0"`
	// AWSRoleMaxTTL bounds the credentials' life: renewals never extend
	// the lease past it, counted from when Vault issued it. 0: no bound
	// beyond Vault's own.
	AWSRoleMaxTTL time.Duration `envconfig:"AWS_ROLE_MAX_TTL" default:"744h"`
	// AllowedAWSRoles lists the roles tasks may ask the host's Vault for;
	// empty: any role the host's token may read.
	AllowedAWSRoles []string `envconfig:"ALLOWED_AWS_ROLES"`
}

// awsMount is where the AWS secrets engine is mounted, fixed as upstream.
const awsMount = "aws"

// awsRoleName is what Vault accepts as a role name (framework's
// GenericNameRegex): it keeps the role from naming another Vault path.
var awsRoleName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)

// The timing of the lease's upkeep.
const (
	// awsExpiryMargin is how long before the credentials expire the task
	// is stopped (upstream's 360 s); a quarter of the lease when that is
	// shorter, so that a short lease still leaves the task time to run.
	awsExpiryMargin = 360 * time.Second
	// awsVaultCallTimeout bounds one renewal.
	awsVaultCallTimeout = 30 * time.Second
	// awsRevokeTimeout bounds the revocation at the task's end, and
	// awsRevokeMinTimeout is what it gets even past the stop's deadline:
	// the terminal update waits for it, the agent's patience does not.
	awsRevokeTimeout    = 5 * time.Second
	awsRevokeMinTimeout = 250 * time.Millisecond
	// awsRetryMax caps the wait between failed renewals, and
	// awsMinRenewWait keeps renewals that fail at once near the stop
	// point from following each other without a pause.
	awsRetryMax     = time.Minute
	awsMinRenewWait = 50 * time.Millisecond
)

// The container variables the credentials go in.
const (
	envAWSAccessKeyID     = "AWS_ACCESS_KEY_ID"
	envAWSSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	envAWSSessionToken    = "AWS_SESSION_TOKEN"
)

// problems lists what is wrong with the settings, naming the variables.
func (s AWSSettings) problems() []string {
	var problems []string
	if s.AWSRole != "" && !awsRoleName.MatchString(s.AWSRole) {
		problems = append(problems, fmt.Sprintf("%s_AWS_ROLE %q is not a Vault role name (letters, digits, _, - and ., starting and ending with a letter, digit or _)", envPrefix, s.AWSRole))
	}
	if s.AWSRoleTTL < 0 {
		problems = append(problems, fmt.Sprintf("%s_AWS_ROLE_TTL must not be negative (got %s)", envPrefix, s.AWSRoleTTL))
	}
	if s.AWSRoleMaxTTL < 0 {
		problems = append(problems, fmt.Sprintf("%s_AWS_ROLE_MAX_TTL must not be negative (got %s)", envPrefix, s.AWSRoleMaxTTL))
	}
	if s.AWSRoleMaxTTL > 0 && s.AWSRoleTTL > s.AWSRoleMaxTTL {
		problems = append(problems, fmt.Sprintf("%s_AWS_ROLE_TTL (%s) must not be longer than %s_AWS_ROLE_MAX_TTL (%s)", envPrefix, s.AWSRoleTTL, envPrefix, s.AWSRoleMaxTTL))
	}
	for _, role := range s.allowedRoles() {
		if !awsRoleName.MatchString(role) {
			problems = append(problems, fmt.Sprintf("%s_ALLOWED_AWS_ROLES holds %q, which is not a Vault role name", envPrefix, role))
		}
	}
	return problems
}

// allowedRoles is EXECUTOR_ALLOWED_AWS_ROLES without blanks around or
// between its names.
func (s AWSSettings) allowedRoles() []string {
	var roles []string
	for _, role := range s.AllowedAWSRoles {
		if role = strings.TrimSpace(role); role != "" {
			roles = append(roles, role)
		}
	}
	return roles
}

// admitRole refuses a role the operator does not allow. The list guards
// the host's Vault token only: a task that brings its own VAULT_TOKEN asks
// its own Vault, with its own authority.
func (s AWSSettings) admitRole(taskUsesOwnVault bool) error {
	if s.AWSRole == "" || taskUsesOwnVault {
		return nil
	}
	allowed := s.allowedRoles()
	if len(allowed) == 0 || slices.Contains(allowed, s.AWSRole) {
		return nil
	}
	return fmt.Errorf("AWS credentials for Vault role %s are not allowed on this host: the operator allows only %s (%s_ALLOWED_AWS_ROLES in %s)",
		s.AWSRole, strings.Join(allowed, ", "), envPrefix, operatorEnvFile)
}

// awsLease is the AWS credentials one task holds and their lease. Its
// fields belong to the renewal goroutine while it runs, and to the task's
// goroutine before and after.
type awsLease struct {
	role    string
	leaseID string
	// env is the container's AWS_* variables; never logged.
	env      []string
	resolver *vaultResolver
	logger   *log.Entry

	// increment is what each renewal asks for; maxTTL bounds the life.
	increment time.Duration
	maxTTL    time.Duration
	margin    time.Duration
	renewable bool
	issued    time.Time
	expires   time.Time
	// tokenExpires is when the token that obtained the lease expires, and
	// with it the lease (Vault revokes a token's leases); zero if never.
	tokenExpires time.Time
	creatorToken string
	// noMoreRenewals says why the lease cannot be extended further, once
	// that is known.
	noMoreRenewals string

	cancel context.CancelFunc
	done   chan struct{}
}

// awsTaskState is what a task runner keeps of its AWS credentials.
type awsTaskState struct {
	lease *awsLease
	// deadline is the stop's deadline, when it had one: the revocation
	// must not hold the terminal update past it.
	deadline time.Time
}

// obtainAWSCredentials gets the task's AWS credentials when it asks for a
// role, adds them to the container's environment and starts renewing
// them; the renewal asks the task to stop before they expire when Vault
// can extend them no further. The lease is revoked by
// releaseAWSCredentials, whichever way the task ends.
func (t *taskRunner) obtainAWSCredentials(ctx context.Context, resolver *vaultResolver, logger *log.Entry) *outcome {
	settings := t.deps.settings.AWSSettings
	if settings.AWSRole == "" {
		return nil
	}
	lease, err := requestAWSCredentials(ctx, settings, resolver, logger)
	if err != nil {
		failure := launchFailure(mesos.REASON_CONTAINER_LAUNCH_FAILED, err.Error())
		return &failure
	}
	t.aws.lease = lease
	t.spec.Options.Config.Env = withAWSCredentials(t.spec.Options.Config.Env, lease.env, logger)
	t.fromVault = append(t.fromVault, awsVariableNames(lease.env)...)
	lease.startRenewing(func(message string) {
		t.Stop(stopRequest{cause: causeAWSCredentialsExpiring, grace: -1, message: message})
	})
	return nil
}

// releaseAWSCredentials stops the renewals and revokes the lease, within
// the stop's deadline when there is one.
func (t *taskRunner) releaseAWSCredentials() {
	if t.aws.lease == nil {
		return
	}
	t.aws.lease.release(t.aws.deadline)
	t.aws.lease = nil
}

// requestAWSCredentials reads aws/creds/<role> with the task's Vault
// resolver, connected already when the task's vault:// values needed it;
// the lease keeps the resolver for its renewals. Errors name the role and
// what Vault said, never a token or a key.
func requestAWSCredentials(ctx context.Context, settings AWSSettings, resolver *vaultResolver, logger *log.Entry) (*awsLease, error) {
	role := settings.AWSRole
	logger = logger.WithField("aws_role", role)
	fail := func(err error) (*awsLease, error) {
		return nil, fmt.Errorf("get AWS credentials for Vault role %s: %w", role, err)
	}
	// From here on the resolver's notices concern the AWS credentials.
	resolver.logger = logger
	if err := resolver.connect(ctx); err != nil {
		return fail(err)
	}
	path := awsMount + "/creds/" + role
	var query map[string][]string
	if settings.AWSRoleTTL > 0 {
		query = map[string][]string{"ttl": {strconv.FormatInt(ceilSeconds(settings.AWSRoleTTL), 10)}}
	}
	logger.WithFields(log.Fields{"path": path, "requested_ttl": settings.AWSRoleTTL.String()}).Info("Requesting AWS credentials from Vault")
	var secret *api.Secret
	err := resolver.retryDenied(ctx, reloginCachedToken, logger, "Vault refused the cached token; logging in again", func() error {
		var err error
		if secret, err = resolver.client.Logical().ReadWithDataWithContext(ctx, path, query); err != nil {
			return fmt.Errorf("%s: %w", path, resolver.describe(err))
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if secret == nil || secret.Data == nil {
		return fail(fmt.Errorf("%s: not found (HTTP 404): is the AWS secrets engine mounted at %s/?", path, awsMount))
	}
	accessKey, _ := secret.Data["access_key"].(string)
	secretKey, _ := secret.Data["secret_key"].(string)
	sessionToken, _ := secret.Data["security_token"].(string)
	if accessKey == "" || secretKey == "" {
		if secret.LeaseID != "" {
			// Whatever Vault issued under that lease is of no use here.
			revokeCtx, cancel := context.WithTimeout(ctx, awsRevokeTimeout)
			defer cancel()
			_ = resolver.client.Sys().RevokeWithContext(revokeCtx, secret.LeaseID)
		}
		return fail(fmt.Errorf("%s: Vault's answer holds no access_key and secret_key", path))
	}
	resolver.hidden = append(resolver.hidden, accessKey, secretKey, sessionToken)
	if secret.LeaseID == "" || secret.LeaseDuration <= 0 {
		// Nothing to renew or revoke, and no expiry to stop before: not
		// what the AWS engine answers.
		return fail(fmt.Errorf("%s: Vault's answer has no lease", path))
	}

	now := time.Now()
	leaseDuration := time.Duration(secret.LeaseDuration) * time.Second
	lease := &awsLease{
		role:      role,
		leaseID:   secret.LeaseID,
		env:       []string{envAWSAccessKeyID + "=" + accessKey, envAWSSecretAccessKey + "=" + secretKey},
		resolver:  resolver,
		logger:    logger.WithField("lease_id", secret.LeaseID),
		increment: settings.AWSRoleTTL,
		maxTTL:    settings.AWSRoleMaxTTL,
		margin:    min(awsExpiryMargin, leaseDuration/4),
		renewable: secret.Renewable,
		issued:    now,
		expires:   now.Add(leaseDuration),
	}
	if sessionToken != "" {
		lease.env = append(lease.env, envAWSSessionToken+"="+sessionToken)
	}
	if lease.increment <= 0 {
		lease.increment = leaseDuration
	}
	// Renewals must be able to extend the lease before the stop point.
	lease.margin = min(lease.margin, lease.increment/4)
	if !lease.renewable {
		lease.noMoreRenewals = "Vault issued them with a non-renewable lease"
	}
	lease.tokenExpires = tokenExpiry(ctx, resolver, now)
	lease.creatorToken = resolver.client.Token()
	lease.logger.WithFields(log.Fields{
		"lease_duration": leaseDuration.String(),
		"renewable":      secret.Renewable,
		"session_token":  sessionToken != "",
		"expires":        lease.expires.UTC().Format(time.RFC3339),
	}).Info("Obtained AWS credentials from Vault")
	return lease, nil
}

// tokenExpiry is when the client's token expires, or zero when it never
// does or Vault will not say.
func tokenExpiry(ctx context.Context, resolver *vaultResolver, now time.Time) time.Time {
	self, err := resolver.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		resolver.logger.WithField("error", resolver.describe(err).Error()).
			Warn("Cannot look up the Vault token's TTL; the AWS credentials' renewals assume it outlives them")
		return time.Time{}
	}
	ttl, err := self.TokenTTL()
	if err != nil || ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}

// withAWSCredentials replaces any AWS credential variables of the task's
// own by the ones from Vault: a stale session token next to fresh keys
// would make every AWS call fail.
func withAWSCredentials(env, credentials []string, logger *log.Entry) []string {
	replaced := []string{}
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case envAWSAccessKeyID, envAWSSecretAccessKey, envAWSSessionToken:
			replaced = append(replaced, name)
			return true
		}
		return false
	})
	if len(replaced) > 0 {
		logger.WithField("variables", strings.Join(replaced, " ")).Warn("the task's own AWS credential variables are replaced by those from Vault")
	}
	return append(out, credentials...)
}

func awsVariableNames(env []string) []string {
	names := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	return names
}

// startRenewing keeps the lease alive in the background until release.
// onExpiring is called once, when the credentials are about to expire and
// Vault will not extend them.
func (l *awsLease) startRenewing(onExpiring func(message string)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done = make(chan struct{})
	go l.renewLoop(ctx, onExpiring)
}

// renewLoop renews the lease halfway to the point where the task must be
// stopped, retries failed renewals with a growing pause until then, and
// asks for the stop when that point comes. A wake-up that comes late (a
// loaded host) still tries a renewal while the lease lasts.
func (l *awsLease) renewLoop(ctx context.Context, onExpiring func(message string)) {
	defer close(l.done)
	retryWait := time.Second
	var lastErr error
	for {
		wake := l.stopAt()
		if l.noMoreRenewals == "" {
			wait := time.Until(wake) / 2
			if lastErr != nil {
				wait = min(retryWait, wait)
				retryWait = min(2*retryWait, awsRetryMax)
			} else {
				retryWait = time.Second
			}
			wake = time.Now().Add(max(wait, awsMinRenewWait))
			// A renewal asks for the increment from now: before this
			// moment it would not extend the lease.
			if extends := l.expires.Add(l.growthSlack() - l.increment + awsMinRenewWait); wake.Before(extends) {
				wake = extends
			}
		}
		if !sleepContext(ctx, time.Until(wake)) {
			return
		}
		if l.noMoreRenewals == "" && time.Now().Before(l.effectiveExpiry()) {
			lastErr = l.renew(ctx)
		}
		if !time.Now().Before(l.stopAt()) {
			message := l.expiryMessage(lastErr)
			l.logger.WithField("expires", l.effectiveExpiry().UTC().Format(time.RFC3339)).Warn(message)
			onExpiring(message)
			return
		}
	}
}

// refreshTokenExpiry looks the token's expiry up again, for a token that
// something else renews (a periodic token, a Vault Agent). Only the token
// that obtained the lease matters: a replacement after a refusal has no
// say in when Vault revokes the lease.
func (l *awsLease) refreshTokenExpiry(ctx context.Context) {
	if l.tokenExpires.IsZero() || l.resolver.client.Token() != l.creatorToken {
		return
	}
	lookupCtx, cancel := context.WithTimeout(ctx, awsVaultCallTimeout)
	defer cancel()
	if expires := tokenExpiry(lookupCtx, l.resolver, time.Now()); !expires.IsZero() {
		l.tokenExpires = expires
	}
}

// effectiveExpiry is when the credentials stop working: the lease's end,
// or the end of the token that obtained it if that comes first.
func (l *awsLease) effectiveExpiry() time.Time {
	if !l.tokenExpires.IsZero() && l.tokenExpires.Before(l.expires) {
		return l.tokenExpires
	}
	return l.expires
}

// stopAt is when the task must be asked to stop if the lease is not
// extended by then.
func (l *awsLease) stopAt() time.Time {
	return l.effectiveExpiry().Add(-l.margin)
}

// renew asks Vault to extend the lease by the increment, never past the
// maximum TTL nor the token's life. A renewal that would not extend the
// lease is not asked for: the lease has reached its end.
func (l *awsLease) renew(ctx context.Context) error {
	l.refreshTokenExpiry(ctx)
	now := time.Now()
	var limit time.Time
	limitReason := ""
	if l.maxTTL > 0 {
		limit, limitReason = l.issued.Add(l.maxTTL), fmt.Sprintf("%s_AWS_ROLE_MAX_TTL (%s) is reached", envPrefix, l.maxTTL)
	}
	if !l.tokenExpires.IsZero() && (limit.IsZero() || l.tokenExpires.Before(limit)) {
		limit, limitReason = l.tokenExpires, "the Vault token that obtained them expires then"
	}
	increment := l.increment
	if !limit.IsZero() && now.Add(increment).After(limit) {
		increment = limit.Sub(now)
	}
	seconds := int(increment / time.Second)
	if !now.Add(time.Duration(seconds) * time.Second).After(l.expires.Add(l.growthSlack())) {
		if limitReason != "" && increment < l.increment {
			l.noMoreRenewals = limitReason
		}
		return nil
	}
	callCtx, cancel := context.WithTimeout(ctx, min(awsVaultCallTimeout, max(time.Until(l.stopAt()), time.Second)))
	defer cancel()
	// A refused token may have expired or been replaced: connect again
	// the way the launch did (token file, else login).
	var secret *api.Secret
	err := l.resolver.retryDenied(callCtx, reconnectAnyToken, l.logger, "Vault refused the token while renewing the AWS credentials; connecting again", func() error {
		var err error
		if secret, err = l.resolver.client.Sys().RenewWithContext(callCtx, l.leaseID, seconds); err != nil {
			return l.resolver.describe(err)
		}
		return nil
	})
	if err != nil {
		var callErr *vaultCallError
		if errors.As(err, &callErr) && callErr.status == http.StatusBadRequest {
			// Unknown, expired or not renewable: asking again will not help.
			l.noMoreRenewals = "Vault refuses to renew the lease: " + err.Error()
		}
		l.logger.WithField("error", err.Error()).Warn("Could not renew the AWS credentials' lease")
		return err
	}
	if secret == nil || secret.LeaseDuration <= 0 {
		l.noMoreRenewals = "Vault renewed the lease without a duration"
		return nil
	}
	previous := l.expires
	l.expires = now.Add(time.Duration(secret.LeaseDuration) * time.Second)
	l.logger.WithFields(log.Fields{
		"requested":      (time.Duration(seconds) * time.Second).String(),
		"lease_duration": (time.Duration(secret.LeaseDuration) * time.Second).String(),
		"expires":        l.expires.UTC().Format(time.RFC3339),
	}).Info("Renewed the AWS credentials' lease")
	if !l.expires.After(previous.Add(l.growthSlack())) {
		l.noMoreRenewals = "Vault extends the lease no further (its maximum TTL is reached)"
	}
	return nil
}

// expiryMessage says, for the task's terminal status, why it is stopped.
func (l *awsLease) expiryMessage(lastErr error) string {
	reason := l.noMoreRenewals
	if reason == "" && lastErr != nil {
		reason = "renewing them failed: " + lastErr.Error()
	}
	if reason == "" {
		reason = "Vault did not renew them in time"
	}
	return fmt.Sprintf("the AWS credentials of Vault role %s expire at %s and cannot be renewed (%s); stopping the task before they expire",
		l.role, l.effectiveExpiry().UTC().Format(time.RFC3339), reason)
}

// release ends the renewals and revokes the lease, so the credentials die
// with the task. The revocation is bounded: by deadline (the stop's, when
// it has one) and by awsRevokeTimeout; a lease that cannot be revoked
// expires by its TTL.
func (l *awsLease) release(deadline time.Time) {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	timeout := awsRevokeTimeout
	if !deadline.IsZero() {
		timeout = max(min(timeout, time.Until(deadline)), awsRevokeMinTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := l.resolver.client.Sys().RevokeWithContext(ctx, l.leaseID); err != nil {
		l.logger.WithFields(log.Fields{
			"error":   l.resolver.describe(err).Error(),
			"expires": l.effectiveExpiry().UTC().Format(time.RFC3339),
		}).Warn("Could not revoke the AWS credentials' lease; they stay valid until it expires (the host's Vault policy needs update on sys/leases/revoke)")
		return
	}
	l.logger.Info("Revoked the AWS credentials' lease")
}

// growthSlack is how much a renewal must extend the lease to count:
// Vault reports durations in whole seconds, so expiries computed from two
// answers differ by up to a second even when the lease did not move.
func (l *awsLease) growthSlack() time.Duration {
	return min(time.Second, l.increment/4)
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
