package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// cleanupWith closes the connection once owner (a *Filter or *Network) is
// unreachable (the listener configuration that built it was replaced).
func cleanupWith[T any](g *grpcConn, owner *T) {
	runtime.AddCleanup(owner, func(g *grpcConn) { g.close() }, g)
}

func (g *grpcConn) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done = true
	if g.conn != nil {
		g.conn.Close()
	}
}

// get returns the client connection, made on first use: HTTP/2 over a
// connection ClusterDial opens to a host of the cluster (the cluster's TLS
// included), so load balancing and mTLS follow the cluster's CDS/EDS.
func (g *grpcConn) get(svc *filter.Services) (rpc.Conn, error) {
	g.once.Do(func() {
		if svc == nil || svc.ClusterDial == nil {
			g.err = errors.New("no cluster manager to reach " + g.svc.Cluster)
			return
		}
		dial, cluster := svc.ClusterDial, g.svc.Cluster
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.done {
			g.err = errors.New("filter closed")
			return
		}
		// The dialer's connection carries the cluster's TLS: HTTP/2 with
		// prior knowledge on top of it.
		g.conn, g.err = rpc.Dial("passthrough:///"+g.svc.Authority, rpc.Options{Authority: g.svc.Authority,
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, cluster) }})
	})
	return g.conn, g.err
}

// checkMethod is the Authorization service's Check call.
const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// invoke makes the Check call with a pre-encoded CheckRequest and returns
// the CheckResponse's bytes; the service's initial_metadata goes with it.
func (g *grpcConn) invoke(ctx context.Context, svc *filter.Services, req []byte) ([]byte, error) {
	conn, err := g.get(svc)
	if err != nil {
		return nil, err
	}
	return conn.Invoke(ctx, checkMethod, req, g.metadata...)
}

// checkGRPC calls envoy.service.auth.v3.Authorization/Check.
func (f *Filter) checkGRPC(ctx context.Context, r *filter.Request, body []byte, partial bool) (outcome, error) {
	req, err := f.checkRequest(r, body, partial, time.Now())
	if err != nil {
		return outcome{}, err
	}
	raw, err := f.grpc.invoke(ctx, r.Services, req)
	if err != nil {
		return outcome{}, err
	}
	resp, err := pbwire.Decode(wireTable, wireCheckResponse, raw)
	if err != nil {
		return outcome{}, fmt.Errorf("decode CheckResponse: %w", err)
	}
	return decodeCheckResponse(resp), nil
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
