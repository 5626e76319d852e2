package h2server

import (
	"io"
	"strconv"
	"sync"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2frame"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Stream is one request and its response. The request fields are set
// before Handler.Start; the body is read with Read, the response written
// with WriteHead, Write, Flush and Finish (or Abort) from Serve.
type Stream struct {
	Request
	ID uint32
	// User is the handler's per-stream state.
	User any

	c    *conn
	cond sync.Cond // on c.mu: body data, send window

	// Under c.mu.
	body        []byte // received, unread from off
	off         int
	owed        int64 // unread bytes whose window is not yet returned
	recvd       int64
	recvWindow  int64
	unsent      int64 // read, window not yet returned
	sendWindow  int64
	rerr, werr  error
	remoteDone  bool // END_STREAM received
	endSent     bool // END_STREAM sent
	bodyClosed  bool
	bodyStopped bool // StopBody: reads fail at once
	served      bool // Serve was started
	gone        bool // off the connection (reset, or done)
	waitRead    bool
	waitSend    bool
	resetSent   bool
	canceling   bool
	handlerDone bool

	// The handler's goroutine only.
	noBody    bool // HEAD request or a response without a body
	started   bool
	headOut   bool // the response head was written
	localDone bool
	sent100   bool // 100-continue handled: sent, or not asked for
	status    int
	head      headers.List
	headLen   int64
}

func (c *conn) newStream(id uint32) *Stream {
	s, _ := c.pools.streams.Get().(*Stream)
	if s == nil {
		s = &Stream{}
	}
	s.c = c
	s.cond.L = &c.mu
	s.ID = id
	s.recvWindow = int64(max(c.cfg.Window, minWindow))
	s.sendWindow = c.initialSend
	return s
}

// recycle returns s to the pool with its buffers and the handler's state.
func (c *conn) recycle(s *Stream) {
	body, hdr := s.body, s.Header
	if cap(body) > 64<<10 {
		body = nil
	}
	clear(hdr[:cap(hdr)])
	*s = Stream{body: body[:0], User: s.User}
	s.Header = hdr[:0]
	c.pools.streams.Put(s)
}

// credit returns n bytes of the stream's receive window once enough
// accumulated; c.mu is held.
func (s *Stream) credit(n int64) {
	if s.remoteDone || s.gone {
		return
	}
	s.unsent += n
	if s.unsent >= int64(max(s.c.cfg.Window, minWindow))/2 {
		s.recvWindow += s.unsent
		s.c.queueWindowUpdate(s.ID, s.unsent)
		s.unsent = 0
	}
}

func (s *Stream) expect100() bool {
	v, ok := s.Header.Get("expect")
	return ok && headers.EqualFold(v, "100-continue")
}

// Read reads the request body as it arrives.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	if !s.sent100 {
		// Looked up once: a streamed body is read a message at a time.
		s.sent100 = true
		if s.expect100() {
			if err := s.writeHeaders(100, nil, -1, false, false); err != nil {
				return 0, err
			}
			s.Flush()
		}
	}
	c.mu.Lock()
	for s.off == len(s.body) && !s.remoteDone && s.rerr == nil && !s.bodyStopped {
		s.waitRead = true
		s.cond.Wait()
	}
	s.waitRead = false
	if s.bodyStopped {
		c.mu.Unlock()
		return 0, ErrBodyStopped
	}
	if s.off < len(s.body) {
		n := s.take(p)
		c.mu.Unlock()
		c.kick()
		return n, nil
	}
	err := s.rerr
	c.mu.Unlock()
	if err == nil {
		err = io.EOF
	}
	return 0, err
}

// TryRead is Read without the wait: it copies what of the request body
// already arrived (none before a 100-continue went out: Read sends it);
// done reports that the body ended with it, so that a forwarder sends it
// with the request's end. err is the stream's failure, when nothing is
// left to read.
func (s *Stream) TryRead(p []byte) (n int, done bool, err error) {
	if !s.sent100 && s.expect100() {
		return 0, false, nil
	}
	c := s.c
	c.mu.Lock()
	if s.bodyStopped {
		c.mu.Unlock()
		return 0, false, ErrBodyStopped
	}
	if s.off < len(s.body) {
		n = s.take(p)
	}
	done = s.off == len(s.body) && s.remoteDone && s.rerr == nil
	if n == 0 && !done {
		err = s.rerr
	}
	c.mu.Unlock()
	if n > 0 {
		c.kick()
	}
	return n, done, err
}

