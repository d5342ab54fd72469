package vaulttest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAWSCredsIssueARenewableLease(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddAWSRole("app", AWSRole{TTL: time.Hour})
	s.AddToken("hvs.reader", time.Hour, "read:aws/creds/app")
	secret, err := newClient(t, s, "hvs.reader").Logical().Read("aws/creds/app")
	if err != nil {
		t.Fatalf("read creds: %v", err)
	}
	if !strings.HasPrefix(secret.LeaseID, "aws/creds/app/") || !secret.Renewable || secret.LeaseDuration != 3600 {
		t.Fatalf("lease %q renewable=%v duration=%d, want aws/creds/app/…, renewable, 3600", secret.LeaseID, secret.Renewable, secret.LeaseDuration)
	}
	access, _ := secret.Data["access_key"].(string)
	secretKey, _ := secret.Data["secret_key"].(string)
	if !strings.HasPrefix(access, "AKIA") || len(access) != 20 || secretKey == "" || secret.Data["security_token"] != nil {
		t.Fatalf("data %v: want an AKIA key, a secret key and a null security_token", secret.Data)
	}
	leases := s.AWSLeases()
	if len(leases) != 1 || leases[0].ID != secret.LeaseID || leases[0].AccessKey != access || leases[0].SecretKey != secretKey {
		t.Fatalf("recorded leases %+v do not match the answer", leases)
	}
}

func TestAWSCredsRefusals(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddAWSRole("app", AWSRole{})
	s.AddToken("hvs.reader", time.Hour, "read:aws/creds/")
	s.AddToken("hvs.other", time.Hour, "read:secret/")

	_, err := newClient(t, s, "hvs.reader").Logical().Read("aws/creds/nope")
	if e := responseError(t, err); e.StatusCode != http.StatusBadRequest || len(e.Errors) != 1 || e.Errors[0] != `Role "nope" not found` {
		t.Fatalf("unknown role: %d %v, want 400 Role \"nope\" not found", e.StatusCode, e.Errors)
	}
	_, err = newClient(t, s, "hvs.other").Logical().Read("aws/creds/app")
	if e := responseError(t, err); e.StatusCode != http.StatusForbidden {
		t.Fatalf("token without a grant: %d, want 403", e.StatusCode)
	}
	_, err = newClient(t, s, "").Logical().Read("aws/creds/app")
	if e := responseError(t, err); e.StatusCode != http.StatusForbidden {
		t.Fatalf("no token: %d, want 403", e.StatusCode)
	}
	if len(s.AWSLeases()) != 0 {
		t.Fatalf("refused requests issued leases: %+v", s.AWSLeases())
	}
}

func TestAWSSTSCredsHonourTTLAndAreNotRenewable(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddAWSRole("sts", AWSRole{CredentialType: AWSAssumedRole, TTL: time.Hour, MaxTTL: 2 * time.Hour})
	s.AddToken("hvs.reader", time.Hour, "read:aws/creds/")
	client := newClient(t, s, "hvs.reader")
	secret, err := client.Logical().ReadWithData("aws/creds/sts", map[string][]string{"ttl": {"900"}})
	if err != nil {
		t.Fatalf("read creds: %v", err)
	}
	if secret.Renewable || secret.LeaseDuration != 900 || secret.Data["security_token"] == nil {
		t.Fatalf("renewable=%v duration=%d token=%v, want a 900 s non-renewable lease with a session token", secret.Renewable, secret.LeaseDuration, secret.Data["security_token"])
	}
	_, err = client.Sys().Renew(secret.LeaseID, 600)
	if e := responseError(t, err); e.StatusCode != http.StatusBadRequest || e.Errors[0] != "lease is not renewable" {
		t.Fatalf("renew of an STS lease: %d %v, want 400 lease is not renewable", e.StatusCode, e.Errors)
	}
}

