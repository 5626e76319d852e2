package tlsconfig_test

import (
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMTLSHandshake measures a fresh Istio mTLS handshake (TLS 1.3,
// ECDSA P-256 workload certificates, SPIFFE verification on both sides,
// no resumption) between two sidecars' builders. cpu-µs is the CPU time of
// both ends together per handshake.
func BenchmarkMTLSHandshake(b *testing.B) {
	mesh := newPKI(b, "mesh root")
	cb := tlsconfig.NewBuilder(staticSource{mesh.secrets(b, clientID)}, nil)
	sb := tlsconfig.NewBuilder(staticSource{mesh.secrets(b, serverID)}, nil)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		client, err := cb.Client(istioMutual(true, serverID), tlsconfig.ALPNHTTP11)
		if err != nil {
			b.Fatal(err)
		}
		client.ClientSessionCache = nil // a fresh handshake every time
		server, err := sb.Server(istioMutual(false))
		if err != nil {
			b.Fatal(err)
		}
		server.SessionTicketsDisabled = true
		a, c := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			s := tls.Server(a, server)
			errc <- s.Handshake()
		}()
		cc := tls.Client(c, client)
		if err := cc.Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		a.Close()
		c.Close()
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/handshake")
}
