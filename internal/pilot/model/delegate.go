package model

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// mergeDelegates applies Istio's VirtualService delegation to vss: a
// VirtualService without hosts is a delegate and is not used on its own;
// an http route of a root VirtualService that names a delegate
// (delegate: {name, namespace}, the namespace defaulting to the root's) is
// replaced by the delegate's http routes merged under the root route's
// match conditions (mergeDelegateRoute). A delegate that does not exist or
// is not exported to the root's namespace drops that route only. A delegate
// cannot delegate again (validation refuses it; here such a route is
// dropped). Destination hosts of a delegate's routes are resolved in the
// delegate's namespace. Inputs are not modified: roots get a copy of their
// spec.
func mergeDelegates(vss []config.Resource, domainSuffix string) []config.Resource {
	return mergeDelegatesTraced(vss, domainSuffix, nil)
}

// RouteOrigin says where an http route of a merged root VirtualService
// comes from: the root's route RootIndex, and for a delegated route the
// delegate and the index of its route there (Delegate is zero for the
// root's own routes).
type RouteOrigin struct {
	RootIndex     int
	Delegate      config.Key
	DelegateIndex int
}

// MergeDelegates merges VirtualService delegation as mastd does, for tools
// that show the routes in force (mast why, describe): the merged
// VirtualServices, and for each merged root the origin of its http routes,
// in order.
func MergeDelegates(vss []config.Resource, domainSuffix string) ([]config.Resource, map[config.Key][]RouteOrigin) {
	origins := map[config.Key][]RouteOrigin{}
	return mergeDelegatesTraced(vss, domainSuffix, origins), origins
}

// mergeDelegatesTraced is mergeDelegates, recording in origins (when not
// nil) where each route of a merged root comes from.
func mergeDelegatesTraced(vss []config.Resource, domainSuffix string, origins map[config.Key][]RouteOrigin) []config.Resource {
	delegates := map[config.Key]config.Resource{}
	isRoot := func(vs *networking.VirtualService) bool {
		return slices.ContainsFunc(vs.GetHttp(), func(r *networking.HTTPRoute) bool { return r.GetDelegate() != nil })
	}
	for _, r := range vss {
		if vs, ok := r.Spec.(*networking.VirtualService); ok && len(vs.GetHosts()) == 0 {
			delegates[r.Key()] = r
		}
	}
	out := make([]config.Resource, 0, len(vss))
	for _, r := range vss {
		vs, ok := r.Spec.(*networking.VirtualService)
		if !ok {
			out = append(out, r)
			continue
		}
		if len(vs.GetHosts()) == 0 {
			continue // a delegate: only used through a root
		}
		if !isRoot(vs) {
			out = append(out, r)
			continue
		}
		merged := proto.Clone(vs).(*networking.VirtualService)
		merged.Http = nil
		var from []RouteOrigin
		for i, route := range vs.GetHttp() {
			d := route.GetDelegate()
			if d == nil {
				merged.Http = append(merged.Http, route)
				from = append(from, RouteOrigin{RootIndex: i})
				continue
			}
			ns := d.GetNamespace()
			if ns == "" {
				ns = r.Namespace
			}
			dr, ok := delegates[config.Key{Kind: r.Kind, Namespace: ns, Name: d.GetName()}]
			if !ok {
				continue
			}
			dvs := dr.Spec.(*networking.VirtualService)
			if !ExportedTo(dvs.GetExportTo(), ns, r.Namespace) {
				continue
			}
			for j, sub := range dvs.GetHttp() {
				if sub.GetDelegate() != nil {
					continue
				}
				sub = proto.Clone(sub).(*networking.HTTPRoute)
				resolveRouteHosts(sub, ns, domainSuffix)
				if m := mergeDelegateRoute(route, sub); m != nil {
					merged.Http = append(merged.Http, m)
					from = append(from, RouteOrigin{RootIndex: i, Delegate: dr.Key(), DelegateIndex: j})
				}
			}
		}
		if origins != nil {
			origins[r.Key()] = from
		}
		r.Spec = merged
		out = append(out, r)
	}
	return out
}

