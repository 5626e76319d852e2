package xdsclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// The ADS methods, called with xdswire's raw codec: mast-proxy encodes and
// decodes the messages itself (xdswire), so it links no generated stubs.
const (
	adsSotW  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	adsDelta = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

func openStream(ctx context.Context, conn *grpc.ClientConn, method string) (grpc.ClientStream, error) {
	desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
	return conn.NewStream(ctx, desc, method, grpc.ForceCodecV2(xdswire.Codec{}))
}

// sendMsg encodes a request and sends it.
func sendMsg(st grpc.ClientStream, marshal func() ([]byte, error)) error {
	b, err := marshal()
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	return st.SendMsg(b)
}

// recvMsg receives one response, decoded by xdswire.Codec. A receive error
// is replaced by the sender's, when it failed first; a response that does
// not decode ends the stream, as the generated decoder's error did.
func recvMsg[T any](st grpc.ClientStream, sendErr <-chan error) (*T, error) {
	resp := new(T)
	if err := st.RecvMsg(resp); err != nil {
		select {
		case e := <-sendErr:
			err = e
		default:
		}
		return nil, fmt.Errorf("receive: %w", err)
	}
	return resp, nil
}
