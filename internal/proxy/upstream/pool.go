package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2client"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
	"github.com/mast-mesh/mast/internal/proxy/monoclock"
	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

type poolConfig struct {
	http2          bool
	connectTimeout time.Duration
	idleTimeout    time.Duration
	maxConnAge     time.Duration // max_connection_duration (HTTP/1 and HTTP/2 connections)
	maxReqPerConn  uint32
	maxConns       uint32
	maxPending     uint32 // requests that may wait for a connection when maxConns are open
	maxRequests    uint32
	keepalive      *xdsparse.TCPKeepalive
	h2             xdsparse.H2Options
	tlsKey         string // the transport socket's TLSContext.Key; "" for plaintext
	useDownstream  bool   // HTTP/2 upstream exactly when the request came in HTTP/2
	legacyH2       bool   // HTTP/2 through x/net's Transport (Manager.LegacyH2)
	proxyProtocol  uint8  // PROXY protocol header version on each connection (proxyproto.go); 0 none
}

func poolConfigFor(c *xdsparse.Cluster) poolConfig {
	return poolConfig{http2: c.HTTP2, useDownstream: c.UseDownstreamProtocol, connectTimeout: c.ConnectTimeout, idleTimeout: c.IdleTimeout,
		maxConnAge: c.MaxConnectionDuration, maxReqPerConn: c.MaxRequestsPerConn, maxConns: c.MaxConnections, maxPending: c.MaxPending, maxRequests: c.MaxRequests,
		keepalive: c.Keepalive, h2: c.H2, proxyProtocol: c.ProxyProtocol}
}

// pool holds the connections to one host.
type pool struct {
	addr  string
	cfg   poolConfig
	stats *Stats
	dial  func(network, addr string, timeout time.Duration) (net.Conn, error)
	// tls, when set, originates TLS on every connection (see tls.go).
	tls  *xdsparse.TLSContext
	tlsb *tlsconfig.Builder

	mu    sync.Mutex
	idle  []*h1conn
	conns int
	// waiters are the requests queued for a connection (at most
	// maxPending), first come first served; each is woken by a connection
	// going back to the idle list or closing.
	waiters []chan struct{}
	// nwaiters mirrors len(waiters) for HTTP/2 stream ends, which look
	// without the lock.
	nwaiters atomic.Int32
	// h2 are the open HTTP/2 connections; h2dial is the dial in flight
	// (requests that find no free stream wait for it rather than dial too).
	h2     []*h2client.Conn
	h2dial *h2dial
	// exchanges are finished HTTP/2 exchanges for reuse (h2exchange).
	exchanges sync.Pool
	// writers are the HTTP/1.1 connections' write buffers, held only
	// while an exchange sends its request: the next exchange writes into
	// the one the last used, still in the cache, and idle connections
	// hold none.
	writers sync.Pool
	// h2legacy is x/net's transport (legacy, --legacy-http2-client) and
	// h2legacyConns counts its open connections.
	h2legacy      *http2.Transport
	h2legacyConns atomic.Int64
	// draining: no connection goes back to idle (drain).
	draining bool
}

// wakeOne hands the freed slot to the oldest waiter; p.mu must be held.
func (p *pool) wakeOne() {
	if len(p.waiters) == 0 {
		return
	}
	ch := p.waiters[0]
	p.waiters = p.waiters[1:]
	p.nwaiters.Store(int32(len(p.waiters)))
	ch <- struct{}{} // buffered, never blocks
}

func newPool(addr string, cfg poolConfig, st *Stats, dial func(string, string, time.Duration) (net.Conn, error)) *pool {
	return &pool{addr: addr, cfg: cfg, stats: st, dial: dial}
}

// drain closes the idle connections and makes busy ones close when their
// requests end (HTTP/2 connections when their last stream ends).
func (p *pool) drain() {
	p.mu.Lock()
	if p.draining {
		p.mu.Unlock()
		return
	}
	p.draining = true
	idle := p.idle
	p.idle = nil
	h2 := slices.Clone(p.h2)
	legacy := p.h2legacy
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	for _, c := range h2 {
		c.Drain()
	}
	if legacy != nil {
		p.drainLegacy(legacy)
	}
}

