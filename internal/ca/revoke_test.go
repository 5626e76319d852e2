package ca_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

// TestBootstrapTokenBoundToFirstKey: the review used one token 20 times
// for 20 keys. A token now serves the key it was first used with, also
// after a restart of the CA.
func TestBootstrapTokenBoundToFirstKey(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("default", "reviews")
	tok := e.token("default", "reviews", time.Hour)
	first := catest.ECKey(t)
	if _, err := e.create(e.client, tok, catest.CSR{Key: first, URIs: []string{id.String()}}.Build(t), 0); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := e.create(e.client, tok, catest.CSR{Key: first, URIs: []string{id.String()}}.Build(t), 0); err != nil {
		t.Errorf("same token, same key: %v", err)
	}
	if _, err := e.create(e.client, tok, catest.CSR{Key: catest.ECKey(t), URIs: []string{id.String()}}.Build(t), 0); status.Code(err) != codes.PermissionDenied {
		t.Errorf("same token, another key: %v, want PermissionDenied", err)
	}
	restarted, err := ca.New(ca.Config{Dir: e.dir, TrustDomain: trustDomain, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, restarted)
	e2 := *e
	e2.addr = addr
	if _, err := e2.create(newServiceClient(e2.dial(nil)), tok, catest.CSR{Key: catest.ECKey(t), URIs: []string{id.String()}}.Build(t), 0); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after a restart, same token, another key: %v, want PermissionDenied", err)
	}
}

// TestLeafLifetimeCappedByPolicy: a one-hour token asking for 90 days got a
// 90-day certificate; the default cap is now 24h.
func TestLeafLifetimeCappedByPolicy(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("default", "reviews")
	chain, err := e.create(e.client, e.token("default", "reviews", time.Hour), catest.CSR{URIs: []string{id.String()}}.Build(t), 90*24*3600)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := e.verifyChain(chain, id)
	if life := leaf.NotAfter.Sub(e.clock.Now()); life > 24*time.Hour {
		t.Errorf("leaf lives %s, want at most 24h", life)
	}
}

// TestRevokedIdentity: a revoked identity gets no certificate, neither with
// a token nor with its current certificate, and the list survives restarts.
func TestRevokedIdentity(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("default", "reviews")
	key := catest.ECKey(t)
	chain, err := e.create(e.client, e.token("default", "reviews", time.Hour), catest.CSR{Key: key, URIs: []string{id.String()}}.Build(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ca.Revoke(id, "key leaked"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(e.client, e.token("default", "reviews", time.Hour), catest.CSR{URIs: []string{id.String()}}.Build(t), 0); status.Code(err) != codes.PermissionDenied {
		t.Errorf("token after revocation: %v, want PermissionDenied", err)
	}
	withCert := newServiceClient(e.dial(tlsCert(t, chain, key)))
	if _, err := e.create(withCert, "", catest.CSR{Key: key, URIs: []string{id.String()}}.Build(t), 0); status.Code(err) != codes.PermissionDenied {
		t.Errorf("renewal with the certificate after revocation: %v, want PermissionDenied", err)
	}
	other := e.id("default", "ratings")
	if _, err := e.create(e.client, e.token("default", "ratings", time.Hour), catest.CSR{URIs: []string{other.String()}}.Build(t), 0); err != nil {
		t.Errorf("another identity: %v", err)
	}
	restarted, err := ca.New(ca.Config{Dir: e.dir, TrustDomain: trustDomain, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if r := restarted.Revoked(); len(r) != 1 || r[0].ID != id.String() || r[0].Reason != "key leaked" {
		t.Errorf("after restart: revoked %+v", r)
	}
}
