package generate

import (
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	prevpriov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Istio's default retry policy for routes without a VirtualService retry setting.
const (
	defaultRetryOn       = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	defaultRetryAttempts = 2
	previousHostsName    = "envoy.retry_host_predicates.previous_hosts"
)

// routeOpts says where routes are being built.
type routeOpts struct {
	gateway string // "mesh" or the gateway "ns/name"
	port    uint32 // the port of the route config, used for match.port and destinations without a port
	tls     bool   // a gateway server with TLS settings (a redirect's default scheme is https)
}

// httpRoutes translates the http routes of VirtualServices (in order) into
// Envoy routes. Matches that cannot apply to this proxy, port or gateway are
// dropped; an HTTPRoute whose matches all drop is dropped.
func (g *gen) httpRoutes(vss []*model.VirtualService, o routeOpts) []*routev3.Route {
	var out []*routev3.Route
	for _, vs := range vss {
		for i, r := range vs.Spec.GetHttp() {
			if r.GetDelegate() != nil {
				continue // never here: the index merged delegates (model.mergeDelegates)
			}
			var action routeAction
			built := false
			matches := r.GetMatch()
			if len(matches) == 0 {
				matches = []*networking.HTTPMatchRequest{nil}
			}
			for _, m := range matches {
				if !g.httpMatchApplies(m, vs.Namespace, o) {
					continue
				}
				rm, ok := g.routeMatch(m)
				if !ok {
					continue
				}
				if !built {
					action = g.routeAction(r, vs.Namespace, o)
					if !g.grpc && action.route != nil && hedgeOnPerTryTimeout(vs) && action.route.GetRetryPolicy().GetPerTryTimeout() != nil {
						action.route.HedgePolicy = &routev3.HedgePolicy{HedgeOnPerTryTimeout: true}
					}
					built = true
				}
				name := r.GetName()
				if name == "" {
					name = vs.Namespace + "/" + vs.Name + "#" + strconv.Itoa(i)
				}
				if m.GetName() != "" {
					name += "." + m.GetName()
				}
				// As istiod: the match's statPrefix is the route's, for
				// Envoy's per-route stats (vhost.<vh>.route.<prefix>.*).
				rt := &routev3.Route{Name: name, Match: rm, StatPrefix: m.GetStatPrefix()}
				action.apply(rt)
				out = append(out, rt)
			}
		}
	}
	return out
}

// httpMatchApplies evaluates the parts of a match that are known at generation time.
func (g *gen) httpMatchApplies(m *networking.HTTPMatchRequest, ns string, o routeOpts) bool {
	if m == nil {
		return true
	}
	if m.GetPort() != 0 && m.GetPort() != o.port {
		return false
	}
	return g.sourceApplies(m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), ns, o.gateway)
}

func (g *gen) sourceApplies(labels map[string]string, sourceNS string, gateways []string, ns, gateway string) bool {
	if len(labels) > 0 && !model.LabelsMatch(labels, g.p.Labels) {
		return false
	}
	if sourceNS != "" && sourceNS != g.p.Namespace {
		return false
	}
	if len(gateways) > 0 {
		found := false
		for _, gw := range gateways {
			if model.ResolveGatewayName(gw, ns) == gateway {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// stringMatcher converts an Istio StringMatch; ok is false when it matches
// only presence (nil, unset, or an empty prefix).
func stringMatcher(s *networking.StringMatch, ignoreCase bool) (*matcherv3.StringMatcher, bool) {
	switch m := s.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}, IgnoreCase: ignoreCase}, true
	case *networking.StringMatch_Prefix:
		if m.Prefix == "" {
			return nil, false
		}
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}, IgnoreCase: ignoreCase}, true
	case *networking.StringMatch_Regex:
		if m.Regex == "" {
			return nil, false
		}
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(m.Regex)}}, true
	}
	return nil, false
}