type h1conn struct {
	p    *pool
	nc   net.Conn
	br   *bufio.Reader
	hr   *http1.Reader
	head http1.Head
	body http1.Body
	rb   h1body
	// heads writes the requests' heads, each from the last one's bytes.
	heads http1.HeadWriter
	// resp and hdr hold the current exchange's response and its header
	// list: a connection carries one exchange at a time, and the caller is
	// done with both once it closed the body (which hands the connection
	// back to the pool), so they are reused instead of allocated per request.
	resp Response
	hdr  headers.List
	// abortIO and trailers are bound once per connection (method values
	// allocate when taken).
	abortIO  func()
	trailers func() headers.List
	uses     uint32
	idleAt   int64 // monoclock.Now
	born     int64 // monoclock.Now
	closed   bool
	// dl is the current exchange's deadline (zero for none).
	dl time.Time
}

// tooOld reports whether the connection is past the cluster's
// max_connection_duration: it takes no new request and closes.
func (c *h1conn) tooOld(now int64) bool {
	return c.p.cfg.maxConnAge > 0 && time.Duration(now-c.born) >= c.p.cfg.maxConnAge
}

func (c *h1conn) close() {
	if !c.closed {
		c.closed = true
		c.nc.Close()
		c.p.mu.Lock()
		c.p.conns--
		c.p.wakeOne()
		c.p.mu.Unlock()
		c.p.stats.CxActive.Add(-1)
	}
}

type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return ErrConnect }

// connect dials the host; proto is the ALPN protocol offered when the
// connection is TLS ("h2", "http/1.1", or "" for raw TCP).
func (p *pool) connect(proto string) (net.Conn, error) {
	return p.connectFor(proto, nil, nil)
}

// connectFor is connect for a stream from src to dst downstream, which the
// PROXY protocol header names when the cluster sends one.
func (p *pool) connectFor(proto string, src, dst net.Addr) (net.Conn, error) {
	p.stats.CxTotal.Add(1)
	nc, err := p.dial("tcp", p.addr, p.cfg.connectTimeout)
	if err != nil {
		p.stats.CxConnectFail.Add(1)
		return nil, &connectError{fmt.Errorf("%w: %s: %v", ErrConnect, p.addr, err)}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		if ka := p.cfg.keepalive; ka != nil {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: ka.Idle, Interval: ka.Interval, Count: ka.Probes})
		}
	}
	// Reads and writes without the runtime's syscall bookkeeping
	// (rawsock: sysmon stays asleep).
	nc = rawsock.Wrap(nc)
	if p.cfg.proxyProtocol != 0 {
		if err := p.writeProxyHeader(nc, src, dst); err != nil {
			nc.Close()
			p.stats.CxConnectFail.Add(1)
			return nil, &connectError{fmt.Errorf("%w: %s: PROXY protocol header: %v", ErrConnect, p.addr, err)}
		}
	}
	if p.tls != nil {
		if nc, err = p.secure(nc, proto); err != nil {
			p.stats.CxConnectFail.Add(1)
			return nil, &connectError{fmt.Errorf("%w: %s: %v", ErrConnect, p.addr, err)}
		}
	}
	return nc, nil
}

