package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ServingCert issues a TLS server certificate for mastd's own listeners (the
// xDS + CA port 15012), valid for hosts (DNS names such as
// istiod.istio-system.svc, or IP literals) for DefaultTTL. The chain holds
// the leaf and any intermediates, not the root. Prefer ServerTLSConfig, which
// renews the certificate and follows root rotation.
func (ca *CA) ServingCert(hosts ...string) (tls.Certificate, error) {
	return ca.servingCert(ca.auth.Load(), ca.now(), hosts)
}

func (ca *CA) servingCert(a *authority, now time.Time, hosts []string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("ca: serving certificate: no hosts")
	}
	var dns, ips []string
	for _, h := range hosts {
		if net.ParseIP(h) != nil {
			ips = append(ips, h)
		} else {
			dns = append(dns, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: serving certificate: %w", err)
	}
	signer, err := a.servingSignerAt(now)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, s, err := a.signWith(signer, leafTemplate{
		dns: dns, ips: ips, ttl: ca.cfg.DefaultTTL,
		extKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &key.PublicKey, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: serving certificate: %w", err)
	}
	chain := [][]byte{der}
	for _, p := range s.chainPEM {
		c, err := parseCertPEM([]byte(p))
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("ca: serving certificate chain: %w", err)
		}
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// ServerTLSConfig returns a TLS configuration for mastd's 15012 listener:
// a serving certificate for hosts, renewed at half its lifetime and whenever
// a rotation changes the signer (serving certificates come from the oldest
// trusted root: see servingSignerAt), and optional client certificates verified
// against the current trust bundle (proxies renew with them). Pass it to
// credentials.NewTLS; gRPC adds the h2 ALPN protocol.
func (ca *CA) ServerTLSConfig(hosts ...string) (*tls.Config, error) {
	c := &servingCache{ca: ca, hosts: hosts}
	if _, err := c.get(); err != nil { // fail now, not at the first handshake
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.get()
		},
	}, nil
}

// servingCache holds the per-connection TLS configuration of one listener.
type servingCache struct {
	ca    *CA
	hosts []string
	mu    sync.Mutex // serialises renewal
	cur   atomic.Pointer[servingEntry]
}

type servingEntry struct {
	auth    *authority
	renewAt time.Time
	cfg     *tls.Config
}

func (c *servingCache) get() (*tls.Config, error) {
	now := c.ca.now()
	a := c.ca.auth.Load()
	if e := c.cur.Load(); e != nil && e.auth == a && now.Before(e.renewAt) {
		return e.cfg, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.cur.Load(); e != nil && e.auth == a && now.Before(e.renewAt) {
		return e.cfg, nil
	}
	cert, err := c.ca.servingCert(a, now, c.hosts)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range a.rootsAt(now) {
		pool.AddCert(r)
	}
	renewAt := now.Add(cert.Leaf.NotAfter.Sub(now) / 2)
	if next := a.nextChange(now); !next.IsZero() && next.Before(renewAt) {
		renewAt = next
	}
	e := &servingEntry{auth: a, renewAt: renewAt, cfg: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		Time:         c.ca.now,
	}}
	c.cur.Store(e)
	return e.cfg, nil
}

func addIPs(tmpl *x509.Certificate, ips []string) error {
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("ca: %q is not an IP address", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	return nil
}
