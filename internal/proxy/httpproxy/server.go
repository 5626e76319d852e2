// Package httpproxy is mast-proxy's HTTP connection manager and router: it
// serves HTTP/1.1 (its own wire code) and HTTP/2 prior knowledge on one
// socket, normalizes and hardens requests, routes them as RDS says (fault
// injection, rewrites, header changes, redirects, direct responses) and
// forwards them upstream with timeouts and retries.
package httpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/h2server"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
	"github.com/mast-mesh/mast/internal/proxy/idlepoll"
	"github.com/mast-mesh/mast/internal/proxy/monoclock"
	"github.com/mast-mesh/mast/internal/proxy/overload"
	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Config is what the router reads per request: route tables by RDS name and
// clusters by name. It is immutable once published.
type Config struct {
	Routes   map[string]*xdsparse.RouteTable
	Clusters map[string]*upstream.Cluster
}

// Stats are the connection manager's counters (all listeners together).
type Stats struct {
	CxTotal, CxHTTP1, CxHTTP2                  atomic.Uint64
	CxActive, RqActive                         atomic.Int64
	RqTotal, Rq1xx, Rq2xx, Rq3xx, Rq4xx, Rq5xx atomic.Uint64
	RqTimeout, RqRetry, FaultAbort, FaultDelay atomic.Uint64
	RqNoRoute, RqRejected                      atomic.Uint64
	// RBACDenied and ExtAuthzDenied count requests the authorization
	// filters refused.
	RBACDenied, ExtAuthzDenied atomic.Uint64
	// Upgrades counts upgraded streams (WebSocket, CONNECT tunnels).
	Upgrades atomic.Uint64
	// Mirrored counts request copies sent to mirror clusters; MirrorSkipped
	// those not sent (a streamed body, an unknown cluster).
	Mirrored, MirrorSkipped atomic.Uint64
	// CxFlood counts HTTP/2 connections closed for flooding (h2flood.go).
	CxFlood atomic.Uint64
	// OnDemand counts requests that asked for their virtual host on demand
	// (VHDS); OnDemandFailed those whose answer did not come in time.
	OnDemand, OnDemandFailed atomic.Uint64
	// Routes are the per-route counters of routes with a stat_prefix.
	Routes routeStatsSet
}

// Server serves HTTP connections for any number of listeners.
type Server struct {
	// Telemetry, when set, records every request (standard metrics,
	// access logs) and does Istio's metadata exchange.
	Telemetry *Telemetry
	// Tracers reports the spans of connection managers that trace (with
	// Telemetry, which records what the spans say).
	Tracers *Tracers
	cfg     *atomic.Pointer[Config]
	mgr     *upstream.Manager
	Stats   *Stats
	log     *slog.Logger
	// Services are lent to the HTTP filters (the Mixer client's gRPC).
	Services *filter.Services
	// BufferLimit is the largest request body buffered for retries (64 KiB).
	BufferLimit int
	// Overload, when set, sheds requests under memory pressure.
	Overload *overload.Manager
	// OnDemand, when set, is asked for the virtual host of a host that a
	// VHDS route table has none for (Envoy's on-demand VHDS); it returns
	// once the answer is applied. The request waits at most OnDemandTimeout.
	OnDemand        func(ctx context.Context, routeConfig, host string) error
	OnDemandTimeout time.Duration
	draining        atomic.Bool
	// drainCtx ends when Drain is called: HTTP/2 connections then go away
	// gracefully and idle HTTP/1 connections close.
	drainCtx  context.Context
	drainNow  context.CancelFunc
	bufs      sync.Pool // *[16384]byte for copying bodies
	h2pools   h2server.Pools
	reqs      sync.Pool // *dsRequest of HTTP/1 requests
	h1writers sync.Pool // *bufio.Writer of HTTP/1 responses
	// LegacyH2 serves HTTP/2 with x/net's net/http-shaped server instead
	// of the proxy's own (h2server).
	LegacyH2 bool
	// ParkIdle is how long an idle connection served by
	// ServeConnDetached keeps its goroutine before it is parked with idle
	// (negative: never parked). A connection between requests of a busy
	// client so never pays for parking.
	ParkIdle time.Duration
	idle     idlepoll.Poller
	readers  sync.Pool // *bufio.Reader of connections
	// timeoutMs are the strings of x-envoy-expected-rq-timeout-ms.
	timeoutMs msStrings
}