// get returns an idle connection or a new one. When max_connections are
// open it waits, as one of at most max_pending_requests, for one to be
// returned or closed; beyond that the request overflows.
func (p *pool) get(ctx context.Context, deadline time.Time) (*h1conn, bool, error) {
	now := monoclock.Now()
	p.mu.Lock()
	for p.cfg.maxConns > 0 && uint32(p.conns) >= p.cfg.maxConns && len(p.idle) == 0 {
		if uint32(len(p.waiters)) >= p.cfg.maxPending {
			p.mu.Unlock()
			p.stats.RqPendingOverflow.Add(1)
			return nil, false, ErrOverflow
		}
		ch := make(chan struct{}, 1)
		p.waiters = append(p.waiters, ch)
		p.nwaiters.Store(int32(len(p.waiters)))
		p.mu.Unlock()
		if err := p.wait(ctx, deadline, ch); err != nil {
			return nil, false, err
		}
		p.mu.Lock()
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if (p.cfg.idleTimeout > 0 && time.Duration(now-c.idleAt) > p.cfg.idleTimeout) || c.tooOld(now) {
			p.mu.Unlock()
			c.close()
			p.mu.Lock()
			continue
		}
		p.mu.Unlock()
		return c, true, nil
	}
	if p.cfg.maxConns > 0 && uint32(p.conns) >= p.cfg.maxConns {
		// the idle connections were stale and closed: wait again
		p.mu.Unlock()
		return p.get(ctx, deadline)
	}
	p.conns++
	p.mu.Unlock()
	nc, err := p.connect(tlsconfig.ALPNHTTP11)
	if err != nil {
		p.mu.Lock()
		p.conns--
		p.mu.Unlock()
		return nil, false, err
	}
	p.stats.CxActive.Add(1)
	c := &h1conn{p: p, nc: nc, br: bufio.NewReaderSize(nc, 4096), born: now}
	c.hr = http1.NewReader(c.br, http1.Limits{MaxHeaderBytes: 96 * 1024, MaxHeaders: 200})
	c.abortIO = c.unblock
	c.trailers = c.bodyTrailers
	return c, false, nil
}

// wait waits for a waiter's wake-up, the context's end or the deadline.
func (p *pool) wait(ctx context.Context, deadline time.Time, ch chan struct{}) error {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrTimeout
		}
	case <-expired:
		err = ErrTimeout
	}
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i:i], p.waiters[i+1:]...)
			break
		}
	}
	p.nwaiters.Store(int32(len(p.waiters)))
	if len(ch) > 0 {
		p.wakeOne() // woken meanwhile: pass the slot on
	}
	p.mu.Unlock()
	return err
}

func (p *pool) put(c *h1conn) {
	now := monoclock.Now()
	if c.closed || (p.cfg.maxReqPerConn > 0 && c.uses >= p.cfg.maxReqPerConn) || c.tooOld(now) {
		c.close()
		return
	}
	c.idleAt = now
	p.mu.Lock()
	if len(p.idle) < 64 && !p.draining {
		p.idle = append(p.idle, c)
		p.wakeOne()
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.close()
}

// RoundTrip sends req to host h and returns the response head; the body
// streams. ctx bounds the whole exchange, body included.
func (h *Host) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	var resp *Response
	var err error
	p := h.connPool()
	h2 := p.cfg.http2 || (p.cfg.useDownstream && req.DownstreamHTTP2)
	switch {
	case h2 && req.Upgrade == "" && p.cfg.legacyH2:
		resp, err = p.roundTripH2Legacy(ctx, req)
	case h2 && req.Upgrade == "":
		resp, err = p.roundTripH2(ctx, req)
	default:
		resp, err = p.roundTripH1(ctx, req)
	}
	if resp != nil {
		resp.Host = h
	}
	return resp, err
}

func (p *pool) roundTripH1(ctx context.Context, req *Request) (*Response, error) {
	for {
		c, reused, err := p.get(ctx, req.Deadline)
		if err != nil {
			return nil, err
		}
		resp, err := c.exchange(ctx, req)
		if err == nil {
			return resp, nil
		}
		c.close()
		// A kept-alive connection the upstream closed meanwhile (when it
		// closes idle connections, all of them at once): discard it and try
		// the next, until a fresh connection, when nothing of the response
		// was seen. The idle list bounds the loop.
		if reused && req.Replayable() && errors.Is(err, ErrReset) && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

// classify maps an exchange's I/O error to a failure kind; dl is the
// exchange's deadline (zero for none).
func classify(ctx context.Context, dl time.Time, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrTimeout
		}
		cause := context.Cause(ctx)
		if c, ok := ctx.(interface{ Cause() error }); ok {
			cause = c.Cause()
		}
		return fmt.Errorf("%w: %v", ErrReset, cause)
	}
	if !dl.IsZero() && !time.Now().Before(dl) {
		return ErrTimeout
	}
	var pe *http1.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %v", ErrReset, err)
}

