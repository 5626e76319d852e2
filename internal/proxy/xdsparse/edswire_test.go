package xdsparse

import (
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// generatedEndpoints is the EDS path DecodeEndpoints replaced, kept as the
// oracle: go-control-plane's generated types, checkFields, then the parse.
func generatedEndpoints(b []byte) (string, *EndpointSet, error) {
	var la endpointv3.ClusterLoadAssignment
	if err := proto.Unmarshal(b, &la); err != nil {
		return "", nil, fmt.Errorf("cluster load assignment: decode: %w", err)
	}
	if la.GetClusterName() == "" {
		return "", nil, fmt.Errorf("cluster load assignment: cluster_name is empty")
	}
	fail := func(err error) (string, *EndpointSet, error) {
		return la.GetClusterName(), nil, fmt.Errorf("cluster load assignment %q: %w", la.GetClusterName(), err)
	}
	if err := checkFields(&la, clusterRules); err != nil {
		return fail(err)
	}
	es := &EndpointSet{Name: la.GetClusterName(), Overprovisioning: DefaultOverprovisioning}
	if f := la.GetPolicy().GetOverprovisioningFactor(); f != nil {
		if f.GetValue() == 0 {
			return fail(fmt.Errorf("policy.overprovisioning_factor: 0 would send no traffic"))
		}
		es.Overprovisioning = f.GetValue()
	}
	for i, lg := range la.GetEndpoints() {
		loc := lg.GetLocality()
		g := LocalityGroup{Priority: lg.GetPriority()}
		if loc != nil {
			g.Locality = intern(loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone())
		}
		if w := lg.GetLoadBalancingWeight(); w != nil {
			g.Weight = w.GetValue()
		}
		for j, le := range lg.GetLbEndpoints() {
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return fail(fmt.Errorf("endpoints[%d].lb_endpoints[%d]: only socket addresses are supported", i, j))
			}
			pv, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue)
			if !ok || pv.PortValue == 0 || pv.PortValue > 65535 {
				return fail(fmt.Errorf("endpoints[%d].lb_endpoints[%d]: port_value missing or out of range", i, j))
			}
			if sa.GetAddress() == "" {
				return fail(fmt.Errorf("endpoints[%d].lb_endpoints[%d]: address is empty", i, j))
			}
			e := Endpoint{Address: net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(pv.PortValue))), Weight: 1, Locality: g.Locality}
			if md := le.GetMetadata().GetFilterMetadata()[TransportSocketMatchKey]; md != nil {
				m := make(map[string]string, len(md.GetFields()))
				for k, v := range md.GetFields() {
					m[k] = v.GetStringValue()
				}
				e.TLSMatch = MakeMetadata(m)
			}
			if w := le.GetLoadBalancingWeight(); w != nil && w.GetValue() > 0 {
				e.Weight = w.GetValue()
			}
			switch le.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
				e.Healthy = true
			}
			g.Endpoints = append(g.Endpoints, e)
		}
		es.Localities = append(es.Localities, g)
	}
	return la.GetClusterName(), es, nil
}

// compareEndpoints decodes b both ways and reports a difference. Where the
// generated decoder finds the bytes malformed, the wire decoder must refuse
// them too: as malformed or, when the malformed part is inside a field it
// refuses anyway (the one documented difference: it does not decode those
// fields' contents), for that field or another error.
func compareEndpoints(t *testing.T, b []byte) {
	t.Helper()
	gName, gSet, gErr := generatedEndpoints(b)
	wName, wSet, wErr := DecodeEndpoints(b)
	if gErr != nil && strings.Contains(gErr.Error(), ": decode: ") {
		if wErr == nil {
			t.Fatalf("generated: %v; wire accepted %x", gErr, b)
		}
		return
	}
	if fmt.Sprint(gErr) != fmt.Sprint(wErr) || gName != wName {
		t.Fatalf("generated: %q, %v\nwire:      %q, %v\nbytes %x", gName, gErr, wName, wErr, b)
	}
	if !reflect.DeepEqual(gSet, wSet) {
		t.Fatalf("generated: %+v\nwire:      %+v\nbytes %x", gSet, wSet, b)
	}
}