// resolveRouteHosts makes the destination and mirror hosts of a delegate's
// route fully qualified in the delegate's namespace.
func resolveRouteHosts(r *networking.HTTPRoute, ns, domainSuffix string) {
	for _, d := range r.GetRoute() {
		if d.GetDestination() != nil {
			d.Destination.Host = ResolveHost(d.Destination.GetHost(), ns, domainSuffix)
		}
	}
	if r.GetMirror() != nil {
		r.Mirror.Host = ResolveHost(r.Mirror.GetHost(), ns, domainSuffix)
	}
	for _, m := range r.GetMirrors() {
		if m.GetDestination() != nil {
			m.Destination.Host = ResolveHost(m.Destination.GetHost(), ns, domainSuffix)
		}
	}
}

// mergeDelegateRoute merges a delegate's route (a copy, modified) under
// the root route, with istiod's rules: every match of the delegate must
// find root matches it does not conflict with (it is then merged with each
// of them), else the delegate route is dropped (nil); names join with "-";
// rewrite, timeout, retries, fault, mirror, mirror percentage, CORS
// policy and headers come from the root when the delegate sets none.
func mergeDelegateRoute(root, sub *networking.HTTPRoute) *networking.HTTPRoute {
	matches, ok := mergeMatches(root.GetMatch(), sub.GetMatch())
	if !ok {
		return nil
	}
	sub.Match = matches
	sub.Name = joinName(root.GetName(), sub.GetName())
	if sub.Rewrite == nil {
		sub.Rewrite = root.Rewrite
	}
	if sub.Timeout == nil {
		sub.Timeout = root.Timeout
	}
	if sub.Retries == nil {
		sub.Retries = root.Retries
	}
	if sub.Fault == nil {
		sub.Fault = root.Fault
	}
	if sub.Mirror == nil {
		sub.Mirror = root.Mirror
	}
	if sub.MirrorPercent == nil { //nolint:staticcheck // deprecated, still honoured
		sub.MirrorPercent = root.MirrorPercent //nolint:staticcheck
	}
	if sub.MirrorPercentage == nil {
		sub.MirrorPercentage = root.MirrorPercentage
	}
	if sub.CorsPolicy == nil {
		sub.CorsPolicy = root.CorsPolicy
	}
	if sub.Headers == nil {
		sub.Headers = root.Headers
	}
	return sub
}

func joinName(root, sub string) string {
	switch {
	case sub == "":
		return root
	case root == "":
		return sub
	}
	return root + "-" + sub
}

// mergeMatches: no root matches take the delegate's, no delegate matches
// the root's; otherwise each delegate match merged with every root match it
// does not conflict with, ok false when one finds none.
func mergeMatches(root, sub []*networking.HTTPMatchRequest) ([]*networking.HTTPMatchRequest, bool) {
	if len(root) == 0 {
		return sub, true
	}
	if len(sub) == 0 {
		return root, true
	}
	var out []*networking.HTTPMatchRequest
	for _, s := range sub {
		found := false
		for _, r := range root {
			if matchConflict(r, s) {
				continue
			}
			out = append(out, mergeMatch(r, s))
			found = true
		}
		if !found {
			return nil, false
		}
	}
	return out, len(out) > 0
}