// defaultParkIdle is ParkIdle's default.
const defaultParkIdle = time.Second

// Parked returns how many idle connections are parked (held without a
// goroutine).
func (s *Server) Parked() int { return s.idle.Parked() }

// NewServer returns a server that reads its routing config from cfg.
func NewServer(cfg *atomic.Pointer[Config], mgr *upstream.Manager, log *slog.Logger) *Server {
	dctx, drain := context.WithCancel(context.Background())
	return &Server{cfg: cfg, mgr: mgr, Stats: &Stats{}, log: log, BufferLimit: 64 * 1024, drainCtx: dctx, drainNow: drain, ParkIdle: defaultParkIdle}
}

// Drain makes connections close after their current request: HTTP/1
// connections close once idle, HTTP/2 connections get a GOAWAY.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.drainNow()
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ServeConn serves one accepted connection with the HTTP connection manager
// configuration it was accepted under, until it closes or ctx ends.
//
// On a TLS connection ALPN decides the protocol: "h2" is HTTP/2 only (a
// bad preface gets a GOAWAY), "http/1.1" HTTP/1.1 only. Without ALPN (and
// in plaintext) the first bytes decide: the HTTP/2 preface or HTTP/1.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn, hcm *xdsparse.HTTPManager) {
	s.serveConn(ctx, nc, hcm, nil, false)
}

// ServeConnDetached serves nc as ServeConn does, but may return while the
// connection lives on: an idle one (an HTTP/1.1 keep-alive connection
// between requests, an HTTP/2 connection without streams) is parked with
// the server's idle poller, without a goroutine, after ParkIdle. done runs
// once the connection is over and closed.
func (s *Server) ServeConnDetached(ctx context.Context, nc net.Conn, hcm *xdsparse.HTTPManager, done func()) {
	s.serveConn(ctx, nc, hcm, done, s.ParkIdle >= 0)
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn, hcm *xdsparse.HTTPManager, done func(), park bool) {
	s.Stats.CxTotal.Add(1)
	s.Stats.CxActive.Add(1)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	end := func() {
		stop()
		nc.Close()
		s.Stats.CxActive.Add(-1)
		if done != nil {
			done()
		}
	}
	br := s.reader(nc)
	nc.SetReadDeadline(time.Now().Add(hcm.RequestHeadersTimeout))
	alpn := ""
	if tc, ok := nc.(*tls.Conn); ok {
		alpn = tc.ConnectionState().NegotiatedProtocol
	}
	var isH2 bool
	switch {
	case alpn == "h2":
		if hcm.CodecHTTP1Only {
			end()
			return
		}
		if !readPreface(br) {
			s.Stats.RqRejected.Add(1)
			goAwayBadPreface(nc)
			end()
			return
		}
		isH2 = true
	case alpn == "http/1.1" || hcm.CodecHTTP1Only:
	default:
		isH2 = true
		for n := 1; n <= len(h2Preface); n++ {
			b, err := br.Peek(n)
			if err != nil {
				end()
				return
			}
			if b[n-1] != h2Preface[n-1] {
				isH2 = false
				break
			}
		}
	}
	if isH2 {
		s.Stats.CxHTTP2.Add(1)
		nc.SetReadDeadline(time.Time{})
		s.serveH2(ctx, nc, br, hcm, end, park)
		return
	}
	if hcm.CodecHTTP2Only {
		end()
		return
	}
	s.Stats.CxHTTP1.Add(1)
	s.serveH1(ctx, nc, br, hcm, end, park)
}

// reader returns a read buffer for nc (from the pool: a parked connection
// gives its buffer back).
func (s *Server) reader(nc net.Conn) *bufio.Reader {
	br, _ := s.readers.Get().(*bufio.Reader)
	if br == nil {
		return bufio.NewReaderSize(nc, 4096)
	}
	br.Reset(nc)
	return br
}

// putReader returns an empty read buffer to the pool.
func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.readers.Put(br)
}

