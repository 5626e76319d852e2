package filter

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"
)

// HTTPFactory builds one kind of HTTP filter.
type HTTPFactory struct {
	// Name is the filter's well-known name ("envoy.filters.http.fault").
	Name string
	// TypeURL is its typed_config's type URL.
	TypeURL string
	// New parses a typed_config; name is the configured name (the key of
	// typed_per_filter_config). Errors name the offending field.
	New func(name string, cfg *anypb.Any) (HTTPFilter, error)
	// PerRouteTypeURLs and PerRoute parse typed_per_filter_config for this
	// filter; nil when the filter has no per-route configuration.
	PerRouteTypeURLs []string
	PerRoute         func(cfg *anypb.Any) (any, error)
}

// NetworkFactory builds one kind of network filter.
type NetworkFactory struct {
	Name    string
	TypeURL string
	New     func(name string, cfg *anypb.Any) (NetworkFilter, error)
}

// Registry maps filter names and type URLs to factories. It is built by an
// explicit table (internal/proxy/filter/builtin), never by init().
type Registry struct {
	http, httpByType       map[string]*HTTPFactory
	perRouteByType         map[string]*HTTPFactory
	network, networkByType map[string]*NetworkFactory
	passHTTP, passNetwork  map[string]string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{http: map[string]*HTTPFactory{}, httpByType: map[string]*HTTPFactory{}, perRouteByType: map[string]*HTTPFactory{},
		network: map[string]*NetworkFactory{}, networkByType: map[string]*NetworkFactory{},
		passHTTP: map[string]string{}, passNetwork: map[string]string{}}
}

// AddHTTP registers an HTTP filter factory.
func (g *Registry) AddHTTP(f *HTTPFactory) {
	g.http[f.Name] = f
	g.httpByType[f.TypeURL] = f
	for _, t := range f.PerRouteTypeURLs {
		g.perRouteByType[t] = f
	}
}

// AddNetwork registers a network filter factory.
func (g *Registry) AddNetwork(f *NetworkFactory) {
	g.network[f.Name] = f
	g.networkByType[f.TypeURL] = f
}

// PassHTTP declares an HTTP filter that has no effect in this proxy and
// why (Envoy-to-Envoy plumbing such as istio.metadata_exchange, whose
// job mast-proxy does by other means); it is accepted and left out of
// the chain.
func (g *Registry) PassHTTP(name, why string) { g.passHTTP[name] = why }

// PassNetwork is PassHTTP for network filters.
func (g *Registry) PassNetwork(name, why string) { g.passNetwork[name] = why }

// IsPassNetwork reports whether a network filter name is declared inert.
func (g *Registry) IsPassNetwork(name string) bool { _, ok := g.passNetwork[name]; return ok }

func (g *Registry) lookupHTTP(name string, cfg *anypb.Any) *HTTPFactory {
	if cfg != nil {
		if f := g.httpByType[cfg.GetTypeUrl()]; f != nil {
			return f
		}
		return nil
	}
	return g.http[name]
}

// HTTPFilterConfig is one entry of an HttpConnectionManager's
// http_filters as the proxy's xDS decoder reads it (the proxy links no
// generated connection manager type).
type HTTPFilterConfig struct {
	Name string
	// TypedConfig is the typed_config, nil when absent.
	TypedConfig *anypb.Any
	IsOptional  bool
	Disabled    bool
	// ConfigDiscovery reports that config_discovery was set (instead of
	// typed_config).
	ConfigDiscovery bool
}

// BuildHTTP builds the chain of an HttpConnectionManager's http_filters,
// leaving out the terminal router (which must be last; the caller checks).
// An unknown filter is an error unless it is_optional; a disabled one is an
// error (per-route enabling is not supported).
func (g *Registry) BuildHTTP(filters []HTTPFilterConfig, isRouter func(*HTTPFilterConfig) bool) (*Chain, error) {
	var names []string
	var built []HTTPFilter
	for i := range filters {
		f := &filters[i]
		if isRouter(f) {
			continue
		}
		name := f.Name
		if f.Disabled {
			return nil, fmt.Errorf("http_filters[%d] %q: disabled: not supported", i, name)
		}
		if f.ConfigDiscovery {
			return nil, fmt.Errorf("http_filters[%d] %q: config_discovery: not supported", i, name)
		}
		if _, ok := g.passHTTP[name]; ok {
			continue
		}
		fac := g.lookupHTTP(name, f.TypedConfig)
		if fac == nil {
			if f.IsOptional {
				continue
			}
			t := f.TypedConfig.GetTypeUrl()
			if t == "" {
				return nil, fmt.Errorf("http_filters[%d] %q: not supported", i, name)
			}
			return nil, fmt.Errorf("http_filters[%d] %q: typed_config %s: not supported", i, name, t)
		}
		cfg := f.TypedConfig
		if cfg == nil {
			cfg = &anypb.Any{TypeUrl: fac.TypeURL}
		}
		flt, err := fac.New(name, cfg)
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: %w", i, name, err)
		}
		names = append(names, name)
		built = append(built, flt)
	}
	if len(built) == 0 {
		return nil, nil
	}
	return NewChain(names, built), nil
}

// BuildNetwork builds the network filters before a terminal filter.
func (g *Registry) BuildNetwork(name string, index int, cfg *anypb.Any) (NetworkFilter, bool, error) {
	if _, ok := g.passNetwork[name]; ok {
		return nil, false, nil
	}
	var fac *NetworkFactory
	if cfg != nil {
		fac = g.networkByType[cfg.GetTypeUrl()]
	} else {
		fac = g.network[name]
	}
	if fac == nil {
		return nil, false, fmt.Errorf("filters[%d] %q: not supported", index, name)
	}
	if cfg == nil {
		cfg = &anypb.Any{TypeUrl: fac.TypeURL}
	}
	f, err := fac.New(name, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("filters[%d] %q: %w", index, name, err)
	}
	return f, true, nil
}

// PerRoute parses a typed_per_filter_config map; keys are configured
// filter names. An entry whose type no filter knows is an error naming it,
// except Envoy's FilterConfig wrapper with is_optional.
func (g *Registry) PerRoute(m map[string]*anypb.Any) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for name, a := range m {
		fac := g.perRouteByType[a.GetTypeUrl()]
		if fac == nil {
			if strings.HasSuffix(a.GetTypeUrl(), "/envoy.config.route.v3.FilterConfig") {
				return nil, fmt.Errorf("typed_per_filter_config[%s]: FilterConfig: not supported", name)
			}
			return nil, fmt.Errorf("typed_per_filter_config[%s]: type %s: not supported", name, a.GetTypeUrl())
		}
		v, err := fac.PerRoute(a)
		if err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%s]: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// TypeURL returns the type URL of a message name ("envoy.x.v3.Y").
func TypeURL(fullName string) string { return "type.googleapis.com/" + fullName }

// TypeURLs lists every config type URL the registry knows, sorted (fuzzing
// and config dumps).
func (g *Registry) TypeURLs() []string {
	var out []string
	for t := range g.httpByType {
		out = append(out, t)
	}
	for t := range g.perRouteByType {
		out = append(out, t)
	}
	for t := range g.networkByType {
		out = append(out, t)
	}
	sort.Strings(out)
	return slices.Compact(out)
}
