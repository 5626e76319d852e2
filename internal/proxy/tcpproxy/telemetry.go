package tcpproxy

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// connTel is one connection's telemetry: its record, its metric series
// (fixed when the upstream connects) and its byte counts from the
// downstream's view.
type connTel struct {
	rec            telemetry.Record
	series         *metrics.TCP
	sent, received atomic.Int64
}

func newConnTel(nc net.Conn, cfg *xdsparse.TCPProxy) *connTel {
	ct := &connTel{rec: telemetry.Record{TCP: true, Protocol: "tcp", Start: time.Now(), Outbound: !cfg.Inbound,
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
	rec.BytesReceived, rec.BytesSent = ct.received.Load(), ct.sent.Load()
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
	p.Telemetry.TCPDone(ct.series, rec, cfg.AccessLogs)
}
