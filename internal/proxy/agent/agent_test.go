package agent_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/dnsstub"
	"github.com/mast-mesh/mast/internal/proxy/agent"
)

const trustDomain = "cluster.local"

// caServer is a real CA behind a real gRPC server on loopback, which can be
// stopped and started again on the same address.
type caServer struct {
	t    testing.TB
	ca   *ca.CA
	dir  string
	addr string
	mu   sync.Mutex
	g    *grpc.Server
}

func newCAServer(t testing.TB) *caServer {
	t.Helper()
	dir := t.TempDir()
	c, err := ca.New(ca.Config{Dir: dir, TrustDomain: trustDomain, MaxTTL: time.Hour, DefaultTTL: time.Hour, RootTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s := &caServer{t: t, ca: c, dir: dir}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *caServer) start(addr string) {
	s.t.Helper()
	tlsCfg, err := s.ca.ServerTLSConfig(agent.DefaultCAServerName, "127.0.0.1")
	if err != nil {
		s.t.Fatal(err)
	}
	var lis net.Listener
	for i := 0; ; i++ { // the port of a stopped server may linger a moment
		if lis, err = net.Listen("tcp", addr); err == nil || i > 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	s.ca.Register(g)
	go g.Serve(lis)
	s.mu.Lock()
	s.g, s.addr = g, lis.Addr().String()
	s.mu.Unlock()
}

func (s *caServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g != nil {
		s.g.Stop()
		s.g = nil
	}
}

func (s *caServer) id(ns, sa string) spiffeid.ID {
	id, err := s.ca.WorkloadID(ns, sa)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

// tokenFile writes a bootstrap token for id and returns its path.
func (s *caServer) tokenFile(id spiffeid.ID) string {
	s.t.Helper()
	tok, err := s.ca.IssueToken(id, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	p := filepath.Join(s.t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *caServer) agentConfig(id spiffeid.ID) agent.Config {
	return agent.Config{CAAddr: s.addr, RootCertFile: filepath.Join(s.dir, "root-cert.pem"), TokenFile: s.tokenFile(id), ID: id,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
}

func runAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	return a
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verifySVID checks s with go-spiffe against the CA's own bundle.
func verifySVID(t *testing.T, c *ca.CA, s *agent.Secrets, want spiffeid.ID) {
	t.Helper()
	bundle := x509bundle.FromX509Authorities(c.TrustDomain(), c.TrustBundle())
	var chain []*x509.Certificate
	for _, der := range s.Cert.Certificate {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, cert)
	}
	id, _, err := x509svid.Verify(chain, bundle)
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if id != want || s.ID != want {
		t.Fatalf("identity %s (secrets say %s), want %s", id, s.ID, want)
	}
	if _, _, err := x509svid.ParseAndVerify(s.Cert.Certificate, s.Bundle); err != nil {
		t.Fatalf("chain does not verify against the agent's own bundle: %v", err)
	}
}

func TestAgentBootstrapAndRenewal(t *testing.T) {
	s := newCAServer(t)
	id := s.id("bookinfo", "reviews")
	cfg := s.agentConfig(id)
	// Renewed about every 4 s. A shorter lifetime (2 s) let a renewal on a
	// loaded machine (load 60, -race) start after the certificate expired,
	// and the agent then rightly renewed with the token and its one key.
	cfg.CertTTL = 8 * time.Second
	a := runAgent(t, cfg)
	<-a.Ready()
	first := a.Secrets()
	verifySVID(t, s.ca, first, id)
	seen := map[string]bool{}
	for n := 0; n < 3; n++ {
		ch := a.Changed()
		prev := a.Secrets()
		<-ch
		cur := a.Secrets()
		if cur.Version <= prev.Version {
			t.Fatalf("version went from %d to %d", prev.Version, cur.Version)
		}
		if cur.Cert.Leaf.SerialNumber.Cmp(prev.Cert.Leaf.SerialNumber) == 0 {
			t.Fatal("renewal kept the serial number")
		}
		if cur.Cert.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(prev.Cert.Leaf.PublicKey) {
			t.Fatal("renewal kept the private key; a new key is generated for every certificate")
		}
		verifySVID(t, s.ca, cur, id)
		seen[cur.Cert.Leaf.SerialNumber.String()] = true
	}
	if a.Renewals.Load() < 4 || len(seen) != 3 {
		t.Fatalf("renewals %d, distinct serials %d", a.Renewals.Load(), len(seen))
	}
}

func TestAgentRenewsWithCertificateAfterTokenRevoked(t *testing.T) {
	s := newCAServer(t)
	id := s.id("default", "productpage")
	cfg := s.agentConfig(id)
	cfg.CertTTL = 8 * time.Second // long enough to renew before it expires under load
	a := runAgent(t, cfg)
	<-a.Ready()
	if err := s.ca.RotateTokenKey(); err != nil { // revokes the bootstrap token
		t.Fatal(err)
	}
	v := a.Secrets().Version
	waitFor(t, "a renewal with the certificate alone", func() bool { return a.Secrets().Version >= v+2 })
	verifySVID(t, s.ca, a.Secrets(), id)
}

func TestAgentRetriesWhileCADown(t *testing.T) {
	s := newCAServer(t)
	id := s.id("default", "ratings")
	cfg := s.agentConfig(id)
	cfg.CertTTL = 4 * time.Second
	a := runAgent(t, cfg)
	<-a.Ready()
	addr := s.addr
	s.stop()
	held := a.Secrets()
	f := a.Failures.Load()
	waitFor(t, "failed attempts while the CA is down", func() bool { return a.Failures.Load() >= f+3 })
	if cur := a.Secrets(); cur != held && cur.Version != held.Version+1 {
		// at most the renewal that raced with the stop may have landed
		t.Fatalf("secrets changed while the CA was down: version %d -> %d", held.Version, cur.Version)
	}
	s.start(addr)
	v := a.Secrets().Version
	waitFor(t, "renewal once the CA is back", func() bool { return a.Secrets().Version > v })
	verifySVID(t, s.ca, a.Secrets(), id)
}

func TestAgentPicksUpNewTrustBundle(t *testing.T) {
	s := newCAServer(t)
	id := s.id("default", "details")
	cfg := s.agentConfig(id)
	cfg.CertTTL = 2 * time.Second
	a := runAgent(t, cfg)
	<-a.Ready()
	if n := len(a.Secrets().Roots); n != 1 {
		t.Fatalf("%d roots before rotation", n)
	}
	rot, err := s.ca.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new root in the agent's bundle", func() bool { return len(a.Secrets().Roots) == 2 })
	sec := a.Secrets()
	found := false
	for _, r := range sec.Roots {
		found = found || r.Equal(rot.NewRoot)
	}
	if !found {
		t.Fatal("bundle lacks the new root")
	}
	if _, _, err := x509svid.ParseAndVerify(sec.Cert.Certificate, sec.Bundle); err != nil {
		t.Fatal(err)
	}
}

func TestAgentRefusals(t *testing.T) {
	s := newCAServer(t)
	id := s.id("default", "reviews")
	other := s.id("default", "ratings")
	cases := []struct {
		name   string
		mutate func(*agent.Config)
	}{
		{"token for another identity", func(c *agent.Config) { c.TokenFile = s.tokenFile(other) }},
		{"no token", func(c *agent.Config) { c.TokenFile = "" }},
		{"garbage token", func(c *agent.Config) {
			p := filepath.Join(t.TempDir(), "tok")
			os.WriteFile(p, []byte("not-a-token"), 0o600)
			c.TokenFile = p
		}},
		{"CA not trusted", func(c *agent.Config) {
			other := newCAServer(t)
			c.RootCertFile = filepath.Join(other.dir, "root-cert.pem")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s.agentConfig(id)
			tc.mutate(&cfg)
			a := runAgent(t, cfg)
			waitFor(t, "failed attempts", func() bool { return a.Failures.Load() >= 2 })
			if a.Secrets() != nil {
				t.Fatal("got a certificate")
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/a/sa/b")
	cases := []struct {
		name string
		cfg  agent.Config
	}{
		{"no CA address", agent.Config{ID: id, RootCertFile: "x"}},
		{"no identity", agent.Config{CAAddr: "127.0.0.1:1", RootCertFile: "x"}},
		{"no roots", agent.Config{CAAddr: "127.0.0.1:1", ID: id}},
		{"missing root file", agent.Config{CAAddr: "127.0.0.1:1", ID: id, RootCertFile: filepath.Join(t.TempDir(), "none.pem")}},
		{"jitter too large", agent.Config{CAAddr: "127.0.0.1:1", ID: id, RootCertFile: "x", Jitter: 0.9}},
	}
	for _, tc := range cases {
		if _, err := agent.New(tc.cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

func TestRenewAt(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := func(nb, na time.Duration) *x509.Certificate {
		return &x509.Certificate{NotBefore: t0.Add(nb), NotAfter: t0.Add(na)}
	}
	zero := func(int64) int64 { return 0 }
	maxr := func(n int64) int64 { return n - 1 }
	cases := []struct {
		name   string
		issued time.Duration
		leaf   *x509.Certificate
		jitter float64
		rnd    func(int64) int64
		want   time.Duration
	}{
		{"half of 24h", 0, leaf(0, 24*time.Hour), 0.1, zero, 12 * time.Hour},
		{"backdated NotBefore counts from receipt", 0, leaf(-time.Minute, 2*time.Minute), 0.1, zero, time.Minute},
		{"full jitter comes 10% early", 0, leaf(0, 100*time.Second), 0.1, maxr, 40*time.Second + 1},
		{"received late", 10 * time.Second, leaf(0, 110*time.Second), 0, zero, 60 * time.Second},
		{"already expired", 10 * time.Second, leaf(0, 5*time.Second), 0.1, zero, 10 * time.Second},
	}
	for _, tc := range cases {
		got := agent.RenewAt(t0.Add(tc.issued), tc.leaf, tc.jitter, tc.rnd).Sub(t0)
		if got != tc.want {
			t.Errorf("%s: renew at +%v, want +%v", tc.name, got, tc.want)
		}
	}
}

func TestWorkloadID(t *testing.T) {
	cases := []struct{ td, ns, sa, want string }{
		{"cluster.local", "default", "bookinfo-reviews", "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"},
		{"cluster.local", "default", "spiffe://example.org/ns/x/sa/y", "spiffe://example.org/ns/x/sa/y"},
		{"cluster.local", "", "sa", ""},
		{"Bad Domain", "ns", "sa", ""},
	}
	for _, tc := range cases {
		id, err := agent.WorkloadID(tc.td, tc.ns, tc.sa)
		if (err != nil) != (tc.want == "") || (err == nil && id.String() != tc.want) {
			t.Errorf("WorkloadID(%q, %q, %q) = %v, %v; want %q", tc.td, tc.ns, tc.sa, id, err, tc.want)
		}
	}
}

// TestAgentFollowsRootFileThroughFastRotation: a rotation whose new root
// signs at once and whose old root retires before the agent renews (what an
// unauthenticated POST /debug/ca/rotate-root?propagation=1ms&overlap=50ms
// did) left the agent unable to verify the CA's new serving certificate for
// good: it read root-cert.pem once at start. It now reads the file at every
// connection, so it renews from the new root.
func TestAgentFollowsRootFileThroughFastRotation(t *testing.T) {
	s := newCAServer(t)
	id := s.id("default", "reviews")
	cfg := s.agentConfig(id)
	cfg.CertTTL = 2 * time.Second
	a := runAgent(t, cfg)
	<-a.Ready()
	rot, err := s.ca.RotateRoot(ca.RotateOptions{Propagation: time.Millisecond, Overlap: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a certificate from the new root", func() bool {
		return a.Secrets().Cert.Leaf.CheckSignatureFrom(rot.NewRoot) == nil
	})
	verifySVID(t, s.ca, a.Secrets(), id)
}

// TestAgentDoesNotAskDNSForServiceConfig: gRPC's DNS resolver looks up a TXT
// record (_grpc_config.NAME) for a service config besides the address. A
// pod whose nameserver answers A but drops TXT (or none at all) would hold
// every certificate request until the resolver gives up; the agent turns
// that lookup off, so only the address is asked for.
func TestAgentDoesNotAskDNSForServiceConfig(t *testing.T) {
	s := newCAServer(t)
	_, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	dns := dnsstub.Start(t, map[string]netip.Addr{agent.DefaultCAServerName: netip.MustParseAddr("127.0.0.1")}, dnsmessage.TypeTXT)
	id := s.id("bookinfo", "ratings")
	cfg := s.agentConfig(id)
	cfg.CAAddr = "dns://" + dns.Addr + "/" + net.JoinHostPort(agent.DefaultCAServerName, port)
	a := runAgent(t, cfg)
	// Without the fix the certificate never comes (every attempt's deadline
	// passes while the TXT query waits): fail on the query instead.
	waitFor(t, "a certificate, or a TXT query", func() bool {
		select {
		case <-a.Ready():
			return true
		default:
			return dns.Asked(dnsmessage.TypeTXT) > 0
		}
	})
	if n := dns.Asked(dnsmessage.TypeTXT); n != 0 {
		t.Fatalf("%d TXT (service config) queries for the CA's name, want none: %v", n, dns.Queries())
	}
	if n := dns.Asked(dnsmessage.TypeA); n == 0 {
		t.Fatalf("the CA's name was never resolved through the stub (queries %v)", dns.Queries())
	}
	verifySVID(t, s.ca, a.Secrets(), id)
}