// watch arranges for ctx's end to unblock the connection's I/O until the
// returned stop is called (stop reports false when it did): through the
// context's abort slot when it has one, else context.AfterFunc.
func (c *h1conn) watch(ctx context.Context) exchangeStop {
	if a, ok := ctx.(Aborter); ok {
		a.SetAbort(c.abortIO)
		return exchangeStop{a: a}
	}
	if ctx.Done() != nil {
		return exchangeStop{f: context.AfterFunc(ctx, c.abortIO)}
	}
	return exchangeStop{}
}

// exchangeStop undoes watch without allocating.
type exchangeStop struct {
	a Aborter
	f func() bool
}

func (s exchangeStop) stop() bool {
	switch {
	case s.a != nil:
		return s.a.ClearAbort()
	case s.f != nil:
		return s.f()
	}
	return true
}

// unblock makes the connection's pending and future I/O fail at once.
func (c *h1conn) unblock() { c.nc.SetDeadline(time.Unix(1, 0)) }

func (c *h1conn) bodyTrailers() headers.List { return c.body.Trailers }

// exchange sends req and reads the response head. The Response belongs to
// the connection: it is valid until its Body is closed.
func (c *h1conn) exchange(ctx context.Context, req *Request) (*Response, error) {
	// The deadline first: the context's end, if it comes, overrides it.
	dl := req.Deadline
	if d, ok := ctx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
		dl = d
	}
	if !dl.IsZero() {
		c.nc.SetDeadline(dl)
	}
	c.dl = dl
	stop := c.watch(ctx)
	c.uses++
	cl, chunked := req.ContentLength, false
	if req.Body != nil {
		cl = int64(len(req.Body))
	} else if req.BodyStream != nil && cl < 0 {
		chunked = true
	}
	err := c.send(req, cl, chunked)
	if err != nil {
		stop.stop()
		return nil, classify(ctx, dl, err)
	}
	for {
		if err := c.hr.ReadResponse(&c.head); err != nil {
			stop.stop()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, classify(ctx, dl, err)
		}
		if c.head.Status >= 100 && c.head.Status < 200 {
			if c.head.Status == 101 {
				stop.stop()
				if req.Upgrade == "" {
					return nil, fmt.Errorf("%w: 101 Switching Protocols without an upgrade request", ErrProtocol)
				}
				return c.upgraded(req.Upgrade), nil
			}
			continue
		}
		break
	}
	h := &c.head
	noBody := req.Method == "HEAD"
	body := &c.body
	if noBody {
		body.Reset(c.br, &http1.Head{ContentLength: 0}, false)
	} else {
		body.Reset(c.br, h, true)
	}
	if cap(c.hdr) < len(h.Headers)+8 {
		c.hdr = make(headers.List, 0, len(h.Headers)+8) // room for the router's additions
	}
	hdr := append(c.hdr[:0], h.Headers...)
	if h.HopByHop {
		http1.StripHopByHop(&hdr)
	}
	c.hdr = hdr
	resp := &c.resp
	*resp = Response{Status: h.Status, Header: hdr, ContentLength: h.ContentLength}
	if noBody || h.Chunked {
		resp.ContentLength = -1
		if noBody {
			resp.ContentLength = 0
		}
	}
	keep := !h.Close && (h.Chunked || h.ContentLength >= 0 || noBody)
	// The connection carries one exchange at a time, so its body wrapper
	// is reused.
	rb := &c.rb
	*rb = h1body{c: c, body: body, stop: stop, keep: keep, ctx: ctx}
	resp.Body = rb
	resp.Trailers = c.trailers
	return resp, nil
}

