package ca_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

// TestGRPCEndToEnd runs the Istio CA service on 127.0.0.1 over TLS with the
// CA's own serving certificate: a proxy bootstraps with a token, then
// renews with its certificate alone, also after the token key is rotated.
func TestGRPCEndToEnd(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("bookinfo", "reviews")
	key := catest.ECKey(t)
	csr := catest.CSR{Key: key, URIs: []string{id.String()}}.Build(t)

	chain, err := e.create(e.client, e.token("bookinfo", "reviews", time.Hour), csr, 3600)
	if err != nil {
		t.Fatalf("bootstrap with token: %v", err)
	}
	e.verifyChain(chain, id)

	// Renewal with the certificate, no token.
	certConn := e.dial(tlsCert(t, chain, key))
	certClient := newServiceClient(certConn)
	renewed, err := e.create(certClient, "", csr, 3600)
	if err != nil {
		t.Fatalf("renewal with client certificate: %v", err)
	}
	leaf, _ := e.verifyChain(renewed, id)

	// The certificate proves only its own identity.
	other := catest.CSR{URIs: []string{e.id("bookinfo", "ratings").String()}}.Build(t)
	if _, err := e.create(certClient, "", other, 0); status.Code(err) != codes.PermissionDenied {
		t.Errorf("client cert for reviews asking for ratings: %v, want PermissionDenied", err)
	}

	// Rotating the token key revokes tokens but not certificates.
	tok := e.token("bookinfo", "reviews", time.Hour)
	if err := e.ca.RotateTokenKey(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(e.client, tok, csr, 0); status.Code(err) != codes.Unauthenticated {
		t.Errorf("token after key rotation: %v, want Unauthenticated", err)
	}
	if _, err := e.create(certClient, "", csr, 0); err != nil {
		t.Errorf("certificate renewal after token key rotation: %v", err)
	}

	// An established connection does not outlive its certificate: the
	// identity is re-verified at each request.
	e.clock.Advance(leaf.NotAfter.Sub(e.clock.Now()) + time.Minute)
	if _, err := e.create(certClient, "", csr, 0); status.Code(err) != codes.Unauthenticated ||
		!strings.Contains(status.Convert(err).Message(), "client certificate") {
		t.Errorf("renewal on a connection whose certificate expired: %v, want Unauthenticated", err)
	}
}

func TestServingCert(t *testing.T) {
	e := newEnv(t, nil)
	cert, err := e.ca.ServingCert("istiod.istio-system.svc", "mastd.local", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	l := cert.Leaf
	if strings.Join(l.DNSNames, ",") != "istiod.istio-system.svc,mastd.local" || len(l.IPAddresses) != 2 ||
		!l.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || len(l.URIs) != 0 {
		t.Errorf("SANs dns=%v ip=%v uri=%v", l.DNSNames, l.IPAddresses, l.URIs)
	}
	if l.IsCA || len(l.ExtKeyUsage) != 1 || l.NotAfter.Sub(e.clock.Now()) != ca.DefaultLeafTTL {
		t.Errorf("IsCA=%v EKU=%v lifetime=%s", l.IsCA, l.ExtKeyUsage, l.NotAfter.Sub(e.clock.Now()))
	}
	if err := l.CheckSignatureFrom(e.ca.TrustBundle()[0]); err != nil {
		t.Errorf("serving certificate not signed by the root: %v", err)
	}
	if _, err := e.ca.ServingCert(); err == nil {
		t.Error("ServingCert without hosts succeeded")
	}
}

// kubeStub stands in for the Kubernetes TokenReview authenticator, which
// arrives with the Kubernetes issue: "kube:<ns>:<sa>" proves that identity.
type kubeStub struct{ td spiffeid.TrustDomain }

func (k kubeStub) Authenticate(_ context.Context, bearer string) (spiffeid.ID, error) {
	parts := strings.Split(bearer, ":")
	if len(parts) != 3 || parts[0] != "kube" {
		return spiffeid.ID{}, errors.New("kube: not a service-account token")
	}
	return spiffeid.FromSegments(k.td, "ns", parts[1], "sa", parts[2])
}

func TestExtraAuthenticators(t *testing.T) {
	e := newEnv(t, func(c *ca.Config) {
		c.Authenticators = []ca.Authenticator{kubeStub{td: spiffeid.RequireTrustDomainFromString(trustDomain)}}
	})
	id := e.id("default", "reviews")
	csr := catest.CSR{URIs: []string{id.String()}}.Build(t)
	chain, err := e.create(e.client, "kube:default:reviews", csr, 0)
	if err != nil {
		t.Fatalf("service-account token: %v", err)
	}
	e.verifyChain(chain, id)
	if _, err := e.create(e.client, "kube:default:ratings", csr, 0); status.Code(err) != codes.PermissionDenied {
		t.Errorf("token for ratings with CSR for reviews: %v, want PermissionDenied", err)
	}
	_, err = e.create(e.client, "nonsense", csr, 0)
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(msg, "malformed") || !strings.Contains(msg, "kube:") {
		t.Errorf("token no authenticator accepts: %v, want Unauthenticated naming both reasons", err)
	}
	// Bootstrap tokens keep working alongside.
	if _, err := e.create(e.client, e.token("default", "reviews", time.Hour), csr, 0); err != nil {
		t.Errorf("bootstrap token with extra authenticators: %v", err)
	}
}
