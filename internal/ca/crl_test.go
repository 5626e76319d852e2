package ca_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
	"github.com/mast-mesh/mast/internal/proxy/revocation"
)

// TestCRLListsRevokedCertificates: revoking an identity puts the serials of
// its unexpired certificates in a CRL signed by their issuer, which the
// proxies' checker refuses them with and clears the others; a restarted CA
// still knows them (issued.log), and a rotation adds the new root's CRL.
func TestCRLListsRevokedCertificates(t *testing.T) {
	e := newEnv(t, nil)
	id, other := e.id("default", "reviews"), e.id("default", "ratings")
	issue := func(who string, e *env) ([]string, error) {
		return e.create(e.client, e.token("default", who, time.Hour), catest.CSR{URIs: []string{"spiffe://" + trustDomain + "/ns/default/sa/" + who}}.Build(t), 0)
	}
	c1, err := issue("reviews", e)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := issue("reviews", e)
	o, _ := issue("ratings", e)
	if crl, err := e.ca.CRL(); crl != nil || err != nil {
		t.Fatalf("CRL before any revocation: %v %v, want none", crl, err)
	}
	changed := e.ca.RevocationChanged()
	if err := e.ca.Revoke(id, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("RevocationChanged not signalled by Revoke")
	}
	check := func(c *ca.CA, name string) {
		t.Helper()
		crl, err := c.CRL()
		if err != nil || crl == nil {
			t.Fatalf("%s: CRL: %v %v", name, crl, err)
		}
		if len(crl.Serials) != 2 {
			t.Errorf("%s: %d serials, want the 2 of %s", name, len(crl.Serials), id)
		}
		list, err := revocation.Parse(crl.PEM)
		if err != nil {
			t.Fatalf("%s: the proxy cannot parse the CRL: %v", name, err)
		}
		now := e.clock.Now()
		for _, chain := range [][]string{c1, c2} {
			_, verified := e.verifyChain(chain, id)
			var rev *revocation.RevokedError
			if err := list.Check(verified, now, true); !errors.As(err, &rev) {
				t.Errorf("%s: revoked certificate: %v, want revoked", name, err)
			}
		}
		_, verified := e.verifyChain(o, other)
		if err := list.Check(verified, now, true); err != nil {
			t.Errorf("%s: other identity: %v", name, err)
		}
		again, _ := c.CRL()
		if again != crl {
			t.Errorf("%s: CRL re-signed without a change", name)
		}
	}
	check(e.ca, "running CA")
	restarted, err := ca.New(ca.Config{Dir: e.dir, TrustDomain: trustDomain, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	check(restarted, "restarted CA")

	changed = e.ca.RevocationChanged()
	if _, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("RevocationChanged not signalled by a rotation")
	}
	crl, _ := e.ca.CRL()
	list, err := revocation.Parse(crl.PEM)
	if err != nil || list.Len() != 2 {
		t.Fatalf("during a rotation: %v CRLs (%v), want one per root", list.Len(), err)
	}
}
