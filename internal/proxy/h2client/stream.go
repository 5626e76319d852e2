package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Request is one request to send on a connection.
type Request struct {
	Method    string
	Authority string
	Path      string
	Header    headers.List
	// Body is a buffered body (nil: none, unless BodyStream is set);
	// BodyStream a body that streams (read until EOF, concurrently with
	// the response). Body is the caller's again once RoundTrip returned.
	Body       []byte
	BodyStream io.Reader
	// ContentLength of a streamed body, -1 unknown; with neither body it
	// is the length announced for an empty one (0 sends content-length: 0
	// where a body is expected, -1 nothing).
	ContentLength int64
	// Trailers are sent after the body.
	Trailers headers.List
	// Deadline bounds the exchange, response body included (zero: none).
	Deadline time.Time
}

// Stream is one request's exchange; after RoundTrip it is the response
// body (Read, Close) and holds the response head.
type Stream struct {
	c  *Conn
	id uint32
	ResponseHead

	// Fields below are guarded by c.mu.
	isHead     bool
	head       bool // the response head arrived
	ended      bool // the peer ended the stream
	buf        []byte
	off        int
	recvd      int64
	inflow     int32 // receive window the peer may still use
	unacked    int32 // bytes read by the caller, not yet returned
	trailers   headers.List
	err        error
	sendWindow int64
	sending    bool // the body writer waits for window
	sendStop   bool // stop sending the body (response done, reset, closed)
	resetSent  bool
	sentEnd    bool // END_STREAM went out
	done       bool // Close or failure released the slot

	respWake chan struct{}
	sendWake chan struct{}
	timer    *time.Timer
	// the caller's context watch (watch), undone by finish
	ab     aborter
	afStop func() bool
}

// aborter is a context with one slot for an exchange's unblocker instead of
// context.AfterFunc (mast-proxy's stream context; upstream.Aborter).
type aborter interface {
	SetAbort(f func())
	ClearAbort() bool
}

func (s *Stream) watch(ctx context.Context) {
	if a, ok := ctx.(aborter); ok {
		s.ab = a
		a.SetAbort(s.AbortContext)
		return
	}
	if ctx.Done() != nil {
		s.afStop = context.AfterFunc(ctx, s.AbortContext)
	}
}

var dataBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// RoundTrip sends r on a slot taken by Reserve and waits for the response
// head. ctx's end, until Close, resets the stream with CANCEL (through its
// abort slot when it has one, see aborter). On success the Stream is the response: read its body, then Close
// it (which resets the stream if it is not over). On error the slot is
// released. ErrUnprocessed means the server never saw the request.
func (c *Conn) RoundTrip(ctx context.Context, r *Request) (*Stream, error) {
	s := &Stream{c: c, isHead: r.Method == "HEAD", inflow: c.cfg.StreamWindow,
		respWake: make(chan struct{}, 1), sendWake: make(chan struct{}, 1)}
	s.ContentLength = -1
	cl := r.ContentLength
	if r.Body != nil {
		cl = int64(len(r.Body))
	}
	if r.Body == nil && r.BodyStream == nil && cl < 0 {
		cl = 0
	}
	if !sendContentLength(r.Method, cl) {
		cl = -1
	}
	hasBody := len(r.Body) > 0 || r.BodyStream != nil || len(r.Trailers) > 0
	inline := false // the whole body goes out with the head
	size := headerListSize(r, c.cfg.Scheme, cl)

	c.wmu.Lock()
	c.mu.Lock()
	if c.closed || c.goAway {
		c.mu.Unlock()
		c.wmu.Unlock()
		c.release(nil)
		return nil, ErrUnprocessed
	}
	if c.peerHdrList > 0 && size > c.peerHdrList {
		limit := c.peerHdrList
		c.mu.Unlock()
		c.wmu.Unlock()
		c.release(nil)
		return nil, protoErr("request header list of %d bytes exceeds the upstream's limit of %d", size, limit)
	}
	s.id = c.nextID
	c.nextID += 2
	s.sendWindow = int64(c.peerWindow)
	c.streams[s.id] = s
	frameMax := int(c.peerFrame)
	if hasBody && r.BodyStream == nil && len(r.Trailers) == 0 && int64(len(r.Body)) <= min(s.sendWindow, c.sendWindow) && len(r.Body) <= frameMax {
		inline = true
		s.sendWindow -= int64(len(r.Body))
		c.sendWindow -= int64(len(r.Body))
	}
	s.sentEnd = !hasBody || inline
	c.mu.Unlock()
	c.hbuf.Reset()
	encodeRequestHead(c.henc, r, c.cfg.Scheme, cl)
	err := c.writeHeaderBlock(s.id, !hasBody || (inline && len(r.Body) == 0), c.hbuf.Bytes(), frameMax)
	if err == nil && inline && len(r.Body) > 0 {
		err = c.fr.WriteData(s.id, true, r.Body)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		c.closeWith(ErrClosed)
		s.fail(ErrClosed, false)
		s.finish()
		return nil, s.err
	}
	if !r.Deadline.IsZero() {
		s.timer = time.AfterFunc(time.Until(r.Deadline), s.expire)
	}
	s.watch(ctx)
	if hasBody && !inline {
		// The body is sent from another goroutine, which may outlive
		// the exchange (an early answer): it gets its own copy, as
		// the caller may reuse Body once the response is closed.
		if r.Body != nil {
			cp := *r
			cp.Body = bytes.Clone(r.Body)
			r = &cp
		}
		go s.writeBody(r)
	}
	c.mu.Lock()
	for !s.head && s.err == nil {
		c.mu.Unlock()
		<-s.respWake
		c.mu.Lock()
	}
	if s.head {
		// The head arrived: a later failure surfaces on Read.
		c.mu.Unlock()
		return s, nil
	}
	err = s.err
	c.mu.Unlock()
	s.Close()
	return nil, err
}

// writeHeaderBlock writes HEADERS and CONTINUATION frames (wmu held).
func (c *Conn) writeHeaderBlock(id uint32, endStream bool, block []byte, frameMax int) error {
	first := block
	if len(first) > frameMax {
		first = first[:frameMax]
	}
	block = block[len(first):]
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		n := min(len(block), frameMax)
		err = c.fr.WriteContinuation(id, n == len(block), block[:n])
		block = block[n:]
	}
	return err
}

