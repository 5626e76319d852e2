package tlsconfig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// pki is a test mesh: a root and a way to issue leaves under it.
type pki struct {
	root *x509.Certificate
	key  *ecdsa.PrivateKey
	now  time.Time
}

func newPKI(t testing.TB, cn string) *pki {
	t.Helper()
	key := ecKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	return &pki{root: root, key: key, now: now}
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// leafSpec describes a leaf; zero fields take a valid workload certificate's values.
type leafSpec struct {
	uris      []string
	dns       []string
	notBefore time.Duration // relative to now
	notAfter  time.Duration
	isCA      bool
	keyUsage  x509.KeyUsage
	extUsage  []x509.ExtKeyUsage
}

func (p *pki) issue(t testing.TB, s leafSpec) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := ecKey(t)
	if s.uris == nil {
		s.uris = []string{"spiffe://cluster.local/ns/default/sa/client"}
	}
	if s.notAfter == 0 {
		s.notAfter = time.Hour
	}
	if s.notBefore == 0 {
		s.notBefore = -time.Minute
	}
	if s.keyUsage == 0 {
		s.keyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	if s.extUsage == nil {
		s.extUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: p.now.Add(s.notBefore), NotAfter: p.now.Add(s.notAfter),
		KeyUsage: s.keyUsage, ExtKeyUsage: s.extUsage, BasicConstraintsValid: true, IsCA: s.isCA, DNSNames: s.dns}
	for _, u := range s.uris {
		// url.Parse would lower-case the scheme; keep it as written.
		scheme, rest, _ := strings.Cut(u, "://")
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: scheme, Opaque: "//" + rest})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// secrets issues a valid workload identity for id as agent.Secrets.
func (p *pki) secrets(t testing.TB, id string, roots ...*x509.Certificate) *agent.Secrets {
	t.Helper()
	leaf, key := p.issue(t, leafSpec{uris: []string{id}})
	if len(roots) == 0 {
		roots = []*x509.Certificate{p.root}
	}
	s, err := agent.NewSecrets([]*x509.Certificate{leaf}, key, roots, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type staticSource struct{ s *agent.Secrets }

func (s staticSource) Secrets() *agent.Secrets { return s.s }

// istioMutual is the context the control plane sends for ISTIO_MUTUAL.
func istioMutual(upstream bool, sans ...string) *xdsparse.TLSContext {
	tc := &xdsparse.TLSContext{Upstream: upstream, CertSDS: xdsparse.SDSWorkloadCert, Verify: true, RootsSDS: xdsparse.SDSRootCA,
		MinVersion: xdsparse.VersionTLS13, ALPN: []string{"istio-peer-exchange", "istio"}, RequireClientCert: !upstream}
	for _, s := range sans {
		tc.SANs = append(tc.SANs, xdsparse.SANMatcher{Type: xdsparse.SANURI, Str: xdsparse.StringMatcher{Kind: xdsparse.StrExact, Value: s}})
	}
	if upstream {
		tc.SNI = "outbound_.9080_._.reviews.default.svc.cluster.local"
	}
	return tc
}

// handshake runs a TLS handshake over loopback TCP and returns both sides' errors.
func handshake(t *testing.T, client, server *tls.Config) (cs tls.ConnectionState, clientErr, serverErr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		err error
		cs  tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer nc.Close()
		sc := tls.Server(nc, server)
		sc.SetDeadline(time.Now().Add(10 * time.Second))
		err = sc.Handshake()
		if err == nil {
			// TLS 1.3 client certificates are checked after the client's
			// handshake returns: read to see the server's verdict.
			sc.Write([]byte("ok"))
		}
		done <- result{err: err, cs: sc.ConnectionState()}
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cc := tls.Client(nc, client)
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	clientErr = cc.Handshake()
	if clientErr == nil {
		buf := make([]byte, 2)
		if _, err := cc.Read(buf); err != nil {
			clientErr = err
		}
	}
	r := <-done
	return r.cs, clientErr, r.err
}

const (
	serverID = "spiffe://cluster.local/ns/default/sa/reviews"
	clientID = "spiffe://cluster.local/ns/default/sa/productpage"
)

// TestServerRefusesBadClientCertificates: the sidecar's inbound (server)
// side refuses every certificate of the corpus and accepts a good one.
func TestServerRefusesBadClientCertificates(t *testing.T) {
	mesh := newPKI(t, "mesh root")
	foreign := newPKI(t, "foreign root")
	b := tlsconfig.NewBuilder(staticSource{mesh.secrets(t, serverID)}, nil)
	cases := []struct {
		name string
		pki  *pki
		spec leafSpec
		want string // in the server's error; "" accepts
	}{
		{"valid", mesh, leafSpec{uris: []string{clientID}}, ""},
		{"wrong trust domain", mesh, leafSpec{uris: []string{"spiffe://evil.org/ns/default/sa/productpage"}}, "outside trust domain cluster.local"},
		{"two URI SANs", mesh, leafSpec{uris: []string{clientID, "spiffe://cluster.local/ns/default/sa/other"}}, "2 URI SANs"},
		{"SPIFFE ID with a port", mesh, leafSpec{uris: []string{"spiffe://cluster.local:8443/ns/default/sa/productpage"}}, "not a valid SPIFFE ID"},
		{"SPIFFE ID with a query", mesh, leafSpec{uris: []string{"spiffe://cluster.local/ns/default/sa/productpage?x=1"}}, "not a valid SPIFFE ID"},
		{"uppercase scheme", mesh, leafSpec{uris: []string{"SPIFFE://cluster.local/ns/default/sa/productpage"}}, "not a valid SPIFFE ID"},
		{"no URI SAN", mesh, leafSpec{uris: []string{}, dns: []string{"productpage"}}, "no URI SAN"},
		{"expired", mesh, leafSpec{uris: []string{clientID}, notBefore: -2 * time.Hour, notAfter: -time.Minute}, "expired or is not yet valid"},
		{"not yet valid", mesh, leafSpec{uris: []string{clientID}, notBefore: time.Hour, notAfter: 2 * time.Hour}, "expired or is not yet valid"},
		{"CA:true leaf", mesh, leafSpec{uris: []string{clientID}, isCA: true, keyUsage: x509.KeyUsageDigitalSignature}, "is a CA certificate"},
		{"keyCertSign usage", mesh, leafSpec{uris: []string{clientID}, keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}, "keyCertSign"},
		{"no digitalSignature", mesh, leafSpec{uris: []string{clientID}, keyUsage: x509.KeyUsageKeyEncipherment}, "digitalSignature"},
		{"server-only extended usage", mesh, leafSpec{uris: []string{clientID}, extUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, "not valid for client authentication"},
		{"signed by a foreign root", foreign, leafSpec{uris: []string{clientID}}, "unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leaf, key := tc.pki.issue(t, tc.spec)
			srv, err := b.Server(istioMutual(false))
			if err != nil {
				t.Fatal(err)
			}
			client := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"istio"},
				Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}}
			cs, cerr, serr := handshake(t, client, srv)
			if tc.want == "" {
				if cerr != nil || serr != nil {
					t.Fatalf("refused a valid certificate: client %v, server %v", cerr, serr)
				}
				if id, ok := tlsconfig.PeerID(cs.PeerCertificates); !ok || id.String() != clientID {
					t.Fatalf("peer identity %v %v, want %s", id, ok, clientID)
				}
				return
			}
			if serr == nil || !strings.Contains(serr.Error(), tc.want) {
				t.Fatalf("server error %v, want one containing %q", serr, tc.want)
			}
			if cerr == nil {
				t.Fatal("client saw no failure")
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		srv, _ := b.Server(istioMutual(false))
		_, _, serr := handshake(t, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, srv)
		if serr == nil || !strings.Contains(serr.Error(), "certificate") {
			t.Fatalf("server error %v, want a missing certificate", serr)
		}
	})
}

// TestClientRefusesBadServerCertificates: the outbound (client) side checks
// the server against the service's accounts and the corpus.
func TestClientRefusesBadServerCertificates(t *testing.T) {
	mesh := newPKI(t, "mesh root")
	foreign := newPKI(t, "foreign root")
	b := tlsconfig.NewBuilder(staticSource{mesh.secrets(t, clientID)}, nil)
	cases := []struct {
		name string
		pki  *pki
		spec leafSpec
		want string
	}{
		{"valid", mesh, leafSpec{uris: []string{serverID}}, ""},
		{"another service account", mesh, leafSpec{uris: []string{"spiffe://cluster.local/ns/default/sa/ratings"}}, "match none of the 1 expected"},
		{"wrong trust domain", mesh, leafSpec{uris: []string{"spiffe://evil.org/ns/default/sa/reviews"}}, "outside trust domain"},
		{"two URI SANs", mesh, leafSpec{uris: []string{serverID, serverID + "x"}}, "2 URI SANs"},
		{"uppercase scheme", mesh, leafSpec{uris: []string{"SPIFFE://cluster.local/ns/default/sa/reviews"}}, "not a valid SPIFFE ID"},
		{"expired", mesh, leafSpec{uris: []string{serverID}, notBefore: -2 * time.Hour, notAfter: -time.Minute}, "expired"},
		{"CA:true leaf", mesh, leafSpec{uris: []string{serverID}, isCA: true, keyUsage: x509.KeyUsageDigitalSignature}, "CA certificate"},
		{"client-only extended usage", mesh, leafSpec{uris: []string{serverID}, extUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, "not valid for server authentication"},
		{"foreign root", foreign, leafSpec{uris: []string{serverID}}, "unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leaf, key := tc.pki.issue(t, tc.spec)
			server := &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
				Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}}
			client, err := b.Client(istioMutual(true, serverID), tlsconfig.ALPNHTTP11)
			if err != nil {
				t.Fatal(err)
			}
			cs, cerr, serr := handshake(t, client, server)
			if tc.want == "" {
				if cerr != nil || serr != nil {
					t.Fatalf("handshake failed: client %v, server %v", cerr, serr)
				}
				if id, ok := tlsconfig.PeerID(cs.PeerCertificates); !ok || id.String() != clientID {
					t.Fatalf("server saw client %v, want %s", id, clientID)
				}
				return
			}
			if cerr == nil || !strings.Contains(cerr.Error(), tc.want) {
				t.Fatalf("client error %v, want one containing %q", cerr, tc.want)
			}
		})
	}
}