// readPreface checks the client connection preface without consuming it
// (Go's HTTP/2 server reads it again).
func readPreface(br *bufio.Reader) bool {
	b, err := br.Peek(len(h2Preface))
	return err == nil && string(b) == h2Preface
}

// goAwayBadPreface answers a connection that negotiated h2 but did not
// send the preface: SETTINGS, then GOAWAY with PROTOCOL_ERROR (RFC 9113
// section 3.4).
func goAwayBadPreface(nc net.Conn) {
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	fr := http2.NewFramer(nc, nil)
	fr.WriteSettings()
	fr.WriteGoAway(0, http2.ErrCodeProtocol, []byte("invalid connection preface"))
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// h1Conn is one downstream HTTP/1 connection.
type h1Conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	vw     rawsock.VecWriter // nc when it writes two buffers at once, else nil
	hr     *http1.Reader
	head   http1.Head
	body   http1.Body
	w      h1Writer         // the current response's writer, reused per request
	heads  http1.HeadWriter // writes the responses' heads, each from the last one's bytes
	remote string
	// remoteIP is remote parsed (unmapped), once for the connection.
	remoteIP netip.Addr
	// remoteAddr is remote with its port.
	remoteAddr string
	orig       string // original destination of a redirected connection
	scheme     string // "https" when the proxy terminated TLS
	peer       *tlsPeer
	conn       *filter.Conn // what the filters know of the connection
	local      net.Addr     // the proxy's address on the connection
	localStr   string       // local as ip:port, formatted once
	// expired: the connection is past max_connection_duration; the
	// current response closes it.
	expired bool
	// streaming: a stream is being served (stream); its timers run on
	// the connection's (tm), as the idle and head limits do (h1timer.go).
	streaming atomic.Bool
	tm        h1Timer
	// stream is the streams' context and timer state, reused (init) by
	// each request.
	stream streamTimer
	// expireIO cuts the connection's I/O for the stream timers (bound once).
	expireIO func(responseStarted bool)

	ctx context.Context
	hcm *xdsparse.HTTPManager
	// end closes the connection and runs the server's and the caller's
	// cleanups; stopDrain and stopCtx end the connection's callbacks.
	end                func()
	stopDrain, stopCtx func() bool
	born               time.Time
	// idleUntil ends the current wait for a request (idle timeout or
	// max_connection_duration), in monoclock.Now's clock.
	idleUntil int64
	// headAt is when the current request's first byte arrived, read by
	// waitIdle (time.Now: the request's telemetry wants the wall time,
	// its timers the monotonic one); zero for a connection's first
	// request.
	headAt time.Time
	// park is the connection's state with the idle poller (parkable:
	// it may be parked); parkTimer wakes it at idleUntil.
	park      idlepoll.Conn
	parkable  bool
	parkTimer *time.Timer
	// resumed: the connection was just resumed, most likely readable;
	// its next wait reads before it may park again (a deadline already
	// past would not even try the socket).
	resumed bool
}

// cancelStream ends the current stream: the connection's context ended.
// A parked connection is woken to close.
func (c *h1Conn) cancelStream() {
	if c.streaming.Load() {
		c.stream.cancel(context.Canceled)
	}
	c.s.idle.Wake(&c.park)
}

// wake resumes the parked connection (its idle time is up).
func (c *h1Conn) wake() { c.s.idle.Wake(&c.park) }