// take copies buffered body bytes into p and returns the window of what
// was taken; c.mu is held and s.off < len(s.body).
func (s *Stream) take(p []byte) int {
	c := s.c
	n := copy(p, s.body[s.off:])
	unread := int64(len(s.body) - s.off)
	s.off += n
	if s.off == len(s.body) {
		s.body, s.off = s.body[:0], 0
	}
	// The window of what was gathered before Serve was returned on
	// arrival; the rest (the last owed bytes) is returned now.
	if k := int64(n) - min(int64(n), unread-s.owed); k > 0 {
		s.owed -= k
		c.creditConn(k)
		s.credit(k)
	}
	return n
}

// StopBody makes a Read of the request body in progress, and every later
// Read and TryRead, fail with ErrBodyStopped (h2client.BodyStopper: the
// upstream exchange takes no more of the body, and its body writer must
// let go of the stream before the handler returns and the stream is
// recycled).
func (s *Stream) StopBody() {
	c := s.c
	c.mu.Lock()
	s.bodyStopped = true
	s.cond.Broadcast()
	c.mu.Unlock()
}

// CloseBody discards the rest of the request body.
func (s *Stream) CloseBody() {
	c := s.c
	c.mu.Lock()
	s.bodyClosed = true
	c.creditConn(s.owed)
	s.owed = 0
	s.body, s.off = s.body[:0], 0
	c.mu.Unlock()
}

// Expire cuts the stream for its timers: reads fail with ErrTimeout, and
// writes too once the response started. A request still gathering its
// body is served at once (so that the handler answers).
func (s *Stream) Expire(responseStarted bool) {
	c := s.c
	c.mu.Lock()
	if s.rerr == nil {
		s.rerr = ErrTimeout
	}
	if responseStarted && s.werr == nil {
		s.werr = ErrTimeout
	}
	s.cond.Broadcast()
	if !s.gone {
		c.dispatch(s)
	}
	c.mu.Unlock()
}

// WriteHead sets the response head; it goes out with the first data, a
// flush or the end (an empty response is a single HEADERS frame).
func (s *Stream) WriteHead(status int, h headers.List, contentLength int64) error {
	s.started = true
	s.status, s.head, s.headLen = status, h, contentLength
	if status == 204 || status == 304 {
		s.noBody = true
	}
	return nil
}

// Write sends body data as the flow-control windows allow.
func (s *Stream) Write(p []byte) (int, error) { return s.write(p, false) }

// WriteFlush is Write then Flush, the last frame flushed as the writer
// lets go of the connection (a streamed message takes the connection's
// writer once, not twice).
func (s *Stream) WriteFlush(p []byte) (int, error) { return s.write(p, true) }

func (s *Stream) write(p []byte, flush bool) (int, error) {
	if s.noBody || len(p) == 0 {
		if flush {
			return len(p), s.Flush()
		}
		return len(p), nil
	}
	c := s.c
	written := 0
	for len(p) > 0 {
		k, err := s.reserve(len(p))
		if err != nil {
			return written, err
		}
		c.lockWrite()
		err = s.flushHead(false)
		if err == nil {
			err = h2frame.WriteData(c.buf(), s.ID, false, p[:k])
			c.sent.Add(1)
		}
		last := flush && k == len(p)
		if werr := c.unlockWrite(last); last && err == nil {
			err = werr
		}
		if err != nil {
			return written, err
		}
		written += k
		p = p[k:]
	}
	return written, nil
}

// reserve waits until the windows allow sending and takes up to n bytes
// of them.
func (s *Stream) reserve(n int) (int, error) {
	c := s.c
	c.mu.Lock()
	for {
		if s.werr != nil {
			err := s.werr
			c.mu.Unlock()
			return 0, err
		}
		if s.sendWindow > 0 && c.sendWindow > 0 {
			break
		}
		// What is buffered must reach the client for it to return window.
		c.mu.Unlock()
		s.Flush()
		c.mu.Lock()
		if s.werr != nil || (s.sendWindow > 0 && c.sendWindow > 0) {
			continue
		}
		s.waitSend = true
		s.cond.Wait()
		s.waitSend = false
	}
	k := int64(min(n, int(c.maxFrame.Load())))
	k = min(k, s.sendWindow, c.sendWindow)
	s.sendWindow -= k
	c.sendWindow -= k
	c.mu.Unlock()
	return int(k), nil
}

