package model

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

func TestResolveHost(t *testing.T) {
	for _, tc := range []struct{ in, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.other", "default", "reviews.other"},
		{"reviews.default.svc.cluster.local", "x", "reviews.default.svc.cluster.local"},
		{"*", "default", "*"},
		{"*.example.com", "default", "*.example.com"},
	} {
		if got := ResolveHost(tc.in, tc.ns, "cluster.local"); got != tc.want {
			t.Errorf("ResolveHost(%q, %q) = %q, want %q", tc.in, tc.ns, got, tc.want)
		}
	}
}

func TestHostMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"*", "a.b", true},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.com", "*.example.com", true},
		{"*.example.com", "*.com", false},
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
	} {
		if got := HostMatches(tc.pattern, tc.host); got != tc.want {
			t.Errorf("HostMatches(%q, %q) = %v", tc.pattern, tc.host, got)
		}
	}
}

func TestExportedTo(t *testing.T) {
	for _, tc := range []struct {
		export []string
		to     string
		want   bool
	}{
		{nil, "x", true},
		{[]string{"*"}, "x", true},
		{[]string{"."}, "own", true},
		{[]string{"."}, "x", false},
		{[]string{"~"}, "own", false},
		{[]string{"a", "x"}, "x", true},
	} {
		if got := ExportedTo(tc.export, "own", tc.to); got != tc.want {
			t.Errorf("ExportedTo(%v, own, %s) = %v", tc.export, tc.to, got)
		}
	}
}

func res(kind config.Kind, ns, name string, spec any) config.Resource {
	r := config.Resource{Meta: config.Meta{Kind: kind, Namespace: ns, Name: name}}
	switch s := spec.(type) {
	case *networking.Sidecar:
		r.Spec = s
	case *networking.DestinationRule:
		r.Spec = s
	}
	return r
}

func TestSidecarForPrecedence(t *testing.T) {
	cfg := config.NewSnapshot([]config.Resource{
		res(config.Sidecar, "istio-system", "root", &networking.Sidecar{}),
		res(config.Sidecar, "a", "ns-default", &networking.Sidecar{}),
		res(config.Sidecar, "a", "selected", &networking.Sidecar{WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "x"}}}),
	})
	pc := NewPushContext("1", DefaultMeshConfig(), cfg, &registry.Snapshot{})
	for _, tc := range []struct {
		ns     string
		labels map[string]string
		want   string
	}{
		{"a", map[string]string{"app": "x"}, "selected"},
		{"a", map[string]string{"app": "y"}, "ns-default"},
		{"b", nil, "root"},
	} {
		got := pc.SidecarFor(&Proxy{Namespace: tc.ns, Labels: tc.labels})
		if got == nil || got.Name != tc.want {
			t.Errorf("SidecarFor(%s, %v) = %v, want %s", tc.ns, tc.labels, got, tc.want)
		}
	}
}

func TestDestinationRulePrecedence(t *testing.T) {
	host := "reviews.svcns.svc.cluster.local"
	cfg := config.NewSnapshot([]config.Resource{
		res(config.DestinationRule, "istio-system", "root", &networking.DestinationRule{Host: "*.svc.cluster.local"}),
		res(config.DestinationRule, "svcns", "svc", &networking.DestinationRule{Host: "reviews"}),
		res(config.DestinationRule, "svcns", "private", &networking.DestinationRule{Host: "*.svcns.svc.cluster.local", ExportTo: []string{"."}}),
		res(config.DestinationRule, "client", "local", &networking.DestinationRule{Host: host}),
		res(config.DestinationRule, "hidden", "hidden", &networking.DestinationRule{Host: host, ExportTo: []string{"."}}),
	})
	reg := &registry.Snapshot{Services: []*registry.Service{{Hostname: host, Namespace: "svcns"}}}
	pc := NewPushContext("1", DefaultMeshConfig(), cfg, reg)
	for _, tc := range []struct{ ns, want string }{
		{"client", "local"},
		{"svcns", "svc"}, // exact host beats the wildcard in the same namespace
		{"elsewhere", "svc"},
		{"hidden", "hidden"},
	} {
		got := pc.DestinationRule(&Proxy{Namespace: tc.ns}, host)
		if got == nil || got.Name != tc.want {
			t.Errorf("from %s: %v, want %s", tc.ns, got, tc.want)
		}
	}
	if got := pc.DestinationRule(&Proxy{Namespace: "x"}, "other.svc.cluster.local"); got == nil || got.Name != "root" {
		t.Errorf("root fallback = %v", got)
	}
}

