package xdsclient

import (
	"context"
	"fmt"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// The ADS methods: mast-proxy encodes and decodes the messages itself
// (xdswire), so it links no generated stubs.
const (
	adsSotW  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	adsDelta = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

func openStream(ctx context.Context, conn rpc.Conn, method string) (rpc.Stream, error) {
	return conn.NewStream(ctx, method)
}

// sendMsg encodes a request and sends it.
func sendMsg(st rpc.Stream, marshal func() ([]byte, error)) error {
	b, err := marshal()
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	return st.Send(b)
}

// recvMsg receives one response and decodes it. A receive error is
// replaced by the sender's, when it failed first; a response that does
// not decode ends the stream (Internal, as grpc-go reported its codec's
// failure).
func recvMsg[T any](st rpc.Stream, sendErr <-chan error, decode func([]byte) (*T, error)) (*T, error) {
	b, err := st.Recv()
	if err != nil {
		select {
		case e := <-sendErr:
			err = e
		default:
		}
		return nil, fmt.Errorf("receive: %w", err)
	}
	resp, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", rpc.Errorf(rpc.Internal, "grpc: failed to unmarshal the received message: %v", err))
	}
	return resp, nil
}