// randomAssignment builds a ClusterLoadAssignment with go-control-plane's
// types, mostly of what Istio sends, sometimes with a field the proxy
// refuses or a value it rejects.
func randomAssignment(r *rand.Rand) *endpointv3.ClusterLoadAssignment {
	p := func(n int) bool { return r.IntN(n) == 0 } // with probability 1/n
	str := func() string { return []string{"", "a", "us-east1", "zone-β", "10.0.0.1", "::1"}[r.IntN(6)] }
	u32 := func() uint32 { return []uint32{0, 1, 7, 80, 65535, 65536, 1 << 31}[r.IntN(7)] }
	la := &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||svc" + strconv.Itoa(r.IntN(3))}
	if p(20) {
		la.ClusterName = ""
	}
	if p(4) {
		la.Policy = &endpointv3.ClusterLoadAssignment_Policy{}
		if p(2) {
			la.Policy.OverprovisioningFactor = wrapperspb.UInt32(u32())
		}
		if p(15) {
			la.Policy.WeightedPriorityHealth = true
		}
		if p(15) {
			la.Policy.EndpointStaleAfter = durationpb.New(1)
		}
		if p(15) {
			la.Policy.DropOverloads = []*endpointv3.ClusterLoadAssignment_Policy_DropOverload{{Category: "c", DropPercentage: &typev3.FractionalPercent{Numerator: 1}}}
		}
	}
	if p(25) {
		la.NamedEndpoints = map[string]*endpointv3.Endpoint{"n": {Hostname: "h"}}
	}
	for range r.IntN(4) {
		g := &endpointv3.LocalityLbEndpoints{Priority: uint32(r.IntN(3))}
		if p(2) {
			g.Locality = &corev3.Locality{Region: str(), Zone: str(), SubZone: str()}
		}
		if p(3) {
			g.LoadBalancingWeight = wrapperspb.UInt32(u32())
		}
		if p(25) {
			g.Proximity = wrapperspb.UInt32(1)
		}
		if p(25) {
			g.Metadata = &corev3.Metadata{}
		}
		if p(25) {
			g.LbConfig = &endpointv3.LocalityLbEndpoints_LedsClusterLocalityConfig{LedsClusterLocalityConfig: &endpointv3.LedsClusterLocalityConfig{LedsCollectionName: "x"}}
		}
		for range r.IntN(5) {
			g.LbEndpoints = append(g.LbEndpoints, randomLbEndpoint(r, p, str, u32))
		}
		la.Endpoints = append(la.Endpoints, g)
	}
	return la
}

func randomLbEndpoint(r *rand.Rand, p func(int) bool, str func() string, u32 func() uint32) *endpointv3.LbEndpoint {
	sa := &corev3.SocketAddress{Address: []string{"10.1.2.3", "fd00::1", "", "host.example"}[r.IntN(4)],
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: u32()}}
	if p(3) {
		sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(1 + r.IntN(65535))}
	}
	switch {
	case p(25):
		sa.PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: str()}
	case p(25):
		sa.PortSpecifier = nil
	case p(25):
		sa.Protocol = corev3.SocketAddress_UDP
	case p(25):
		sa.ResolverName = str()
	case p(25):
		sa.Ipv4Compat = true
	}
	addr := &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: sa}}
	switch {
	case p(30):
		addr.Address = &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/p"}}
	case p(30):
		addr.Address = nil
	}
	ep := &endpointv3.Endpoint{Address: addr}
	switch {
	case p(5):
		ep.Hostname = str()
	case p(30):
		ep.HealthCheckConfig = &endpointv3.Endpoint_HealthCheckConfig{PortValue: 1}
	case p(30):
		ep.AdditionalAddresses = []*endpointv3.Endpoint_AdditionalAddress{{}}
	case p(30):
		ep.Address = nil
	}
	le := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: ep},
		HealthStatus: corev3.HealthStatus(r.IntN(7))}
	if p(30) {
		le.HostIdentifier = &endpointv3.LbEndpoint_EndpointName{EndpointName: str()}
	}
	if p(3) {
		le.LoadBalancingWeight = wrapperspb.UInt32(u32())
	}
	if p(2) {
		le.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
		tls := map[string]any{"tlsMode": []string{"istio", "disabled", ""}[r.IntN(3)]}
		if p(4) {
			tls["n"] = 1.5
		}
		if p(4) {
			tls["l"] = []any{"a", true}
		}
		le.Metadata.FilterMetadata[TransportSocketMatchKey], _ = structpb.NewStruct(tls)
		le.Metadata.FilterMetadata["istio"], _ = structpb.NewStruct(map[string]any{"workload": "w;ns;app;v1;c"})
		if p(5) {
			a, _ := anypb.New(wrapperspb.String("x"))
			le.Metadata.TypedFilterMetadata = map[string]*anypb.Any{"t": a}
		}
	}
	return le
}

func TestDecodeEndpointsMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 3))
	for i := 0; i < 3000; i++ {
		b, err := proto.Marshal(randomAssignment(r))
		if err != nil {
			t.Fatal(err)
		}
		compareEndpoints(t, b)
		// Two encodings concatenated are one message, the second merged
		// into the first: scalars overwritten, lists appended, singular
		// messages merged, oneofs switched.
		b2, _ := proto.Marshal(randomAssignment(r))
		compareEndpoints(t, append(b[:len(b):len(b)], b2...))
	}
}

