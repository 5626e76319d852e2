package dataplane

import (
	"context"
	"fmt"
	"net"
)

// dialCluster connects to a healthy endpoint of one of the proxy's
// clusters, for the tracers' collectors (Envoy's envoy_grpc cluster_name /
// collector_cluster). A collector cluster must be plaintext: a TLS
// transport socket is refused rather than spoken to in the clear.
func (p *Proxy) dialCluster(ctx context.Context, name string) (net.Conn, error) {
	c := p.routing.Load().Clusters[name]
	if c == nil {
		return nil, fmt.Errorf("collector cluster %q: not configured", name)
	}
	if c.Cfg != nil && c.Cfg.TLS != nil {
		return nil, fmt.Errorf("collector cluster %q: TLS transport sockets are not supported for collectors", name)
	}
	var d net.Dialer
	// A cluster's hosts are its healthy endpoints.
	if hs := c.Endpoints(); len(hs) > 0 {
		return d.DialContext(ctx, "tcp", hs[0].Host.Addr)
	}
	return nil, fmt.Errorf("collector cluster %q: no healthy endpoint", name)
}
