package rpc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/mast-mesh/mast/internal/proxy/h2server"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Server is a minimal gRPC server on h2server for the agent's SDS: it
// serves the methods registered with Handle (unary or streaming alike: a
// handler reads with Recv and answers with Send), in plaintext, with no
// compression, interceptors or reflection. An unknown method is
// Unimplemented, a request that is not gRPC gets 415.
type Server struct {
	methods map[string]ServerHandler
	cfg     h2server.Config
	pools   h2server.Pools
}

// ServerHandler serves one call; its error (a *Status, or any error as
// Unknown) becomes the call's status, nil is OK.
type ServerHandler func(ss *ServerStream) error

// NewServer returns a Server without methods.
func NewServer() *Server {
	return &Server{methods: map[string]ServerHandler{},
		cfg: h2server.Config{MaxConcurrentStreams: 100, MaxHeaderBytes: 16 << 10, Window: 1 << 20}}
}

// Handle registers h for method ("/package.Service/Method").
func (s *Server) Handle(method string, h ServerHandler) { s.methods[method] = h }

// Serve accepts connections on l until ctx ends (then it returns nil) or
// l fails.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h2server.Serve(ctx, nc, bufio.NewReader(nc), &s.cfg, serverHandler{s: s, ctx: ctx}, &s.pools)
		}()
	}
}

type serverHandler struct {
	s   *Server
	ctx context.Context
}

var _ h2server.Handler = serverHandler{}

// call is a stream's per-call state (h2server.Stream.User).
type call struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (h serverHandler) Start(st *h2server.Stream) {
	ctx, cancel := context.WithCancel(h.ctx)
	st.User = &call{ctx: ctx, cancel: cancel}
}

func (h serverHandler) Cancel(st *h2server.Stream, _ bool) {
	if c, ok := st.User.(*call); ok {
		c.cancel()
	}
}

func (h serverHandler) Serve(st *h2server.Stream) {
	c := st.User.(*call)
	defer c.cancel()
	if st.Method != "POST" || !grpcContentType(st.Header.Value("content-type")) {
		st.WriteHead(http.StatusUnsupportedMediaType, headers.List{{Name: "content-type", Value: "text/plain"}}, -1)
		st.Write([]byte("gRPC requests only\n"))
		st.Finish(nil)
		return
	}
	ss := &ServerStream{ctx: c.ctx, st: st}
	var err error
	md, st2 := headMetadata(st.Header)
	ss.md = md
	switch fn := h.s.methods[st.Target]; {
	case st2 != nil:
		err = st2
	case fn == nil:
		err = Errorf(Unimplemented, "unknown method %s", st.Target)
	default:
		err = fn(ss)
	}
	// Wake a Recv still waiting and keep later ones off the stream,
	// which h2server recycles once Serve returns.
	st.Expire(false)
	ss.rmu.Lock()
	ss.done = true
	ss.rmu.Unlock()
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.head()
	code, msg := OK, ""
	if err != nil {
		var s *Status
		switch {
		case errors.As(err, &s):
			code, msg = s.Code, s.Message
		case FromContext(err) != nil:
			code, msg = FromContext(err).Code, err.Error()
		default:
			code, msg = Unknown, err.Error()
		}
	}
	tr := headers.List{{Name: "grpc-status", Value: strconv.Itoa(int(code))}}
	if msg != "" {
		tr = append(tr, headers.Field{Name: "grpc-message", Value: encodeMessage(msg)})
	}
	st.Finish(tr)
}

// ServerStream is one call as its handler sees it.
type ServerStream struct {
	ctx  context.Context
	st   *h2server.Stream
	md   []Header
	rmu  sync.Mutex // held by Recv while it reads st
	done bool       // the handler returned: st is no longer this call's
	wmu  sync.Mutex
	sent bool // the response head went out
}

// Context ends when the client cancels or the server stops.
func (ss *ServerStream) Context() context.Context { return ss.ctx }

// Metadata is the call's request metadata (-bin values decoded).
func (ss *ServerStream) Metadata() []Header { return ss.md }

// maxServerRecv bounds a request message.
const maxServerRecv = 4 << 20

// Recv returns the next request message, io.EOF once the client
// half-closed.
func (ss *ServerStream) Recv() ([]byte, error) {
	ss.rmu.Lock()
	defer ss.rmu.Unlock()
	if ss.done {
		return nil, io.EOF
	}
	return readMsg(ss.st, maxServerRecv, "")
}

// Send sends one response message.
func (ss *ServerStream) Send(msg []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.head()
	if _, err := ss.st.Write(frame(nil, msg)); err != nil {
		return err
	}
	return ss.st.Flush()
}

// head sets the response head once (wmu held).
func (ss *ServerStream) head() {
	if !ss.sent {
		ss.sent = true
		ss.st.WriteHead(http.StatusOK, headers.List{{Name: "content-type", Value: contentType}}, -1)
	}
}