func headerMatcher(name string, s *networking.StringMatch, invert bool) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if sm, ok := stringMatcher(s, false); ok {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
	} else {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// routeMatch converts an HTTPMatchRequest (nil: match everything). ok is
// false when the match cannot be expressed for this client.
func (g *gen) routeMatch(m *networking.HTTPMatchRequest) (*routev3.RouteMatch, bool) {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm, true
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		if u.Prefix != "" {
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
		}
	case *networking.StringMatch_Regex:
		if u.Regex != "" {
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(u.Regex)}
		}
	}
	if m.GetIgnoreUriCase() {
		rm.CaseSensitive = boolv(false)
	}
	for _, k := range sortedKeys(m.GetHeaders()) {
		rm.Headers = append(rm.Headers, headerMatcher(k, m.GetHeaders()[k], false))
	}
	for _, k := range sortedKeys(m.GetWithoutHeaders()) {
		rm.Headers = append(rm.Headers, headerMatcher(k, m.GetWithoutHeaders()[k], true))
	}
	if m.GetMethod() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", m.GetMethod(), false))
	}
	if m.GetAuthority() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", m.GetAuthority(), false))
	}
	if m.GetScheme() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", m.GetScheme(), false))
	}
	if len(m.GetQueryParams()) > 0 && g.grpc {
		return nil, false // grpc-go ignores routes with query parameter matchers
	}
	for _, k := range sortedKeys(m.GetQueryParams()) {
		qm := &routev3.QueryParameterMatcher{Name: k}
		if sm, ok := stringMatcher(m.GetQueryParams()[k], false); ok {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm, true
}

// routeAction is the translated action of one HTTPRoute, shared by the
// Envoy routes of its matches.
type routeAction struct {
	route    *routev3.RouteAction
	redirect *routev3.RedirectAction
	direct   *routev3.DirectResponseAction
	filters  map[string]*anypb.Any

	reqAdd, respAdd       []*corev3.HeaderValueOption
	reqRemove, respRemove []string
}

// hedgeOnPerTryTimeout reports whether vs asks for request hedging on its
// routes that have a per-try timeout (Envoy's
// hedge_policy.hedge_on_per_try_timeout; docs/resilience.md).
func hedgeOnPerTryTimeout(vs *model.VirtualService) bool {
	return vs.Annotations[config.HedgeAnnotation] == "true"
}

func (a *routeAction) apply(rt *routev3.Route) {
	switch {
	case a.redirect != nil:
		rt.Action = &routev3.Route_Redirect{Redirect: a.redirect}
	case a.direct != nil:
		rt.Action = &routev3.Route_DirectResponse{DirectResponse: a.direct}
	default:
		rt.Action = &routev3.Route_Route{Route: a.route}
	}
	rt.TypedPerFilterConfig = a.filters
	rt.RequestHeadersToAdd, rt.RequestHeadersToRemove = a.reqAdd, a.reqRemove
	rt.ResponseHeadersToAdd, rt.ResponseHeadersToRemove = a.respAdd, a.respRemove
}

func (g *gen) routeAction(r *networking.HTTPRoute, ns string, o routeOpts) routeAction {
	var a routeAction
	if !g.grpc {
		a.reqAdd, a.reqRemove = headerOps(r.GetHeaders().GetRequest())
		a.respAdd, a.respRemove = headerOps(r.GetHeaders().GetResponse())
	}
	switch {
	case r.GetRedirect() != nil:
		a.redirect = redirectAction(r.GetRedirect(), o)
		return a
	case r.GetDirectResponse() != nil:
		a.direct = directResponse(r.GetDirectResponse())
		return a
	}
	ra := &routev3.RouteAction{}
	a.route = ra
	dests := r.GetRoute()
	var total uint32
	for _, d := range dests {
		if d.GetWeight() > 0 {
			total += uint32(d.GetWeight())
		}
	}
	var wcs []*routev3.WeightedCluster_ClusterWeight
	var single *networking.HTTPRouteDestination
	for _, d := range dests {
		w := uint32(max(d.GetWeight(), 0))
		if total == 0 {
			w = 1 // no weights: split evenly
		}
		if w == 0 {
			continue
		}
		single = d
		cw := &routev3.WeightedCluster_ClusterWeight{Name: g.destinationCluster(d.GetDestination(), ns, o.port), Weight: u32(w)}
		if !g.grpc {
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOps(d.GetHeaders().GetRequest())
			cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOps(d.GetHeaders().GetResponse())
		}
		wcs = append(wcs, cw)
	}
	switch len(wcs) {
	case 0:
		// a route with no usable destination cannot forward: answer as Envoy does for an unknown cluster
		a.route = nil
		a.direct = &routev3.DirectResponseAction{Status: 503}
		return a
	case 1:
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: wcs[0].Name}
		a.reqAdd = append(a.reqAdd, wcs[0].RequestHeadersToAdd...)
		a.reqRemove = append(a.reqRemove, wcs[0].RequestHeadersToRemove...)
		a.respAdd = append(a.respAdd, wcs[0].ResponseHeadersToAdd...)
		a.respRemove = append(a.respRemove, wcs[0].ResponseHeadersToRemove...)
		ra.HashPolicy = g.hashPolicy(single.GetDestination(), ns, o.port)
	default:
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: wcs}}
	}
	if g.grpc {
		if t := r.GetTimeout(); t != nil {
			ra.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: t}
		}
		ra.RetryPolicy = grpcRetryPolicy(r.GetRetries())
		return a
	}
	ra.Timeout = dur(0)
	if t := r.GetTimeout(); t != nil {
		ra.Timeout = t
	}
	ra.RetryPolicy = retryPolicy(r.GetRetries())
	ra.RequestMirrorPolicies = g.mirrorPolicies(r, ns, o.port)
	if rw := r.GetRewrite(); rw != nil {
		if rw.GetUri() != "" {
			ra.PrefixRewrite = rw.GetUri()
		} else if rr := rw.GetUriRegexRewrite(); rr != nil && rr.GetMatch() != "" {
			ra.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regexMatcher(rr.GetMatch()), Substitution: rr.GetRewrite()}
		}
		if rw.GetAuthority() != "" {
			ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.GetAuthority()}
		}
	}
	if f := faultConfig(r.GetFault()); f != nil {
		a.filters = map[string]*anypb.Any{faultFilterName: toAny(f)}
	}
	if c := corsPolicy(r.GetCorsPolicy()); c != nil {
		if a.filters == nil {
			a.filters = map[string]*anypb.Any{}
		}
		a.filters[corsFilterName] = toAny(c)
	}
	return a
}

