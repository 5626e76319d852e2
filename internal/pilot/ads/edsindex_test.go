package ads

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// edsNamesByParsing is what an endpoint-only push regenerated before the
// cluster index: every subscribed name parsed, in order.
func edsNamesByParsing(w *watch, req *model.PushRequest) []string {
	var out []string
	for _, hn := range w.names {
		n := hn.Value()
		if h, ok := parseClusterHost(n); ok {
			if _, changed := req.EDSHosts[h]; !changed {
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// TestEDSNamesMatchParsing holds the index to parsing every name: random
// subscriptions (mapped names, names ClusterHost cannot map, several
// subsets of one host) changing between pushes, SotW-style replacement and
// Delta-style subscribe/unsubscribe, and random sets of changed hosts.
func TestEDSNamesMatchParsing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := New(Config{Generate: func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) { return nil, nil }, ClusterHost: parseClusterHost})
	var universe []string
	for h := range 40 {
		host := fmt.Sprintf("svc%d.ns.svc.cluster.local", h)
		universe = append(universe, "outbound|80||"+host, "outbound|8080|v1|"+host)
		if h%5 == 0 {
			universe = append(universe, "inbound|80||"+host)
		}
	}
	universe = append(universe, "BlackHoleCluster", "inbound|9080||", "weird|name", "outbound|0||zero")
	pick := func(n int) []string {
		out := make([]string, 0, n)
		for range n {
			out = append(out, universe[rng.IntN(len(universe))])
		}
		return out
	}
	for conn := range 20 {
		c := s.newConn(&model.Proxy{ID: fmt.Sprintf("p%d", conn)}, "sotw")
		w := newWatch(EndpointType)
		w.setSotwNames(pick(1 + rng.IntN(60)))
		c.addWatch(w)
		for step := range 30 {
			switch rng.IntN(4) {
			case 0:
				w.setSotwNames(pick(rng.IntN(60)))
			case 1:
				if added := w.names.add(pick(rng.IntN(5))); len(added) > 0 {
					w.namesGen++
				}
			case 2:
				if w.names.remove(pick(rng.IntN(10))) {
					w.namesGen++
				}
			}
			req := &model.PushRequest{EDSHosts: map[string]struct{}{}}
			for range rng.IntN(4) {
				req.EDSHosts[fmt.Sprintf("svc%d.ns.svc.cluster.local", rng.IntN(45))] = struct{}{}
			}
			// Server.Push asks before the loop looks (wakes conservatively
			// while the subscription is not indexed), and exactly after.
			before := c.wantsEndpoints(s.clusters, req.EDSHosts)
			got, want := c.edsNames(w, req), edsNamesByParsing(w, req)
			if !slices.Equal(got, want) {
				t.Fatalf("conn %d step %d: hosts %v, subscription %v:\n got  %q\n want %q", conn, step, req.EDSHosts, w.sortedNames(), got, want)
			}
			if after := c.wantsEndpoints(s.clusters, req.EDSHosts); after != (len(want) > 0) || len(want) > 0 && !before {
				t.Fatalf("conn %d step %d: hosts %v, subscription %v: wantsEndpoints %v before the push, %v after, with %q to send", conn, step, req.EDSHosts, w.sortedNames(), before, after, want)
			}
		}
	}
}

// TestEDSIndexBounded: past maxIndexed names, a new name is regenerated on
// every endpoint push (as if ClusterHost could not map it), not indexed.
func TestEDSIndexBounded(t *testing.T) {
	x := newClusterIndex(parseClusterHost)
	for i := range maxIndexed {
		x.hostOf[intern(fmt.Sprintf("filler-%d", i))] = ""
	}
	got := x.unmapped(newNameSet([]string{"outbound|80||a.example"}))
	if !slices.Equal(got, []string{"outbound|80||a.example"}) {
		t.Fatalf("unmapped with a full index = %q, want the new name", got)
	}
	if len(x.hostOf) != maxIndexed || len(x.namesOf("a.example")) != 0 {
		t.Fatalf("the index grew past its bound: %d names, %d for a.example", len(x.hostOf), len(x.namesOf("a.example")))
	}
}

// TestEndpointPushWakesOnlySubscribers: an endpoint-only push is scheduled
// on the connections subscribed to a changed host's clusters (and on those
// with a wildcard endpoint watch); a full push on every connection.
func TestEndpointPushWakesOnlySubscribers(t *testing.T) {
	s := New(Config{Generate: func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) { return nil, nil }, ClusterHost: parseClusterHost})
	mk := func(id string, wildcard bool, names ...string) *conn {
		c := s.newConn(&model.Proxy{ID: id}, "delta")
		w := newWatch(EndpointType)
		w.setSotwNames(names)
		w.wildcard = wildcard
		c.addWatch(w)
		if !wildcard {
			c.edsNames(w, &model.PushRequest{}) // indexed, as after the first push
		}
		s.conns[c] = struct{}{}
		return c
	}
	a := mk("a", false, "outbound|80||a.example")
	b := mk("b", false, "outbound|80||b.example")
	all := mk("all", true)
	none := s.newConn(&model.Proxy{ID: "none"}, "delta") // no endpoint watch
	s.conns[none] = struct{}{}
	s.Push(nil, &model.PushRequest{EDSHosts: map[string]struct{}{"a.example": {}}})
	for c, want := range map[*conn]bool{a: true, b: false, all: true, none: false} {
		if req, _ := c.takePending(); (req != nil) != want {
			t.Errorf("endpoint push for a.example: %s scheduled %v, want %v", c.proxy.ID, req != nil, want)
		}
	}
	s.Push(nil, &model.PushRequest{Full: true})
	for c := range s.conns {
		if req, _ := c.takePending(); req == nil {
			t.Errorf("full push: %s not scheduled", c.proxy.ID)
		}
	}
}
