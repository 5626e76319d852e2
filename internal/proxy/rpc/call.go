package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2client"
)

// start returns the HTTP/2 request of a call to method (body set by the
// caller) and the connection reserved for it, or the error that refuses its
// metadata or finds no connection.
func (c *client) start(ctx context.Context, method string, md []Header) (*h2client.Request, *h2client.Conn, error) {
	deadline, ok := ctx.Deadline()
	hdr, err := requestHeaders(c.opts.UserAgent, time.Until(deadline), ok, md)
	if err != nil {
		return nil, nil, err
	}
	hc, err := c.reserve(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &h2client.Request{Method: "POST", Authority: c.opts.Authority, Path: method, Header: hdr,
		ContentLength: -1, Deadline: deadline}, hc, nil
}

// frame returns msg with gRPC's 5-byte prefix (not compressed, length).
func frame(dst, msg []byte) []byte {
	dst = append(dst[:0], 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[1:], uint32(len(msg)))
	return append(dst, msg...)
}

// Invoke sends a unary call.
func (c *client) Invoke(ctx context.Context, method string, req []byte, md ...Header) ([]byte, error) {
	r, hc, err := c.start(ctx, method, md)
	if err != nil {
		return nil, err
	}
	r.Body = frame(make([]byte, 0, 5+len(req)), req)
	hs, err := hc.RoundTrip(ctx, r)
	if err != nil {
		return nil, statusOf(ctx, err)
	}
	defer hs.Close()
	if st := checkHead(hs.Status, hs.Header); st != nil {
		return nil, readNonGRPC(hs, st)
	}
	enc := hs.Header.Value("grpc-encoding")
	msg, err := readMsg(hs, c.opts.MaxRecvMsgSize, enc)
	switch {
	case err == io.EOF:
		if st := endStatus(hs); st.Code != OK {
			return nil, st
		}
		return nil, &Status{Code: Internal, Message: "cardinality violation: expected <Recv Msg> for non server-streaming RPCs, but received <EOF>"}
	case err != nil:
		return nil, statusOf(ctx, err)
	}
	switch _, err := readMsg(hs, c.opts.MaxRecvMsgSize, enc); {
	case err == io.EOF:
		if st := endStatus(hs); st.Code != OK {
			return nil, st
		}
		return msg, nil
	case err != nil:
		return nil, statusOf(ctx, err)
	}
	return nil, &Status{Code: Internal, Message: "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message"}
}

// readMsg reads one length-prefixed message: io.EOF at a clean end of the
// stream, a *Status for a message this client refuses (compressed, larger
// than max), the stream's error otherwise.
func readMsg(hs io.Reader, max int, encoding string) ([]byte, error) {
	var pre [5]byte
	n, err := io.ReadFull(hs, pre[:])
	switch {
	case n == 0 && err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return nil, &Status{Code: Internal, Message: "grpc: stream ended inside a message's prefix"}
	case err != nil:
		return nil, err
	}
	if err := checkPrefix(pre, max, encoding); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint32(pre[1:]))
	if _, err := io.ReadFull(hs, msg); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, &Status{Code: Internal, Message: fmt.Sprintf("grpc: stream ended inside a message of %d bytes", len(msg))}
		}
		return nil, err
	}
	return msg, nil
}

