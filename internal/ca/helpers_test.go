package ca_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

const (
	trustDomain = "cluster.local"
	serverName  = "istiod.istio-system.svc"
)

// env is a CA served by a real gRPC server on 127.0.0.1 over TLS.
type env struct {
	t      testing.TB
	clock  *catest.Clock
	dir    string
	ca     *ca.CA
	addr   string
	client securityv1alpha1.IstioCertificateServiceClient
}

func newEnv(t testing.TB, mutate func(*ca.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: catest.NewClock(time.Now().Truncate(time.Second)), dir: t.TempDir()}
	cfg := ca.Config{Dir: e.dir, TrustDomain: trustDomain, Clock: e.clock.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := ca.New(cfg)
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	e.ca = c
	e.addr = serve(t, c)
	e.client = securityv1alpha1.NewIstioCertificateServiceClient(e.dial(nil))
	return e
}

// serve runs c's service on a fresh loopback port until the test ends.
func serve(t testing.TB, c *ca.CA) string {
	t.Helper()
	tlsCfg, err := c.ServerTLSConfig(serverName, "127.0.0.1")
	if err != nil {
		t.Fatalf("ServerTLSConfig: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	c.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// dial connects to the server trusting the CA's current bundle, presenting
// cert when it is not nil.
func (e *env) dial(cert *tls.Certificate) *grpc.ClientConn {
	e.t.Helper()
	pool := x509.NewCertPool()
	for _, r := range e.ca.TrustBundle() {
		pool.AddCert(r)
	}
	return e.dialPool(pool, cert)
}

// dialPool connects trusting pool, presenting cert when it is not nil.
func (e *env) dialPool(pool *x509.CertPool, cert *tls.Certificate) *grpc.ClientConn {
	e.t.Helper()
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, Time: e.clock.Now, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

func (e *env) id(ns, sa string) spiffeid.ID {
	e.t.Helper()
	id, err := e.ca.WorkloadID(ns, sa)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) token(ns, sa string, ttl time.Duration) string {
	e.t.Helper()
	tok, err := e.ca.IssueToken(e.id(ns, sa), ttl)
	if err != nil {
		e.t.Fatalf("IssueToken: %v", err)
	}
	return tok
}

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// create calls CreateCertificate with tok (none when empty).
func (e *env) create(client securityv1alpha1.IstioCertificateServiceClient, tok string, csrPEM []byte, ttlSeconds int64) ([]string, error) {
	ctx := context.Background()
	if tok != "" {
		ctx = withToken(tok)
	}
	resp, err := client.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr: string(csrPEM), ValidityDuration: ttlSeconds,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetCertChain(), nil
}

// verifyChain checks a CreateCertificate response with go-spiffe: the chain
// minus its last element must verify against the CA's trust bundle and
// against the bundle in the last element, for wantID. It returns the leaf
// and the verified chain.
func (e *env) verifyChain(chain []string, wantID spiffeid.ID) (*x509.Certificate, []*x509.Certificate) {
	e.t.Helper()
	if len(chain) < 2 {
		e.t.Fatalf("chain has %d elements, want leaf..., bundle", len(chain))
	}
	var certs []*x509.Certificate
	for _, p := range chain[:len(chain)-1] {
		certs = append(certs, parsePEM(e.t, p)...)
	}
	sent := parsePEM(e.t, chain[len(chain)-1])
	now := e.clock.Now()
	td := spiffeid.RequireTrustDomainFromString(trustDomain)
	var verified [][]*x509.Certificate
	for name, bundle := range map[string][]*x509.Certificate{"CA.TrustBundle": e.ca.TrustBundle(), "response bundle": sent} {
		id, chains, err := x509svid.Verify(certs, x509bundle.FromX509Authorities(td, bundle), x509svid.WithTime(now))
		if err != nil {
			e.t.Fatalf("x509svid.Verify against %s: %v", name, err)
		}
		if id != wantID {
			e.t.Fatalf("verified ID %s, want %s", id, wantID)
		}
		verified = chains
	}
	leaf := certs[0]
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		e.t.Errorf("leaf IsCA=%v BasicConstraintsValid=%v", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		e.t.Errorf("leaf KeyUsage = %b", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		e.t.Errorf("leaf ExtKeyUsage = %v", leaf.ExtKeyUsage)
	}
	if len(leaf.URIs) != 1 || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		e.t.Errorf("leaf SANs uri=%v dns=%v ip=%v email=%v", leaf.URIs, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	return leaf, verified[0]
}

func parsePEM(t testing.TB, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	data := []byte(s)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("no certificate in %q", s)
	}
	return out
}

// tlsCert turns a CreateCertificate response and the CSR key into a client
// certificate (leaf and intermediates, not the bundle).
func tlsCert(t testing.TB, chain []string, key crypto.Signer) *tls.Certificate {
	t.Helper()
	c := &tls.Certificate{PrivateKey: key}
	for _, p := range chain[:len(chain)-1] {
		for _, cert := range parsePEM(t, p) {
			c.Certificate = append(c.Certificate, cert.Raw)
		}
	}
	return c
}

func mustID(t testing.TB, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newClient(e *env) securityv1alpha1.IstioCertificateServiceClient {
	return newServiceClient(e.dial(nil))
}

func newServiceClient(conn *grpc.ClientConn) securityv1alpha1.IstioCertificateServiceClient {
	return securityv1alpha1.NewIstioCertificateServiceClient(conn)
}