// mirrorPolicies translates mirror (with mirrorPercentage or the legacy
// mirrorPercent) and mirrors as Istio does: an unset percentage is 100 %,
// an explicit 0 mirrors nothing, and copies are not trace-sampled.
func (g *gen) mirrorPolicies(r *networking.HTTPRoute, ns string, port uint32) []*routev3.RouteAction_RequestMirrorPolicy {
	var out []*routev3.RouteAction_RequestMirrorPolicy
	add := func(d *networking.Destination, p *typev3.FractionalPercent) {
		if d == nil || p == nil {
			return
		}
		out = append(out, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         g.destinationCluster(d, ns, port),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: p},
			TraceSampled:    boolv(false),
		})
	}
	if r.GetMirror() != nil {
		switch {
		case r.GetMirrorPercentage() != nil:
			add(r.GetMirror(), positivePercent(r.GetMirrorPercentage()))
		case r.GetMirrorPercent() != nil: //nolint:staticcheck // deprecated, still read by Istio
			if v := r.GetMirrorPercent().GetValue(); v > 0 { //nolint:staticcheck // as above
				add(r.GetMirror(), &typev3.FractionalPercent{Numerator: min(v, 100), Denominator: typev3.FractionalPercent_HUNDRED})
			}
		default:
			add(r.GetMirror(), percent(nil, 0))
		}
	}
	for _, m := range r.GetMirrors() {
		if m.GetPercentage() == nil {
			add(m.GetDestination(), percent(nil, 0))
		} else {
			add(m.GetDestination(), positivePercent(m.GetPercentage()))
		}
	}
	return out
}

// positivePercent is percent(p) for a value above 0, nil for 0.
func positivePercent(p *networking.Percent) *typev3.FractionalPercent {
	if p.GetValue() <= 0 {
		return nil
	}
	return percent(p, 0)
}

// destinationCluster is the outbound cluster of a destination, its host
// resolved against ns and its port defaulted to the service's only port or
// the route's port.
func (g *gen) destinationCluster(d *networking.Destination, ns string, port uint32) string {
	host, p := g.destinationHostPort(d, ns, port)
	return ClusterName("outbound", p, d.GetSubset(), host)
}

func (g *gen) destinationHostPort(d *networking.Destination, ns string, port uint32) (string, uint32) {
	host := model.ResolveHost(d.GetHost(), ns, g.pc.Mesh.DomainSuffix)
	p := d.GetPort().GetNumber()
	if p == 0 {
		if svc := g.pc.Service(host); svc != nil && len(svc.Ports) == 1 {
			p = svc.Ports[0].Number
		} else {
			p = port
		}
	}
	return host, p
}

