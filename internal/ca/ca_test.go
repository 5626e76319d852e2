package ca_test

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

func TestCreateCertificateIssuesVerifiableSVID(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("default", "reviews")
	for _, tc := range []struct {
		name    string
		key     crypto.Signer
		seconds int64
		want    time.Duration
	}{
		{"p256 default ttl", catest.ECKey(t), 0, ca.DefaultLeafTTL},
		{"p384 one hour", catest.ECKeyCurve(t, elliptic.P384()), 3600, time.Hour},
		{"rsa2048 capped at max", catest.RSAKey(t, 2048), 1 << 40, ca.DefaultMaxTTL},
		{"p256 just over max", catest.ECKey(t), int64(ca.DefaultMaxTTL/time.Second) + 1, ca.DefaultMaxTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token("default", "reviews", time.Hour) // a token serves one key
			chain, err := e.create(e.client, tok, catest.CSR{Key: tc.key, URIs: []string{id.String()}}.Build(t), tc.seconds)
			if err != nil {
				t.Fatalf("CreateCertificate: %v", err)
			}
			if len(chain) != 2 {
				t.Errorf("chain has %d elements, want [leaf, root]", len(chain))
			}
			leaf, verified := e.verifyChain(chain, id)
			if len(verified) != 2 {
				t.Errorf("verified chain length %d, want leaf+root", len(verified))
			}
			if got := leaf.NotAfter.Sub(e.clock.Now()); got.Round(time.Second) != tc.want {
				t.Errorf("lifetime %s, want %s", got, tc.want)
			}
			if !leaf.NotBefore.Before(e.clock.Now()) {
				t.Errorf("NotBefore %s not before now", leaf.NotBefore)
			}
			type equaler interface{ Equal(crypto.PublicKey) bool }
			if !tc.key.Public().(equaler).Equal(leaf.PublicKey) {
				t.Error("leaf certifies a different public key than the CSR's")
			}
		})
	}
}

func TestCreateCertificateRefusals(t *testing.T) {
	e := newEnv(t, nil)
	a := e.id("default", "reviews").String()
	b := e.id("default", "ratings").String()
	good := catest.CSR{URIs: []string{a}}.Build(t)

	// Tokens that must stop working, prepared before the state changes that
	// invalidate them (the cases run in order).
	expiring := e.token("default", "reviews", time.Minute)
	revoked := e.token("default", "reviews", time.Hour)
	other := newEnv(t, nil) // a different CA: its tokens are foreign here
	foreign := other.token("default", "reviews", time.Hour)

	type tc struct {
		name   string
		setup  func()
		ctx    func() context.Context
		csr    []byte
		ttl    int64
		meta   map[string]any
		code   codes.Code
		substr string
	}
	tokA := func() context.Context { return withToken(e.token("default", "reviews", time.Hour)) }
	cases := []tc{
		{name: "token for A, CSR for B", ctx: tokA, csr: catest.CSR{URIs: []string{b}}.Build(t),
			code: codes.PermissionDenied, substr: "CSR asks for " + b},
		{name: "extra DNS SAN", ctx: tokA, csr: catest.CSR{URIs: []string{a}, DNS: []string{"reviews.default.svc"}}.Build(t),
			code: codes.InvalidArgument, substr: "DNS SANs"},
		{name: "second URI SAN", ctx: tokA, csr: catest.CSR{URIs: []string{a, b}}.Build(t),
			code: codes.InvalidArgument, substr: "2 URI SANs"},
		{name: "extra email SAN", ctx: tokA, csr: catest.CSR{URIs: []string{a}, Emails: []string{"x@example.com"}}.Build(t),
			code: codes.InvalidArgument, substr: "email SANs"},
		{name: "extra IP SAN", ctx: tokA, csr: catest.CSR{URIs: []string{a}, IPs: []string{"10.1.2.3"}}.Build(t),
			code: codes.InvalidArgument, substr: "IP SANs"},
		{name: "CA:true", ctx: tokA, csr: catest.CSR{URIs: []string{a}, CA: true}.Build(t),
			code: codes.InvalidArgument, substr: "CA:true"},
		{name: "malformed CSR", ctx: tokA, csr: []byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"),
			code: codes.InvalidArgument, substr: "csr:"},
		{name: "empty CSR", ctx: tokA, csr: nil, code: codes.InvalidArgument, substr: "no PEM block"},
		{name: "wrong trust domain", ctx: tokA, csr: catest.CSR{URIs: []string{"spiffe://example.org/ns/default/sa/reviews"}}.Build(t),
			code: codes.PermissionDenied, substr: "outside trust domain cluster.local"},
		{name: "not a workload path", ctx: tokA, csr: catest.CSR{URIs: []string{"spiffe://cluster.local/admin"}}.Build(t),
			code: codes.PermissionDenied, substr: "CSR asks for"},
		{name: "negative validity", ctx: tokA, csr: good, ttl: -1, code: codes.InvalidArgument, substr: "negative validity_duration"},
		{name: "impersonation", ctx: tokA, csr: good, meta: map[string]any{"ImpersonatedIdentity": b},
			code: codes.PermissionDenied, substr: "may not impersonate"},
		{name: "missing token", ctx: context.Background, csr: good, code: codes.Unauthenticated, substr: "no credentials"},
		{name: "not bearer", ctx: func() context.Context {
			return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic dXNlcjpwdw==")
		}, csr: good, code: codes.Unauthenticated, substr: "Bearer"},
		{name: "two authorization headers", ctx: func() context.Context {
			return metadata.AppendToOutgoingContext(tokA(), "authorization", "Bearer x")
		}, csr: good, code: codes.Unauthenticated, substr: "2 authorization headers"},
		{name: "garbage token", ctx: func() context.Context { return withToken("abc.def.ghi") }, csr: good,
			code: codes.Unauthenticated, substr: "malformed"},
		{name: "token from another CA", ctx: func() context.Context { return withToken(foreign) }, csr: good,
			code: codes.Unauthenticated, substr: "unknown key"},
		{name: "expired token", setup: func() { e.clock.Advance(10 * time.Minute) },
			ctx: func() context.Context { return withToken(expiring) }, csr: good,
			code: codes.Unauthenticated, substr: "expired"},
		{name: "token signed by a rotated-out key", setup: func() {
			if err := e.ca.RotateTokenKey(); err != nil {
				t.Fatal(err)
			}
		}, ctx: func() context.Context { return withToken(revoked) }, csr: good,
			code: codes.Unauthenticated, substr: "rotated out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			req := &securityv1alpha1.IstioCertificateRequest{Csr: string(c.csr), ValidityDuration: c.ttl}
			if c.meta != nil {
				m, err := structpb.NewStruct(c.meta)
				if err != nil {
					t.Fatal(err)
				}
				req.Metadata = m
			}
			resp, err := e.client.CreateCertificate(c.ctx(), req)
			if err == nil {
				t.Fatalf("CreateCertificate succeeded: %d certs", len(resp.GetCertChain()))
			}
			st := status.Convert(err)
			if st.Code() != c.code {
				t.Errorf("code %s, want %s (%s)", st.Code(), c.code, st.Message())
			}
			if !strings.Contains(st.Message(), c.substr) {
				t.Errorf("message %q does not mention %q", st.Message(), c.substr)
			}
		})
	}

	// After all refusals, a fresh token still works: nothing was poisoned.
	if _, err := e.create(e.client, e.token("default", "reviews", time.Hour), good, 0); err != nil {
		t.Errorf("fresh token after refusals: %v", err)
	}
}

