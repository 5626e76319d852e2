package ca_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/sync/errgroup"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

func TestRotateRootPhases(t *testing.T) {
	e := newEnv(t, func(c *ca.Config) { c.MaxTTL = 90 * 24 * time.Hour })
	id := e.id("default", "reviews")
	issue := func() (*x509.Certificate, []*x509.Certificate, []string) {
		t.Helper()
		tok := e.token("default", "reviews", 30*24*time.Hour)
		chain, err := e.create(e.client, tok, catest.CSR{URIs: []string{id.String()}}.Build(t), 48*3600)
		if err != nil {
			t.Fatalf("CreateCertificate: %v", err)
		}
		leaf, verified := e.verifyChain(chain, id)
		return leaf, verified, chain
	}
	oldRoot := e.ca.TrustBundle()[0]
	l0, _, _ := issue()

	r, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: 24 * time.Hour, Overlap: 36 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start := e.clock.Now()
	if !r.SwitchAt.Equal(start.Add(24*time.Hour)) || !r.RetireAt.Equal(start.Add(36*time.Hour)) {
		t.Errorf("schedule switch=%s retire=%s", r.SwitchAt, r.RetireAt)
	}
	if r.NewRoot.Equal(oldRoot) || r.NewRoot.Subject.String() == oldRoot.Subject.String() {
		t.Error("new root equals the old one or shares its subject")
	}
	if _, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour}); err == nil ||
		!strings.Contains(err.Error(), "in progress") {
		t.Errorf("second rotation: %v, want refusal", err)
	}

	// Phase 1: both roots trusted and sent, the old one signs.
	if b := e.ca.TrustBundle(); len(b) != 2 || !b[0].Equal(oldRoot) || !b[1].Equal(r.NewRoot) {
		t.Fatalf("bundle during propagation: %d roots", len(b))
	}
	l1, v1, c1 := issue()
	if !v1[len(v1)-1].Equal(oldRoot) {
		t.Error("leaf issued during propagation is not signed by the old root")
	}
	if got := len(parsePEM(t, c1[len(c1)-1])); got != 2 {
		t.Errorf("response bundle has %d roots, want 2", got)
	}

	// Phase 2: the new root signs; old leaves still verify.
	e.clock.Advance(24 * time.Hour)
	l2, v2, _ := issue()
	if !v2[len(v2)-1].Equal(r.NewRoot) {
		t.Error("leaf issued after the switch is not signed by the new root")
	}
	for name, l := range map[string]*x509.Certificate{"pre-rotation": l0, "propagation": l1, "post-switch": l2} {
		if err := verifyAt(e.ca.TrustBundle(), l, e.clock.Now()); err != nil {
			t.Errorf("%s leaf during overlap: %v", name, err)
		}
	}
	if !serverIssuer(t, e).Equal(oldRoot) {
		t.Error("serving certificate moved to the new root before the old one retired")
	}

	// Phase 3: the old root is gone; leaves it signed during the rotation
	// (48h requested) expire with it: their lifetime is capped at its
	// retirement.
	if !l1.NotAfter.Equal(r.RetireAt) {
		t.Errorf("old-root leaf expires %s, want capped at retirement %s", l1.NotAfter, r.RetireAt)
	}
	e.clock.Advance(12 * time.Hour)
	if b := e.ca.TrustBundle(); len(b) != 1 || !b[0].Equal(r.NewRoot) {
		t.Fatalf("bundle after retirement has %d roots", len(b))
	}
	_, v3, c3 := issue()
	if !v3[len(v3)-1].Equal(r.NewRoot) || len(parsePEM(t, c3[len(c3)-1])) != 1 {
		t.Error("after retirement: want leaves from the new root and a one-root bundle")
	}
	if !serverIssuer(t, e).Equal(r.NewRoot) {
		t.Error("serving certificate not reissued by the new root after the old one retired")
	}

	// A restart prunes the retired root, and a new rotation may start.
	again, err := ca.New(ca.Config{Dir: e.dir, TrustDomain: trustDomain, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if b := again.TrustBundle(); len(b) != 1 || !b[0].Equal(r.NewRoot) {
		t.Error("restart after retirement: bundle is not the new root alone")
	}
	if _, err := again.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 30 * time.Hour}); err != nil {
		t.Errorf("rotation after retirement: %v", err)
	}
}