func headerOps(ops *networking.Headers_HeaderOperations) (add []*corev3.HeaderValueOption, remove []string) {
	if ops == nil {
		return nil, nil
	}
	for _, k := range sortedKeys(ops.GetSet()) {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.GetSet()[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(ops.GetAdd()) {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.GetAdd()[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	if len(ops.GetRemove()) > 0 {
		remove = append([]string(nil), ops.GetRemove()...)
	}
	return add, remove
}

func redirectAction(r *networking.HTTPRedirect, o routeOpts) *routev3.RedirectAction {
	ra := &routev3.RedirectAction{HostRedirect: r.GetAuthority(), PortRedirect: r.GetPort()}
	if r.GetRedirectPort() != nil {
		// As istiod: FROM_REQUEST_PORT is the route configuration's port
		// (routes are generated per request port); FROM_PROTOCOL_DEFAULT
		// is Envoy's default. An explicit :80 for http or :443 for https
		// is left out.
		if r.GetDerivePort() == networking.HTTPRedirect_FROM_REQUEST_PORT {
			ra.PortRedirect = o.port
		}
		scheme := strings.ToLower(r.GetScheme())
		if scheme == "" {
			scheme = "http"
			if o.tls {
				scheme = "https"
			}
		}
		if (ra.PortRedirect == 80 && scheme == "http") || (ra.PortRedirect == 443 && scheme == "https") {
			ra.PortRedirect = 0
		}
	}
	switch {
	case r.GetUri() != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.GetUri()}
	case r.GetPrefixRewrite() != "":
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.GetPrefixRewrite()}
	}
	switch s := strings.ToLower(r.GetScheme()); s {
	case "":
	case "https":
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}
	default:
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: s}
	}
	switch r.GetRedirectCode() {
	case 302:
		ra.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		ra.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		ra.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		ra.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		ra.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	}
	return ra
}

func directResponse(d *networking.HTTPDirectResponse) *routev3.DirectResponseAction {
	status := d.GetStatus()
	if status < 200 || status >= 600 {
		status = 500 // validation rejects these; never emit a resource Envoy refuses
	}
	da := &routev3.DirectResponseAction{Status: status}
	switch b := d.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		da.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: b.String_}}
	case *networking.HTTPBody_Bytes:
		da.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b.Bytes}}
	}
	return da
}

// defaultRetryPolicy is Istio's retry policy for routes that do not set one.
func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:                       defaultRetryOn,
		NumRetries:                    u32(defaultRetryAttempts),
		RetriableStatusCodes:          []uint32{503},
		RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{previousHosts()},
		HostSelectionRetryMaxAttempts: 5,
	}
}

func previousHosts() *routev3.RetryPolicy_RetryHostPredicate {
	return &routev3.RetryPolicy_RetryHostPredicate{
		Name:       previousHostsName,
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: toAny(&previoushostsv3.PreviousHostsPredicate{})},
	}
}

// retryPolicy translates an HTTPRetry as Istio does: unset means Istio's
// defaults, attempts 0 disables retries, numeric retryOn entries become
// retriable status codes.
func retryPolicy(r *networking.HTTPRetry) *routev3.RetryPolicy {
	if r == nil {
		return defaultRetryPolicy()
	}
	if r.GetAttempts() <= 0 {
		return nil
	}
	rp := &routev3.RetryPolicy{NumRetries: u32(uint32(r.GetAttempts())), RetryOn: defaultRetryOn, PerTryTimeout: r.GetPerTryTimeout(), HostSelectionRetryMaxAttempts: 5}
	if r.GetRetryOn() != "" {
		var on []string
		for _, s := range strings.Split(r.GetRetryOn(), ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if code, err := strconv.ParseUint(s, 10, 32); err == nil {
				rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(code))
				continue
			}
			on = append(on, s)
		}
		if len(rp.RetriableStatusCodes) > 0 && !contains(on, "retriable-status-codes") {
			on = append(on, "retriable-status-codes")
		}
		rp.RetryOn = strings.Join(on, ",")
	} else {
		rp.RetriableStatusCodes = []uint32{503}
	}
	if r.GetRetryIgnorePreviousHosts() == nil || r.GetRetryIgnorePreviousHosts().GetValue() {
		rp.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{previousHosts()}
	}
	if r.GetRetryRemoteLocalities().GetValue() {
		// As istiod: previous_priorities with update frequency 2 — the
		// third attempt leaves the priorities (localities) the first two
		// went to.
		rp.RetryPriority = &routev3.RetryPolicy_RetryPriority{
			Name:       "envoy.retry_priorities.previous_priorities",
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: toAny(&prevpriov3.PreviousPrioritiesConfig{UpdateFrequency: 2})},
		}
	}
	if b := r.GetBackoff(); b != nil && b.AsDuration() > 0 {
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: b}
	}
	return rp
}