// TestMutualTLSBetweenBuilders runs both sides from builders, as two
// sidecars do, and checks TLS 1.3, ALPN and that a rotated bundle with two
// roots accepts peers of either root.
func TestMutualTLSBetweenBuilders(t *testing.T) {
	oldRoot := newPKI(t, "old root")
	newRoot := newPKI(t, "new root")
	both := []*x509.Certificate{oldRoot.root, newRoot.root}
	cases := []struct {
		name           string
		client, server *agent.Secrets
		ok             bool
	}{
		{"same root", oldRoot.secrets(t, clientID), oldRoot.secrets(t, serverID), true},
		{"overlap: old-root client, new-root server", oldRoot.secrets(t, clientID, both...), newRoot.secrets(t, serverID, both...), true},
		{"overlap: new-root client, old-root server", newRoot.secrets(t, clientID, both...), oldRoot.secrets(t, serverID, both...), true},
		{"server does not trust the new root yet", newRoot.secrets(t, clientID, both...), oldRoot.secrets(t, serverID), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cb := tlsconfig.NewBuilder(staticSource{tc.client}, nil)
			sb := tlsconfig.NewBuilder(staticSource{tc.server}, nil)
			client, err := cb.Client(istioMutual(true, serverID), tlsconfig.ALPNH2)
			if err != nil {
				t.Fatal(err)
			}
			srvTC := istioMutual(false)
			srvTC.ALPN = []string{"h2", "http/1.1", "istio-peer-exchange", "istio"}
			server, err := sb.Server(srvTC)
			if err != nil {
				t.Fatal(err)
			}
			cs, cerr, serr := handshake(t, client, server)
			if !tc.ok {
				if serr == nil && cerr == nil {
					t.Fatal("handshake succeeded")
				}
				return
			}
			if cerr != nil || serr != nil {
				t.Fatalf("client %v, server %v", cerr, serr)
			}
			if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "h2" {
				t.Fatalf("version %x, ALPN %q; want TLS 1.3 and h2", cs.Version, cs.NegotiatedProtocol)
			}
		})
	}
}

