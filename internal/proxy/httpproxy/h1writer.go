package httpproxy

import (
	"bufio"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
)

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
	st       *streamTimer
	// pend is the head not written yet (in the connection's head
	// writer's buffer) of a response of pendLen body bytes on a
	// connection that writes two buffers at once: a first Write of the
	// whole body sends both in one system call, any other write puts the
	// head in the write buffer first (putPend).
	pend    []byte
	pendLen int64
}

func (w *h1Writer) Started() bool { return w.started }

// writer is the connection's write buffer for the current response, taken
// from the server's pool at the first write (serveOne gives it back).
func (c *h1Conn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw, _ = c.s.h1writers.Get().(*bufio.Writer)
		if c.bw == nil {
			c.bw = bufio.NewWriterSize(c.nc, 4096)
		} else {
			c.bw.Reset(c.nc)
		}
	}
	return c.bw
}

func (w *h1Writer) WriteHead(status int, h headers.List, contentLength int64) error {
	w.started = true
	w.st.responseStarted()
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
	if w.c.s.draining.Load() || w.c.s.Overload.Shedding() {
		w.close = true
	}
	head := w.c.heads.Response(w.minor, status, h, contentLength, w.chunked, w.close || w.reqClose)
	if w.c.vw != nil && contentLength > 0 && !w.noBody && (w.c.bw == nil || w.c.bw.Buffered() == 0) {
		w.pend, w.pendLen = head, contentLength
		return nil
	}
	bw := w.c.writer()
	_, err := bw.Write(head)
	w.cw.W = bw
	return err
}

// putPend puts the pending head in the write buffer.
func (w *h1Writer) putPend() error {
	if w.pend == nil {
		return nil
	}
	_, err := w.c.writer().Write(w.pend)
	w.pend = nil
	return err
}

func (w *h1Writer) Write(p []byte) (int, error) {
	w.st.touch()
	if w.noBody {
		return len(p), nil
	}
	if w.chunked {
		return w.cw.Write(p)
	}
	if w.pend != nil {
		if int64(len(p)) == w.pendLen {
			head := w.pend
			w.pend = nil
			n, err := w.c.vw.WriteVec(head, p)
			return max(n-len(head), 0), err
		}
		if err := w.putPend(); err != nil {
			return 0, err
		}
	}
	return w.c.writer().Write(p)
}

func (w *h1Writer) Flush() error {
	if err := w.putPend(); err != nil {
		return err
	}
	return w.c.writer().Flush()
}

func (w *h1Writer) WriteFlush(p []byte) (int, error) {
	n, err := w.Write(p)
	if err == nil {
		err = w.Flush()
	}
	return n, err
}

func (w *h1Writer) Finish(trailers headers.List) error {
	if w.chunked && !w.noBody {
		if err := w.cw.Close(trailers); err != nil {
			return err
		}
	}
	if err := w.putPend(); err != nil {
		return err
	}
	if w.c.bw != nil { // else the response went out whole (WriteVec)
		if err := w.c.bw.Flush(); err != nil {
			return err
		}
	}
	w.finished = true
	return nil
}

// Upgrade writes a head for status (101, or 200 to a CONNECT) without
// framing and hands over the raw connection; the connection carries no
// more HTTP after it.
func (w *h1Writer) Upgrade(status int, h headers.List) (upstream.Conn, error) {
	w.started = true
	// The upgraded stream has its own idle timeout (splice); the stream
	// timers must not cut it.
	w.st.disarm()
	w.close = true
	bw := w.c.writer()
	if _, err := bw.Write(w.c.heads.Response(w.minor, status, h, -1, false, false)); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return &downConn{br: w.c.br, nc: w.c.nc}, nil
}

// Abort gives up on a response whose head was already sent.
func (w *h1Writer) Abort() {
	w.putPend()
	if w.c.bw != nil {
		w.c.bw.Flush()
	}
	w.close = true
	w.c.nc.Close()
}
