//go:build unix

package ca_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca/catest"
)

// BenchmarkCreateCertificateGRPC measures CreateCertificate over an
// established TLS connection on loopback (client and server in-process).
func BenchmarkCreateCertificateGRPC(b *testing.B) {
	e := newEnv(b, nil)
	id := e.id("default", "reviews")
	tok := e.token("default", "reviews", time.Hour)
	csr := catest.CSR{URIs: []string{id.String()}}.Build(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.create(e.client, tok, csr, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTLSHandshake measures a full TLS 1.3 mutual handshake (no
// resumption) between two workloads holding ECDSA P-256 certificates issued
// by the CA, each verifying the other against the trust bundle. Both sides
// run in this process, so ns/op and cpu-ns/op cover client and server.
func BenchmarkTLSHandshake(b *testing.B) {
	for _, bc := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{"default-groups", nil}, // Go's default: X25519MLKEM768 first
		{"X25519", []tls.CurveID{tls.X25519}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, nil)
			pool := x509.NewCertPool()
			for _, r := range e.ca.TrustBundle() {
				pool.AddCert(r)
			}
			issue := func(sa string) *tls.Certificate {
				key := catest.ECKey(b)
				id := e.id("default", sa)
				chain, err := e.create(e.client, e.token("default", sa, time.Hour), catest.CSR{Key: key, URIs: []string{id.String()}}.Build(b), 0)
				if err != nil {
					b.Fatal(err)
				}
				return tlsCert(b, chain, key)
			}
			server := &tls.Config{
				Certificates: []tls.Certificate{*issue("server")}, ClientAuth: tls.RequireAndVerifyClientCert,
				ClientCAs: pool, MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true, Time: e.clock.Now,
				CurvePreferences: bc.curves,
			}
			client := &tls.Config{
				Certificates: []tls.Certificate{*issue("client")}, RootCAs: pool, ServerName: "ignored",
				MinVersion: tls.VersionTLS13, Time: e.clock.Now, CurvePreferences: bc.curves,
				// Workload certificates carry SPIFFE IDs, not DNS names: verify
				// the chain against the bundle, not the host name.
				InsecureSkipVerify: true,
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					leaf, err := x509.ParseCertificate(raw[0])
					if err != nil {
						return err
					}
					_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: e.clock.Now(),
						KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
					return err
				},
			}
			handshake := func() {
				c, s := net.Pipe()
				done := make(chan error, 1)
				go func() {
					done <- tls.Server(s, server).Handshake()
				}()
				cl := tls.Client(c, client)
				if err := cl.Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if v := cl.ConnectionState().Version; v != tls.VersionTLS13 {
					b.Fatalf("negotiated %x, want TLS 1.3", v)
				}
				c.Close() // not cl.Close: close_notify would block on the unread pipe
				s.Close()
			}
			handshake() // warm up
			before := cpuTime(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				handshake()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-before)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
