// Package httpproxy is mast-proxy's HTTP connection manager and router: it
// serves HTTP/1.1 (its own wire code) and HTTP/2 prior knowledge on one
// socket, normalizes and hardens requests, routes them as RDS says (fault
// injection, rewrites, header changes, redirects, direct responses) and
// forwards them upstream with timeouts and retries.
package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
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
}

// Server serves HTTP connections for any number of listeners.
type Server struct {
	cfg   *atomic.Pointer[Config]
	mgr   *upstream.Manager
	Stats *Stats
	log   *slog.Logger
	// BufferLimit is the largest request body buffered for retries (64 KiB).
	BufferLimit int
	draining    atomic.Bool
	bufs        sync.Pool // *[16384]byte for copying bodies
}

// NewServer returns a server that reads its routing config from cfg.
func NewServer(cfg *atomic.Pointer[Config], mgr *upstream.Manager, log *slog.Logger) *Server {
	return &Server{cfg: cfg, mgr: mgr, Stats: &Stats{}, log: log, BufferLimit: 64 * 1024}
}

// Drain makes connections close after their current request.
func (s *Server) Drain() { s.draining.Store(true) }

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ServeConn serves one accepted connection with the HTTP connection manager
// configuration it was accepted under, until it closes or ctx ends.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn, hcm *xdsparse.HTTPManager) {
	s.Stats.CxTotal.Add(1)
	s.Stats.CxActive.Add(1)
	defer s.Stats.CxActive.Add(-1)
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	br := bufio.NewReaderSize(nc, 4096)
	nc.SetReadDeadline(time.Now().Add(hcm.RequestHeadersTimeout))
	isH2 := false
	if !hcm.CodecHTTP1Only {
		isH2 = true
		for n := 1; n <= len(h2Preface); n++ {
			b, err := br.Peek(n)
			if err != nil {
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
		s.serveH2(ctx, nc, br, hcm)
		return
	}
	if hcm.CodecHTTP2Only {
		return
	}
	s.Stats.CxHTTP1.Add(1)
	s.serveH1(ctx, nc, br, hcm)
}

// h1Conn is one downstream HTTP/1 connection.
type h1Conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	hr     *http1.Reader
	head   http1.Head
	body   http1.Body
	w      h1Writer // the current response's writer, reused per request
	wbuf   []byte
	remote string
	orig   string // original destination of a redirected connection
	scheme string // "https" when the proxy terminated TLS
	peer   *tlsPeer
	conn   *filter.Conn // built when the listener has filters
}

