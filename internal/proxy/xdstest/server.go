// Package xdstest runs go-control-plane's own snapshot-cache ADS server and
// builds xDS resources, so the proxy's tests are driven by the reference
// implementation of the xDS protocol. It is imported by tests only.
package xdstest

import (
	"context"
	"net"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// Server is a running ADS server backed by a snapshot cache.
type Server struct {
	Addr  string
	Cache cachev3.SnapshotCache
	grpc  *grpc.Server
	mu    sync.Mutex
	reqs  []*discoveryv3.DiscoveryRequest
	delta []*discoveryv3.DeltaDiscoveryRequest
	cond  *sync.Cond
}

// Start serves on addr ("127.0.0.1:0" for a fresh port). The cache is kept
// across restarts when cache is non-nil.
func Start(t testing.TB, addr string, cache cachev3.SnapshotCache) *Server {
	t.Helper()
	if cache == nil {
		cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("xdstest: listen %s: %v", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), Cache: cache}
	s.cond = sync.NewCond(&s.mu)
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.cond.Broadcast()
		s.mu.Unlock()
		return nil
	}, StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
		s.mu.Lock()
		s.delta = append(s.delta, r)
		s.cond.Broadcast()
		s.mu.Unlock()
		return nil
	}}
	srv := serverv3.NewServer(context.Background(), cache, cb)
	s.grpc = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, srv)
	go s.grpc.Serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server and closes its streams.
func (s *Server) Stop() {
	s.grpc.Stop()
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Set publishes resources as version for node.
func (s *Server) Set(t testing.TB, node, version string, res map[resource.Type][]types.Resource) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatalf("xdstest: snapshot: %v", err)
	}
	if err := s.Cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatalf("xdstest: set snapshot: %v", err)
	}
}

// WaitRequest blocks until a request received so far (or later) satisfies
// pred and returns it. It gives up when ctx is done.
func (s *Server) WaitRequest(ctx context.Context, pred func(*discoveryv3.DiscoveryRequest) bool) *discoveryv3.DiscoveryRequest {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(s.reqs); seen++ {
			if pred(s.reqs[seen]) {
				return s.reqs[seen]
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		s.cond.Wait()
	}
}

// WaitDelta blocks until a delta request satisfies pred; false when ctx ends first.
func (s *Server) WaitDelta(ctx context.Context, pred func(*discoveryv3.DeltaDiscoveryRequest) bool) bool {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for seen := 0; ; {
		for ; seen < len(s.delta); seen++ {
			if pred(s.delta[seen]) {
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
		s.cond.Wait()
	}
}

// Requests returns a copy of all requests received.
func (s *Server) Requests() []*discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DiscoveryRequest(nil), s.reqs...)
}
