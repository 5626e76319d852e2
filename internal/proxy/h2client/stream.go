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

	"github.com/mast-mesh/mast/internal/proxy/h2frame"
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
//
// A connection keeps the Streams of finished exchanges and reuses them
// (their channels, timer, bound callbacks, header lists and body buffer),
// so an exchange allocates nothing of its own: once Close returned, the
// Stream, its ResponseHead.Header and its Trailers belong to a later
// exchange. A Stream goes back to its connection only when every holder
// let go (refs) and no callback of its exchange can still run.
type Stream struct {
	c *Conn
	exchange

	// Kept from exchange to exchange: set once per Stream (the channels
	// and bound callbacks are read without c.mu), or by the exchange's
	// owner (the timer, the lists' arrays).
	respWake chan struct{}
	sendWake chan struct{}
	wdone    chan struct{} // the body writer let go of the body (a token sent under c.mu)
	abortF   func()        // AbortContext, bound once
	writeF   func()        // writeBody, bound once
	timer    *time.Timer
	hdrBuf   headers.List
	trBuf    headers.List
}

// exchange is a Stream's state for one exchange, zeroed for the next.
type exchange struct {
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
	writing    bool // the body writer runs (it may still read the body)
	// refs counts the Stream's holders: the exchange until finish, the
	// body writer until it returns. At zero, a Stream whose callbacks
	// were all stopped (reusable) goes back to the connection.
	refs     int
	reusable bool

	// Owned by the exchange's caller.
	timerOn bool
	ab      aborter // the caller's context watch (watch), undone by finish
	afStop  func() bool
	wr      Request // the request as the body writer sees it
	// pre is a streamed body's start, taken with TryRead before the head
	// went out, that the body writer sends first (preBuf is its pooled
	// array); preDone: the body ended with it.
	pre     []byte
	preBuf  *[]byte
	preDone bool
}

// ReadyReader is a streamed request body that can hand over, without
// waiting, what of it already arrived (mast-proxy's HTTP/2 server stream):
// TryRead copies up to len(p) bytes and reports done when the body ended
// with them; err is the body's failure when nothing is left. RoundTrip
// sends that with the request head, in one write, and needs no goroutine
// for a body that already ended.
type ReadyReader interface {
	TryRead(p []byte) (n int, done bool, err error)
}

// BodyStopper is a streamed request body told when the stream stops
// taking it before its end (the exchange ended or failed first), so that
// its writer need not wait for reads that will not come (a gRPC stream's
// Send). StopBody must make a Read in progress, and every later one,
// return at once: the exchange's Close waits for the body writer to let go
// of such a body, so that its owner may reuse it once Close returned (a
// proxy's downstream stream, recycled for the next request).
type BodyStopper interface {
	StopBody()
}

// maxFreeStreams bounds the finished Streams a connection keeps; maxKeptBuf
// the response body buffer a kept Stream holds on to.
const (
	maxFreeStreams = 32
	maxKeptBuf     = 32 << 10
)

// newStream returns a Stream for a new exchange, reused when the
// connection has one (c.mu held).
func (c *Conn) newStream() *Stream {
	n := len(c.free)
	if n == 0 {
		s := &Stream{c: c, respWake: make(chan struct{}, 1), sendWake: make(chan struct{}, 1), wdone: make(chan struct{}, 1)}
		s.abortF = s.AbortContext
		s.writeF = s.writeBody
		return s
	}
	s := c.free[n-1]
	c.free[n-1] = nil
	c.free = c.free[:n-1]
	// unref zeroed its exchange. Tokens the last one left would only be
	// spurious wake-ups; drop them anyway.
	select {
	case <-s.respWake:
	default:
	}
	select {
	case <-s.sendWake:
	default:
	}
	select {
	case <-s.wdone:
	default:
	}
	return s
}

// unref drops one holder (c.mu held); the last one gives a reusable
// Stream back to the connection.
func (s *Stream) unref() {
	s.refs--
	if s.refs > 0 || !s.done || !s.reusable {
		return
	}
	c := s.c
	if len(c.free) >= maxFreeStreams || c.closed {
		return
	}
	clear(s.hdrBuf[:cap(s.hdrBuf)])
	clear(s.trBuf[:cap(s.trBuf)])
	buf := s.buf[:0]
	if cap(buf) > maxKeptBuf {
		buf = nil
	}
	s.exchange = exchange{buf: buf}
	c.free = append(c.free, s)
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
		a.SetAbort(s.abortF)
		return
	}
	if ctx.Done() != nil {
		s.afStop = context.AfterFunc(ctx, s.abortF)
	}
}

var dataBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func putBuf(b *[]byte) {
	if b != nil {
		dataBufs.Put(b)
	}
}