func (s *Server) serveH1(ctx context.Context, nc net.Conn, br *bufio.Reader, hcm *xdsparse.HTTPManager, end func(), park bool) {
	c := &h1Conn{s: s, nc: nc, br: br, remote: remoteIP(nc), remoteAddr: nc.RemoteAddr().String(), local: nc.LocalAddr(), localStr: nc.LocalAddr().String(), orig: originalDst(nc), peer: peerOf(nc), scheme: connScheme(nc),
		ctx: ctx, hcm: hcm, end: end, born: time.Now()}
	c.remoteIP = parseRemote(c.remote)
	c.vw, _ = nc.(rawsock.VecWriter)
	// Always: the listener may gain filters while the connection lives.
	c.conn = filter.NewConn(nc)
	c.hr = http1.NewReader(br, http1.Limits{MaxHeaderBytes: hcm.MaxRequestHeadersBytes, MaxHeaders: hcm.MaxHeadersCount})
	// Draining wakes a connection waiting for its next request.
	c.stopDrain = context.AfterFunc(s.drainCtx, func() {
		if c.cutIdle() {
			s.idle.Wake(&c.park)
		}
	})
	c.expireIO = func(started bool) {
		past := time.Unix(1, 0)
		nc.SetReadDeadline(past)
		if started {
			nc.SetWriteDeadline(past)
		}
	}
	if ctx.Done() != nil {
		c.stopCtx = context.AfterFunc(ctx, c.cancelStream)
	}
	c.parkable = park && c.park.Init(nc, c.resume)
	if !c.serve(true, 0) {
		c.close()
	}
}

// resume serves a parked connection again (it became readable, or was
// woken).
func (c *h1Conn) resume() {
	c.parkTimer.Stop()
	c.br = c.s.reader(c.nc)
	c.hr.Reset(c.br)
	c.resumed = true
	if !c.serve(false, monoclock.Now()) {
		c.close()
	}
}

// close ends the connection once it is done.
func (c *h1Conn) close() {
	c.stopDrain()
	if c.stopCtx != nil {
		c.stopCtx()
	}
	c.stopTimer()
	if c.parkTimer != nil {
		c.parkTimer.Stop()
	}
	c.end()
}

// serve serves requests until the connection is done (false) or parked
// (true: another goroutine owns it from then on). first: the first request
// is next, under the header timeout ServeConn set; else now (monoclock.Now) is
// when the wait for the next one starts.
func (c *h1Conn) serve(first bool, now int64) (parked bool) {
	s, nc, hcm, ctx := c.s, c.nc, c.hcm, c.ctx
	for {
		// Idle wait between requests, then the whole head within the
		// header timeout (slowloris). A connection past
		// max_connection_duration gets no more requests.
		if !first {
			switch c.waitIdle(now) {
			case idleParked:
				return true
			case idleDone:
				return false
			}
		}
		err := c.hr.ReadRequest(&c.head)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false
			}
			status := http1.StatusOf(err)
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return false
				}
				status = 408
			} else if ne := (*http1.Error)(nil); !errors.As(err, &ne) {
				return false
			}
			s.Stats.RqRejected.Add(1)
			s.countStatus(status)
			c.writeSimple(status, err)
			return false
		}
		if first {
			nc.SetReadDeadline(time.Time{}) // ServeConn's head deadline
			first = false
		}
		c.expired = hcm.MaxConnectionDuration > 0 && time.Since(c.born) >= hcm.MaxConnectionDuration
		keep, end := c.serveOne(ctx, hcm)
		if !keep || s.draining.Load() || ctx.Err() != nil {
			return false
		}
		idle := hcm.IdleTimeout
		if hcm.MaxConnectionDuration > 0 {
			left := hcm.MaxConnectionDuration - time.Since(c.born)
			if left <= 0 {
				return false
			}
			idle = min(idle, left)
		}
		// The wait starts when the request ended (Envoy's idle timer
		// starts with the last stream's end).
		if now = end; now == 0 {
			now = monoclock.Now()
		}
		c.idleUntil = monoclock.Add(now, idle)
	}
}

// What waitIdle ends with.
const (
	idleRequest = iota // a request's first byte arrived
	idleDone           // the connection is done (idle timeout, draining, its context ended)
	idleParked         // the connection was handed to the idle poller
)

