package dataplane

import (
	"crypto/tls"
	"errors"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpcgrpc"
)

// grpcPool holds the gRPC connections filters use (the Mixer client's),
// one per target, over the agent's mTLS; closed when the proxy stops.
type grpcPool struct {
	tls *tls.Config

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

var errNoIdentity = errors.New("no mesh identity: mast-proxy runs without mTLS credentials")

func (g *grpcPool) get(target string) (grpc.ClientConnInterface, error) {
	if g.tls == nil {
		return nil, errNoIdentity
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("proxy stopping")
	}
	if c := g.conns[target]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewTLS(g.tls)))
	if err != nil {
		return nil, err
	}
	if g.conns == nil {
		g.conns = map[string]*grpc.ClientConn{}
	}
	g.conns[target] = c
	return c, nil
}

// rpc is get as an rpc.Conn (Close does nothing; close closes it).
func (g *grpcPool) rpc(target string) (rpc.Conn, error) {
	c, err := g.get(target)
	if err != nil {
		return nil, err
	}
	return rpcgrpc.Wrap(c), nil
}

func (g *grpcPool) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}
