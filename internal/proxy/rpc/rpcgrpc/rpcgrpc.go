// Package rpcgrpc adapts a grpc-go client connection to rpc.Conn: messages
// travel as the caller's bytes (a pass-through codec named "proto", so the
// content-type stays application/grpc+proto) and grpc-go's status errors
// become *rpc.Status. It lets callers move to rpc.Conn before mast-proxy's
// own transport carries them, and serves tests as the reference.
package rpcgrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Codec is a gRPC codec that moves messages as bytes: Marshal takes []byte
// or *[]byte, Unmarshal copies the message into a *[]byte.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Name is the content-subtype.
func (Codec) Name() string { return "proto" }

// Marshal returns the message's bytes.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case []byte:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case *[]byte:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return nil, fmt.Errorf("rpcgrpc codec: marshal %T, want []byte", v)
}

// Unmarshal copies the message into v, a *[]byte.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rpcgrpc codec: unmarshal into %T, want *[]byte", v)
	}
	*m = data.Materialize()
	return nil
}

// conn is a grpc.ClientConnInterface seen as an rpc.Conn.
type conn struct {
	cc grpc.ClientConnInterface
}

var _ rpc.Conn = conn{}

// New returns cc as an rpc.Conn; Close closes cc.
func New(cc *grpc.ClientConn) rpc.Conn { return conn{cc: cc} }

// Wrap returns cc as an rpc.Conn whose Close does nothing (cc is owned
// elsewhere, as a pool's shared connection is).
func Wrap(cc grpc.ClientConnInterface) rpc.Conn { return conn{cc: noClose{cc}} }

type noClose struct{ grpc.ClientConnInterface }

func (c conn) Close() error {
	if cl, ok := c.cc.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}

func outgoing(ctx context.Context, md []rpc.Header) context.Context {
	if len(md) == 0 {
		return ctx
	}
	kv := make([]string, 0, 2*len(md))
	for _, h := range md {
		kv = append(kv, h.Name, h.Value)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

func (c conn) Invoke(ctx context.Context, method string, req []byte, md ...rpc.Header) ([]byte, error) {
	var resp []byte
	if err := c.cc.Invoke(outgoing(ctx, md), method, req, &resp, grpc.ForceCodecV2(Codec{})); err != nil {
		return nil, Status(err)
	}
	return resp, nil
}

var bidi = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

func (c conn) NewStream(ctx context.Context, method string, md ...rpc.Header) (rpc.Stream, error) {
	s, err := c.cc.NewStream(outgoing(ctx, md), bidi, method, grpc.ForceCodecV2(Codec{}))
	if err != nil {
		return nil, Status(err)
	}
	return stream{s}, nil
}

type stream struct{ s grpc.ClientStream }

var _ rpc.Stream = stream{}

func (s stream) Send(msg []byte) error {
	err := s.s.SendMsg(msg)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return Status(err)
}

func (s stream) Recv() ([]byte, error) {
	var m []byte
	if err := s.s.RecvMsg(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, Status(err)
	}
	return m, nil
}

func (s stream) CloseSend() error { return s.s.CloseSend() }

func (s stream) Header() ([]rpc.Header, error) {
	md, err := s.s.Header()
	if err != nil {
		return nil, Status(err)
	}
	return headers(md), nil
}

func (s stream) Trailer() []rpc.Header { return headers(s.s.Trailer()) }

func headers(md metadata.MD) []rpc.Header {
	if len(md) == 0 {
		return nil
	}
	var out []rpc.Header
	for _, k := range slices.Sorted(maps.Keys(md)) {
		for _, v := range md[k] {
			out = append(out, rpc.Header{Name: k, Value: v})
		}
	}
	return out
}

// Status maps a grpc-go error to *rpc.Status (nil stays nil; an error
// grpc-go does not know becomes Unknown, a context error Canceled or
// DeadlineExceeded, as status.FromContextError does).
func Status(err error) error {
	if err == nil {
		return nil
	}
	if s := rpc.FromContext(err); s != nil {
		return s
	}
	st, _ := status.FromError(err)
	return &rpc.Status{Code: rpc.Code(st.Code()), Message: st.Message()}
}
