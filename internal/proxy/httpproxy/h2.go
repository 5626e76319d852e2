package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/h2server"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// minStreamWindow is HTTP/2's initial window: a buffer limit below it
// would stall every stream.
const minStreamWindow = 65535

// serveH2 serves an HTTP/2 connection whose preface is next in br.
// end runs once it is over; park: it may be parked when idle.
func (s *Server) serveH2(ctx context.Context, nc net.Conn, br *bufio.Reader, hcm *xdsparse.HTTPManager, end func(), park bool) {
	if s.LegacyH2 {
		s.serveH2Legacy(ctx, nc, br, hcm)
		end()
		return
	}
	remote := remoteIP(nc)
	h := &h2Handler{s: s, hcm: hcm, ctx: ctx, remote: remote, remoteIP: parseRemote(remote), remoteAddr: nc.RemoteAddr().String(), orig: originalDst(nc),
		peer: peerOf(nc), local: nc.LocalAddr(), scheme: connScheme(nc), conn: filter.NewConn(nc)}
	cfg := &h2server.Config{
		MaxConcurrentStreams: hcm.MaxConcurrentStreams,
		MaxHeaderBytes:       hcm.MaxRequestHeadersBytes,
		// per_connection_buffer_limit_bytes bounds what a client can make
		// the proxy hold: the connection's and each stream's receive window.
		Window:                max(hcm.ConnBufferLimit, minStreamWindow),
		BufferLimit:           s.BufferLimit,
		IdleTimeout:           hcm.IdleTimeout,
		MaxConnectionDuration: hcm.MaxConnectionDuration,
		DrainTimeout:          hcm.DrainTimeout,
		// A client that stops reading is cut after stream_idle_timeout
		// (Envoy's stream idles out when the downstream reads nothing).
		WriteTimeout: hcm.StreamIdleTimeout,
		Drain:        s.drainCtx,
		OnFlood: func(reason string) {
			s.Stats.CxFlood.Add(1)
			s.log.Debug("HTTP/2 connection closed", "reason", reason, "remote", remote)
		},
		Done: end,
	}
	if park {
		cfg.Idle, cfg.ParkIdle = &s.idle, s.ParkIdle
	}
	h2server.Serve(ctx, nc, br, cfg, h, &s.h2pools)
}

// h2Handler serves one HTTP/2 connection's streams.
type h2Handler struct {
	s                                *Server
	hcm                              *xdsparse.HTTPManager
	ctx                              context.Context
	remote, remoteAddr, orig, scheme string
	remoteIP                         netip.Addr
	peer                             *tlsPeer
	local                            net.Addr
	conn                             *filter.Conn
}

var _ h2server.Handler = (*h2Handler)(nil)

// h2stream is the proxy's side of a stream (h2server.Stream.User, kept
// with the stream when it is recycled) and its response writer.
type h2stream struct {
	s        *h2server.Stream
	st       *streamTimer
	stream   streamTimer // st's state, reused (init) by each stream
	started  bool
	expireFn func(bool)
	req      dsRequest
	body     timedBody
	// timer runs the timers of the stream using hs now (cur); it is kept
	// with the recycled stream, so a stream costs no timer of its own. A
	// late fire meant for an earlier stream finds the current one, whose
	// fire only re-arms the timer unless its own limits passed.
	timer *time.Timer
	cur   atomic.Pointer[streamTimer]
}

func (hs *h2stream) fire() {
	if st := hs.cur.Load(); st != nil {
		st.fire()
	}
}

var _ responseWriter = (*h2stream)(nil)

func (hs *h2stream) expire(started bool) { hs.s.Expire(started) }

// Start arms the stream's timers as its headers arrive, so that a body
// gathered before the request is served is bounded by them too.
func (h *h2Handler) Start(s *h2server.Stream) {
	hs, _ := s.User.(*h2stream)
	if hs == nil {
		hs = &h2stream{}
		hs.expireFn = hs.expire
		s.User = hs
	}
	hs.s, hs.started = s, false
	hs.st = &hs.stream
	hs.st.init(h.ctx, h.hcm.StreamIdleTimeout, h.hcm.RequestTimeout, hs.expireFn)
	hs.cur.Store(hs.st)
	if hs.st.timed() && hs.timer == nil {
		hs.timer = time.AfterFunc(time.Duration(1<<63-1), hs.fire)
	}
	hs.st.arm(hs.timer)
}

// Cancel ends the stream's context: the client reset it or the
// connection ended.
func (h *h2Handler) Cancel(s *h2server.Stream, served bool) {
	hs := s.User.(*h2stream)
	if served {
		hs.st.cancel(context.Canceled)
		return
	}
	hs.st.stop()
}

