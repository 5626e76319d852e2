// Package xdswire is the xDS transport's messages without go-control-plane:
// the discovery requests and responses (state of the world and
// incremental), the core/v3 Node, google.rpc.Status and a gRPC codec that
// moves them as bytes. mast-proxy encodes what it sends and decodes what it
// receives with protowire, so its binary does not link the generated Envoy
// packages (their code and descriptor tables cost resident memory in every
// sidecar); the bytes on the wire are those of the generated types, which
// the tests prove against them.
package xdswire

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Codec is a gRPC codec for this package's messages: Marshal takes the
// encoded bytes ([]byte or *[]byte); Unmarshal decodes into a *Response,
// *DeltaResponse or *Request straight from gRPC's pooled buffer (each
// resource's value is copied out, as proto.Unmarshal did, so a resource kept
// across updates never pins a whole response), or copies the message into a
// *[]byte. Use it with grpc.ForceCodecV2 on a call or
// grpc.ForceServerCodecV2 on a server; its name is "proto", so the
// content-type stays application/grpc+proto.
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
	return nil, fmt.Errorf("xdswire codec: marshal %T, want []byte", v)
}

// Unmarshal decodes the message into v; gRPC reuses data's buffers once it
// returns.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	var decode func([]byte) error
	switch m := v.(type) {
	case *[]byte:
		*m = data.Materialize()
		return nil
	case *Response:
		decode = m.unmarshal
	case *DeltaResponse:
		decode = m.unmarshal
	case *Request:
		decode = m.unmarshal
	default:
		return fmt.Errorf("xdswire codec: unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return decode(buf.ReadOnlyData())
}