func TestRotateRootScheduleSurvivesRestart(t *testing.T) {
	e := newEnv(t, nil)
	r, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 26 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := ca.New(ca.Config{Dir: e.dir, TrustDomain: trustDomain, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if len(restarted.TrustBundle()) != 2 {
		t.Fatal("restart during the rotation lost a root")
	}
	// Serving certificates follow the oldest trusted root: the old one
	// until it retires at +26h, then the new one.
	e.clock.Advance(2 * time.Hour)
	if cert, err := restarted.ServingCert("127.0.0.1"); err != nil || cert.Leaf.CheckSignatureFrom(r.NewRoot) == nil {
		t.Errorf("after the switch the restarted CA serves with the new root already (err %v)", err)
	}
	e.clock.Advance(25 * time.Hour)
	cert, err := restarted.ServingCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Leaf.CheckSignatureFrom(r.NewRoot); err != nil {
		t.Errorf("after retirement, the restarted CA serves with another root: %v", err)
	}
}

// TestRotateRootKeepsPreRotationClients: a client that trusts only the
// bundle from before the rotation (an agent that has not renewed since, or
// that read root-cert.pem before the rotation started) can still reach the
// CA after the switch, for as long as the old root is trusted. Before the
// serving certificate followed the oldest trusted root, the handshake failed
// from the switch on with "certificate signed by unknown authority": the
// real window behind TestRotateRootUnderLoad's failures at -cpu 1.
func TestRotateRootKeepsPreRotationClients(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("default", "reviews")
	tok := e.token("default", "reviews", 7*24*time.Hour)
	oldPool := x509.NewCertPool()
	oldPool.AddCert(e.ca.TrustBundle()[0])
	r, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 30 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour) // past the switch, before retirement
	client := newServiceClient(e.dialPool(oldPool, nil))
	chain, err := e.create(client, tok, catest.CSR{URIs: []string{id.String()}}.Build(t), 0)
	if err != nil {
		t.Fatalf("pre-rotation client after the switch: %v", err)
	}
	leaf, _ := e.verifyChain(chain, id)
	if err := leaf.CheckSignatureFrom(r.NewRoot); err != nil {
		t.Errorf("leaf after the switch not signed by the new root: %v", err)
	}
	if n := len(parsePEM(t, chain[len(chain)-1])); n != 2 {
		t.Errorf("bundle sent to the client has %d roots, want both", n)
	}
}

func TestRotateRootRefusesBadOptions(t *testing.T) {
	e := newEnv(t, nil)
	for _, o := range []ca.RotateOptions{
		{Propagation: 2 * time.Hour, Overlap: time.Hour},
		{Propagation: time.Hour, Overlap: time.Hour},
		{Propagation: -time.Hour, Overlap: time.Hour},
	} {
		if _, err := e.ca.RotateRoot(o); err == nil {
			t.Errorf("RotateRoot(%+v) accepted", o)
		}
	}
	if len(e.ca.TrustBundle()) != 1 {
		t.Error("a refused rotation changed the bundle")
	}
}

// proxy is a simulated workload: it holds a certificate and the bundle that
// came with it, and renews at a fraction of its certificate's lifetime.
type proxy struct {
	id       spiffeid.ID
	key      *ecdsa.PrivateKey
	chain    []string
	leaf     *x509.Certificate
	bundle   []*x509.Certificate
	renewAt  float64
	renewals int
}

// TestRotateRootWithoutFailedRequest simulates a fleet through a whole
// rotation, hour by hour. Proxies renew over mTLS with their current
// certificate (no token), verifying mastd with the bundle they hold. At
// every hour every proxy must accept every other proxy's certificate with
// the bundle it holds, and every renewal must succeed.
func TestRotateRootWithoutFailedRequest(t *testing.T) {
	e := newEnv(t, nil)
	fleet := []*proxy{}
	for i, frac := range []float64{0.5, 0.8, 0.9, 0.5} {
		p := &proxy{id: e.id("default", fmt.Sprintf("sa%d", i)), key: catest.ECKey(t), renewAt: frac}
		e.renew(p, e.token("default", fmt.Sprintf("sa%d", i), time.Hour))
		fleet = append(fleet, p)
		e.clock.Advance(5 * time.Hour) // stagger issue times
	}

	r, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: ca.DefaultLeafTTL, Overlap: 2 * ca.DefaultLeafTTL})
	if err != nil {
		t.Fatal(err)
	}
	for hour := 0; hour <= 24*4; hour++ {
		now := e.clock.Now()
		for _, p := range fleet {
			life := p.leaf.NotAfter.Sub(p.leaf.NotBefore)
			if !now.Before(p.leaf.NotBefore.Add(time.Duration(float64(life) * p.renewAt))) {
				e.renew(p, "")
			}
		}
		for _, client := range fleet {
			for _, server := range fleet {
				if err := verifyAt(client.bundle, server.leaf, now); err != nil {
					t.Fatalf("hour %d: %s rejects %s (root %q): %v", hour, client.id, server.id, server.leaf.Issuer.CommonName, err)
				}
			}
		}
		e.clock.Advance(time.Hour)
	}
	for _, p := range fleet {
		if p.renewals < 4 {
			t.Errorf("%s renewed only %d times", p.id, p.renewals)
		}
		if err := p.leaf.CheckSignatureFrom(r.NewRoot); err != nil || len(p.bundle) != 1 {
			t.Errorf("%s ended with a leaf not from the new root or a %d-root bundle", p.id, len(p.bundle))
		}
	}
}