// send writes the request: head and buffered body in one write, straight
// from where they are when the connection writes two buffers at once (a
// plaintext one), else through a pooled write buffer.
func (c *h1conn) send(req *Request, cl int64, chunked bool) error {
	head := c.heads.Request(req.Method, req.Path, req.Authority, req.Header, cl, chunked)
	if v, ok := c.nc.(rawsock.VecWriter); ok && req.BodyStream == nil {
		_, err := v.WriteVec(head, req.Body)
		return err
	}
	bw, _ := c.p.writers.Get().(*bufio.Writer)
	if bw == nil {
		bw = bufio.NewWriterSize(c.nc, 4096)
	} else {
		bw.Reset(c.nc)
	}
	_, err := bw.Write(head)
	if err == nil && req.Body != nil {
		_, err = bw.Write(req.Body)
	}
	if err == nil && req.BodyStream != nil {
		// Send the head first: the upstream may answer before the body ends.
		if err = bw.Flush(); err == nil {
			err = streamBody(bw, req, chunked)
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil) // after a failure, drops what was not sent: the connection closes
	c.p.writers.Put(bw)
	return err
}

func streamBody(bw *bufio.Writer, req *Request, chunked bool) error {
	if !chunked {
		_, err := io.Copy(bw, req.BodyStream)
		return err
	}
	cw := &http1.ChunkedWriter{W: bw}
	buf := make([]byte, 16*1024)
	for {
		n, err := req.BodyStream.Read(buf)
		if n > 0 {
			if _, werr := cw.Write(buf[:n]); werr != nil {
				return werr
			}
			if werr := bw.Flush(); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return cw.Close(req.Trailers)
		}
		if err != nil {
			return err
		}
	}
}

// upgraded returns the 101 response whose connection now belongs to the
// caller: it never goes back to the pool.
func (c *h1conn) upgraded(proto string) *Response {
	hdr := c.head.Headers.Clone(2)
	http1.StripHopByHop(&hdr)
	if v, ok := c.head.Headers.Get("upgrade"); ok {
		proto = v
	}
	hdr.Add("connection", "upgrade")
	hdr.Add("upgrade", proto)
	c.nc.SetDeadline(time.Time{})
	return &Response{Status: 101, Header: hdr, ContentLength: -1, Body: http.NoBody, Upgraded: &upgradedConn{c: c}}
}

// upgradedConn is an upstream connection after 101: reads go through the
// connection's buffer, which may already hold the first upgraded bytes.
type upgradedConn struct{ c *h1conn }

func (u *upgradedConn) Read(p []byte) (int, error)        { return u.c.br.Read(p) }
func (u *upgradedConn) Write(p []byte) (int, error)       { return u.c.nc.Write(p) }
func (u *upgradedConn) SetReadDeadline(t time.Time) error { return u.c.nc.SetReadDeadline(t) }
func (u *upgradedConn) Close() error                      { u.c.close(); return nil }

func (u *upgradedConn) CloseWrite() error {
	if cw, ok := u.c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return u.c.nc.Close()
}

// h1body returns the connection to the pool once the body was read whole.
type h1body struct {
	c    *h1conn
	body *http1.Body
	stop exchangeStop
	keep bool
	ctx  context.Context
	done bool
}

func (b *h1body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF {
		err = classify(b.ctx, b.c.dl, err)
	}
	return n, err
}

// Ready reports whether Read would return without waiting for the
// upstream (http1.Body.Ready).
func (b *h1body) Ready() bool { return b.body.Ready() }

// TakeBuffered hands over the rest of the body when the connection's read
// buffer holds all of it (http1.Body.TakeBuffered): a view valid until
// Close, which gives the connection to the next exchange.
func (b *h1body) TakeBuffered(max int) ([]byte, bool) { return b.body.TakeBuffered(max) }

func (b *h1body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	stopped := b.stop.stop()
	if b.keep && stopped && b.body.Done() {
		if !b.c.dl.IsZero() { // else no deadline was set (stopped: nor did an abort cut the I/O)
			b.c.nc.SetDeadline(time.Time{})
		}
		b.c.p.put(b.c)
		return nil
	}
	b.c.close()
	return nil
}
