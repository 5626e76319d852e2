package tcpproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The server side of the TCP metadata exchange writes its frame at once,
// as Envoy's filter does, so both orders work: a client that writes its
// frame first (Mast's, Envoy's when the client speaks first) and one that
// waits for the server's frame before sending its own (Envoy's when the
// application protocol is server-first, e.g. MySQL's greeting). Before,
// the server waited for the client's frame and the second client stalled
// until the exchange timed out, and then got no frame at all.
func TestExchangeInboundBothOrders(t *testing.T) {
	cert := selfSigned(t)
	p := New(nil, slog.New(slog.DiscardHandler))
	p.Telemetry = reporter.New(reporter.Config{Local: telemetry.Peer{Workload: "db-1", Namespace: "default", App: "db"}})
	clientFrame := peer.EncodeExchange(&telemetry.Peer{Workload: "client-1", Namespace: "default", App: "client"})
	for _, serverFirst := range []bool{true, false} {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{peer.ALPN}})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *telemetry.Peer, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer nc.Close()
			if err := nc.(*tls.Conn).Handshake(); err != nil {
				got <- nil
				return
			}
			ct := newConnTel(nc, &xdsparse.TCPProxy{Inbound: true}, &filter.Conn{})
			c := p.exchangeInbound(nc, ct)
			c.Write([]byte("greeting")) // a server-first application
			got <- ct.rec.DownstreamPeer
		}()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{peer.ALPN}})
		if err != nil {
			t.Fatal(err)
		}
		if !serverFirst {
			if _, err := c.Write(clientFrame); err != nil {
				t.Fatal(err)
			}
		}
		// The deadline only bounds a broken server; the assertion is on
		// what arrives.
		c.SetReadDeadline(time.Now().Add(peer.ExchangeTimeout / 2))
		rc, srv, err := peer.ReadExchange(c)
		if err != nil || srv == nil || srv.Workload != "db-1" {
			t.Fatalf("serverFirst=%v: the server's frame: %+v, %v", serverFirst, srv, err)
		}
		if serverFirst {
			if _, err := c.Write(clientFrame); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, len("greeting"))
		if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "greeting" {
			t.Fatalf("serverFirst=%v: stream after the exchange %q, %v", serverFirst, buf, err)
		}
		if pr := <-got; pr == nil || pr.Workload != "client-1" || pr.App != "client" {
			t.Errorf("serverFirst=%v: the server's view of the client: %+v", serverFirst, pr)
		}
		c.Close()
		ln.Close()
	}
}