// flushHead writes the pending response head; wmu is held.
func (s *Stream) flushHead(end bool) error {
	if s.headOut || !s.started {
		return nil
	}
	s.headOut = true
	return s.encodeHeaders(s.status, s.head, s.headLen, end, false)
}

// Flush sends what is buffered.
func (s *Stream) Flush() error {
	c := s.c
	c.lockWrite()
	err := s.flushHead(false)
	if werr := c.unlockWrite(true); err == nil {
		err = werr
	}
	return err
}

// Finish ends the response, with trailers when there are any.
func (s *Stream) Finish(trailers headers.List) error {
	c := s.c
	c.mu.Lock()
	err := s.werr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	valid := 0
	for _, f := range trailers {
		if validField(f) {
			valid++
		}
	}
	c.lockWrite()
	switch {
	case valid > 0:
		if err = s.flushHead(false); err == nil {
			err = s.encodeHeaders(0, trailers, -1, true, true)
		}
	case !s.headOut:
		err = s.flushHead(true)
	default:
		err = h2frame.WriteData(c.buf(), s.ID, true, nil)
		c.sent.Add(1)
	}
	s.localDone = true
	// Closed once the client sees END_STREAM: a HEADERS frame it sends
	// after that is a connection error (wmu may be held taking c.mu).
	c.mu.Lock()
	s.endSent = true
	c.mu.Unlock()
	if werr := c.unlockWrite(true); err == nil {
		err = werr
	}
	return err
}

// Abort resets the stream (the response cannot be completed).
func (s *Stream) Abort() {
	c := s.c
	c.mu.Lock()
	if s.resetSent {
		c.mu.Unlock()
		return
	}
	s.resetSent = true
	gone := s.gone
	c.mu.Unlock()
	s.localDone = true
	if gone {
		return
	}
	c.lockWrite()
	c.wfr.WriteRSTStream(s.ID, http2.ErrCodeInternal)
	c.unlockWrite(true)
	c.mu.Lock()
	c.endStream(s, ErrReset)
	c.mu.Unlock()
}

// writeHeaders writes a head at once (interim responses).
func (s *Stream) writeHeaders(status int, h headers.List, cl int64, end, trailers bool) error {
	c := s.c
	c.lockWrite()
	err := s.encodeHeaders(status, h, cl, end, trailers)
	c.unlockWrite(false)
	return err
}

// encodeHeaders writes HEADERS (and CONTINUATION) for a head or trailers;
// wmu is held.
func (s *Stream) encodeHeaders(status int, h headers.List, cl int64, end, trailers bool) error {
	c := s.c
	if c.werr != nil {
		return c.werr
	}
	if v := c.tableSize.Swap(-1); v >= 0 {
		c.enc.SetMaxDynamicTableSizeLimit(uint32(v))
	}
	c.enc.Reset()
	if !trailers {
		c.enc.WriteField(":status", statusValue(status))
	}
	for _, f := range h {
		switch f.Name {
		case "", "connection", "transfer-encoding", "keep-alive", "proxy-connection", "upgrade", "content-length", "te":
			continue
		}
		if f.Name[0] == ':' || !validField(f) {
			continue
		}
		c.enc.WriteField(headers.Lower(f.Name), f.Value)
	}
	if !trailers && cl >= 0 && status != 204 && status != 304 && status >= 200 {
		c.enc.WriteField("content-length", strconv.FormatInt(cl, 10))
	}
	block := c.enc.Buf.Bytes()
	max := int(c.maxFrame.Load())
	first := true
	for first || len(block) > 0 {
		chunk := block[:min(len(block), max)]
		block = block[len(chunk):]
		var err error
		if first {
			err = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.ID, BlockFragment: chunk, EndStream: end, EndHeaders: len(block) == 0})
			c.sent.Add(1)
		} else {
			err = c.wfr.WriteContinuation(s.ID, len(block) == 0, chunk)
		}
		if err != nil {
			c.werr = err
			return err
		}
		first = false
	}
	return nil
}

func validField(f headers.Field) bool {
	return headers.ValidName(f.Name) && headers.ValidValue(f.Value)
}

// statusValue is :status without an allocation for the common codes.
func statusValue(code int) string {
	switch code {
	case 100:
		return "100"
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 307:
		return "307"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 408:
		return "408"
	case 429:
		return "429"
	case 431:
		return "431"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}