// Serve validates and forwards the request.
func (h *h2Handler) Serve(s *h2server.Stream) {
	hs := s.User.(*h2stream)
	srv, hcm, st := h.s, h.hcm, hs.st
	defer st.stop()
	switch {
	case s.TooLarge:
		srv.Stats.RqRejected.Add(1)
		srv.localReply(hs, 431, "request header fields too large", "", nil)
		return
	case s.Fields > hcm.MaxHeadersCount:
		srv.Stats.RqRejected.Add(1)
		srv.localReply(hs, 431, "too many header fields", "", nil)
		return
	}
	if srv.Overload.Shed() {
		srv.shed(hs)
		return
	}
	if msg := checkH2Request(s.Method, s.Target, s.Authority, s.Header); msg != "" {
		srv.Stats.RqRejected.Add(1)
		srv.localReply(hs, 400, msg, "", nil)
		return
	}
	if st.Err() != nil {
		return // reset by the client before it was served
	}
	// An empty body (END_STREAM on the headers, or content-length: 0) is
	// none; any other is forwarded, whatever the method.
	var body io.Reader = s
	switch {
	case s.ContentLength == 0:
		body = nil
		st.requestDone()
	case st.timed():
		hs.body = timedBody{r: s, st: st, ctx: st}
		body = &hs.body
	default:
		st.requestDone()
	}
	// The request's state is the recycled stream's, reset when its last
	// request ended (or new): its fields are set one by one, as serveOne
	// does (a composite literal would be built in a temporary and copied).
	req := &hs.req
	req.method, req.target, req.authority, req.header, req.minor = s.Method, s.Target, s.Authority, s.Header, 2
	req.body, req.contentLength = body, s.ContentLength
	req.remote, req.remoteIP, req.remoteAddr, req.local = h.remote, h.remoteIP, h.remoteAddr, h.local
	req.origDst, req.scheme, req.peer, req.conn = h.orig, h.scheme, h.peer, h.conn
	srv.handle(st, req, hs, hcm)
	// Keep the header list's grown backing array for the stream's next use.
	if cap(req.header) > cap(s.Header) {
		s.Header = req.header[:0]
	}
	req.reset()
}

func (hs *h2stream) Started() bool { return hs.started }

func (hs *h2stream) WriteHead(status int, h headers.List, contentLength int64) error {
	hs.started = true
	hs.st.responseStarted()
	return hs.s.WriteHead(status, h, contentLength)
}

func (hs *h2stream) Write(p []byte) (int, error) {
	hs.st.touch()
	return hs.s.Write(p)
}

func (hs *h2stream) Flush() error { return hs.s.Flush() }

// WriteFlush is Write then Flush in one hold of the connection's writer.
func (hs *h2stream) WriteFlush(p []byte) (int, error) {
	hs.st.touch()
	return hs.s.WriteFlush(p)
}

func (hs *h2stream) Finish(trailers headers.List) error { return hs.s.Finish(trailers) }

// Abort resets the stream.
func (hs *h2stream) Abort() { hs.s.Abort() }

// checkH2Request validates what the HTTP/2 codec leaves to the proxy
// (RFC 9113 section 8.2.1 and 8.3.1) before the request is translated,
// possibly into an HTTP/1 request line: a space or CR/LF in :path, :method
// or a field value would otherwise let a client write its own request line
// or fields upstream. It returns "" for a valid request, or the reason.
func checkH2Request(method, target, authority string, h headers.List) string {
	if !headers.ValidToken(method) {
		return "invalid :method"
	}
	if method != "CONNECT" && !headers.ValidPath(target) {
		return "invalid :path"
	}
	if authority == "" && method != "CONNECT" {
		return "missing :authority"
	}
	if !validAuthority(authority) {
		return "invalid :authority"
	}
	for _, f := range h {
		if !headers.ValidName(f.Name) || !headers.ValidValue(f.Value) {
			return "invalid header field " + quoteName(f.Name)
		}
	}
	return ""
}

// validAuthority accepts host[:port] without userinfo, whitespace or
// control characters (Go's server checked the syntax already).
func validAuthority(a string) bool {
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c >= 0x7f || c == '@' || c == '/' || c == '?' || c == '#' || c == '\\' {
			return false
		}
	}
	return true
}

// quoteName returns a header name fit for an error message.
func quoteName(n string) string {
	if headers.ValidToken(n) && len(n) <= 64 {
		return `"` + n + `"`
	}
	return "(invalid name)"
}