// waitIdle waits for the next request until idleUntil, from now
// (monoclock.Now). After ParkIdle without a byte, and with nothing read buffered
// above the socket, the connection is handed to the idle poller
// (idleParked). Once the first byte arrived, the connection's timer bounds
// the rest of the head (request_headers_timeout).
func (c *h1Conn) waitIdle(now int64) int {
	s := c.s
	for first := true; ; first = false {
		if s.draining.Load() || c.ctx.Err() != nil {
			return idleDone
		}
		if !first {
			now = monoclock.Now()
		}
		left := time.Duration(c.idleUntil - now)
		wait := left
		park := c.parkable && s.ParkIdle < left && !c.resumed
		c.resumed = false
		if park {
			wait = s.ParkIdle
		}
		c.enter(phaseIdle, monoclock.Add(now, wait), now)
		_, err := c.br.Peek(1)
		if err == nil {
			var by int64
			c.headAt = time.Now()
			now = monoclock.Of(c.headAt)
			if d := c.hcm.RequestHeadersTimeout; d > 0 {
				by = monoclock.Add(now, d)
			}
			c.enter(phaseHead, by, now)
			return idleRequest
		}
		c.enter(phaseIdle, 0, 0) // no limit until the next wait or the end
		// A TLS connection's reader returns the timeout only once no
		// complete record is left in its buffer either: with bufio's
		// empty too, nothing read waits above the socket.
		if !park || !errors.Is(err, os.ErrDeadlineExceeded) || c.br.Buffered() != 0 {
			return idleDone
		}
		if c.parkIdle() {
			return idleParked
		}
		c.parkable = false
	}
}

// parkIdle hands the idle connection to the poller; its read buffer, head
// buffers and header list go back to pools or away.
func (c *h1Conn) parkIdle() bool {
	br := c.br
	c.br = nil
	c.hr.Reset(nil)
	c.head = http1.Head{}
	c.heads = http1.HeadWriter{}
	c.w = h1Writer{}
	c.s.putReader(br)
	if c.parkTimer == nil {
		c.parkTimer = time.AfterFunc(time.Duration(1<<63-1), c.wake)
	}
	left := time.Duration(c.idleUntil - monoclock.Now())
	if !c.s.idle.Park(&c.park) {
		c.br = c.s.reader(c.nc)
		c.hr.Reset(c.br)
		return false
	}
	// From here the connection may already be resumed on another
	// goroutine: only wake-ups, which a resumed connection ignores or
	// re-checks.
	c.parkTimer.Reset(left)
	if c.s.draining.Load() || c.ctx.Err() != nil {
		c.s.idle.Wake(&c.park)
	}
	return true
}

func (c *h1Conn) writeSimple(status int, err error) {
	body := http1.StatusText(status)
	if err != nil {
		var pe *http1.Error
		if errors.As(err, &pe) {
			body = pe.Msg
		}
	}
	h := headers.List{{Name: "content-type", Value: "text/plain"}}
	b := http1.AppendResponseHead(nil, 1, status, h, int64(len(body)), false, true)
	b = append(b, body...)
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.nc.Write(b)
}