func (s *Server) serveH1(ctx context.Context, nc net.Conn, br *bufio.Reader, hcm *xdsparse.HTTPManager) {
	c := &h1Conn{s: s, nc: nc, br: br, bw: bufio.NewWriterSize(nc, 4096), remote: remoteIP(nc), orig: originalDst(nc), peer: peerOf(nc), scheme: connScheme(nc)}
	if hcm.Filters != nil {
		c.conn = filter.NewConn(nc)
	}
	c.hr = http1.NewReader(br, http1.Limits{MaxHeaderBytes: hcm.MaxRequestHeadersBytes, MaxHeaders: hcm.MaxHeadersCount})
	first := true
	for {
		// Idle wait between requests, then the whole head within the
		// header timeout (slowloris).
		if !first {
			nc.SetReadDeadline(time.Now().Add(hcm.IdleTimeout))
			if _, err := br.Peek(1); err != nil {
				return
			}
			nc.SetReadDeadline(time.Now().Add(hcm.RequestHeadersTimeout))
		}
		first = false
		err := c.hr.ReadRequest(&c.head)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			status := http1.StatusOf(err)
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				status = 408
			} else if ne := (*http1.Error)(nil); !errors.As(err, &ne) {
				return
			}
			s.Stats.RqRejected.Add(1)
			s.countStatus(status)
			c.writeSimple(status, err)
			return
		}
		nc.SetReadDeadline(time.Time{})
		keep := c.serveOne(ctx, hcm)
		if !keep || s.draining.Load() || ctx.Err() != nil {
			return
		}
	}
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
// connection may carry another request.
func (c *h1Conn) serveOne(ctx context.Context, hcm *xdsparse.HTTPManager) bool {
	h := &c.head
	body := &c.body
	body.Reset(c.br, h, false)
	req := &dsRequest{
		method: h.Method, target: h.Target, header: h.Headers, minor: h.Minor,
		body: body, contentLength: h.ContentLength, chunked: h.Chunked, remote: c.remote, local: c.nc.LocalAddr(), origDst: c.orig, scheme: c.scheme, peer: c.peer, conn: c.conn,
	}
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
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			c.bw.Flush()
		}
	}
	c.w = h1Writer{c: c, minor: h.Minor, head: h.Method == "HEAD", reqClose: h.Close, buf: c.wbuf[:0], cw: http1.ChunkedWriter{Buf: c.w.cw.Buf}}
	w := &c.w
	c.s.handle(ctx, req, w, hcm)
	c.wbuf = w.buf
	// Keep the header list's grown backing array for the next request, so
	// the headers the proxy adds do not allocate every time.
	if cap(req.header) > cap(h.Headers) {
		h.Headers = req.header[:0]
	}
	if !w.finished {
		return false
	}
	if w.close || h.Close {
		return false
	}
	// Whatever the router left unread of the body must be consumed before
	// the next request can be parsed; refuse to drain large remainders.
	if !body.Done() {
		n, err := io.CopyN(io.Discard, body, 256*1024)
		if err != io.EOF && (err != nil || n == 256*1024) {
			return false
		}
		if !body.Done() {
			return false
		}
	}
	return true
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

func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	h, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	return h
}

// h1Writer writes one response on an HTTP/1 connection.
type h1Writer struct {
	c        *h1Conn
	minor    int
	head     bool
	reqClose bool
	started  bool
	finished bool
	close    bool
	chunked  bool
	noBody   bool
	cw       http1.ChunkedWriter
	buf      []byte
}

func (w *h1Writer) Started() bool { return w.started }

func (w *h1Writer) WriteHead(status int, h headers.List, contentLength int64) error {
	w.started = true
	w.noBody = w.head || status == 204 || status == 304 || status < 200
	switch {
	case w.noBody:
		if status == 204 || status == 304 {
			contentLength = -1
		}
	case contentLength >= 0:
	case w.minor >= 1:
		w.chunked = true
	default:
		w.close = true
	}
	if w.c.s.draining.Load() {
		w.close = true
	}
	w.buf = http1.AppendResponseHead(w.buf[:0], w.minor, status, h, contentLength, w.chunked, w.close || w.reqClose)
	_, err := w.c.bw.Write(w.buf)
	w.cw.W = w.c.bw
	return err
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.noBody {
		return len(p), nil
	}
	if w.chunked {
		return w.cw.Write(p)
	}
	return w.c.bw.Write(p)
}

func (w *h1Writer) Flush() error { return w.c.bw.Flush() }

func (w *h1Writer) Finish(trailers headers.List) error {
	if w.chunked && !w.noBody {
		if err := w.cw.Close(trailers); err != nil {
			return err
		}
	}
	if err := w.c.bw.Flush(); err != nil {
		return err
	}
	w.finished = true
	return nil
}

// Upgrade writes a head for status (101, or 200 to a CONNECT) without
// framing and hands over the raw connection; the connection carries no
// more HTTP after it.
func (w *h1Writer) Upgrade(status int, h headers.List) (upstream.Conn, error) {
	w.started = true
	w.close = true
	w.buf = http1.AppendResponseHead(w.buf[:0], w.minor, status, h, -1, false, false)
	if _, err := w.c.bw.Write(w.buf); err != nil {
		return nil, err
	}
	if err := w.c.bw.Flush(); err != nil {
		return nil, err
	}
	return &downConn{br: w.c.br, nc: w.c.nc}, nil
}

// Abort gives up on a response whose head was already sent.
func (w *h1Writer) Abort() {
	w.c.bw.Flush()
	w.close = true
	w.c.nc.Close()
}
