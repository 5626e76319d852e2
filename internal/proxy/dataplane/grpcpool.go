package dataplane

import (
	"crypto/tls"
	"errors"
	"sync"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// grpcPool holds the gRPC connections filters use (the Mixer client's),
// one per target, over the agent's mTLS, on mast-proxy's own gRPC client;
// closed when the proxy stops.
type grpcPool struct {
	tls *tls.Config

	mu     sync.Mutex
	rpcs   map[string]rpc.Conn
	closed bool
}

var errNoIdentity = errors.New("no mesh identity: mast-proxy runs without mTLS credentials")

// rpc returns the shared rpc.Conn to target (its Close does nothing;
// close closes it).
func (g *grpcPool) rpc(target string) (rpc.Conn, error) {
	if g.tls == nil {
		return nil, errNoIdentity
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("proxy stopping")
	}
	if c := g.rpcs[target]; c != nil {
		return shared{c}, nil
	}
	c, err := rpc.Dial(target, rpc.Options{TLS: g.tls})
	if err != nil {
		return nil, err
	}
	if g.rpcs == nil {
		g.rpcs = map[string]rpc.Conn{}
	}
	g.rpcs[target] = c
	return shared{c}, nil
}

// shared is a pool's connection as a filter holds it.
type shared struct{ rpc.Conn }

func (shared) Close() error { return nil }

func (g *grpcPool) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, c := range g.rpcs {
		c.Close()
	}
	g.rpcs = nil
}