// serveOne handles the request in c.head; it reports whether the
// connection may carry another request and, when it read the clock at the
// request's end (its telemetry did) and waited for nothing since, that
// reading (monoclock.Now; else 0).
func (c *h1Conn) serveOne(ctx context.Context, hcm *xdsparse.HTTPManager) (keep bool, end int64) {
	h := &c.head
	body := &c.body
	body.Reset(c.br, h, false)
	// The request's state comes from a pool (as an HTTP/2 stream's is kept
	// with the pooled stream): nothing keeps it after handle returns, and
	// an idle connection holds none.
	// The response's write buffer too, taken when the first byte is
	// written (writer): the requests waiting for their upstream hold none,
	// and the next response written reuses the one this one gave back.
	req, _ := c.s.reqs.Get().(*dsRequest)
	if req == nil {
		req = new(dsRequest)
	}
	// A pooled state was reset before it went back (reset), a new one is
	// zero: the request's fields are set one by one. (A composite literal
	// naming req's own fields would be built in a temporary and copied:
	// two passes over the 2 KB struct at each end of every request.)
	req.method, req.target, req.header, req.minor = h.Method, h.Target, h.Headers, h.Minor
	req.body, req.contentLength, req.chunked, req.noHopByHop = body, h.ContentLength, h.Chunked, !h.HopByHop
	req.remote, req.remoteIP, req.remoteAddr, req.local, req.localStr = c.remote, c.remoteIP, c.remoteAddr, c.local, c.localStr
	req.origDst, req.scheme, req.peer, req.conn = c.orig, c.scheme, c.peer, c.conn
	if v, ok := h.Headers.Get("host"); ok {
		req.authority = v
	}
	if h.Upgrade {
		// h2c upgrades are dropped (served as HTTP/1.1), as Envoy does.
		if v, ok := h.Headers.Get("upgrade"); ok && v != "" && !headers.EqualFold(v, "h2c") {
			req.upgrade = v
		}
	}
	if h.Expect100 && (h.Chunked || h.ContentLength > 0) {
		req.onBodyRead = func() {
			bw := c.writer()
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			bw.Flush()
		}
	}
	c.w = h1Writer{c: c, minor: h.Minor, head: h.Method == "HEAD", reqClose: h.Close || c.expired, cw: http1.ChunkedWriter{Buf: c.w.cw.Buf}}
	w := &c.w
	// The stream's context; stream_idle_timeout and request_timeout: the
	// timers cut the connection's reads (and its writes once the response
	// started).
	st := &c.stream
	// The stream starts with its head's first byte (Envoy's message
	// begin): waitIdle's clock reading, else (the connection's first
	// request) now. It is the request's start for handle too.
	req.start = c.headAt
	if req.start.IsZero() {
		req.start = time.Now()
	}
	c.headAt = time.Time{}
	st.initAt(ctx, hcm.StreamIdleTimeout, hcm.RequestTimeout, c.expireIO, monoclock.Of(req.start))
	c.streaming.Store(true)
	if ctx.Err() != nil {
		st.cancel(ctx.Err())
	}
	c.enterStream(st.last.Load()) // init's clock reading
	if st.timed() {
		if req.chunked || req.contentLength > 0 {
			req.tb = timedBody{r: body, st: st, ctx: st}
			req.body = &req.tb
		} else {
			st.requestDone()
		}
	}
	w.st = st
	if c.s.Overload.Shed() {
		w.close = true
		c.s.shed(w)
	} else {
		c.s.handle(st, req, w, hcm)
	}
	cause := st.stop()
	c.streaming.Store(false)
	if rec := &req.tel.rec; !rec.Start.IsZero() {
		end = monoclock.Of(rec.Start.Add(rec.Duration)) // endTelemetry's reading
	}
	// Keep the header list's grown backing array for the next request, so
	// the headers the proxy adds do not allocate every time.
	if cap(req.header) > cap(h.Headers) {
		h.Headers = req.header[:0]
	}
	req.reset()
	c.s.reqs.Put(req)
	if c.bw != nil && c.bw.Buffered() == 0 { // else the response failed: drop it
		c.bw.Reset(nil)
		c.s.h1writers.Put(c.bw)
	}
	c.bw = nil
	if cause != nil {
		// The timers cut the connection's I/O: it cannot carry more.
		return false, 0
	}
	if !w.finished {
		return false, 0
	}
	if w.close || h.Close {
		return false, 0
	}
	// Whatever the router left unread of the body must be consumed before
	// the next request can be parsed; refuse to drain large remainders.
	if !body.Done() {
		n, err := io.CopyN(io.Discard, body, 256*1024)
		if err != io.EOF && (err != nil || n == 256*1024) {
			return false, 0
		}
		if !body.Done() {
			return false, 0
		}
		end = 0 // the drain may have waited
	}
	return true, end
}

// shed refuses a request because the proxy is overloaded (Envoy's
// stop_accepting_requests action).
func (s *Server) shed(w responseWriter) {
	s.Stats.RqRejected.Add(1)
	s.localReply(w, 503, "envoy overloaded", "", headers.List{{Name: "x-envoy-overloaded", Value: "true"}})
}

// originalDst is the destination a redirected connection had before the
// iptables REDIRECT (its listener has the original_dst listener filter), ""
// for other connections.
func originalDst(nc net.Conn) string {
	if o, ok := nc.(interface{ OriginalDst() netip.AddrPort }); ok {
		if a := o.OriginalDst(); a.IsValid() {
			return a.String()
		}
	}
	return ""
}

// parseRemote parses a connection's peer address once for its requests
// (trustedClient); the zero Addr when it is not an IP address.
func parseRemote(remote string) netip.Addr {
	a, _ := netip.ParseAddr(remote)
	return a.Unmap()
}

func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	h, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	return h
}
