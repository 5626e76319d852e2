package ads

import (
	"github.com/cespare/xxhash/v2"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// A resource the generator assembled in wire form may come in pieces (a
// route configuration: the changed virtual hosts in a fresh buffer, the
// rest referenced where the previous assembly holds them). Its Any then has
// no value, and the response a stream hands gRPC carries the pieces beside
// the message: sotwResponse, deltaResponse. The server's codec writes each
// piece as one of the response's buffers, so the resource is never joined
// into one copy; any other codec gets the message with the values joined
// (ProtoReflect), so the bytes on the wire are the same either way
// (TestPiecedResponsesMatchJoined).

// piecedValue is the value of the resource at index in a response's
// resources, in pieces.
type piecedValue struct {
	index  int
	pieces [][]byte
}

// sotwResponse is a DiscoveryResponse as a SotW stream hands it to gRPC:
// pieced lists, by ascending index, the resources whose Any has no value
// and their values' pieces.
type sotwResponse struct {
	msg    *discoveryv3.DiscoveryResponse
	pieced []piecedValue
}

// deltaResponse is sotwResponse for a DeltaDiscoveryResponse: indexes are
// of msg.Resources, whose Resource is the Any without a value.
type deltaResponse struct {
	msg    *discoveryv3.DeltaDiscoveryResponse
	pieced []piecedValue
}

// ProtoReflect is the message with the pieced values joined, for a codec
// other than the server's (gRPC's own marshals any proto.Message).
func (r *sotwResponse) ProtoReflect() protoreflect.Message { return r.joined().ProtoReflect() }

// ProtoReflect is sotwResponse.ProtoReflect's.
func (r *deltaResponse) ProtoReflect() protoreflect.Message { return r.joined().ProtoReflect() }

// joined returns the message with the pieced values in their Anys (a copy
// when there are any).
func (r *sotwResponse) joined() *discoveryv3.DiscoveryResponse {
	if len(r.pieced) == 0 {
		return r.msg
	}
	m := proto.Clone(r.msg).(*discoveryv3.DiscoveryResponse)
	for _, p := range r.pieced {
		m.Resources[p.index] = joinedAny(m.Resources[p.index], p.pieces)
	}
	return m
}

func (r *deltaResponse) joined() *discoveryv3.DeltaDiscoveryResponse {
	if len(r.pieced) == 0 {
		return r.msg
	}
	m := proto.Clone(r.msg).(*discoveryv3.DeltaDiscoveryResponse)
	for _, p := range r.pieced {
		m.Resources[p.index].Resource = joinedAny(m.Resources[p.index].Resource, p.pieces)
	}
	return m
}

func joinedAny(a *anypb.Any, pieces [][]byte) *anypb.Any {
	v := make([]byte, 0, piecesLen(pieces))
	for _, p := range pieces {
		v = append(v, p...)
	}
	return &anypb.Any{TypeUrl: a.GetTypeUrl(), Value: v}
}

// valueAt returns the pieces of the value of resource i when pieced holds
// them (nil otherwise) and the rest of pieced; pieced is walked in order.
func valueAt(pieced []piecedValue, i int) ([][]byte, []piecedValue) {
	if len(pieced) > 0 && pieced[0].index == i {
		return pieced[0].pieces, pieced[1:]
	}
	return nil, pieced
}

func piecesLen(pieces [][]byte) int {
	n := 0
	for _, p := range pieces {
		n += len(p)
	}
	return n
}

// hashPieces is hashBytes of the pieces joined.
func hashPieces(pieces [][]byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	for _, p := range pieces {
		d.Write(p)
	}
	return d.Sum64()
}

// piecedStream adapts a gRPC server stream to the responses of one ADS
// variant: Send hands gRPC the response with its pieces.
type piecedStream[R any] struct{ grpc.ServerStream }

func (s piecedStream[R]) Send(r *R) error { return s.SendMsg(r) }