// grpcRetryPolicy is the subset grpc-go accepts: num_retries >= 1, gRPC
// status names in retry_on, a positive backoff.
func grpcRetryPolicy(r *networking.HTTPRetry) *routev3.RetryPolicy {
	retryOn := "unavailable,cancelled"
	attempts := uint32(defaultRetryAttempts)
	if r != nil {
		if r.GetAttempts() <= 0 {
			return nil
		}
		attempts = uint32(r.GetAttempts())
		if r.GetRetryOn() != "" {
			var on []string
			for _, s := range strings.Split(r.GetRetryOn(), ",") {
				switch s = strings.TrimSpace(strings.ToLower(s)); s {
				case "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
					on = append(on, s)
				}
			}
			if len(on) == 0 {
				return nil
			}
			retryOn = strings.Join(on, ",")
		}
	}
	rp := &routev3.RetryPolicy{RetryOn: retryOn, NumRetries: u32(attempts)}
	if b := r.GetBackoff(); b != nil && b.AsDuration() > 0 {
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: b}
	}
	return rp
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// percent converts an Istio Percent (0-100, fractional) to a FractionalPercent
// over a million; nil means 100%.
func percent(p *networking.Percent, legacy int32) *typev3.FractionalPercent {
	switch {
	case p != nil:
		v := min(max(p.GetValue(), 0), 100)
		return &typev3.FractionalPercent{Numerator: uint32(v * 10000), Denominator: typev3.FractionalPercent_MILLION}
	case legacy > 0:
		return &typev3.FractionalPercent{Numerator: uint32(min(legacy, 100)), Denominator: typev3.FractionalPercent_HUNDRED}
	default:
		return &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}
	}
}

// grpcCode maps a gRPC status name, as Istio's grpcStatus takes it, or a number to its code.
func grpcCode(s string) (uint32, bool) {
	names := [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
		"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
	for i, n := range names {
		if strings.EqualFold(n, s) {
			return uint32(i), true
		}
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n < uint64(len(names)) {
		return uint32(n), true
	}
	return 0, false
}

func faultConfig(f *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	if f == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := f.GetDelay(); d != nil && d.GetFixedDelay() != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: d.GetFixedDelay()},
			Percentage:         percent(d.GetPercentage(), d.GetPercent()),
		}
	}
	if a := f.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{Percentage: percent(a.GetPercentage(), 0)}
		switch e := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			if e.HttpStatus >= 200 && e.HttpStatus < 600 {
				abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
			}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if code, ok := grpcCode(e.GrpcStatus); ok {
				abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
			}
		}
		if abort.ErrorType != nil {
			out.Abort = abort
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

func corsPolicy(c *networking.CorsPolicy) *corsv3.CorsPolicy {
	if c == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:     strings.Join(c.GetAllowMethods(), ","),
		AllowHeaders:     strings.Join(c.GetAllowHeaders(), ","),
		ExposeHeaders:    strings.Join(c.GetExposeHeaders(), ","),
		AllowCredentials: c.GetAllowCredentials(),
	}
	if c.GetUnmatchedPreflights() == networking.CorsPolicy_IGNORE {
		out.ForwardNotMatchingPreflights = boolv(false)
	}
	if c.GetMaxAge() != nil {
		out.MaxAge = strconv.FormatInt(int64(c.GetMaxAge().AsDuration()/time.Second), 10)
	}
	for _, o := range c.GetAllowOrigin() {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, exactMatcher(o))
	}
	for _, o := range c.GetAllowOrigins() {
		if sm, ok := stringMatcher(o, false); ok {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
		}
	}
	return out
}