// writeBody sends the request body (and trailers), waiting for window.
func (s *Stream) writeBody(r *Request) {
	var err error
	switch {
	case r.BodyStream != nil:
		bp := dataBufs.Get().(*[]byte)
		buf := *bp
		for err == nil {
			n, rerr := r.BodyStream.Read(buf)
			end := rerr == io.EOF && len(r.Trailers) == 0
			if n > 0 || end {
				err = s.writeData(buf[:n], end)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil && err == nil {
				// The downstream body failed: the upstream must not take a
				// truncated body for a whole one.
				s.Abort(rerr)
				err = rerr
			}
		}
		dataBufs.Put(bp)
	default:
		err = s.writeData(r.Body, len(r.Trailers) == 0)
	}
	if err == nil && len(r.Trailers) > 0 {
		err = s.writeTrailers(r.Trailers)
	}
	if err != nil && !errors.Is(err, errStopped) {
		s.Abort(err)
	}
}

var errStopped = errors.New("h2client: stream no longer sending")

// writeData sends p in DATA frames within the peer's windows.
func (s *Stream) writeData(p []byte, end bool) error {
	c := s.c
	for {
		c.mu.Lock()
		for !s.sendStop && s.err == nil && len(p) > 0 && (s.sendWindow <= 0 || c.sendWindow <= 0) {
			s.sending = true
			c.mu.Unlock()
			<-s.sendWake
			c.mu.Lock()
		}
		s.sending = false
		if s.sendStop || s.err != nil {
			c.mu.Unlock()
			return errStopped
		}
		n := int64(len(p))
		n = min(n, s.sendWindow, c.sendWindow, int64(c.peerFrame))
		s.sendWindow -= n
		c.sendWindow -= n
		c.mu.Unlock()
		last := end && int(n) == len(p)
		chunk := p[:n]
		if err := c.write(func() error { return c.fr.WriteData(s.id, last, chunk) }); err != nil {
			c.closeWith(ErrClosed)
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			if end {
				c.mu.Lock()
				s.sentEnd = true
				c.mu.Unlock()
			}
			return nil
		}
	}
}

func (s *Stream) writeTrailers(tr headers.List) error {
	c := s.c
	c.mu.Lock()
	stop := s.sendStop || s.err != nil
	frameMax := int(c.peerFrame)
	c.mu.Unlock()
	if stop {
		return errStopped
	}
	c.wmu.Lock()
	c.hbuf.Reset()
	encodeTrailers(c.henc, tr)
	err := c.writeHeaderBlock(s.id, true, c.hbuf.Bytes(), frameMax)
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	if err == nil {
		c.mu.Lock()
		s.sentEnd = true
		c.mu.Unlock()
	}
	return err
}

// wake signals both the response reader and the body writer.
func (s *Stream) wake() {
	select {
	case s.respWake <- struct{}{}:
	default:
	}
	select {
	case s.sendWake <- struct{}{}:
	default:
	}
}

// onHeaders takes the response head or trailers (read loop).
func (s *Stream) onHeaders(fields []hpack.HeaderField, end bool) error {
	c := s.c
	c.mu.Lock()
	defer func() { c.mu.Unlock(); s.wake() }()
	switch {
	case s.ended:
		return protoErr("HEADERS on an ended stream")
	case !s.head:
		h, err := ParseResponseHead(fields, s.isHead, end)
		if err != nil {
			return err
		}
		if h.Status < 200 {
			if end || h.Status == 101 {
				return protoErr("informational status %d", h.Status)
			}
			return nil // 100 Continue and the like: the response follows
		}
		s.ResponseHead = h
		s.head = true
		if end {
			s.ended = true
			s.sendStop = true
		}
	default:
		if !end {
			return protoErr("HEADERS after the response head without END_STREAM")
		}
		tr, err := parseTrailers(fields)
		if err != nil {
			return err
		}
		s.trailers = tr
		s.ended = true
		if err := s.checkLength(); err != nil {
			return err
		}
	}
	return nil
}

// checkLength compares the body received with content-length (c.mu held).
// A mismatch fails the stream here, under the lock that marks it ended, so
// a reader never sees a clean EOF before the reset lands.
func (s *Stream) checkLength() error {
	if s.ContentLength >= 0 && !s.isHead && s.Status != 204 && s.Status != 304 && s.recvd != s.ContentLength {
		err := protoErr("body of %d bytes, content-length %d", s.recvd, s.ContentLength)
		if s.err == nil {
			s.err = err
		}
		return err
	}
	return nil
}

// onData takes a DATA frame's payload (read loop); pad is its padding.
func (s *Stream) onData(data []byte, pad int32, end bool) error {
	c := s.c
	c.mu.Lock()
	n := int32(len(data)) + pad
	if n > s.inflow {
		c.mu.Unlock()
		return errFlow
	}
	s.inflow -= n
	s.unacked += pad
	var err error
	switch {
	case !s.head:
		err = protoErr("DATA before the response head")
	case s.ended:
		err = protoErr("DATA on an ended stream")
	case s.isHead && len(data) > 0:
		err = protoErr("DATA in a response to HEAD")
	}
	if err == nil {
		s.recvd += int64(len(data))
		if s.ContentLength >= 0 && s.recvd > s.ContentLength && !s.isHead {
			err = protoErr("body longer than content-length %d", s.ContentLength)
		}
	}
	if err == nil && !s.done {
		if s.off == len(s.buf) {
			s.buf, s.off = s.buf[:0], 0
		}
		s.buf = append(s.buf, data...)
	}
	if err == nil && end {
		s.ended = true
		err = s.checkLength()
	}
	c.mu.Unlock()
	s.wake()
	return err
}

// Read reads the response body.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	for {
		if s.off < len(s.buf) {
			n := copy(p, s.buf[s.off:])
			s.off += n
			var refund int32
			if !s.ended {
				s.unacked += int32(n)
				if s.unacked >= c.cfg.StreamWindow/4 {
					refund, s.unacked = s.unacked, 0
					s.inflow += refund
				}
			}
			c.mu.Unlock()
			if refund > 0 {
				id := s.id
				c.write(func() error { return c.fr.WriteWindowUpdate(id, uint32(refund)) })
			}
			return n, nil
		}
		if s.err != nil {
			err := s.err
			c.mu.Unlock()
			return 0, err
		}
		if s.ended {
			c.mu.Unlock()
			return 0, io.EOF
		}
		c.mu.Unlock()
		<-s.respWake
		c.mu.Lock()
	}
}