func TestLeaseRenewCapsAtMaxTTLAndRejectsUnknownAndExpired(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddAWSRole("app", AWSRole{TTL: 2 * time.Second, MaxTTL: time.Minute})
	s.AddToken("hvs.reader", time.Hour, "read:aws/creds/")
	client := newClient(t, s, "hvs.reader")
	secret, err := client.Logical().Read("aws/creds/app")
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := client.Sys().Renew(secret.LeaseID, 30)
	if err != nil || renewed.LeaseDuration != 30 || renewed.LeaseID != secret.LeaseID {
		t.Fatalf("renew: %+v %v, want 30 s", renewed, err)
	}
	renewed, err = client.Sys().Renew(secret.LeaseID, 3600)
	if err != nil || renewed.LeaseDuration > 60 || renewed.LeaseDuration < 58 || len(renewed.Warnings) != 1 {
		t.Fatalf("renew past the max: %+v %v, want capped near 60 s with a warning", renewed, err)
	}

	_, err = client.Sys().Renew("aws/creds/app/unknown", 10)
	if e := responseError(t, err); e.StatusCode != http.StatusBadRequest || e.Errors[0] != "lease not found" {
		t.Fatalf("unknown lease: %d %v, want 400 lease not found", e.StatusCode, e.Errors)
	}
	short, err := client.Logical().Read("aws/creds/app")
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.awsLeases[short.LeaseID].Expires = time.Now().Add(-time.Second)
	s.mu.Unlock()
	_, err = client.Sys().Renew(short.LeaseID, 10)
	if e := responseError(t, err); e.StatusCode != http.StatusBadRequest || e.Errors[0] != "lease expired" {
		t.Fatalf("expired lease: %d %v, want 400 lease expired", e.StatusCode, e.Errors)
	}
	_, err = newClient(t, s, "hvs.unknown").Sys().Renew(secret.LeaseID, 10)
	if e := responseError(t, err); e.StatusCode != http.StatusForbidden {
		t.Fatalf("renew with an unknown token: %d, want 403", e.StatusCode)
	}

	var statuses []int
	for _, c := range s.LeaseCalls() {
		statuses = append(statuses, c.Status)
	}
	want := []int{200, 200, 400, 400}
	if len(statuses) != len(want) {
		t.Fatalf("recorded calls %v, want %v (a call with a bad token never reaches the lease code)", statuses, want)
	}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("recorded calls %v, want %v", statuses, want)
		}
	}
	if got := s.AWSLeases()[0].Renewals; got != 2 {
		t.Fatalf("renewals %d, want 2", got)
	}
}

func TestLeaseRevokeNeedsAGrantAndEndsRenewals(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.AddAWSRole("app", AWSRole{})
	s.AddToken("hvs.reader", time.Hour, "read:aws/creds/")
	s.AddToken("hvs.revoker", time.Hour, "read:aws/creds/", "update:sys/leases/revoke")
	secret, err := newClient(t, s, "hvs.reader").Logical().Read("aws/creds/app")
	if err != nil {
		t.Fatal(err)
	}
	err = newClient(t, s, "hvs.reader").Sys().RevokeWithContext(context.Background(), secret.LeaseID)
	if e := responseError(t, err); e.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke without a grant: %d, want 403", e.StatusCode)
	}
	if s.AWSLeases()[0].Revoked {
		t.Fatal("a refused revoke revoked the lease")
	}
	revoker := newClient(t, s, "hvs.revoker")
	if err := revoker.Sys().Revoke(secret.LeaseID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if !s.AWSLeases()[0].Revoked {
		t.Fatal("the lease is not revoked")
	}
	// As in Vault, revoking what is already gone succeeds.
	if err := revoker.Sys().Revoke("aws/creds/app/unknown"); err != nil {
		t.Fatalf("revoke of an unknown lease: %v, want success as Vault answers", err)
	}
	_, err = revoker.Sys().Renew(secret.LeaseID, 10)
	if e := responseError(t, err); e.StatusCode != http.StatusBadRequest || e.Errors[0] != "lease not found" {
		t.Fatalf("renew after revoke: %d %v, want 400 lease not found", e.StatusCode, e.Errors)
	}
	calls := s.LeaseCalls()
	if len(calls) != 4 || calls[0].Op != "revoke" || calls[0].Status != 403 || calls[1].Status != 204 || calls[1].LeaseID != secret.LeaseID {
		t.Fatalf("recorded calls %+v", calls)
	}
}
