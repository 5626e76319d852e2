// Package builtin is the table of the filters mast-proxy implements: the one
// place that maps Envoy's filter names and type URLs to their packages.
// Add a filter here with one AddHTTP/AddNetwork line (see package filter).
package builtin

import (
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/adaptiveconcurrency"
	"github.com/mast-mesh/mast/internal/proxy/filter/cors"
	"github.com/mast-mesh/mast/internal/proxy/filter/extauthz"
	"github.com/mast-mesh/mast/internal/proxy/filter/fault"
	"github.com/mast-mesh/mast/internal/proxy/filter/jwtauthn"
	"github.com/mast-mesh/mast/internal/proxy/filter/localratelimit"
	"github.com/mast-mesh/mast/internal/proxy/filter/mixer"
	"github.com/mast-mesh/mast/internal/proxy/filter/ratelimit"
	"github.com/mast-mesh/mast/internal/proxy/filter/rbac"
)

// Registry returns a registry of every built-in filter.
func Registry() *filter.Registry {
	g := filter.NewRegistry()
	g.AddHTTP(&filter.HTTPFactory{Name: jwtauthn.FilterName, TypeURL: jwtauthn.TypeURL, New: jwtauthn.New})
	g.AddHTTP(&filter.HTTPFactory{Name: extauthz.Name, TypeURL: extauthz.TypeURL, New: extauthz.New})
	g.AddHTTP(&filter.HTTPFactory{Name: rbac.Name, TypeURL: rbac.TypeURL, New: rbac.New,
		PerRouteTypeURLs: []string{rbac.PerRouteURL}, PerRoute: rbac.PerRoute})
	g.AddNetwork(&filter.NetworkFactory{Name: rbac.NetworkName, TypeURL: rbac.NetworkTypeURL, New: rbac.NewNetwork})
	g.AddNetwork(&filter.NetworkFactory{Name: extauthz.NetworkName, TypeURL: extauthz.NetworkTypeURL, New: extauthz.NewNetwork})
	g.AddHTTP(&filter.HTTPFactory{Name: fault.Name, TypeURL: fault.TypeURL, New: fault.New,
		PerRouteTypeURLs: []string{fault.TypeURL}, PerRoute: fault.PerRoute})
	g.AddHTTP(&filter.HTTPFactory{Name: mixer.Name, TypeURL: mixer.TypeURL, New: mixer.New})
	g.AddNetwork(&filter.NetworkFactory{Name: mixer.Name, TypeURL: mixer.TCPTypeURL, New: mixer.NewTCP})
	g.AddHTTP(&filter.HTTPFactory{Name: cors.Name, TypeURL: cors.TypeURL, New: cors.New,
		PerRouteTypeURLs: []string{cors.PolicyTypeURL}, PerRoute: cors.PerRoute})
	g.AddHTTP(&filter.HTTPFactory{Name: ratelimit.Name, TypeURL: ratelimit.TypeURL, New: ratelimit.New})
	g.AddHTTP(&filter.HTTPFactory{Name: localratelimit.Name, TypeURL: localratelimit.TypeURL, New: localratelimit.New,
		PerRouteTypeURLs: []string{localratelimit.TypeURL}, PerRoute: localratelimit.PerRoute})
	g.AddNetwork(&filter.NetworkFactory{Name: localratelimit.NetworkName, TypeURL: localratelimit.NetworkTypeURL, New: localratelimit.NewNetwork})
	g.AddHTTP(&filter.HTTPFactory{Name: adaptiveconcurrency.Name, TypeURL: adaptiveconcurrency.TypeURL, New: adaptiveconcurrency.New})

	// Envoy-to-Envoy plumbing with no effect on what this proxy does: peer
	// metadata travels in mast-proxy's own headers/ALPN handling.
	const plumbing = "peer metadata exchange between Envoys; mast-proxy identifies peers by their certificates"
	g.PassHTTP("istio.metadata_exchange", plumbing)
	g.PassHTTP("istio.peer_metadata", plumbing)
	g.PassHTTP("istio.alpn", "sets Istio ALPN tokens on upstream TLS; mast-proxy sets ALPN from the cluster's TLS context")
	g.PassNetwork("istio.metadata_exchange", plumbing)
	g.PassNetwork("istio.peer_metadata", plumbing)
	return g
}
