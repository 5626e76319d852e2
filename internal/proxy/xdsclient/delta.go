package xdsclient

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// deltaState is the client's view of one type on the incremental protocol:
// every resource the server sent, by name, with its version.
type deltaState struct {
	resources map[string]*anypb.Any
	versions  map[string]string
	names     []string // subscribed (non-wildcard types)
	sent      bool
}

// deltaStream runs one incremental (Delta) ADS stream. The merged resource
// set of a type is handed to the handler as a state-of-the-world update, so
// validation and last-good handling are the same for both protocols.
func (c *Client) deltaStream(ctx context.Context, conn rpc.Conn) (healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := openStream(ctx, conn, adsDelta)
	if err != nil {
		return false, fmt.Errorf("open delta stream: %w", err)
	}
	send, sendErr := startSender(ctx, cancel, func(r *xdswire.DeltaRequest) error { return sendMsg(st, r.Marshal) })
	first := true
	for _, t := range order {
		ds := c.delta[t]
		ds.sent = false
		req := &xdswire.DeltaRequest{TypeURL: t, InitialResourceVersions: maps.Clone(ds.versions)}
		if t == xdsparse.EndpointType || t == xdsparse.RouteType {
			ds.names = c.h.Names(t)
			if len(ds.names) == 0 {
				continue
			}
			req.Subscribe = ds.names
		}
		if first {
			req.Node = c.cfg.Node
			first = false
		}
		ds.sent = true
		send(req)
	}
	if req := c.od.streamStarted(send); req != nil {
		if first {
			req.Node = c.cfg.Node
		}
		send(req)
	}
	defer c.od.streamEnded()
	c.connected.Store(true)
	defer c.connected.Store(false)
	// Cancelled first, so that a report blocked on this stream's full
	// queue gives up before detaching waits for it.
	detach := c.health.attach(nil, send)
	defer func() { cancel(); detach() }()
	for {
		resp, err := recvMsg(st, sendErr, xdswire.DecodeDeltaResponse)
		if err != nil {
			return healthy, err
		}
		if !healthy {
			c.log.Info("xds delta stream established", "addr", c.cfg.Address)
		}
		healthy = true
		c.handleDelta(resp, send)
	}
}

func (c *Client) handleDelta(resp *xdswire.DeltaResponse, send func(*xdswire.DeltaRequest)) {
	t := resp.TypeURL
	ds, ok := c.delta[t]
	if !ok {
		c.log.Warn("xds: delta response of unknown type ignored", "type", t)
		return
	}
	for _, r := range resp.Resources {
		if r.Resource == nil {
			continue
		}
		ds.resources[r.Name] = r.Resource
		ds.versions[r.Name] = r.Version
	}
	for _, n := range resp.RemovedResources {
		delete(ds.resources, n)
		delete(ds.versions, n)
	}
	names := make([]string, 0, len(ds.resources))
	for n := range ds.resources {
		names = append(names, n)
	}
	sort.Strings(names)
	all := make([]*anypb.Any, 0, len(names))
	for _, n := range names {
		all = append(all, ds.resources[n])
	}
	err := c.h.Apply(t, resp.SystemVersionInfo, all)
	if t == xdsparse.ListenerType || t == xdsparse.ClusterType {
		dep := xdsparse.RouteType
		if t == xdsparse.ClusterType {
			dep = xdsparse.EndpointType
		}
		want := c.h.Names(dep)
		dd := c.delta[dep]
		if !slices.Equal(want, dd.names) {
			sub, unsub := diff(dd.names, want)
			dd.names = want
			for _, n := range unsub {
				delete(dd.resources, n)
				delete(dd.versions, n)
			}
			send(&xdswire.DeltaRequest{TypeURL: dep, Subscribe: sub, Unsubscribe: unsub})
		}
	}
	ack := &xdswire.DeltaRequest{TypeURL: t, ResponseNonce: resp.Nonce}
	if err != nil {
		c.nacks.Add(1)
		c.log.Warn("xds: delta NACK", "type", t, "err", err)
		ack.ErrorDetail = &xdswire.Status{Code: int32(rpc.InvalidArgument), Message: err.Error()}
	} else {
		c.acks.Add(1)
	}
	send(ack)
	if t == xdsparse.VirtualHostType {
		c.od.answered(resp)
	}
}

// diff returns the names to subscribe (in want, not in have) and to
// unsubscribe (in have, not in want).
func diff(have, want []string) (sub, unsub []string) {
	h := map[string]bool{}
	for _, n := range have {
		h[n] = true
	}
	w := map[string]bool{}
	for _, n := range want {
		w[n] = true
		if !h[n] {
			sub = append(sub, n)
		}
	}
	for _, n := range have {
		if !w[n] {
			unsub = append(unsub, n)
		}
	}
	return sub, unsub
}
