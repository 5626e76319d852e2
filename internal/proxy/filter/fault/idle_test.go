package fault

import (
	"context"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/filter"
)

type perRoute map[string]any

func (p perRoute) PerFilterConfig(name string) any { return p[name] }

// TestIdleOnMatchesDecodeHeaders: IdleOn is true exactly where
// DecodeHeaders leaves the request alone (the route's configuration
// overrides the filter's, an inactive one injects nothing).
func TestIdleOnMatchesDecodeHeaders(t *testing.T) {
	abort := &Config{AbortStatus: 503, AbortPerMill: 1_000_000}
	for _, c := range []struct {
		name string
		own  *Config
		rc   perRoute
		idle bool
	}{
		{"none", nil, perRoute{}, true},
		{"own abort", abort, perRoute{}, false},
		{"route abort", nil, perRoute{Name: abort}, false},
		{"route overrides own", abort, perRoute{Name: &Config{}}, true},
		{"delay without percentage", nil, perRoute{Name: &Config{Delay: 1}}, true},
		{"other filter's config", nil, perRoute{"other": abort}, true},
	} {
		f := &Filter{name: Name, cfg: c.own}
		if got := f.IdleOn(c.rc); got != c.idle {
			t.Errorf("%s: IdleOn %v, want %v", c.name, got, c.idle)
		}
		r := &filter.Request{Route: c.rc}
		st := f.DecodeHeaders(context.Background(), r)
		acted := st != filter.Continue || r.Flags != 0
		if acted == c.idle {
			t.Errorf("%s: DecodeHeaders acted %v, IdleOn %v", c.name, acted, c.idle)
		}
	}
}