func TestNoCertificateYet(t *testing.T) {
	b := tlsconfig.NewBuilder(staticSource{nil}, nil)
	server := &tls.Config{MinVersion: tls.VersionTLS13}
	mesh := newPKI(t, "r")
	leaf, key := mesh.issue(t, leafSpec{uris: []string{serverID}})
	server.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}}
	client, err := b.Client(istioMutual(true, serverID), "")
	if err != nil {
		t.Fatal(err)
	}
	_, cerr, _ := handshake(t, client, server)
	if cerr == nil || !strings.Contains(cerr.Error(), "no workload certificate") {
		t.Fatalf("client error %v, want no workload certificate", cerr)
	}
	if _, err := tlsconfig.NewBuilder(nil, nil).Client(istioMutual(true), ""); err != nil {
		t.Fatalf("building without a source must succeed (failing at handshake): %v", err)
	}
}

// TestServerAcceptUntrusted: with ACCEPT_UNTRUSTED (Istio's Gateway
// tls.insecureSkipVerify) a client whose certificate fails the checks is
// let in, but a required certificate must still be presented.
func TestServerAcceptUntrusted(t *testing.T) {
	mesh := newPKI(t, "mesh root")
	foreign := newPKI(t, "foreign root")
	b := tlsconfig.NewBuilder(staticSource{mesh.secrets(t, serverID)}, nil)
	tc := istioMutual(false)
	tc.AcceptUntrusted = true
	srv, err := b.Server(tc)
	if err != nil {
		t.Fatal(err)
	}
	leaf, key := foreign.issue(t, leafSpec{uris: []string{clientID}})
	client := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"istio"},
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}}
	if _, cerr, serr := handshake(t, client, srv); cerr != nil || serr != nil {
		t.Fatalf("a foreign certificate was refused with ACCEPT_UNTRUSTED: client %v, server %v", cerr, serr)
	}
	srv, _ = b.Server(tc)
	if _, _, serr := handshake(t, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, srv); serr == nil {
		t.Fatal("a client without a certificate got in although one is required")
	}
	// Without it the same certificate is refused.
	srv, _ = b.Server(istioMutual(false))
	if _, _, serr := handshake(t, client, srv); serr == nil || !strings.Contains(serr.Error(), "unknown authority") {
		t.Fatalf("server error %v, want unknown authority", serr)
	}
}
