package ads

import (
	"fmt"
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
)

func TestDeltaSubscribeUnsubscribeRemove(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.delta(t, e.dial(t), "app")
	const nope = "outbound|80||nope.default.svc.cluster.local"

	// Legacy wildcard: a first CDS request naming nothing gets everything.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
	cds := c.expect(ClusterType, []string{clA, clB, clC}, nil)
	if cds.SystemVersionInfo != "v1" {
		t.Fatalf("system_version_info %q, want v1", cds.SystemVersionInfo)
	}
	// Named EDS: a cluster that does not exist is reported as removed.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{clB, clA, nope}})
	c.expect(EndpointType, []string{clA, clB}, []string{nope})
	c.barrier()

	steps := []struct {
		name        string
		unsubscribe []string // EDS names dropped before the push
		change      func(*meshState)
		typeURL     string // expected response; "" for none
		names       []string
		removed     []string
	}{
		{"unchanged resources are not re-sent", nil, func(*meshState) {}, "", nil, nil},
		{"changed endpoint only", nil, func(s *meshState) { s.endpoints[hostB] = "10.9.0.2" }, EndpointType, []string{clB}, nil},
		{"unsubscribed cluster is not pushed", []string{clA}, func(s *meshState) { s.endpoints[hostA] = "10.9.0.1" }, "", nil, nil},
		{"removed service", nil, func(s *meshState) { delete(s.endpoints, hostC) }, ClusterType, nil, []string{clC}},
	}
	st := baseState()
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c.t = t
			if len(s.unsubscribe) > 0 {
				c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesUnsubscribe: s.unsubscribe})
				c.barrier() // handled before the push
			}
			s.change(st)
			next := *st
			next.endpoints = cloneMap(st.endpoints)
			e.ads.Push(m.set("d"+string(rune('0'+i)), &next), nil)
			if s.typeURL != "" {
				c.expect(s.typeURL, s.names, s.removed)
			}
			c.barrier()
		})
	}
	c.t = t
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{clA}})
	c.expect(EndpointType, []string{clA}, nil)
	c.barrier()

	ps := e.status(t, c.id)
	eds := ps.typ(EndpointType)
	if ps.Stream != "delta" || !slices.Equal(eds.Subscribed, []string{clA, clB, nope}) || eds.Resources != 2 || eds.State != StateSynced {
		t.Fatalf("status %+v, eds %+v", ps, eds)
	}
	if cds := ps.typ(ClusterType); !cds.Wildcard || cds.Resources != 2 || cds.VersionAcked != "d3" {
		t.Fatalf("cds status %+v", cds)
	}
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestDeltaInitialResourceVersions(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	cc := e.dial(t)

	first := e.delta(t, cc, "app")
	first.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
	versions := map[string]string{}
	for _, r := range first.expect(ClusterType, []string{clA, clB, clC}, nil).Resources {
		versions[r.Name] = r.Version
	}

	tests := []struct {
		name    string
		typeURL string
		sub     []string
		initial map[string]string
		names   []string
		removed []string
	}{
		{"wildcard: all current", ClusterType, nil, versions, nil, nil},
		{"wildcard: stale and deleted", ClusterType, nil,
			map[string]string{clA: versions[clA], clB: "stale", "outbound|80||gone": "1"}, []string{clB, clC}, []string{"outbound|80||gone"}},
		{"named: one current, one stale", EndpointType, []string{clA, clB},
			map[string]string{clA: edsVersion(t, m, "v1", clA), clB: "stale"}, []string{clB}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.delta(t, cc, "re")
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: tt.typeURL, ResourceNamesSubscribe: tt.sub, InitialResourceVersions: tt.initial})
			// The first response for a type is always sent, even when empty.
			c.expect(tt.typeURL, tt.names, tt.removed)
			c.barrier()
		})
	}
}

// edsVersion is the version the server gives cluster's endpoints at version v.
func edsVersion(t *testing.T, m *testMesh, v, cluster string) string {
	t.Helper()
	res, err := m.generate(m.set(v, m.states[v]), nodeProxy(t), EndpointType, []string{cluster})
	if err != nil {
		t.Fatal(err)
	}
	ms, _, err := marshalResources(nil, EndpointType, res, true)
	if err != nil || len(ms) != 1 {
		t.Fatalf("marshal: %v (%d)", err, len(ms))
	}
	return formatVersion(ms[0].version)
}

func TestDeltaExplicitWildcardAndNACK(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	st := baseState()
	e.ads.Push(m.set("v1", st), nil)
	c := e.delta(t, e.dial(t), "app")
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType, ResourceNamesSubscribe: []string{"*"}})
	c.expect(ListenerType, []string{"0.0.0.0_80"}, nil)
	c.barrier() // the ACK is handled before the push

	// A new listener is pushed; the client NACKs it.
	st2 := *st
	st2.listeners = []string{"0.0.0.0_80", "0.0.0.0_9080"}
	e.ads.Push(m.set("v2", &st2), nil)
	r := c.recv()
	if len(r.Resources) != 1 || r.Resources[0].Name != "0.0.0.0_9080" {
		t.Fatalf("push v2 sent %v, want only the new listener", r.Resources)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType, ResponseNonce: r.Nonce, ErrorDetail: &statuspb.Status{Message: "port 9080 in use"}})
	c.barrier()
	if ts := e.status(t, c.id).typ(ListenerType); ts.State != StateNACKed || ts.LastNACK != "port 9080 in use" || ts.VersionAcked != "v1" {
		t.Fatalf("after NACK: %+v", ts)
	}

	// Unsubscribing from "*" stops listener pushes.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType, ResourceNamesUnsubscribe: []string{"*"}})
	c.barrier()
	st3 := *st
	st3.listeners = []string{"0.0.0.0_15001"}
	e.ads.Push(m.set("v3", &st3), nil)
	c.barrier()
	if ts := e.status(t, c.id).typ(ListenerType); ts.Wildcard || ts.Resources != 0 {
		t.Fatalf("after unsubscribing *: %+v", ts)
	}
}

// nameLookup answers alike whether it scans a few names or maps many.
func TestNameLookup(t *testing.T) {
	for _, n := range []int{0, 1, maxScanned, maxScanned + 1, 100} {
		l := newNameLookup(n)
		for i := range n {
			l.add(intern(fmt.Sprintf("r%d", 2*i)))
		}
		for i := range 2*n + 2 {
			if got, want := l.has(intern(fmt.Sprintf("r%d", i))), i%2 == 0 && i < 2*n; got != want {
				t.Fatalf("%d names: has(r%d) = %v, want %v", n, i, got, want)
			}
		}
	}
}
