package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// upgrader is implemented by codecs that can hand over the connection after
// a 101 (or a 200 to CONNECT): HTTP/1 only.
type upgrader interface {
	Upgrade(status int, h headers.List) (upstream.Conn, error)
}

// upgradeType is the lower-case upgrade a request asks for, as named in
// upgrade_configs: "connect" for CONNECT, the Upgrade header otherwise.
func upgradeType(req *dsRequest) string {
	if req.method == "CONNECT" {
		return "connect"
	}
	return strings.ToLower(req.upgrade)
}

// downConn is the downstream HTTP/1 connection after an upgrade; reads go
// through the buffer that may hold bytes the client sent early.
type downConn struct {
	br *bufio.Reader
	nc net.Conn
}

func (d *downConn) Read(p []byte) (int, error)        { return d.br.Read(p) }
func (d *downConn) Write(p []byte) (int, error)       { return d.nc.Write(p) }
func (d *downConn) SetReadDeadline(t time.Time) error { return d.nc.SetReadDeadline(t) }
func (d *downConn) Close() error                      { return d.nc.Close() }

func (d *downConn) CloseWrite() error {
	if cw, ok := d.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return d.nc.Close()
}

// tcpConn adapts a dialled connection to upstream.Conn.
type tcpConn struct{ net.Conn }

func (c tcpConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// idleTimeout is how long an upgraded stream may see no bytes either way.
func idleTimeout(hcm *xdsparse.HTTPManager, a *xdsparse.RouteAction) time.Duration {
	if a != nil && a.IdleTimeout > 0 {
		return a.IdleTimeout
	}
	return hcm.StreamIdleTimeout
}

// splice copies bytes both ways until both directions ended (each end's
// EOF is passed on as a half-close), either side fails, the stream was idle
// for idle (both directions silent), or ctx ends.
func (s *Server) splice(ctx context.Context, down, up upstream.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	stop := context.AfterFunc(ctx, func() { down.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	cp := func(dst, src upstream.Conn) {
		defer func() { done <- struct{}{} }()
		bp, _ := s.bufs.Get().(*[16 * 1024]byte)
		if bp == nil {
			bp = new([16 * 1024]byte)
		}
		defer s.bufs.Put(bp)
		buf := bp[:]
		for {
			if idle > 0 {
				src.SetReadDeadline(time.Now().Add(idle))
				if ctx.Err() != nil {
					break
				}
			}
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					// The other direction cannot go on either.
					src.Close()
					return
				}
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil &&
					time.Since(time.Unix(0, last.Load())) < idle {
					continue // the other direction is busy: not idle
				}
				if errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, io.EOF) {
					// Idle or broken: end both directions.
					dst.Close()
					src.Close()
					return
				}
				break
			}
		}
		dst.CloseWrite()
	}
	go cp(up, down)
	cp(down, up)
	<-done
	<-done
	down.Close()
	up.Close()
}

// connect terminates a CONNECT request (a route with connect_config): it
// opens a TCP connection to a host of the cluster, answers 200 and splices.
func (s *Server) connect(ctx context.Context, req *dsRequest, w responseWriter, hcm *xdsparse.HTTPManager,
	act *xdsparse.RouteAction, cl *upstream.Cluster) {
	u, ok := w.(upgrader)
	if !ok {
		s.localReply(w, 501, "CONNECT is only supported over HTTP/1.1", "", nil)
		return
	}
	if !act.ConnectTerminate {
		s.localReply(w, 501, "CONNECT can only be terminated (route upgrade_configs connect_config)", "", nil)
		return
	}
	var host *upstream.Host
	if cl.Cfg.Type == xdsparse.OriginalDst {
		host = s.mgr.OriginalDstHost(cl, originalDstAddr(req))
	} else {
		host = cl.Pick(upstream.PickOptions{})
	}
	if host == nil {
		s.localReply(w, 503, "no healthy upstream", flagNoHealthy, nil)
		return
	}
	cl.Stats.CxTotal.Add(1)
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, cl.Cfg.ConnectTimeout)
	nc, err := d.DialContext(dctx, "tcp", host.Addr)
	cancel()
	if err != nil {
		cl.Stats.CxConnectFail.Add(1)
		s.localReply(w, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", flagConnectFailure, nil)
		return
	}
	cl.Stats.CxActive.Add(1)
	defer cl.Stats.CxActive.Add(-1)
	s.countStatus(200)
	down, err := u.Upgrade(200, headers.List{{Name: "date", Value: httpDate()}, {Name: "server", Value: "mast-proxy"}})
	if err != nil {
		nc.Close()
		return
	}
	s.Stats.Upgrades.Add(1)
	s.splice(ctx, down, tcpConn{nc}, idleTimeout(hcm, act))
}

// originalDstAddr is where an ORIGINAL_DST cluster sends req: the original
// destination of a redirected connection, else (the forward-proxy listener
// of INTERCEPTION_MODE NONE) the authority the client asked for.
func originalDstAddr(req *dsRequest) string {
	if req.origDst != "" {
		return req.origDst
	}
	return req.authority
}
