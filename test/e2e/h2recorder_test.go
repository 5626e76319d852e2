package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2Recorder is an h2c backend (Go's own HTTP/2 server, prior knowledge)
// that records what an HTTP/2 client does to it: per connection, the
// authority it served, the most streams open at once, and the PINGs the
// client sent (read by a Framer from a copy of the connection's bytes).
type h2Recorder struct {
	port int

	mu      sync.Mutex
	conns   []*h2ConnRecord
	open    map[string]int           // streams open per authority
	release map[string]chan struct{} // "/slow" requests wait for it
}

type h2ConnRecord struct {
	host                    string
	open, maxOpen, requests int
	pings                   int
}

type h2ConnKey struct{}

// sniffConn copies what the server reads into w, for the frame counter.
type sniffConn struct {
	net.Conn
	w   *io.PipeWriter
	rec *h2ConnRecord
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.w.Write(p[:n])
	}
	if err != nil {
		c.w.CloseWithError(err)
	}
	return n, err
}

type sniffListener struct {
	net.Listener
	r *h2Recorder
}

func (l sniffListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rec := &h2ConnRecord{}
	l.r.mu.Lock()
	l.r.conns = append(l.r.conns, rec)
	l.r.mu.Unlock()
	pr, pw := io.Pipe()
	go func() {
		defer io.Copy(io.Discard, pr)
		if _, err := io.ReadFull(pr, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
		fr := http2.NewFramer(nil, pr)
		fr.SetMaxReadFrameSize(1 << 24)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				l.r.mu.Lock()
				rec.pings++
				l.r.mu.Unlock()
			}
		}
	}()
	return &sniffConn{Conn: nc, w: pw, rec: rec}, nil
}

// startH2Recorder serves on a free loopback port. "/hold3" answers once
// three requests for the same authority are open at once (or after 20 s);
// "/slow" answers when unblock(authority) is called; others at once.
func startH2Recorder(t *testing.T) *h2Recorder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &h2Recorder{port: l.Addr().(*net.TCPAddr).Port, open: map[string]int{}, release: map[string]chan struct{}{}}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, h2ConnKey{}, c.(*sniffConn).rec)
		},
		Handler: http.HandlerFunc(r.serve)}
	go srv.Serve(sniffListener{Listener: l, r: r})
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *h2Recorder) serve(w http.ResponseWriter, req *http.Request) {
	rec := req.Context().Value(h2ConnKey{}).(*h2ConnRecord)
	host, _, _ := strings.Cut(req.Host, ":")
	r.mu.Lock()
	rec.host = host
	rec.requests++
	rec.open++
	rec.maxOpen = max(rec.maxOpen, rec.open)
	r.open[host]++
	rel := r.release[host]
	if rel == nil {
		rel = make(chan struct{})
		r.release[host] = rel
	}
	r.mu.Unlock()
	switch req.URL.Path {
	case "/hold3":
		// Bounds a broken proxy only; the assertions are on counts.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			r.mu.Lock()
			n := r.open[host]
			r.mu.Unlock()
			if n >= 3 {
				break
			}
		}
	case "/slow":
		select {
		case <-rel:
		case <-req.Context().Done():
		}
	}
	r.mu.Lock()
	rec.open--
	r.open[host]--
	r.mu.Unlock()
	io.WriteString(w, "h2 "+req.Proto)
}

// unblock answers the "/slow" requests for host.
func (r *h2Recorder) unblock(host string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.release[host] == nil {
		r.release[host] = make(chan struct{})
	}
	close(r.release[host])
}

// connsOf returns copies of the records of the connections that served host.
func (r *h2Recorder) connsOf(host string) []h2ConnRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []h2ConnRecord
	for _, c := range r.conns {
		if c.host == host {
			out = append(out, *c)
		}
	}
	return out
}
