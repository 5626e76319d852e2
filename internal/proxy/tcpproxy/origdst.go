package tcpproxy

import (
	"net"
	"net/netip"

	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// pick chooses the upstream host for nc: for ORIGINAL_DST clusters
// (PassthroughCluster, InboundPassthroughCluster) the destination the
// connection had before it was redirected to the proxy, else the cluster's
// load balancer's choice. A connection that was not redirected has no
// original destination: sending it "there" would loop back to the proxy.
func (p *Proxy) pick(nc net.Conn, cl *upstream.Cluster) *upstream.Host {
	if cl.Cfg.Type != xdsparse.OriginalDst {
		return cl.Pick(upstream.PickOptions{})
	}
	o, ok := nc.(interface{ OriginalDst() netip.AddrPort })
	if !ok || p.OriginalDstHost == nil || !o.OriginalDst().IsValid() {
		p.log.Debug("tcp proxy: ORIGINAL_DST cluster for a connection that was not redirected", "cluster", cl.Cfg.Name)
		return nil
	}
	return p.OriginalDstHost(cl, o.OriginalDst().String())
}