// checkPrefix refuses a message this client cannot take: compressed (no
// decompressor is linked), or longer than max.
func checkPrefix(pre [5]byte, max int, encoding string) *Status {
	switch pre[0] {
	case 0:
	case 1:
		if encoding == "" || encoding == "identity" {
			return &Status{Code: Internal, Message: "grpc: compressed flag set with identity or empty encoding"}
		}
		return &Status{Code: Unimplemented, Message: fmt.Sprintf("grpc: Decompressor is not installed for grpc-encoding %q (mast-proxy's gRPC client takes no compression)", encoding)}
	default:
		return &Status{Code: Internal, Message: fmt.Sprintf("grpc: received unexpected payload format %d", pre[0])}
	}
	if n := binary.BigEndian.Uint32(pre[1:]); uint64(n) > uint64(max) {
		return &Status{Code: ResourceExhausted, Message: fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", n, max)}
	}
	return nil
}

// endStatus is the status of a stream whose body ended: from its
// trailers, or from the head of a Trailers-Only response.
func endStatus(hs *h2client.Stream) *Status {
	st, _ := endStatusMD(hs)
	return st
}

func endStatusMD(hs *h2client.Stream) (*Status, []Header) {
	tr := hs.Trailers()
	if len(tr) == 0 {
		if !hs.Header.Has("grpc-status") {
			return &Status{Code: Internal, Message: "server closed the stream without sending trailers"}, nil
		}
		tr = hs.Header
	}
	return trailerStatus(tr)
}

// readNonGRPC completes the status of a response that is not gRPC with
// the start of its body.
func readNonGRPC(hs io.Reader, st *Status) *Status {
	body := make([]byte, nonGRPCDataMax)
	n, _ := io.ReadFull(hs, body)
	return nonGRPC(st, body[:n])
}

// statusOf maps a transport error to the call's status, as grpc-go
// reports them: the context's end, a reset stream by its HTTP/2 code, a
// broken connection as Unavailable.
func statusOf(ctx context.Context, err error) error {
	var st *Status
	if errors.As(err, &st) {
		return st
	}
	if ce := ctx.Err(); ce != nil {
		return FromContext(ce)
	}
	var se *h2client.StreamError
	var pe *h2client.ProtocolError
	switch {
	case errors.Is(err, h2client.ErrDeadline):
		return &Status{Code: DeadlineExceeded, Message: context.DeadlineExceeded.Error()}
	case errors.Is(err, context.Canceled):
		return &Status{Code: Canceled, Message: err.Error()}
	case errors.As(err, &se):
		code := resetCode(se.Code)
		// A server ends a call whose deadline passed with RST_STREAM(CANCEL)
		// (grpc-go's server does, on its own timer); when ours has passed
		// too, that is why, though our context's timer may not have fired
		// yet (grpc-go's client makes the same correction).
		if d, ok := ctx.Deadline(); ok && code == Canceled && !d.After(time.Now()) {
			return &Status{Code: DeadlineExceeded, Message: context.DeadlineExceeded.Error()}
		}
		return &Status{Code: code, Message: fmt.Sprintf("stream terminated by RST_STREAM with error code: %v", se.Code)}
	case errors.As(err, &pe):
		return &Status{Code: Internal, Message: pe.Error()}
	}
	return unavailable(err)
}

// resetCode maps a RST_STREAM's error code (grpc-go's http2ErrConvTab).
func resetCode(c http2.ErrCode) Code {
	switch c {
	case http2.ErrCodeFlowControl, http2.ErrCodeEnhanceYourCalm:
		return ResourceExhausted
	case http2.ErrCodeRefusedStream:
		return Unavailable
	case http2.ErrCodeCancel:
		return Canceled
	case http2.ErrCodeInadequateSecurity:
		return PermissionDenied
	}
	return Internal
}

// NewStream opens a bidirectional stream; the request head goes out in
// the background, and Recv and Header wait for the response head.
func (c *client) NewStream(ctx context.Context, method string, md ...Header) (Stream, error) {
	r, hc, err := c.start(ctx, method, md)
	if err != nil {
		return nil, err
	}
	s := &stream{ctx: ctx, max: c.opts.MaxRecvMsgSize, ready: make(chan struct{})}
	s.body.cond.L = &s.body.mu
	r.BodyStream = &s.body
	s.stopAF = context.AfterFunc(ctx, s.cancelled)
	go s.start(hc, r)
	return s, nil
}

// stream is a Stream on an h2client stream.
type stream struct {
	ctx  context.Context
	max  int
	body sendBody

	// Set by start before ready closes.
	ready    chan struct{}
	hs       *h2client.Stream
	startErr error
	head     []Header
	encoding string

	mu       sync.Mutex
	recving  bool  // a Recv reads hs
	released bool  // hs closed
	final    error // what Recv returns from now on
	trailer  []Header
	stopAF   func() bool
	sendBuf  []byte
}

var _ Stream = (*stream)(nil)

func (s *stream) start(hc *h2client.Conn, r *h2client.Request) {
	defer close(s.ready)
	hs, err := hc.RoundTrip(s.ctx, r)
	if err != nil {
		s.startErr = statusOf(s.ctx, err)
		s.body.stop()
		return
	}
	if st := checkHead(hs.Status, hs.Header); st != nil {
		s.startErr = readNonGRPC(hs, st)
	} else if md, st := headMetadata(hs.Header); st != nil {
		s.startErr = st
	} else if !hs.Header.Has("grpc-status") {
		s.head = md // not a Trailers-Only response
	}
	s.encoding = hs.Header.Value("grpc-encoding")
	s.mu.Lock()
	s.hs = hs
	if s.startErr != nil {
		s.final = s.startErr
		s.releaseLocked()
	} else if s.ctx.Err() != nil {
		s.releaseLocked()
	}
	s.mu.Unlock()
}

// releaseLocked closes the h2client stream once no Recv reads it (s.mu
// held); a Send waiting returns io.EOF.
func (s *stream) releaseLocked() {
	if s.hs == nil || s.released || s.recving {
		return
	}
	s.released = true
	s.hs.Close()
	s.body.stop()
	if s.stopAF != nil {
		s.stopAF()
	}
}

// cancelled runs when the call's context ends.
func (s *stream) cancelled() {
	s.body.stop()
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *stream) Send(msg []byte) error {
	s.sendBuf = frame(s.sendBuf, msg)
	err := s.body.send(s.sendBuf)
	if cap(s.sendBuf) > 64<<10 {
		s.sendBuf = nil
	}
	return err
}

func (s *stream) CloseSend() error {
	s.body.closeSend()
	return nil
}

func (s *stream) Header() ([]Header, error) {
	<-s.ready
	return s.head, s.startErr
}

func (s *stream) Trailer() []Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trailer
}

