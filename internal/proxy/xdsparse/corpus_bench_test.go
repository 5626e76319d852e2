package xdsparse

import (
	"strings"
	"testing"
)

// BenchmarkCorpus decodes every listener and route configuration mastd
// generates for Bookinfo (generatedCorpus) once per iteration: the decode
// allocations of a sidecar's LDS and RDS.
func BenchmarkCorpus(b *testing.B) {
	listeners, routes := generatedCorpus(b, ListenerType), generatedCorpus(b, RouteType)
	b.Run("listeners", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range listeners {
				if name, _, err := DecodeListener(l); err != nil && !strings.Contains(err.Error(), "credential") {
					b.Fatalf("%s: %v", name, err)
				}
			}
		}
	})
	b.Run("routes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range routes {
				if name, _, err := DecodeRouteConfiguration(r); err != nil {
					b.Fatalf("%s: %v", name, err)
				}
			}
		}
	})
}
