package tcpproxy

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
)

// connTel is one connection's telemetry: its record, its metric series
// (fixed when the upstream connects) and its byte counts from the
// downstream's view, added to the series every reporting interval while
// the connection is open and once more when it closes (Istio's stats
// filter's tcp_reporting_duration).
type connTel struct {
	rec    telemetry.Record
	series *metrics.TCP
	counts *filter.Conn // Received and Sent

	mu       sync.Mutex
	reported [2]int64 // sent, received already added to series
	timer    *time.Timer
	every    time.Duration
	closed   bool
}

// report starts adding the connection's bytes to series every interval.
func (ct *connTel) report(series *metrics.TCP, every time.Duration) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.series, ct.every = series, every
	if series != nil && !ct.closed {
		ct.timer = time.AfterFunc(every, ct.tick)
	}
}

func (ct *connTel) tick() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.closed {
		return
	}
	ct.flushLocked()
	ct.timer.Reset(ct.every)
}

func (ct *connTel) flushLocked() {
	s, r := ct.counts.Sent.Load(), ct.counts.Received.Load()
	ct.series.Bytes(s-ct.reported[0], r-ct.reported[1])
	ct.reported = [2]int64{s, r}
}

// close stops the timer and adds the bytes not yet reported.
func (ct *connTel) close() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.closed = true
	if ct.timer != nil {
		ct.timer.Stop()
	}
	ct.flushLocked()
}

func newConnTel(nc net.Conn, cfg *xdsparse.TCPProxy, fc *filter.Conn) *connTel {
	ct := &connTel{counts: fc, rec: telemetry.Record{TCP: true, Protocol: "tcp", Start: time.Now(), Outbound: !cfg.Inbound,
		DownstreamRemote: nc.RemoteAddr().String(), DownstreamLocal: nc.LocalAddr().String()}}
	if tc, ok := nc.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		ct.rec.RequestedServerName = cs.ServerName
		if len(cs.PeerCertificates) > 0 {
			ct.rec.DownstreamMTLS = true
			if u := cs.PeerCertificates[0].URIs; len(u) > 0 {
				ct.rec.DownstreamPrincipal = u[0].String()
				// TCP carries no metadata exchange here: the peer's
				// namespace comes from its SPIFFE identity.
				if ns, sa := filter.ParseSPIFFE(ct.rec.DownstreamPrincipal); ns != "" {
					ct.rec.DownstreamPeer = &telemetry.Peer{Namespace: ns, ServiceAccount: sa}
				}
			}
		}
	}
	return ct
}

// done reports a closed connection, also one that never reached an
// upstream (its response flags say why).
func (p *Proxy) done(ct *connTel, cfg *xdsparse.TCPProxy) {
	rec := &ct.rec
	rec.Duration = time.Since(rec.Start)
	rec.BytesReceived, rec.BytesSent = ct.counts.Received.Load(), ct.counts.Sent.Load()
	if rec.UpstreamHost == "" {
		if rec.UpstreamCluster != "" && p.clusters()[rec.UpstreamCluster] == nil {
			rec.Flags |= telemetry.NoClusterFound
		} else {
			rec.Flags |= telemetry.UpstreamConnectionFailure
		}
	}
	if ct.series == nil {
		ct.series = p.Telemetry.TCPOpened(rec)
	}
	ct.close()
	p.Telemetry.TCPDone(ct.series, rec, cfg.AccessLogs)
}

// emptyFrame answers a peer's metadata exchange when the proxy reports no
// telemetry: the peer waits for a frame once the ALPN said there is one.
var emptyFrame = peer.EncodeExchange(&telemetry.Peer{})

// frame is this proxy's metadata exchange frame.
func (p *Proxy) frame() []byte {
	if p.Telemetry == nil {
		return emptyFrame
	}
	return p.Telemetry.ExchangeFrame()
}

// exchangeInbound does the server side of Istio's TCP metadata exchange on
// an mTLS connection that negotiated it: this proxy's frame goes out at
// once, as Envoy's filter writes it on the connection's first event, then
// the client's frame is read. A client that waits for the server's frame
// before sending its own (Envoy's, when the server speaks first) is
// answered at once instead of after ExchangeTimeout. It returns the
// connection to read the stream from (the same one, or one giving back the
// first bytes when the client sent no frame).
func (p *Proxy) exchangeInbound(nc net.Conn, ct *connTel) net.Conn {
	tc, ok := nc.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != peer.ALPN {
		return nc
	}
	if _, err := nc.Write(p.frame()); err != nil {
		p.log.Debug("tcp proxy: metadata exchange to downstream", "error", err)
		return nc
	}
	c, pr, err := peer.ReadExchange(nc)
	if err != nil {
		p.log.Debug("tcp proxy: metadata exchange from downstream", "error", err)
	}
	if ct != nil && pr != nil {
		ct.rec.DownstreamPeer = pr
	}
	return c
}

// exchangeOutbound does the client side on an upstream mTLS connection
// that negotiated the exchange: this proxy's frame, then the server's.
func (p *Proxy) exchangeOutbound(up net.Conn, ct *connTel) net.Conn {
	tc, ok := up.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != peer.ALPN {
		return up
	}
	if _, err := up.Write(p.frame()); err != nil {
		p.log.Debug("tcp proxy: metadata exchange to upstream", "error", err)
		return up
	}
	c, pr, err := peer.ReadExchange(up)
	if err != nil {
		p.log.Debug("tcp proxy: metadata exchange from upstream", "error", err)
	}
	if ct != nil && pr != nil {
		ct.rec.UpstreamPeer = pr
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 && len(certs[0].URIs) > 0 {
			ct.rec.UpstreamPrincipal = certs[0].URIs[0].String()
		}
	}
	return c
}
