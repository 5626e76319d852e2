package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// serveH2Legacy serves an HTTP/2 connection with x/net's server wrapped in
// net/http (mast-proxy --legacy-http2-server).
func (s *Server) serveH2Legacy(ctx context.Context, nc net.Conn, br *bufio.Reader, hcm *xdsparse.HTTPManager) {
	limit := int32(max(hcm.ConnBufferLimit, minStreamWindow))
	srv := &http2.Server{MaxConcurrentStreams: hcm.MaxConcurrentStreams, IdleTimeout: hcm.IdleTimeout,
		// per_connection_buffer_limit_bytes bounds what a client can make
		// the proxy hold: the connection's and each stream's receive window.
		MaxUploadBufferPerConnection: limit, MaxUploadBufferPerStream: limit,
		MaxReadFrameSize: 16 << 10}
	base := &http.Server{MaxHeaderBytes: hcm.MaxRequestHeadersBytes}
	// A server of its own per connection, so that draining and
	// max_connection_duration can shut this connection down gracefully
	// (GOAWAY, then a last GOAWAY once streams are done).
	http2.ConfigureServer(base, srv)
	var goingAway sync.Once
	shutdown := func() {
		goingAway.Do(func() {
			go base.Shutdown(context.Background())
			if hcm.DrainTimeout > 0 {
				time.AfterFunc(hcm.DrainTimeout+time.Second, func() { nc.Close() })
			}
		})
	}
	stopDrain := context.AfterFunc(s.drainCtx, shutdown)
	defer stopDrain()
	if hcm.MaxConnectionDuration > 0 {
		t := time.AfterFunc(hcm.MaxConnectionDuration, shutdown)
		defer t.Stop()
	}
	remote, orig, peer, local, scheme := remoteIP(nc), originalDst(nc), peerOf(nc), nc.LocalAddr(), connScheme(nc)
	fconn := filter.NewConn(nc)
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n := 0
		for _, vs := range r.Header {
			n += len(vs)
		}
		w := &h2Writer{rw: rw}
		if n > hcm.MaxHeadersCount {
			s.Stats.RqRejected.Add(1)
			s.localReply(w, 431, "too many header fields", "", nil)
			return
		}
		hl := make(headers.List, 0, n+6)
		for k, vs := range r.Header {
			lk := strings.ToLower(k)
			for _, v := range vs {
				hl = append(hl, headers.Field{Name: lk, Value: v})
			}
		}
		if s.Overload.Shed() {
			s.shed(w)
			return
		}
		if msg := checkH2Request(r.Method, r.RequestURI, r.Host, hl); msg != "" {
			s.Stats.RqRejected.Add(1)
			s.localReply(w, 400, msg, "", nil)
			return
		}
		if r.Context().Err() != nil {
			return // reset by the client before it was dispatched (rapid reset): nothing to forward
		}
		// An empty body (END_STREAM on the headers, or content-length: 0) is
		// none; any other is forwarded, whatever the method.
		var body io.Reader = r.Body
		if r.ContentLength == 0 {
			body = nil
		}
		rc := http.NewResponseController(rw)
		var mu sync.Mutex // expire runs on the timer's goroutine; rw is dead after the handler
		handlerDone := false
		sctx, st := startStreamTimer(r.Context(), hcm.StreamIdleTimeout, hcm.RequestTimeout, func(started bool) {
			mu.Lock()
			defer mu.Unlock()
			if handlerDone {
				return
			}
			past := time.Unix(1, 0)
			rc.SetReadDeadline(past)
			if started {
				rc.SetWriteDeadline(past)
			}
		})
		defer func() {
			mu.Lock()
			handlerDone = true
			mu.Unlock()
			st.stop()
		}()
		w.st = st
		if st.timed() && body != nil {
			body = &timedBody{r: body, st: st, ctx: sctx}
		} else {
			st.requestDone()
		}
		req := &dsRequest{method: r.Method, target: r.RequestURI, authority: r.Host, header: hl, minor: 2,
			body: body, contentLength: r.ContentLength, remote: remote, remoteAddr: r.RemoteAddr, local: local, origDst: orig, scheme: scheme, peer: peer, conn: fconn}
		s.handle(sctx, req, w, hcm)
	})
	fc := newFloodConn(nc, br, func(reason string) {
		s.Stats.CxFlood.Add(1)
		s.log.Debug("HTTP/2 connection closed", "reason", reason, "remote", remote)
	})
	srv.ServeConn(fc, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: base})
}

type h2Writer struct {
	rw      http.ResponseWriter
	st      *streamTimer
	started bool
}

func (w *h2Writer) Started() bool { return w.started }

// WriteHead sets the response's fields under Go's canonical keys, so that
// the server neither adds its own (content-type, date, content-length)
// next to the proxied ones nor sniffs a content type: the response goes out
// with the fields it came with, each singleton once.
func (w *h2Writer) WriteHead(status int, h headers.List, contentLength int64) error {
	w.started = true
	w.st.responseStarted()
	hd := w.rw.Header()
	for _, f := range h {
		switch f.Name {
		case "", "connection", "transfer-encoding", "keep-alive", "proxy-connection", "upgrade", "content-length":
			continue
		}
		if f.Name[0] == ':' {
			continue
		}
		k := http.CanonicalHeaderKey(f.Name)
		hd[k] = append(hd[k], f.Value)
	}
	if _, ok := hd["Date"]; !ok {
		hd["Date"] = nil // present but empty: Go's server adds none
	}
	if _, ok := hd["Content-Type"]; !ok {
		hd["Content-Type"] = nil // no sniffing
	}
	if contentLength >= 0 && status != 204 && status != 304 && status >= 200 {
		hd["Content-Length"] = []string{itoa(contentLength)}
	}
	w.rw.WriteHeader(status)
	return nil
}

func (w *h2Writer) Write(p []byte) (int, error) {
	w.st.touch()
	return w.rw.Write(p)
}

func (w *h2Writer) Flush() error {
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func (w *h2Writer) WriteFlush(p []byte) (int, error) {
	n, err := w.Write(p)
	if err == nil {
		err = w.Flush()
	}
	return n, err
}

func (w *h2Writer) Finish(trailers headers.List) error {
	for _, f := range trailers {
		if !headers.ValidName(f.Name) || !headers.ValidValue(f.Value) {
			continue
		}
		k := http.TrailerPrefix + f.Name
		w.rw.Header()[k] = append(w.rw.Header()[k], f.Value)
	}
	return nil
}

// Abort resets the stream.
func (w *h2Writer) Abort() { panic(http.ErrAbortHandler) }

var _ io.Writer = (*h2Writer)(nil)

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