// takeReady takes what of r's streamed body already arrived, as much as
// the windows let go out with the head (nothing when the body cannot say,
// or trailers follow it). preBuf is nil when nothing was taken and the
// body did not end.
func (c *Conn) takeReady(r *Request) (pre []byte, preBuf *[]byte, done bool) {
	rr, ok := r.BodyStream.(ReadyReader)
	if !ok || len(r.Trailers) > 0 {
		return nil, nil, false
	}
	c.mu.Lock()
	room := min(int64(c.peerWindow), c.sendWindow, int64(c.peerFrame))
	c.mu.Unlock()
	if room <= 0 {
		return nil, nil, false
	}
	preBuf = dataBufs.Get().(*[]byte)
	n, done, err := rr.TryRead((*preBuf)[:min(room, int64(len(*preBuf)))])
	if err != nil || (n == 0 && !done) {
		// Nothing yet (a failure shows on the body writer's Read).
		dataBufs.Put(preBuf)
		return nil, nil, false
	}
	return (*preBuf)[:n], preBuf, done
}

// RoundTrip sends r on a slot taken by Reserve and waits for the response
// head. ctx's end, until Close, resets the stream with CANCEL (through its
// abort slot when it has one, see aborter). On success the Stream is the response: read its body, then Close
// it (which resets the stream if it is not over). On error the slot is
// released. ErrUnprocessed means the server never saw the request.
func (c *Conn) RoundTrip(ctx context.Context, r *Request) (*Stream, error) {
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
	pre, preBuf, preDone := c.takeReady(r)

	c.wmu.Lock()
	c.mu.Lock()
	if c.closed || c.goAway {
		c.mu.Unlock()
		c.wmu.Unlock()
		c.release(nil, false)
		putBuf(preBuf)
		return nil, ErrUnprocessed
	}
	if c.peerHdrList > 0 && size > c.peerHdrList {
		limit := c.peerHdrList
		c.mu.Unlock()
		c.wmu.Unlock()
		c.release(nil, false)
		putBuf(preBuf)
		return nil, protoErr("request header list of %d bytes exceeds the upstream's limit of %d", size, limit)
	}
	s := c.newStream()
	s.isHead, s.inflow, s.ContentLength, s.refs = r.Method == "HEAD", c.cfg.StreamWindow, -1, 1
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
	// A streamed body's start goes with the head when the windows take it
	// (takeReady sized it for them; other streams may have used them
	// since), else first from the body writer.
	sendPre := preBuf != nil && int64(len(pre)) <= min(s.sendWindow, c.sendWindow) && len(pre) <= frameMax
	if sendPre {
		s.sendWindow -= int64(len(pre))
		c.sendWindow -= int64(len(pre))
		inline = preDone
	}
	s.sentEnd = !hasBody || inline
	c.mu.Unlock()
	c.henc.Reset()
	encodeRequestHead(c.henc, r, c.cfg.Scheme, cl)
	err := c.writeHeaderBlock(s.id, !hasBody || (inline && len(r.Body) == 0 && !sendPre), c.henc.Buf.Bytes(), frameMax)
	if err == nil && inline && len(r.Body) > 0 {
		err = h2frame.WriteData(c.bw, s.id, true, r.Body)
	}
	if err == nil && sendPre {
		err = h2frame.WriteData(c.bw, s.id, preDone, pre)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	if sendPre {
		putBuf(preBuf)
		pre, preBuf = nil, nil
	}
	if err != nil {
		putBuf(preBuf)
		c.closeWith(ErrClosed)
		c.mu.Lock()
		s.failLocked(ErrClosed, false)
		err = s.err
		c.mu.Unlock()
		s.finish()
		return nil, err
	}
	if !r.Deadline.IsZero() {
		if s.timer == nil {
			s.timer = time.AfterFunc(time.Until(r.Deadline), s.expire)
		} else {
			s.timer.Reset(time.Until(r.Deadline))
		}
		s.timerOn = true
	}
	s.watch(ctx)
	if hasBody && !inline {
		// The body is sent from another goroutine, which may outlive
		// the exchange (an early answer): it gets its own copy of the
		// request, and of a buffered body, as the caller may reuse
		// both once the response is closed.
		s.wr = *r
		if r.Body != nil {
			s.wr.Body = bytes.Clone(r.Body)
		}
		s.pre, s.preBuf, s.preDone = pre, preBuf, preDone
		c.mu.Lock()
		s.refs++
		s.writing = true
		c.mu.Unlock()
		go s.writeF()
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

// writeBody sends the request body (and trailers), waiting for window; it
// holds a reference to the Stream until it returns.
func (s *Stream) writeBody() {
	r := &s.wr
	var err error
	if s.preBuf != nil {
		err = s.writeData(s.pre, s.preDone && len(r.Trailers) == 0)
		putBuf(s.preBuf)
		s.pre, s.preBuf = nil, nil
	}
	switch {
	case err != nil:
	case s.preDone:
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
	if bs, ok := r.BodyStream.(BodyStopper); ok && err != nil {
		bs.StopBody()
	}
	c := s.c
	c.mu.Lock()
	s.writing = false
	select {
	case s.wdone <- struct{}{}:
	default:
	}
	s.unref()
	c.mu.Unlock()
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
		if err := c.write(func() error { return h2frame.WriteData(c.bw, s.id, last, chunk) }); err != nil {
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
	c.henc.Reset()
	encodeTrailers(c.henc, tr)
	err := c.writeHeaderBlock(s.id, true, c.henc.Buf.Bytes(), frameMax)
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

// onHeaders takes the response head or trailers (read loop, c.mu held).
func (s *Stream) onHeaders(fields []hpack.HeaderField, end bool) error {
	switch {
	case s.ended:
		return protoErr("HEADERS on an ended stream")
	case !s.head:
		h, err := parseResponseHead(s.hdrBuf[:0], fields, s.isHead, end)
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
		s.hdrBuf = h.Header
		s.head = true
		if end {
			s.ended = true
			s.sendStop = true
		}
	default:
		if !end {
			return protoErr("HEADERS after the response head without END_STREAM")
		}
		tr, err := parseTrailers(s.trBuf[:0], fields)
		if err != nil {
			return err
		}
		s.trailers, s.trBuf = tr, tr
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

// onData takes a DATA frame's payload (read loop, c.mu held); pad is its
// padding.
func (s *Stream) onData(data []byte, pad int32, end bool) error {
	n := int32(len(data)) + pad
	if n > s.inflow {
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
	return err
}

// Read reads the response body; the last bytes of a stream that ended
// whole come with io.EOF.
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
			// The last bytes of a stream that ended whole come with EOF,
			// so that a forwarder sends them with the response's end (and
			// its trailers) in one write instead of flushing them first.
			eof := s.off == len(s.buf) && s.ended && s.err == nil
			c.mu.Unlock()
			if refund > 0 {
				id := s.id
				c.write(func() error { return c.fr.WriteWindowUpdate(id, uint32(refund)) })
			}
			if eof {
				return n, io.EOF
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

// Ready reports whether Read would return without waiting: body bytes
// arrived, or the stream ended or failed.
func (s *Stream) Ready() bool {
	c := s.c
	c.mu.Lock()
	ready := s.off < len(s.buf) || s.ended || s.err != nil
	c.mu.Unlock()
	return ready
}

// Trailers returns the response trailers once the body hit EOF.
func (s *Stream) Trailers() headers.List {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.trailers
}

// Close ends the exchange: a stream not over both ways is reset with
// CANCEL. The slot goes back to the connection, and the Stream with it:
// neither it nor its head and trailers may be used after Close.
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
	id := s.id
	if reset {
		s.resetSent = true
	}
	c.mu.Unlock()
	if reset {
		c.write(func() error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
	s.wake()
	s.finish()
	return nil
}

// finish releases the slot once (by the exchange's caller).
func (s *Stream) finish() {
	c := s.c
	c.mu.Lock()
	if s.done {
		c.mu.Unlock()
		return
	}
	s.done = true
	writing := s.writing
	c.mu.Unlock()
	// A body that can be stopped is let go of before Close returns (its
	// owner may reuse it then): stop it and wait for the body writer.
	if bs, ok := s.wr.BodyStream.(BodyStopper); ok && writing {
		bs.StopBody()
		<-s.wdone
	}
	// The Stream may be reused only if none of the exchange's callbacks
	// can run any more.
	stopped := true
	if s.timerOn && !s.timer.Stop() {
		stopped = false
	}
	if s.ab != nil {
		stopped = s.ab.ClearAbort() && stopped
	} else if s.afStop != nil {
		stopped = s.afStop() && stopped
	}
	s.timerOn, s.ab, s.afStop = false, nil, nil
	c.release(s, stopped)
}

// Abort fails the exchange with err and resets the stream with CANCEL
// (the caller's context ended, the request body failed).
func (s *Stream) Abort(err error) {
	c := s.c
	c.mu.Lock()
	s.failLocked(err, true)
	id, reset := s.id, !s.resetSent && !c.closed
	s.resetSent = true
	c.mu.Unlock()
	s.wake()
	if reset {
		c.write(func() error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
}

// AbortContext is Abort for a context's end (a func value for
// context.AfterFunc and abort slots).
func (s *Stream) AbortContext() { s.Abort(context.Canceled) }

func (s *Stream) expire() { s.Abort(ErrDeadline) }

// failLocked records the exchange's failure (c.mu held; the caller wakes
// the stream). The first failure wins; a stream the peer already ended
// whole keeps its response unless local says the caller gave up.
func (s *Stream) failLocked(err error, local bool) {
	if s.err == nil && (!s.ended || local) {
		s.err = err
	}
	s.sendStop = true
}

// stopSendingLocked: the peer ended the response and reset with NO_ERROR
// (c.mu held).
func (s *Stream) stopSendingLocked() {
	s.sendStop = true
	if !s.ended && s.err == nil {
		s.err = &StreamError{Code: http2.ErrCodeNo}
	}
	s.resetSent = true // the stream is closed both ways
}
