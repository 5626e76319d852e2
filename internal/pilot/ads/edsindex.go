package ads

import (
	"slices"
	"sync"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// clusterIndex maps the EDS cluster names proxies subscribe to onto their
// service hosts (Config.ClusterHost), once per distinct name for the whole
// server, and back from a host to its names. An endpoint-only push then finds
// a proxy's changed clusters by looking up the changed hosts' few names in
// its subscription, instead of parsing every subscribed name of every proxy
// on every push (a thousand names per proxy at 1,000 services).
//
// Names are added as subscriptions name them and never removed; the table
// is bounded (maxIndexed), and a name left out is treated like one
// ClusterHost cannot map: regenerated on every endpoint-only push, which is
// what every name cost before.
type clusterIndex struct {
	host func(string) (string, bool)

	mu     sync.RWMutex
	hostOf map[name]string   // "" when host cannot map the name
	byHost map[string][]name // copy on write: readers keep the slice they got
}

// maxIndexed bounds the names indexed, as requestDecoder bounds its table.
const maxIndexed = 1 << 17

func newClusterIndex(host func(string) (string, bool)) *clusterIndex {
	return &clusterIndex{host: host, hostOf: map[name]string{}, byHost: map[string][]name{}}
}

// unmapped indexes the names of s and returns, sorted, those that have no
// host in the index (ClusterHost cannot map them, or the table is full).
func (x *clusterIndex) unmapped(s nameSet) []string {
	var out []string
	var missing []name
	x.mu.RLock()
	for _, n := range s {
		h, ok := x.hostOf[n]
		switch {
		case !ok:
			missing = append(missing, n)
		case h == "":
			out = append(out, n.Value())
		}
	}
	x.mu.RUnlock()
	if len(missing) == 0 {
		return out
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, n := range missing {
		h, ok := x.hostOf[n]
		if !ok {
			if len(x.hostOf) >= maxIndexed {
				out = append(out, n.Value())
				continue
			}
			h, ok = x.host(n.Value())
			if !ok {
				h = ""
			}
			x.hostOf[n] = h
			if h != "" {
				names := make([]name, len(x.byHost[h]), len(x.byHost[h])+1)
				copy(names, x.byHost[h])
				x.byHost[h] = append(names, n)
			}
		}
		if h == "" {
			out = append(out, n.Value())
		}
	}
	slices.Sort(out)
	return out
}

// namesOf returns the indexed names of host; the caller must not modify it.
func (x *clusterIndex) namesOf(host string) []name {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byHost[host]
}

// edsState is a watch's view of the cluster index, valid while the
// subscription is unchanged. Written by the loop under conn.mu.
type edsState struct {
	gen      uint64 // watch.namesGen it was computed for
	ready    bool
	unmapped []string // subscribed names without an indexed host, sorted
}

// edsNames returns the subscribed clusters an endpoint-only push must
// regenerate, in order: those whose host changed, plus those ClusterHost
// cannot map.
func (c *conn) edsNames(w *watch, req *model.PushRequest) []string {
	x := c.s.clusters
	if x == nil {
		return w.sortedNames()
	}
	if !w.eds.ready || w.eds.gen != w.namesGen {
		st := edsState{gen: w.namesGen, ready: true, unmapped: x.unmapped(w.names)}
		c.mu.Lock() // Server.Push reads it (wantsEndpoints)
		w.eds = st
		c.mu.Unlock()
	}
	out := slices.Clone(w.eds.unmapped)
	for h := range req.EDSHosts {
		for _, n := range x.namesOf(h) {
			if w.names.hasName(n) {
				out = append(out, n.Value())
			}
		}
	}
	if len(out) > len(w.eds.unmapped) {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// wantsEndpoints reports whether an endpoint-only push for hosts can send
// this connection anything, so that Server.Push wakes only the connections
// subscribed to a changed host's clusters: those with a wildcard endpoint
// watch, a subscribed cluster of one of the hosts, or subscribed names the
// index cannot map. A subscription the loop has not indexed yet counts as
// wanting them (the loop indexes it on that push).
func (c *conn) wantsEndpoints(x *clusterIndex, hosts map[string]struct{}) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.watches[EndpointType]
	switch {
	case w == nil:
		return false
	case w.wildcard || !w.eds.ready || w.eds.gen != w.namesGen || len(w.eds.unmapped) > 0:
		return true
	}
	for h := range hosts {
		for _, n := range x.namesOf(h) {
			if w.names.hasName(n) {
				return true
			}
		}
	}
	return false
}
