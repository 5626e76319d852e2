package xdsclient

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// OnDemandRoutesMeta is the node metadata key ("true") with which a proxy
// asks mastd for VHDS route configurations (mastd's model.OnDemandRoutesKey).
const OnDemandRoutesMeta = "MAST_VHDS"

// ErrNoStream is returned by OnDemand when no Delta stream is up to ask on.
var ErrNoStream = errors.New("xds: no incremental stream to ask on")

// onDemand is the client's state of on-demand virtual hosts (VHDS): the
// names asked for (re-subscribed on every new stream), which of them the
// server has answered, and the requests waiting for an answer.
type onDemand struct {
	mu       sync.Mutex
	send     func(*xdswire.DeltaRequest) // of the current stream; nil when none
	names    map[string]bool             // asked for -> answered on the current stream
	waiters  map[string][]chan struct{}
	versions map[string]string
}

func newOnDemand() *onDemand {
	return &onDemand{names: map[string]bool{}, waiters: map[string][]chan struct{}{}, versions: map[string]string{}}
}

// OnDemand asks the server for the virtual host name ("ROUTECONFIG/HOST")
// and returns once the response answering it (the virtual host, or its
// absence) has been applied, or ctx ends. A name answered before returns at
// once: the server pushes its changes without being asked again.
func (c *Client) OnDemand(ctx context.Context, name string) error {
	od := c.od
	od.mu.Lock()
	if od.send == nil {
		od.mu.Unlock()
		return ErrNoStream
	}
	answered, asked := od.names[name]
	if asked && answered {
		od.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	od.waiters[name] = append(od.waiters[name], ch)
	send := od.send
	if !asked {
		od.names[name] = false
	}
	od.mu.Unlock()
	if !asked {
		send(&xdswire.DeltaRequest{TypeURL: xdsparse.VirtualHostType, Subscribe: []string{name}})
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamStarted makes send the stream to ask on and returns the request
// re-subscribing to every name asked for before (nil when none): their
// answers are awaited again on the new stream.
func (od *onDemand) streamStarted(send func(*xdswire.DeltaRequest)) *xdswire.DeltaRequest {
	od.mu.Lock()
	defer od.mu.Unlock()
	od.send = send
	if len(od.names) == 0 {
		return nil
	}
	for n := range od.names {
		od.names[n] = false
	}
	return &xdswire.DeltaRequest{TypeURL: xdsparse.VirtualHostType,
		Subscribe: slices.Sorted(maps.Keys(od.names)), InitialResourceVersions: maps.Clone(od.versions)}
}

func (od *onDemand) streamEnded() {
	od.mu.Lock()
	od.send = nil
	od.mu.Unlock()
}

// answered records the names a response answered and wakes their waiters;
// call it after the response was applied.
func (od *onDemand) answered(resp *xdswire.DeltaResponse) {
	od.mu.Lock()
	defer od.mu.Unlock()
	mark := func(n string) {
		if _, ok := od.names[n]; ok {
			od.names[n] = true
		}
		for _, ch := range od.waiters[n] {
			close(ch)
		}
		delete(od.waiters, n)
	}
	for _, r := range resp.Resources {
		if r.Resource != nil {
			od.versions[r.Name] = r.Version
		} else {
			delete(od.versions, r.Name)
		}
		mark(r.Name)
		for _, a := range r.Aliases {
			mark(a)
		}
	}
	for _, n := range resp.RemovedResources {
		delete(od.versions, n)
		mark(n)
	}
}