// renew fetches a certificate for p: with tok when set, else over mTLS with
// p's current certificate, trusting mastd through the bundle p holds.
func (e *env) renew(p *proxy, tok string) {
	e.t.Helper()
	var client = e.client
	if tok == "" {
		pool := x509.NewCertPool()
		for _, r := range p.bundle {
			pool.AddCert(r)
		}
		conn := e.dialPool(pool, tlsCert(e.t, p.chain, p.key))
		defer conn.Close()
		client = newServiceClient(conn)
	}
	chain, err := e.create(client, tok, catest.CSR{Key: p.key, URIs: []string{p.id.String()}}.Build(e.t), 0)
	if err != nil {
		e.t.Fatalf("%s: renewal at %s: %v", p.id, e.clock.Now(), err)
	}
	p.leaf, _ = e.verifyChain(chain, p.id)
	p.chain = chain
	p.bundle = parsePEM(e.t, chain[len(chain)-1])
	p.renewals++
}

func TestRotateRootUnderLoad(t *testing.T) {
	e := newEnv(t, nil)
	id := e.id("default", "reviews")
	tok := e.token("default", "reviews", 7*24*time.Hour)
	csr := catest.CSR{URIs: []string{id.String()}}.Build(t)
	var mu sync.Mutex
	roots := map[string]bool{}
	var g errgroup.Group
	for w := 0; w < 4; w++ {
		g.Go(func() error {
			for i := 0; i < 15; i++ {
				chain, err := e.create(e.client, tok, csr, 0)
				if err != nil {
					return fmt.Errorf("request failed during rotation: %w", err)
				}
				certs := parsePEM(t, chain[0])
				bundle := parsePEM(t, chain[len(chain)-1])
				if err := verifyAt(bundle, certs[0], e.clock.Now()); err != nil {
					return fmt.Errorf("leaf does not verify against the bundle sent with it: %w", err)
				}
				mu.Lock()
				roots[certs[0].Issuer.CommonName] = true
				mu.Unlock()
			}
			return nil
		})
	}
	if _, err := e.ca.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 30 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(roots) == 0 {
		t.Fatal("no certificates issued")
	}
}

func verifyAt(bundle []*x509.Certificate, leaf *x509.Certificate, now time.Time) error {
	td := spiffeid.RequireTrustDomainFromString(trustDomain)
	_, _, err := x509svid.Verify([]*x509.Certificate{leaf}, x509bundle.FromX509Authorities(td, bundle), x509svid.WithTime(now))
	return err
}

// serverIssuer dials the CA's TLS listener and returns the root that its
// serving certificate chains to.
func serverIssuer(t *testing.T, e *env) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range e.ca.TrustBundle() {
		pool.AddCert(r)
	}
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: pool, ServerName: serverName, Time: e.clock.Now, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chains := conn.ConnectionState().VerifiedChains
	return chains[0][len(chains[0])-1]
}