// Trailers returns the response trailers once the body hit EOF.
func (s *Stream) Trailers() headers.List {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.trailers
}

// Close ends the exchange: a stream not over both ways is reset with
// CANCEL. The slot goes back to the connection.
func (s *Stream) Close() error {
	c := s.c
	c.mu.Lock()
	if s.done {
		c.mu.Unlock()
		return nil
	}
	reset := !s.resetSent && !c.closed && (!s.ended || !s.sentEnd)
	if s.err == nil && !s.ended {
		s.err = errStopped
	}
	s.sendStop = true
	c.mu.Unlock()
	if reset {
		s.sendReset(http2.ErrCodeCancel)
	}
	s.wake()
	s.finish()
	return nil
}

// finish releases the slot once.
func (s *Stream) finish() {
	c := s.c
	c.mu.Lock()
	if s.done {
		c.mu.Unlock()
		return
	}
	s.done = true
	s.buf = nil
	c.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.ab != nil {
		s.ab.ClearAbort()
	} else if s.afStop != nil {
		s.afStop()
	}
	c.release(s)
}

// Abort fails the exchange with err and resets the stream with CANCEL
// (the caller's context ended, the request body failed).
func (s *Stream) Abort(err error) {
	s.fail(err, true)
	s.sendReset(http2.ErrCodeCancel)
}

// AbortContext is Abort for a context's end (a func value for
// context.AfterFunc and abort slots).
func (s *Stream) AbortContext() { s.Abort(context.Canceled) }

func (s *Stream) expire() { s.Abort(ErrDeadline) }

// fail records the exchange's failure (the first one wins; a stream the
// peer already ended whole keeps its response unless local says the
// caller gave up).
func (s *Stream) fail(err error, local bool) {
	c := s.c
	c.mu.Lock()
	if s.err == nil && (!s.ended || local) {
		s.err = err
	}
	s.sendStop = true
	c.mu.Unlock()
	s.wake()
}

// stopSending: the peer ended the response and reset with NO_ERROR.
func (s *Stream) stopSending() {
	c := s.c
	c.mu.Lock()
	s.sendStop = true
	if !s.ended && s.err == nil {
		s.err = &StreamError{Code: http2.ErrCodeNo}
	}
	s.resetSent = true // the stream is closed both ways
	c.mu.Unlock()
	s.wake()
}

// sendReset sends RST_STREAM once.
func (s *Stream) sendReset(code http2.ErrCode) {
	c := s.c
	c.mu.Lock()
	if s.resetSent || c.closed {
		c.mu.Unlock()
		return
	}
	s.resetSent = true
	c.mu.Unlock()
	c.write(func() error { return c.fr.WriteRSTStream(s.id, code) })
}
