// Package tcpproxy serves tcp_proxy filter chains: it picks an upstream
// host of the configured cluster and copies bytes both ways.
package tcpproxy

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

// Proxy serves TCP connections.
type Proxy struct {
	clusters func() map[string]*upstream.Cluster
	log      *slog.Logger
	// Connections counts proxied connections; Failures those with no upstream.
	Connections, Failures atomic.Uint64
	// OriginalDstHost returns the host for an address of an ORIGINAL_DST
	// cluster (upstream.Manager.OriginalDstHost); see origdst.go.
	OriginalDstHost func(c *upstream.Cluster, addr string) *upstream.Host
	// Telemetry, when set, records Istio's TCP metrics and the chain's
	// access logs per connection (telemetry.go).
	Telemetry *reporter.Reporter
}

// New returns a proxy that looks clusters up through clusters.
func New(clusters func() map[string]*upstream.Cluster, log *slog.Logger) *Proxy {
	return &Proxy{clusters: clusters, log: log}
}

// Serve proxies nc to the chain's cluster until either side closes. The
// bytes relayed are counted in fc (the network filters' view of the
// connection; nil when the chain has none).
func (p *Proxy) Serve(ctx context.Context, nc net.Conn, cfg *xdsparse.TCPProxy, fc *filter.Conn) {
	defer nc.Close()
	p.Connections.Add(1)
	if fc == nil {
		fc = &filter.Conn{}
	}
	var ct *connTel
	if p.Telemetry != nil {
		ct = newConnTel(nc, cfg, fc)
		defer p.done(ct, cfg)
	}
	nc = p.exchangeInbound(nc, ct)
	name := cfg.Cluster
	if len(cfg.Weighted) > 0 {
		n := rand.Uint32N(cfg.TotalWeight)
		for _, w := range cfg.Weighted {
			if n < w.Weight {
				name = w.Name
				break
			}
			n -= w.Weight
		}
	}
	if ct != nil {
		ct.rec.UpstreamCluster = name
	}
	cl := p.clusters()[name]
	if cl == nil {
		p.Failures.Add(1)
		p.log.Debug("tcp proxy: no cluster", "cluster", name)
		return
	}
	if ct != nil && cl.Cfg != nil {
		ct.rec.ClusterServices = cl.Cfg.Services
	}
	var up net.Conn
	for attempt := 0; attempt < 3 && up == nil; attempt++ {
		h := p.pick(nc, cl)
		if h == nil {
			break
		}
		// DialStream counts the attempt and originates TLS when the
		// host's transport socket says so.
		c, err := h.DialStreamFor(nc.RemoteAddr(), nc.LocalAddr())
		if err != nil {
			p.log.Debug("tcp proxy: connect failed", "cluster", name, "host", h.Addr, "error", err)
			continue
		}
		if cfg.Tunnel != nil {
			if c, err = openTunnel(c, cfg.Tunnel, cl.Cfg.ConnectTimeout); err != nil {
				p.log.Debug("tcp proxy: tunnel failed", "cluster", name, "host", h.Addr, "error", err)
				continue
			}
		}
		up = p.exchangeOutbound(c, ct)
		if ct != nil {
			ct.rec.UpstreamHost = h.Addr
		}
	}
	if up == nil {
		p.Failures.Add(1)
		return
	}
	cl.Stats.CxActive.Add(1)
	defer cl.Stats.CxActive.Add(-1)
	if ct != nil {
		ct.report(p.Telemetry.TCPOpened(&ct.rec), p.Telemetry.ReportInterval(&ct.rec))
	}
	defer up.Close()
	closeBoth := func() { nc.Close(); up.Close() }
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	if d := cfg.MaxConnectionDuration; d > 0 {
		t := time.AfterFunc(d, closeBoth)
		defer t.Stop()
	}
	var lastIO atomic.Int64 // UnixNano of the last byte either way
	lastIO.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn, n *atomic.Int64) {
		buf := make([]byte, 16*1024)
		for {
			if cfg.IdleTimeout > 0 {
				src.SetReadDeadline(time.Unix(0, lastIO.Load()).Add(cfg.IdleTimeout))
			}
			k, err := src.Read(buf)
			if k > 0 {
				lastIO.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:k]); werr != nil {
					break
				}
				n.Add(int64(k))
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					if time.Since(time.Unix(0, lastIO.Load())) < cfg.IdleTimeout {
						continue // bytes went the other way meanwhile
					}
					// Envoy's idle timeout: no byte either way; both close.
					closeBoth()
				}
				break
			}
		}
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(up, nc, &fc.Received)
	go cp(nc, up, &fc.Sent)
	<-done
	<-done
}
