package vaulttest

// The AWS secrets engine, mounted at aws/, and the lease endpoints that
// renew and revoke what it issues: GET aws/creds/<role> (with an optional
// ttl parameter, honoured by the STS credential types only, as in Vault),
// PUT sys/leases/renew and PUT sys/leases/revoke. Leases expire by the
// clock; every renew and revoke is recorded for the tests to inspect.
//
// Policies: reading aws/creds/<role> needs a "read:" grant covering it;
// renewing needs only a valid token (Vault's default policy grants
// sys/leases/renew); revoking needs "root" or "update:sys/leases/revoke".

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// AWS credential types, as the AWS secrets engine names them.
const (
	AWSIAMUser         = "iam_user"
	AWSAssumedRole     = "assumed_role"
	AWSFederationToken = "federation_token"
	AWSSessionToken    = "session_token"
)

// AWSRole is one role of the AWS secrets engine.
type AWSRole struct {
	// CredentialType is one of the AWS* constants; empty means iam_user.
	CredentialType string
	// TTL is the lease of new credentials: for iam_user the mount's
	// default lease, for the STS types the role's default_sts_ttl. 0 means
	// one hour. Vault counts leases in whole seconds, and so does this
	// engine (rounded up).
	TTL time.Duration
	// MaxTTL bounds a lease's whole life, renewals included (iam_user:
	// the mount's lease_max; STS types: max_sts_ttl). 0 means 768 hours.
	MaxTTL time.Duration
}

// AWSLease is what the engine knows of one lease it issued.
type AWSLease struct {
	ID           string
	Role         string
	AccessKey    string
	SecretKey    string
	SessionToken string // empty for iam_user
	Renewable    bool
	Issued       time.Time
	Expires      time.Time
	Renewals     int
	Revoked      bool
	RevokedAt    time.Time
}

// LeaseCall is one renew or revoke request the server received.
type LeaseCall struct {
	// Op is "renew" or "revoke".
	Op      string
	LeaseID string
	// Increment is the renew request's increment in seconds (0 if none).
	Increment int64
	// Status is the HTTP status of the answer.
	Status int
	Time   time.Time
}

type awsLeaseEntry struct {
	AWSLease
	maxExpires time.Time
}

// AddAWSRole creates (or replaces) a role of the AWS secrets engine, and
// mounts the engine at aws/ on first use.
func (s *Server) AddAWSRole(name string, role AWSRole) {
	if role.CredentialType == "" {
		role.CredentialType = AWSIAMUser
	}
	switch role.CredentialType {
	case AWSIAMUser, AWSAssumedRole, AWSFederationToken, AWSSessionToken:
	default:
		panic(fmt.Sprintf("vaulttest: unknown AWS credential type %q", role.CredentialType))
	}
	if role.TTL <= 0 {
		role.TTL = time.Hour
	}
	if role.MaxTTL <= 0 {
		role.MaxTTL = DefaultLoginTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.awsRoles == nil {
		s.awsRoles = make(map[string]AWSRole)
		s.awsLeases = make(map[string]*awsLeaseEntry)
	}
	s.awsRoles[name] = role
}

// AWSLeases returns every lease the engine issued, oldest first.
func (s *Server) AWSLeases() []AWSLease {
	s.mu.Lock()
	defer s.mu.Unlock()
	var leases []AWSLease
	for _, id := range s.awsLeaseOrder {
		leases = append(leases, s.awsLeases[id].AWSLease)
	}
	return leases
}

// LeaseCalls returns every renew and revoke request, oldest first.
func (s *Server) LeaseCalls() []LeaseCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LeaseCall(nil), s.leaseCalls...)
}

// handleAWS serves the AWS engine and the lease endpoints; it reports
// whether path was one of theirs. The token is already checked. Called
// with s.mu held.
func (s *Server) handleAWS(w http.ResponseWriter, r *http.Request, path string, entry *tokenEntry) bool {
	switch {
	case s.awsRoles != nil && strings.HasPrefix(path, "aws/creds/"):
		if r.Method != http.MethodGet && r.Method != http.MethodPut && r.Method != http.MethodPost {
			writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
			return true
		}
		s.awsCreds(w, r, path, entry)
	case path == "sys/leases/renew" || path == "sys/leases/revoke":
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			writeErrors(w, http.StatusMethodNotAllowed, "unsupported operation")
			return true
		}
		s.leaseOperation(w, r, strings.TrimPrefix(path, "sys/leases/"), entry)
	default:
		return false
	}
	return true
}