func mergeMatch(root, sub *networking.HTTPMatchRequest) *networking.HTTPMatchRequest {
	out := proto.Clone(sub).(*networking.HTTPMatchRequest)
	out.Name = joinName(root.GetName(), sub.GetName())
	if out.Uri == nil {
		out.Uri = root.Uri
	}
	if out.Scheme == nil {
		out.Scheme = root.Scheme
	}
	if out.Method == nil {
		out.Method = root.Method
	}
	if out.Authority == nil {
		out.Authority = root.Authority
	}
	union := func(a, b map[string]*networking.StringMatch) map[string]*networking.StringMatch {
		if len(a) == 0 && len(b) == 0 {
			return nil
		}
		m := maps.Clone(a)
		if m == nil {
			m = map[string]*networking.StringMatch{}
		}
		maps.Copy(m, b)
		return m
	}
	out.Headers = union(root.GetHeaders(), sub.GetHeaders())
	out.WithoutHeaders = union(root.GetWithoutHeaders(), sub.GetWithoutHeaders())
	out.QueryParams = union(root.GetQueryParams(), sub.GetQueryParams())
	if out.Port == 0 {
		out.Port = root.Port
	}
	if len(root.GetSourceLabels()) > 0 || len(sub.GetSourceLabels()) > 0 {
		out.SourceLabels = maps.Clone(root.GetSourceLabels())
		if out.SourceLabels == nil {
			out.SourceLabels = map[string]string{}
		}
		maps.Copy(out.SourceLabels, sub.GetSourceLabels())
	}
	if out.SourceNamespace == "" {
		out.SourceNamespace = root.SourceNamespace
	}
	if len(out.Gateways) == 0 {
		out.Gateways = root.Gateways
	}
	return out
}

// matchConflict reports whether a delegate's match cannot be narrowed
// under a root match (istiod's hasConflict).
func matchConflict(root, leaf *networking.HTTPMatchRequest) bool {
	pairs := [][2]*networking.StringMatch{{root.Uri, leaf.Uri}, {root.Scheme, leaf.Scheme}, {root.Method, leaf.Method}, {root.Authority, leaf.Authority}}
	for _, p := range pairs {
		if stringMatchConflict(p[0], p[1]) {
			return true
		}
	}
	for k, v := range leaf.GetHeaders() {
		if stringMatchConflict(root.GetHeaders()[k], v) {
			return true
		}
	}
	for k, v := range leaf.GetWithoutHeaders() {
		if stringMatchConflict(root.GetWithoutHeaders()[k], v) {
			return true
		}
	}
	for k, v := range leaf.GetQueryParams() {
		if stringMatchConflict(root.GetQueryParams()[k], v) {
			return true
		}
	}
	if root.GetIgnoreUriCase() != leaf.GetIgnoreUriCase() {
		return true
	}
	if root.GetPort() > 0 && leaf.GetPort() > 0 && root.GetPort() != leaf.GetPort() {
		return true
	}
	if root.GetSourceNamespace() != "" && leaf.GetSourceNamespace() != root.GetSourceNamespace() {
		return true
	}
	for k, v := range leaf.GetSourceLabels() {
		if rv, ok := root.GetSourceLabels()[k]; ok && rv != v {
			return true
		}
	}
	if len(root.GetGateways()) > 0 && len(leaf.GetGateways()) > 0 {
		for _, g := range leaf.GetGateways() {
			if !slices.Contains(root.GetGateways(), g) {
				return true
			}
		}
	}
	return false
}

// stringMatchConflict: a leaf match must be a narrowing of the root's:
// anything under no condition; the same exact value under an exact one; a
// prefix or exact value starting with a root prefix. Regular expressions
// combine with nothing.
func stringMatchConflict(root, leaf *networking.StringMatch) bool {
	if root == nil || leaf == nil {
		return false
	}
	set := func(m *networking.StringMatch) bool {
		return m.GetRegex() != "" || m.GetPrefix() != "" || m.GetExact() != ""
	}
	if root.GetRegex() != "" && set(leaf) || leaf.GetRegex() != "" && set(root) {
		return true
	}
	if exact := root.GetExact(); exact != "" {
		return leaf.GetPrefix() != "" || leaf.GetExact() != exact
	}
	if prefix := root.GetPrefix(); prefix != "" {
		if p := leaf.GetPrefix(); p != "" {
			return !strings.HasPrefix(p, prefix)
		}
		if e := leaf.GetExact(); e != "" {
			return !strings.HasPrefix(e, prefix)
		}
	}
	return true
}
