package model

import (
	"maps"
	"slices"
	"testing"
)

// Hosts narrow a merged full request only while every full side narrows
// it; an endpoint-only side keeps them.
func TestPushRequestMergeHosts(t *testing.T) {
	set := func(xs ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, x := range xs {
			m[x] = struct{}{}
		}
		return m
	}
	rds := "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	scoped := func(hosts ...string) *PushRequest {
		return &PushRequest{Full: true, Types: set(rds), Hosts: set(hosts...)}
	}
	tests := []struct {
		name string
		a, b *PushRequest
		want []string // nil: not narrowed
	}{
		{"two scoped", scoped("a"), scoped("b"), []string{"a", "b"}},
		{"scoped and endpoints", scoped("a"), &PushRequest{EDSHosts: set("x")}, []string{"a"}},
		{"scoped and typed unscoped", scoped("a"), &PushRequest{Full: true, Types: set(rds)}, nil},
		{"scoped and all types", scoped("a"), &PushRequest{Full: true}, nil},
		{"endpoints only", &PushRequest{EDSHosts: set("x")}, &PushRequest{EDSHosts: set("y")}, nil},
	}
	for _, tc := range tests {
		for _, order := range [][2]*PushRequest{{tc.a, tc.b}, {tc.b, tc.a}} {
			m := order[0].Merge(order[1])
			if tc.want == nil {
				if m.Hosts != nil {
					t.Errorf("%s: hosts %v, want none (not narrowed)", tc.name, m.Hosts)
				}
				continue
			}
			if got := slices.Sorted(maps.Keys(m.Hosts)); !slices.Equal(got, tc.want) {
				t.Errorf("%s: hosts %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}