func TestScopeCachedByInputs(t *testing.T) {
	pc := NewPushContext("1", DefaultMeshConfig(), config.NewSnapshot(nil), &registry.Snapshot{})
	a := pc.Scope(&Proxy{Namespace: "a", Labels: map[string]string{"x": "1"}})
	b := pc.Scope(&Proxy{Namespace: "a", Labels: map[string]string{"x": "2"}})
	c := pc.Scope(&Proxy{Namespace: "b"})
	if a != b || a == c {
		t.Errorf("scope cache keyed wrongly: a==b %v, a==c %v", a == b, a == c)
	}
}

// FuzzParseNode: node IDs and metadata come from clients.
func FuzzParseNode(f *testing.F) {
	for _, s := range []string{"sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local", "router~~gw~istio-system.svc.cluster.local", "x~1~2~3", "~~~", "sidecar~not-an-ip~a.b~c"} {
		f.Add(s, "ns", "REDIRECT")
	}
	f.Fuzz(func(t *testing.T, id, ns, mode string) {
		md, err := structpb.NewStruct(map[string]any{"NAMESPACE": ns, "INTERCEPTION_MODE": mode})
		if err != nil {
			t.Skip()
		}
		p, err := ParseNode(&corev3.Node{Id: id, Metadata: md})
		if err != nil {
			return
		}
		if p.Namespace == "" || (p.Type != SidecarProxy && p.Type != Router) {
			t.Fatalf("accepted invalid node %q: %+v", id, p)
		}
	})
}

func TestPushRequestMergeTypes(t *testing.T) {
	const lds, rds, cds = "L", "R", "C"
	set := func(xs ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, x := range xs {
			m[x] = struct{}{}
		}
		return m
	}
	p := &Proxy{IPAddresses: []string{"10.0.0.9"}}
	tests := []struct {
		name      string
		a, b      *PushRequest
		full, eds []string // types FullType reports for p; EDS hosts kept
		notFull   []string
	}{
		{name: "typed and typed", a: &PushRequest{Full: true, Types: set(lds)}, b: &PushRequest{Full: true, Types: set(rds)}, full: []string{lds, rds}, notFull: []string{cds}},
		{name: "typed and all", a: &PushRequest{Full: true, Types: set(lds)}, b: &PushRequest{Full: true}, full: []string{lds, rds, cds}},
		{name: "typed and endpoints", a: &PushRequest{Full: true, Types: set(cds)}, b: &PushRequest{EDSHosts: set("h")}, full: []string{cds}, notFull: []string{lds}, eds: []string{"h"}},
		{name: "endpoints at the proxy's address", a: &PushRequest{EDSHosts: set("h")}, b: &PushRequest{EDSHosts: set("g"), Addresses: set("10.0.0.9")}, full: []string{lds, rds, cds}, eds: []string{"g", "h"}},
		{name: "endpoints elsewhere", a: &PushRequest{EDSHosts: set("h"), Addresses: set("10.0.0.8")}, b: nil, notFull: []string{lds, rds, cds}, eds: []string{"h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.a.Merge(tc.b)
			for _, typ := range tc.full {
				if !m.FullType(p, typ) {
					t.Errorf("%s not pushed: %+v", typ, m)
				}
			}
			for _, typ := range tc.notFull {
				if m.FullType(p, typ) {
					t.Errorf("%s pushed: %+v", typ, m)
				}
			}
			for _, h := range tc.eds {
				if _, ok := m.EDSHosts[h]; !ok {
					t.Errorf("EDS host %s dropped: %+v", h, m)
				}
			}
		})
	}
}
