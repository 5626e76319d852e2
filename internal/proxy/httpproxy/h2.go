package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// bufConn reads through the bufio.Reader that already holds the preface.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (s *Server) serveH2(ctx context.Context, nc net.Conn, br *bufio.Reader, hcm *xdsparse.HTTPManager) {
	srv := &http2.Server{MaxConcurrentStreams: hcm.MaxConcurrentStreams, IdleTimeout: hcm.IdleTimeout}
	base := &http.Server{MaxHeaderBytes: hcm.MaxRequestHeadersBytes}
	remote, orig, peer, local, scheme := remoteIP(nc), originalDst(nc), peerOf(nc), nc.LocalAddr(), connScheme(nc)
	var fconn *filter.Conn
	if hcm.Filters != nil {
		fconn = filter.NewConn(nc)
	}
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
		req := &dsRequest{method: r.Method, target: r.RequestURI, authority: r.Host, header: hl, minor: 2,
			body: r.Body, contentLength: r.ContentLength, remote: remote, local: local, origDst: orig, scheme: scheme, peer: peer, conn: fconn}
		if r.Method == "GET" || r.Method == "HEAD" {
			if r.ContentLength <= 0 {
				req.body = nil
			}
		}
		s.handle(r.Context(), req, w, hcm)
	})
	srv.ServeConn(&bufConn{Conn: nc, r: br}, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: base})
}

type h2Writer struct {
	rw      http.ResponseWriter
	started bool
}

func (w *h2Writer) Started() bool { return w.started }

func (w *h2Writer) WriteHead(status int, h headers.List, contentLength int64) error {
	w.started = true
	hd := w.rw.Header()
	for _, f := range h {
		if f.Name == "" || f.Name[0] == ':' || f.Name == "connection" || f.Name == "transfer-encoding" || f.Name == "keep-alive" {
			continue
		}
		hd[f.Name] = append(hd[f.Name], f.Value)
	}
	hd.Del("Content-Length")
	if contentLength >= 0 {
		hd["content-length"] = []string{itoa(contentLength)}
	}
	w.rw.WriteHeader(status)
	return nil
}

func (w *h2Writer) Write(p []byte) (int, error) { return w.rw.Write(p) }

func (w *h2Writer) Flush() error {
	if f, ok := w.rw.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func (w *h2Writer) Finish(trailers headers.List) error {
	for _, f := range trailers {
		w.rw.Header()[http.TrailerPrefix+f.Name] = append(w.rw.Header()[http.TrailerPrefix+f.Name], f.Value)
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
