package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
)

// pickHost returns a host of the named cluster, as the router would pick
// one (load balancing, outlier ejections).
func (p *Proxy) pickHost(name string) (*upstream.Host, error) {
	c := p.routing.Load().Clusters[name]
	if c == nil {
		return nil, fmt.Errorf("cluster %q: not configured", name)
	}
	h := c.Pick(upstream.PickOptions{})
	if h == nil {
		return nil, fmt.Errorf("cluster %q: no healthy upstream", name)
	}
	return h, nil
}

// clusterHTTP is filter.Services.ClusterHTTP: one request to a host of a
// cluster through its connection pool (the cluster's protocol and TLS).
func (p *Proxy) clusterHTTP(ctx context.Context, cluster string, call *filter.HTTPCall, maxBody int) (*filter.HTTPResult, error) {
	h, err := p.pickHost(cluster)
	if err != nil {
		return nil, err
	}
	req := &upstream.Request{Method: call.Method, Scheme: "http", Authority: call.Authority, Path: call.Path,
		Header: call.Header, Body: call.Body, ContentLength: int64(len(call.Body))}
	resp, err := h.RoundTrip(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", cluster, err)
	}
	defer resp.Body.Close()
	out := &filter.HTTPResult{Status: resp.Status, Header: resp.Header.Clone(0)}
	if out.Body, err = io.ReadAll(io.LimitReader(resp.Body, int64(maxBody))); err != nil {
		return nil, fmt.Errorf("cluster %q: reading the response: %w", cluster, err)
	}
	return out, nil
}

// clusterDial is filter.Services.ClusterDial: a connection to a host of a
// cluster for HTTP/2 (TLS with ALPN h2 when the cluster's transport socket
// says so).
func (p *Proxy) clusterDial(ctx context.Context, cluster string) (net.Conn, error) {
	h, err := p.pickHost(cluster)
	if err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := h.DialHTTP2()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