func (s *Server) awsCreds(w http.ResponseWriter, r *http.Request, path string, entry *tokenEntry) {
	if !entry.may("read", path) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	name := strings.TrimPrefix(path, "aws/creds/")
	role, ok := s.awsRoles[name]
	if !ok || name == "" || strings.Contains(name, "/") {
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("Role %q not found", name))
		return
	}
	var requested time.Duration
	if raw := r.URL.Query().Get("ttl"); raw != "" {
		quoted, _ := json.Marshal(raw)
		ttl, err := parseTTL(quoted)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("error converting input %s for field %q: %v", raw, "ttl", err))
			return
		}
		requested = ttl
	}

	now := time.Now().UTC()
	ttl := roundUpSeconds(role.TTL)
	if requested > 0 && role.CredentialType != AWSIAMUser {
		ttl = roundUpSeconds(requested)
	}
	if ttl > role.MaxTTL {
		ttl = role.MaxTTL
	}
	lease := &awsLeaseEntry{AWSLease: AWSLease{
		ID:        "aws/creds/" + name + "/" + randomString(18),
		Role:      name,
		AccessKey: "AKIA" + strings.ToUpper(randomHex(8)),
		SecretKey: randomString(30),
		Renewable: role.CredentialType == AWSIAMUser,
		Issued:    now,
		Expires:   now.Add(ttl),
	}, maxExpires: now.Add(role.MaxTTL)}
	var securityToken any
	if role.CredentialType != AWSIAMUser {
		lease.AccessKey = "ASIA" + strings.ToUpper(randomHex(8))
		lease.SessionToken = "FwoG" + randomString(60)
		securityToken = lease.SessionToken
	}
	s.awsLeases[lease.ID] = lease
	s.awsLeaseOrder = append(s.awsLeaseOrder, lease.ID)

	response := envelope(map[string]any{
		"access_key":     lease.AccessKey,
		"secret_key":     lease.SecretKey,
		"security_token": securityToken,
	}, nil)
	response["lease_id"] = lease.ID
	response["renewable"] = lease.Renewable
	response["lease_duration"] = int64(ttl / time.Second)
	response["mount_type"] = "aws"
	writeJSON(w, http.StatusOK, response)
}

// leaseOperation renews or revokes a lease named in the JSON body, as
// Vault's sys/leases endpoints do.
func (s *Server) leaseOperation(w http.ResponseWriter, r *http.Request, op string, entry *tokenEntry) {
	call := LeaseCall{Op: op, Time: time.Now()}
	status := http.StatusOK
	defer func() {
		call.Status = status
		s.leaseCalls = append(s.leaseCalls, call)
	}()
	fail := func(code int, message string) {
		status = code
		writeErrors(w, code, message)
	}
	var body struct {
		LeaseID   string          `json:"lease_id"`
		Increment json.RawMessage `json:"increment"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		fail(http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	call.LeaseID = body.LeaseID
	if op == "revoke" && !entry.may("update", "sys/leases/revoke") {
		fail(http.StatusForbidden, "permission denied")
		return
	}
	if body.LeaseID == "" {
		fail(http.StatusBadRequest, "lease_id must be specified")
		return
	}
	lease := s.awsLeases[body.LeaseID]
	now := time.Now().UTC()
	if op == "revoke" {
		// Revoking a lease Vault does not know is not an error there:
		// there is nothing to revoke.
		if lease != nil && !lease.Revoked {
			lease.Revoked, lease.RevokedAt = true, now
		}
		status = http.StatusNoContent
		w.WriteHeader(status)
		return
	}

	var increment time.Duration
	if len(body.Increment) > 0 && string(body.Increment) != "null" {
		var seconds int64
		if err := json.Unmarshal(body.Increment, &seconds); err != nil || seconds < 0 {
			fail(http.StatusBadRequest, "increment must be a non-negative number of seconds")
			return
		}
		call.Increment = seconds
		increment = time.Duration(seconds) * time.Second
	}
	switch {
	case lease == nil || lease.Revoked:
		fail(http.StatusBadRequest, "lease not found")
		return
	case !now.Before(lease.Expires):
		fail(http.StatusBadRequest, "lease expired")
		return
	case !lease.Renewable:
		fail(http.StatusBadRequest, "lease is not renewable")
		return
	}
	if increment == 0 {
		increment = roundUpSeconds(s.awsRoles[lease.Role].TTL)
	}
	var warnings any
	expires := now.Add(increment)
	if expires.After(lease.maxExpires) {
		expires = lease.maxExpires
		warnings = []string{fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
			increment.String(), lease.maxExpires.Sub(now).Truncate(time.Second).String())}
	}
	lease.Expires = expires
	lease.Renewals++
	response := envelope(nil, nil)
	response["lease_id"] = lease.ID
	response["renewable"] = true
	response["lease_duration"] = int64(expires.Sub(now) / time.Second)
	response["warnings"] = warnings
	writeJSON(w, http.StatusOK, response)
}

func roundUpSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1) / time.Second * time.Second
}

func randomHex(n int) string {
	return strings.ReplaceAll(uuid.NewString(), "-", "")[:2*n]
}
