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

// Codec is a gRPC codec for messages that are already encoded: Marshal
// takes a []byte (or *[]byte), Unmarshal fills a *[]byte with a copy of the
// message that the caller owns (decoders may alias it). Use it with
// grpc.ForceCodecV2 on a call or grpc.ForceServerCodecV2 on a server; its
// name is "proto", so the content-type stays application/grpc+proto.
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

// Unmarshal copies the message into *v (a *[]byte): gRPC reuses data's
// buffers once Unmarshal returns.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("xdswire codec: unmarshal into %T, want *[]byte", v)
	}
	*p = data.Materialize()
	return nil
}
