// Package rpctest runs a grpc-go server with a test service and checks an
// rpc.Conn against it, so every rpc.Conn implementation (the rpcgrpc
// adapter, mast-proxy's own transport) is held to grpc-go's behaviour. It
// is imported by tests only.
package rpctest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/rpc/rpcgrpc"
)

// codec moves the test service's messages as bytes and the health
// service's as generated messages.
type codec struct{ rpcgrpc.Codec }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		b, err := proto.Marshal(m)
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return c.Codec.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data.Materialize(), m)
	}
	return c.Codec.Unmarshal(data, v)
}

// The test service's methods. Metadata the client sends steers them:
//   - x-code, x-message-bin: end the call with this status instead of OK;
//   - x-size: Unary answers with a message of this many bytes.
//
// Unary echoes the request (or sends x-size bytes), with response header
// x-echo carrying the client's x-echo value and trailer x-trailer "unary".
// Stream echoes every message until the client half-closes, then ends
// with trailer x-trailer "stream". Sleep waits for the call's context and
// reports its error on Server.Ended. Push sends x-size messages of one
// byte each and then waits for the client to close or cancel.
const (
	Unary  = "/mast.test.Echo/Unary"
	Stream = "/mast.test.Echo/Stream"
	Sleep  = "/mast.test.Echo/Sleep"
	Push   = "/mast.test.Echo/Push"
	Health = "/grpc.health.v1.Health/Check"
)

// Server is a running grpc-go server with the test service and the
// standard health service (SERVING for "", NOT_SERVING for "down").
type Server struct {
	Addr  string
	Ended chan error // Sleep's context errors, as the server saw them
	grpc  *grpc.Server
	mu    sync.Mutex
	md    []metadata.MD
}

// Start serves on addr ("127.0.0.1:0" for a fresh port), over TLS when
// tlsConf is not nil. The server stops when the test ends.
func Start(t testing.TB, addr string, tlsConf *tls.Config) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("rpctest: listen %s: %v", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), Ended: make(chan error, 16)}
	opts := []grpc.ServerOption{grpc.UnknownServiceHandler(s.handle), grpc.ForceServerCodecV2(codec{}),
		grpc.MaxRecvMsgSize(64 << 20)}
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	s.grpc = grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, hs)
	go s.grpc.Serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server at once, ending its calls.
func (s *Server) Stop() { s.grpc.Stop() }

// Metadata returns the metadata of every call the server received.
func (s *Server) Metadata() []metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]metadata.MD(nil), s.md...)
}

func (s *Server) handle(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	md, _ := metadata.FromIncomingContext(ss.Context())
	s.mu.Lock()
	s.md = append(s.md, md)
	s.mu.Unlock()
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	end := func() error {
		c := first("x-code")
		if c == "" {
			return nil
		}
		n, err := strconv.Atoi(c)
		if err != nil {
			return status.Error(codes.Internal, "rpctest: bad x-code")
		}
		return status.Error(codes.Code(n), first("x-message-bin"))
	}
	switch method {
	case Unary:
		var req []byte
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		if v := first("x-echo"); v != "" {
			ss.SetHeader(metadata.Pairs("x-echo", v))
		}
		ss.SetTrailer(metadata.Pairs("x-trailer", "unary"))
		if err := end(); err != nil {
			return err
		}
		if n, _ := strconv.Atoi(first("x-size")); n > 0 {
			req = bytes.Repeat([]byte{'z'}, n)
		}
		return ss.SendMsg(req)
	case Stream:
		for {
			var m []byte
			err := ss.RecvMsg(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if err := ss.SendMsg(m); err != nil {
				return err
			}
		}
		ss.SetTrailer(metadata.Pairs("x-trailer", "stream"))
		return end()
	case Sleep:
		<-ss.Context().Done()
		s.Ended <- ss.Context().Err()
		return ss.Context().Err()
	case Push:
		n, _ := strconv.Atoi(first("x-size"))
		for i := range n {
			if err := ss.SendMsg([]byte{byte(i)}); err != nil {
				return err
			}
		}
		var m []byte
		for ss.RecvMsg(&m) == nil {
		}
		return end()
	}
	return status.Errorf(codes.Unimplemented, "rpctest: unknown method %s", method)
}

// HealthRequest is grpc.health.v1.HealthCheckRequest{service} encoded by
// hand (field 1, a string), for conformance checks that need no codec.
func HealthRequest(service string) []byte {
	if service == "" {
		return nil
	}
	return append([]byte{0x0a, byte(len(service))}, service...)
}

// Ctx returns a context ended with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