func TestIssueTokenRefusesNonWorkloadIdentities(t *testing.T) {
	c, err := ca.New(ca.Config{Dir: t.TempDir(), TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, want string }{
		{"spiffe://example.org/ns/default/sa/reviews", "outside trust domain"},
		{"spiffe://cluster.local/admin", "path must be"},
		{"spiffe://cluster.local/ns/default/sa/reviews/extra", "path must be"},
		{"spiffe://cluster.local/ns/default/serviceaccount/x", "path must be"},
	} {
		_, err := c.IssueToken(mustID(t, tc.id), time.Hour)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("IssueToken(%s) error %v, want one mentioning %q", tc.id, err, tc.want)
		}
	}
	if _, err := c.IssueToken(mustID(t, "spiffe://cluster.local/ns/default/sa/reviews"), -time.Second); err == nil {
		t.Error("IssueToken accepted a negative lifetime")
	}
	if _, err := c.WorkloadID("default", ""); err == nil {
		t.Error("WorkloadID accepted an empty service account")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ca.Config
		want string
	}{
		{"no trust domain", ca.Config{Dir: t.TempDir()}, "TrustDomain"},
		{"bad trust domain", ca.Config{Dir: t.TempDir(), TrustDomain: "Not Valid"}, "TrustDomain"},
		{"no dir", ca.Config{TrustDomain: trustDomain}, "Dir is required"},
		{"default over max", ca.Config{Dir: t.TempDir(), TrustDomain: trustDomain, DefaultTTL: 48 * time.Hour, MaxTTL: 24 * time.Hour}, "exceeds MaxTTL"},
		{"max over root", ca.Config{Dir: t.TempDir(), TrustDomain: trustDomain, MaxTTL: 24 * time.Hour, DefaultTTL: time.Hour, RootTTL: time.Hour}, "shorter than RootTTL"},
		{"only plug-in cert", ca.Config{Dir: t.TempDir(), TrustDomain: trustDomain, PluginCert: "x.pem"}, "PluginCert and PluginKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