func (s *stream) Recv() ([]byte, error) {
	<-s.ready
	if s.hs == nil {
		return nil, s.startErr
	}
	s.mu.Lock()
	if s.final != nil {
		defer s.mu.Unlock()
		return nil, s.final
	}
	if s.released {
		// The context ended before this Recv.
		s.final = unavailable(errors.New("stream closed"))
		if st := FromContext(s.ctx.Err()); st != nil {
			s.final = st
		}
		defer s.mu.Unlock()
		return nil, s.final
	}
	s.recving = true
	s.mu.Unlock()

	msg, err := readMsg(s.hs, s.max, s.encoding)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recving = false
	switch {
	case err == io.EOF:
		st, md := endStatusMD(s.hs)
		s.trailer = md
		s.final = io.EOF
		if st.Code != OK {
			s.final = st
		}
	case err != nil:
		s.final = statusOf(s.ctx, err)
	}
	if s.final != nil || s.ctx.Err() != nil {
		s.releaseLocked()
	}
	if s.final != nil {
		return nil, s.final
	}
	return msg, nil
}

// sendBody is a stream's request body: Send hands a framed message over
// and waits until the body writer took all of it (flow control holds the
// sender back), CloseSend ends the body, stop (the stream ended or the
// body writer quit) releases a waiting Send with io.EOF.
type sendBody struct {
	mu      sync.Mutex
	cond    sync.Cond
	cur     []byte
	ended   bool // CloseSend
	stopped bool
}

var _ h2client.BodyStopper = (*sendBody)(nil)

var errSendStopped = errors.New("rpc: stream no longer sending")

func (b *sendBody) send(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return &Status{Code: Internal, Message: "SendMsg called after CloseSend"}
	}
	if b.stopped {
		return io.EOF
	}
	b.cur = p
	b.cond.Broadcast()
	for len(b.cur) > 0 && !b.stopped {
		b.cond.Wait()
	}
	if len(b.cur) > 0 {
		b.cur = nil
		return io.EOF
	}
	return nil
}

func (b *sendBody) closeSend() {
	b.mu.Lock()
	b.ended = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *sendBody) stop() {
	b.mu.Lock()
	b.stopped = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// StopBody is h2client's signal that the stream takes no more body.
func (b *sendBody) StopBody() { b.stop() }

// Read hands the body writer what Send gave.
func (b *sendBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.cur) == 0 && !b.ended && !b.stopped {
		b.cond.Wait()
	}
	switch {
	case b.stopped:
		return 0, errSendStopped
	case len(b.cur) > 0:
		n := copy(p, b.cur)
		b.cur = b.cur[n:]
		if len(b.cur) == 0 {
			b.cond.Broadcast()
		}
		return n, nil
	}
	return 0, io.EOF
}