// TestDecodeEndpointsWire covers what go-control-plane never encodes:
// fields repeated and merged, wire types that make a field unknown, bad
// field numbers, invalid UTF-8, truncation.
func TestDecodeEndpointsWire(t *testing.T) {
	tag := func(b []byte, num int, typ int) []byte { return append(b, byte(num<<3|typ)) }
	bytesField := func(num int, v []byte) []byte {
		b := tag(nil, num, 2)
		b = append(b, byte(len(v)))
		return append(b, v...)
	}
	name := bytesField(1, []byte("c"))
	sa := func(extra ...byte) []byte {
		s := append(bytesField(2, []byte("10.0.0.1")), 3<<3, 80) // address, port_value 80
		return append(s, extra...)
	}
	lbe := func(saBytes []byte, extra ...byte) []byte {
		ep := bytesField(1, bytesField(1, saBytes)) // endpoint.address.socket_address
		return append(bytesField(1, ep), extra...)
	}
	cla := func(lbes ...[]byte) []byte {
		var g []byte
		for _, l := range lbes {
			g = append(g, bytesField(2, l)...)
		}
		return append(append([]byte{}, name...), bytesField(2, g)...)
	}
	cases := map[string][]byte{
		"plain":                   cla(lbe(sa())),
		"name twice":              append(cla(lbe(sa())), bytesField(1, []byte("d"))...),
		"port reset to zero":      cla(lbe(sa(3<<3, 0))),
		"protocol then tcp":       cla(lbe(sa(1<<3, 1, 1<<3, 0))),
		"protocol 2^32":           cla(lbe(sa(1<<3, 0x80, 0x80, 0x80, 0x80, 0x10))),
		"named then value":        cla(lbe(append(bytesField(4, []byte("http")), sa()...))),
		"value then named":        cla(lbe(sa(bytesField(4, []byte("http"))...))),
		"health twice":            cla(lbe(sa(), 2<<3, 2, 2<<3, 1)),
		"address as varint":       append(cla(lbe(sa())), 2<<3, 1),
		"cluster_name as varint":  append([]byte{1 << 3, 5}, cla(lbe(sa()))...),
		"unknown field":           append(cla(lbe(sa())), 0x98, 0x06, 1),
		"unknown group":           append(cla(lbe(sa())), 9<<3|3, 1<<3, 1, 9<<3|4),
		"stray end group":         append(cla(lbe(sa())), 9<<3|4),
		"field number 0":          append(cla(lbe(sa())), 0, 1),
		"field number 2^29":       append(cla(lbe(sa())), 0x80|0, 0x80, 0x80, 0x80, 0x10, 0),
		"invalid utf-8 name":      bytesField(1, []byte{0xff}),
		"invalid utf-8 hostname":  cla(bytesField(1, append(bytesField(1, bytesField(1, sa())), bytesField(3, []byte{0xc3})...))),
		"truncated":               cla(lbe(sa()))[:9],
		"bad length":              append(cla(lbe(sa())), 1<<3|2, 0x7f),
		"endpoint twice (merged)": cla(append(lbe(sa()), bytesField(1, bytesField(3, []byte("h")))...)),
		"weight then empty":       cla(lbe(sa(), append(bytesField(4, []byte{8, 5}), bytesField(4, nil)...)...)),
	}
	for n, b := range cases {
		t.Run(n, func(t *testing.T) { compareEndpoints(t, b) })
	}
}

// FuzzDecodeEndpoints: any bytes decode as go-control-plane's types would
// (see compareEndpoints), and never crash the decoder.
func FuzzDecodeEndpoints(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 12 {
		b, _ := proto.Marshal(randomAssignment(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareEndpoints(t, b) })
}

// BenchmarkEndpoints decodes an Istio-shaped assignment of 5 endpoints
// (locality, tlsMode and istio metadata on each) both ways:
//
//	go test ./internal/proxy/xdsparse -run '^$' -bench Endpoints -benchmem
func BenchmarkEndpoints(b *testing.B) {
	la := &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|9080||reviews.default.svc.cluster.local"}
	g := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "r", Zone: "z"}, LoadBalancingWeight: wrapperspb.UInt32(5)}
	for i := range 5 {
		tls, _ := structpb.NewStruct(map[string]any{"tlsMode": "istio"})
		istio, _ := structpb.NewStruct(map[string]any{"workload": "reviews-v1;default;reviews;v1;Kubernetes"})
		g.LbEndpoints = append(g.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "10.0.0." + strconv.Itoa(i), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}},
			HealthStatus:        corev3.HealthStatus_HEALTHY,
			Metadata:            &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{TransportSocketMatchKey: tls, "istio": istio}},
			LoadBalancingWeight: wrapperspb.UInt32(1)})
	}
	la.Endpoints = []*endpointv3.LocalityLbEndpoints{g}
	enc, err := proto.Marshal(la)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (string, *EndpointSet, error)
	}{{"wire", DecodeEndpoints}, {"generated", generatedEndpoints}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
