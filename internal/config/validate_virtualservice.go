package config

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// meshGateway is the reserved gateway name for the sidecars of the mesh.
const meshGateway = "mesh"

func (v *validator) virtualService(vs *networking.VirtualService) {
	delegate := len(vs.Hosts) == 0
	if delegate {
		if len(vs.Gateways) != 0 {
			v.errorf("spec.gateways", "delegate virtual service (one without hosts) must have no gateways specified")
		}
		if len(vs.Tls) != 0 {
			v.errorf("spec.tls", "delegate virtual service (one without hosts) must have no tls route specified")
		}
		if len(vs.Tcp) != 0 {
			v.errorf("spec.tcp", "delegate virtual service (one without hosts) must have no tcp route specified")
		}
	}
	appliesToMesh := len(vs.Gateways) == 0 || slices.Contains(vs.Gateways, meshGateway)
	appliesToGateway := len(vs.Gateways) > 0 && !slices.Contains(vs.Gateways, meshGateway)
	v.gatewayNames("spec.gateways", vs.Gateways)

	sni := false
	for _, t := range vs.Tls {
		for _, m := range t.GetMatch() {
			sni = sni || len(m.GetSniHosts()) > 0
		}
	}
	allHostsValid := true
	for i, h := range vs.Hosts {
		f := pathIndex("spec.hosts", i)
		var err error
		if appliesToGateway && sni && strings.HasPrefix(h, "outbound_.") {
			err = nil // generated SNI names such as outbound_.80_._.foo.mesh
		} else {
			err = validateWildcardDomain(h)
		}
		switch {
		case err != nil && !isIP(h):
			v.check(f, err)
			allHostsValid = false
		case err == nil && appliesToMesh && h == "*":
			v.errorf(f, "wildcard host * is not allowed for virtual services bound to the mesh gateway")
			allHostsValid = false
		}
	}
	if allHostsValid {
		for i := 0; i < len(vs.Hosts); i++ {
			for j := i + 1; j < len(vs.Hosts); j++ {
				if hostMatches(vs.Hosts[i], vs.Hosts[j]) {
					v.errorf(pathIndex("spec.hosts", j), "duplicate hosts in virtual service: %s & %s", vs.Hosts[i], vs.Hosts[j])
				}
			}
		}
	}
	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		v.errorf("spec", "http, tcp or tls must be provided in virtual service")
	}
	for i, r := range vs.Http {
		v.httpRoute(pathIndex("spec.http", i), r, delegate, appliesToGateway)
	}
	for i, r := range vs.Tls {
		v.tlsRoute(pathIndex("spec.tls", i), r, vs, appliesToGateway)
	}
	for i, r := range vs.Tcp {
		v.tcpRoute(pathIndex("spec.tcp", i), r)
	}
	v.exportTo("spec.exportTo", vs.ExportTo, false, false)
	v.unreachableHTTPRules(vs.Http)
}

// gatewayNames checks gateway references: "name", "namespace/name", "mesh",
// or the legacy "name.namespace" (a warning).
func (v *validator) gatewayNames(field string, names []string) {
	for i, g := range names {
		f := pathIndex(field, i)
		ns, name, ok := strings.Cut(g, "/")
		if !ok {
			if strings.Contains(g, ".") {
				parts := strings.SplitN(g, ".", 3)
				v.warnf(f, "using legacy gateway name format %q; prefer the <namespace>/<name> format: %q", g, parts[1]+"/"+parts[0])
			}
			v.check(f, validateFQDN(g))
			continue
		}
		if ns == "" || name == "" {
			v.errorf(f, "config namespace and gateway name cannot be empty")
			continue
		}
		if !isDNSLabel(ns, false) {
			v.errorf(f, "invalid value for namespace: %q", ns)
		}
		if !isDNSLabel(name, false) {
			v.errorf(f, "invalid value for gateway name: %q", name)
		}
	}
}

func (v *validator) httpRoute(p string, r *networking.HTTPRoute, inDelegate, appliesToGateway bool) {
	if r == nil {
		v.errorf(p, "http route may not be null")
		return
	}
	// Conflicting actions.
	if r.Delegate != nil {
		if inDelegate {
			v.errorf(p+".delegate", "delegate HTTP route cannot contain delegate")
		}
		if r.Redirect != nil {
			v.errorf(p+".redirect", "HTTP route with a delegate must not specify redirect")
		}
		if len(r.Route) > 0 {
			v.errorf(p+".route", "HTTP route with a delegate must not specify route")
		}
		if r.DirectResponse != nil {
			v.errorf(p+".directResponse", "HTTP route with a delegate must not specify directResponse")
		}
		if r.Delegate.Name == "" {
			v.errorf(p+".delegate.name", "delegate name is required")
		} else if !isDNSSubdomain(r.Delegate.Name) {
			v.errorf(p+".delegate.name", "invalid delegate name %q", r.Delegate.Name)
		}
		if r.Delegate.Namespace != "" && !isDNSLabel(r.Delegate.Namespace, false) {
			v.errorf(p+".delegate.namespace", "invalid delegate namespace %q", r.Delegate.Namespace)
		}
	} else {
		switch {
		case r.Redirect != nil:
			if len(r.Route) > 0 {
				v.errorf(p+".redirect", "HTTP route cannot contain both route and redirect")
			}
			if r.Fault != nil {
				v.errorf(p+".redirect", "HTTP route cannot contain both fault and redirect")
			}
			if r.Rewrite != nil {
				v.errorf(p+".redirect", "HTTP route rule cannot contain both rewrite and redirect")
			}
			if r.DirectResponse != nil {
				v.errorf(p+".directResponse", "HTTP route cannot contain both directResponse and redirect")
			}
		case r.DirectResponse != nil:
			if len(r.Route) > 0 {
				v.errorf(p+".directResponse", "HTTP route cannot contain both route and directResponse")
			}
			if r.Rewrite != nil {
				v.errorf(p+".directResponse", "HTTP route cannot contain both rewrite and directResponse")
			}
		case len(r.Route) == 0:
			v.errorf(p, "HTTP route, redirect or directResponse is required")
		}
	}
	if r.Mirror != nil && len(r.Mirrors) > 0 {
		v.errorf(p+".mirrors", "specify mirror or mirrors, not both")
	}

	v.httpMatches(p, r, inDelegate || r.Delegate != nil, appliesToGateway)
	v.headerOps(p+".headers", r.Headers, true)
	v.corsPolicy(p+".corsPolicy", r.CorsPolicy)
	v.fault(p+".fault", r.Fault)
	if r.MirrorPercent != nil {
		if r.MirrorPercent.GetValue() > 100 {
			v.errorf(p+".mirrorPercent", "mirrorPercent must have a max value of 100 (it has %d)", r.MirrorPercent.GetValue())
		}
		v.warnf(p+".mirrorPercent", `using deprecated setting "mirrorPercent", use "mirrorPercentage" instead`)
	}
	if r.MirrorPercentage != nil {
		if val := r.MirrorPercentage.GetValue(); val < 0 || val > 100 {
			v.errorf(p+".mirrorPercentage", "mirrorPercentage %v must be in range 0..100", val)
		}
	}
	if r.Mirror != nil {
		v.destination(p+".mirror", r.Mirror)
	}
	for i, m := range r.Mirrors {
		f := pathIndex(p+".mirrors", i)
		if m == nil || m.Destination == nil {
			v.errorf(f, "destination is required for mirrors")
			continue
		}
		v.destination(f+".destination", m.Destination)
		if val := m.GetPercentage().GetValue(); val < 0 || val > 100 {
			v.errorf(f+".percentage", "mirror percentage %v must be in range 0..100", val)
		}
	}
	v.redirect(p+".redirect", r.Redirect)
	v.directResponse(p+".directResponse", r.DirectResponse)
	v.retries(p+".retries", r.Retries)
	v.rewrite(p+".rewrite", r.Rewrite)
	v.authorityRewrite(p, r)
	v.httpRouteDestinations(p+".route", r.Route)
	v.check(p+".timeout", validateTimeout(r.Timeout))
}

func (v *validator) httpMatches(p string, r *networking.HTTPRoute, delegateChain, appliesToGateway bool) {
	for i, m := range r.Match {
		f := pathIndex(p+".match", i)
		if m == nil {
			v.errorf(f, "match may not be null")
			continue
		}
		stringMatches := []struct {
			name string
			sm   *networking.StringMatch
		}{{"uri", m.Uri}, {"scheme", m.Scheme}, {"method", m.Method}, {"authority", m.Authority}}
		for _, s := range stringMatches {
			v.stringMatch(f+"."+s.name, s.sm, delegateChain)
		}
		for _, hm := range []struct {
			name string
			m    map[string]*networking.StringMatch
		}{{"headers", m.Headers}, {"withoutHeaders", m.WithoutHeaders}} {
			for name, sm := range hm.m {
				hf := pathKey(f+"."+hm.name, name)
				if strings.HasPrefix(name, "@request.auth.claims.") || strings.HasPrefix(name, "@request.auth.claims[") {
					if !appliesToGateway {
						v.errorf(hf, "JWT claim based routing (key: %s) is only supported for gateways", name)
					}
				} else {
					v.check(hf, validateHeaderName(name))
				}
				v.stringMatch(hf, sm, delegateChain)
			}
		}
		for name, sm := range m.QueryParams {
			v.stringMatch(pathKey(f+".queryParams", name), sm, delegateChain)
		}
		if m.Port != 0 {
			v.check(f+".port", validatePort(int(m.Port)))
		}
		v.labels(f+".sourceLabels", m.SourceLabels)
		v.gatewayNames(f+".gateways", m.Gateways)
		if m.SourceNamespace != "" && !isDNSLabel(m.SourceNamespace, false) {
			v.errorf(f+".sourceNamespace", "sourceNamespace match %s is invalid", m.SourceNamespace)
		}
	}
}

// stringMatch checks a regex string match (and rejects regexes in delegate chains).
func (v *validator) stringMatch(f string, sm *networking.StringMatch, delegateChain bool) {
	if sm == nil {
		return
	}
	if re, ok := sm.MatchType.(*networking.StringMatch_Regex); ok {
		if delegateChain {
			v.errorf(f+".regex", "regex match is not supported in delegating routes")
			return
		}
		v.check(f+".regex", validateRegex(re.Regex))
	}
}

func validateHeaderName(name string) error {
	if name == "" {
		return errf("header name cannot be empty")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return errf("header name %q is not a valid header name", name)
		}
	}
	return nil
}

func validateHeaderValue(val string) error {
	for i := 0; i < len(val); i++ {
		if c := val[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return errf("header value %q contains a control character", val)
		}
	}
	// '%' starts an Envoy command operator (%HOSTNAME%); "%%" is a literal '%'.
	for i := 0; i < len(val); i++ {
		if val[i] != '%' {
			continue
		}
		if i+1 < len(val) && val[i+1] == '%' {
			i++
			continue
		}
		end := strings.IndexByte(val[i+1:], '%')
		if end < 0 {
			return errf("header value %q has an unterminated %%VARIABLE%% (write %%%% for a literal %%)", val)
		}
		i += end + 1
	}
	return nil
}

func isAuthorityHeader(k string) bool {
	return strings.EqualFold(k, ":authority") || strings.EqualFold(k, "host")
}

// headerOps checks header manipulation; request headers may set the authority.
func (v *validator) headerOps(p string, h *networking.Headers, allowAuthority bool) {
	if h == nil {
		return
	}
	ops := []struct {
		name    string
		op      *networking.Headers_HeaderOperations
		request bool
	}{{"request", h.Request, true}, {"response", h.Response, false}}
	for _, o := range ops {
		if o.op == nil {
			continue
		}
		for _, kind := range []struct {
			name string
			m    map[string]string
		}{{"set", o.op.Set}, {"add", o.op.Add}} {
			for name, val := range kind.m {
				f := pathKey(p+"."+o.name+"."+kind.name, name)
				switch {
				case name == "":
					v.errorf(f, "header name cannot be empty")
				case o.request && allowAuthority && isAuthorityHeader(name):
				case strings.EqualFold(name, "host"):
					v.errorf(f, "invalid header %q: cannot set Host header", name)
				case strings.HasPrefix(name, ":"):
					v.errorf(f, "invalid header %q: header cannot have \":\" prefix", name)
				}
				v.check(f, validateHeaderValue(val))
			}
		}
		for i, name := range o.op.Remove {
			f := pathIndex(p+"."+o.name+".remove", i)
			switch {
			case name == "":
				v.errorf(f, "header name cannot be empty")
			case strings.EqualFold(name, "host"):
				v.errorf(f, "invalid header %q: cannot remove Host header", name)
			case strings.HasPrefix(name, ":"):
				v.errorf(f, "invalid header %q: header cannot have \":\" prefix", name)
			}
		}
	}
}

// authorityRewrite ensures the authority is rewritten in one place only.
func (v *validator) authorityRewrite(p string, r *networking.HTTPRoute) {
	current := r.GetRewrite().GetAuthority()
	for _, m := range []map[string]string{r.GetHeaders().GetRequest().GetSet(), r.GetHeaders().GetRequest().GetAdd()} {
		for k, val := range m {
			if !isAuthorityHeader(k) {
				continue
			}
			if current != "" {
				v.errorf(p+".headers", "authority header cannot be set multiple times: have %q, attempting to set %q", current, val)
				return
			}
			current = val
		}
	}
}

var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}

func (v *validator) corsPolicy(p string, c *networking.CorsPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.AllowOrigins {
		f := pathIndex(p+".allowOrigins", i)
		if o == nil || o.GetExact() == "" && o.GetPrefix() == "" && o.GetRegex() == "" {
			v.errorf(f, "allowOrigins entries must set a non-empty exact, prefix or regex")
			continue
		}
		v.stringMatch(f, o, false)
	}
	if len(c.AllowOrigin) > 0 {
		v.warnf(p+".allowOrigin", `using deprecated setting "allowOrigin", use "allowOrigins" instead`)
	}
	for i, m := range c.AllowMethods {
		if !slices.Contains(httpMethods, m) {
			v.errorf(pathIndex(p+".allowMethods", i), "%q is not a supported HTTP method", m)
		}
	}
	for _, hs := range []struct {
		name string
		list []string
	}{{"allowHeaders", c.AllowHeaders}, {"exposeHeaders", c.ExposeHeaders}} {
		for i, h := range hs.list {
			if h != "*" {
				v.check(pathIndex(p+"."+hs.name, i), validateHeaderName(h))
			}
		}
	}
	if c.MaxAge != nil {
		v.check(p+".maxAge", validateDuration(c.MaxAge))
		if c.MaxAge.Nanos > 0 {
			v.errorf(p+".maxAge", "maxAge duration is accurate only to seconds precision")
		}
	}
}

func validatePercentage(p *networking.Percent) error {
	if p != nil && (p.Value < 0 || p.Value > 100 || p.Value > 0 && p.Value < 0.0001) {
		return errf("percentage %v is neither 0.0, nor in range [0.0001, 100.0]", p.Value)
	}
	return nil
}

func validatePercent(val int32) error {
	if val < 0 || val > 100 {
		return errf("percentage %v is not in range 0..100", val)
	}
	return nil
}

// grpcStatuses are the gRPC status names Istio accepts in fault injection.
var grpcStatuses = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func validateHTTPStatus(status int64) error {
	if status < 200 || status > 599 {
		return errf("HTTP status %d is not in range 200-599", status)
	}
	return nil
}

func (v *validator) fault(p string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Abort == nil && f.Delay == nil {
		v.errorf(p, "HTTP fault injection must have an abort and/or a delay")
	}
	if a := f.Abort; a != nil {
		v.check(p+".abort.percentage", validatePercentage(a.Percentage))
		switch e := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !slices.Contains(grpcStatuses, e.GrpcStatus) {
				v.errorf(p+".abort.grpcStatus", "gRPC status %q is not supported; want a status name such as NOT_FOUND or UNAVAILABLE", e.GrpcStatus)
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			v.errorf(p+".abort.http2Error", "HTTP/2 abort fault injection is not supported")
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			v.check(p+".abort.httpStatus", validateHTTPStatus(int64(e.HttpStatus)))
		default:
			v.warnf(p+".abort", "abort configured, but error type not set")
		}
	}
	if d := f.Delay; d != nil {
		v.check(p+".delay.percentage", validatePercentage(d.Percentage))
		if d.Percent != 0 {
			v.check(p+".delay.percent", validatePercent(d.Percent))
			v.warnf(p+".delay.percent", `using deprecated setting "percent", use "percentage" instead`)
		}
		switch t := d.HttpDelayType.(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			v.check(p+".delay.fixedDelay", validateDuration(t.FixedDelay))
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			v.errorf(p+".delay.exponentialDelay", "exponentialDelay is not supported")
		default:
			v.errorf(p+".delay", "delay requires fixedDelay")
		}
	}
}

func (v *validator) destination(p string, d *networking.Destination) {
	if d == nil {
		v.errorf(p, "destination is required")
		return
	}
	if d.Host == "*" {
		v.errorf(p+".host", "invalid destination host %s", d.Host)
	} else {
		v.check(p+".host", validateWildcardDomain(d.Host))
	}
	if d.Subset != "" && !isDNSLabel(d.Subset, false) {
		v.errorf(p+".subset", "subset name is invalid: %s", d.Subset)
	}
	if d.Port != nil {
		v.check(p+".port.number", validatePort(int(d.Port.Number)))
	}
}

func (v *validator) httpRouteDestinations(p string, route []*networking.HTTPRouteDestination) {
	total := int64(0)
	for i, d := range route {
		f := pathIndex(p, i)
		if d == nil {
			v.errorf(f, "route destination may not be null")
			continue
		}
		v.headerOps(f+".headers", d.Headers, true)
		v.destination(f+".destination", d.Destination)
		if d.Weight < 0 {
			v.errorf(f+".weight", "weight %d must not be negative", d.Weight)
		}
		total += int64(d.Weight)
	}
	if len(route) > 1 && total != 100 {
		v.errorf(p, "weights sum to %d, want 100", total)
	}
}

func (v *validator) routeDestinations(p string, route []*networking.RouteDestination) {
	total := int64(0)
	for i, d := range route {
		f := pathIndex(p, i)
		if d == nil {
			v.errorf(f, "route destination may not be null")
			continue
		}
		v.destination(f+".destination", d.Destination)
		if d.Weight < 0 {
			v.errorf(f+".weight", "weight %d must not be negative", d.Weight)
		}
		total += int64(d.Weight)
	}
	if len(route) > 1 && total != 100 {
		v.errorf(p, "weights sum to %d, want 100", total)
	}
}

func (v *validator) redirect(p string, r *networking.HTTPRedirect) {
	if r == nil {
		return
	}
	if r.Uri == "" && r.Authority == "" && r.RedirectPort == nil && r.Scheme == "" && r.PrefixRewrite == "" {
		v.errorf(p, "redirect must specify uri, authority, scheme, prefixRewrite or port")
	}
	if r.Uri != "" && r.PrefixRewrite != "" {
		v.errorf(p, "redirect may only contain one of uri or prefixRewrite")
	}
	if r.RedirectCode != 0 && (r.RedirectCode < 300 || r.RedirectCode > 399) {
		v.errorf(p+".redirectCode", "%d is not a valid redirect code, must be 3xx", r.RedirectCode)
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		v.errorf(p+".scheme", `invalid redirect scheme %q, must be "http" or "https"`, r.Scheme)
	}
	if port, ok := r.RedirectPort.(*networking.HTTPRedirect_Port); ok {
		v.check(p+".port", validatePort(int(port.Port)))
	}
}

func (v *validator) directResponse(p string, d *networking.HTTPDirectResponse) {
	if d == nil {
		return
	}
	size := 0
	switch b := d.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		size = len(b.String_)
	case *networking.HTTPBody_Bytes:
		size = len(b.Bytes)
	}
	if size > 1<<20 {
		v.errorf(p+".body", "direct response body is %d bytes; it must be less than 1MB", size)
	} else if size > 100<<10 {
		v.warnf(p+".body", "large direct responses (%d bytes) may impact control plane performance", size)
	}
	v.check(p+".status", validateHTTPStatus(int64(d.Status)))
}

// retryOnPolicies are the retry conditions Envoy understands.
var retryOnPolicies = []string{"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
	"http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

func (v *validator) retries(p string, r *networking.HTTPRetry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 {
		v.errorf(p+".attempts", "attempts cannot be negative")
	}
	if r.Attempts == 0 && (r.PerTryTimeout != nil || r.RetryOn != "" || r.RetryRemoteLocalities != nil) {
		v.errorf(p, "http retry policy configured when attempts are set to 0 (disabled)")
	}
	v.check(p+".perTryTimeout", validateDuration(r.PerTryTimeout))
	v.check(p+".backoff", validateDuration(r.Backoff))
	if r.RetryOn != "" {
		for _, policy := range strings.Split(r.RetryOn, ",") {
			policy = strings.TrimSpace(policy)
			if code, err := strconv.Atoi(policy); err == nil && http.StatusText(code) != "" {
				continue
			}
			if !slices.Contains(retryOnPolicies, policy) {
				v.errorf(p+".retryOn", "%q is not a valid retryOn policy", policy)
			}
		}
	}
}

func (v *validator) rewrite(p string, r *networking.HTTPRewrite) {
	if r == nil {
		return
	}
	if r.Uri != "" && r.UriRegexRewrite != nil {
		v.errorf(p, "rewrite may only contain one of uri or uriRegexRewrite")
	}
	if r.Uri == "" && r.UriRegexRewrite == nil && r.Authority == "" {
		v.errorf(p, "rewrite must specify at least one of uri, uriRegexRewrite or authority")
	}
	if rr := r.UriRegexRewrite; rr != nil {
		if rr.Match == "" || rr.Rewrite == "" {
			v.errorf(p+".uriRegexRewrite", "uriRegexRewrite requires both match and rewrite")
		} else {
			v.check(p+".uriRegexRewrite.match", validateRegex(rr.Match))
		}
	}
}

func (v *validator) tlsRoute(p string, r *networking.TLSRoute, vs *networking.VirtualService, appliesToGateway bool) {
	if r == nil {
		v.errorf(p, "tls route may not be null")
		return
	}
	if len(r.Match) == 0 {
		v.errorf(p+".match", "TLS route must have at least one match condition")
	}
	for i, m := range r.Match {
		f := pathIndex(p+".match", i)
		if m == nil {
			v.errorf(f, "TLS match may not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			v.errorf(f+".sniHosts", "TLS match must have at least one SNI host")
		}
		for j, sni := range m.SniHosts {
			v.sniHost(pathIndex(f+".sniHosts", j), sni, vs)
		}
		for j, s := range m.DestinationSubnets {
			v.check(pathIndex(f+".destinationSubnets", j), validateIPSubnet(s))
		}
		if m.Port != 0 {
			v.check(f+".port", validatePort(int(m.Port)))
		}
		v.labels(f+".sourceLabels", m.SourceLabels)
		v.gatewayNames(f+".gateways", m.Gateways)
	}
	if len(r.Route) == 0 {
		v.errorf(p+".route", "TLS route is required")
	}
	v.routeDestinations(p+".route", r.Route)
}

func (v *validator) sniHost(f, sni string, vs *networking.VirtualService) {
	if err := validateWildcardDomain(sni); err != nil {
		if isIP(sni) {
			v.warnf(f, "using an IP address (%q) goes against SNI spec and most clients do not support this", sni)
			return
		}
		v.check(f, err)
		return
	}
	for _, h := range vs.Hosts {
		if hostSubsetOf(sni, h) {
			return
		}
	}
	v.errorf(f, "SNI host %q is not a compatible subset of any of the virtual service hosts: [%s]", sni, strings.Join(vs.Hosts, ", "))
}

func (v *validator) tcpRoute(p string, r *networking.TCPRoute) {
	if r == nil {
		v.errorf(p, "tcp route may not be null")
		return
	}
	for i, m := range r.Match {
		f := pathIndex(p+".match", i)
		if m == nil {
			v.errorf(f, "tcp match may not be null")
			continue
		}
		for j, s := range m.DestinationSubnets {
			v.check(pathIndex(f+".destinationSubnets", j), validateIPSubnet(s))
		}
		if m.Port != 0 {
			v.check(f+".port", validatePort(int(m.Port)))
		}
		v.labels(f+".sourceLabels", m.SourceLabels)
		v.gatewayNames(f+".gateways", m.Gateways)
	}
	if len(r.Route) == 0 {
		v.errorf(p+".route", "TCP route is required")
	}
	v.routeDestinations(p+".route", r.Route)
}

// unreachableHTTPRules warns about rules that can never match: a rule after
// a catch-all rule, and rules whose every match repeats an earlier one.
func (v *validator) unreachableHTTPRules(routes []*networking.HTTPRoute) {
	catchAll := -1
	var seen []*networking.HTTPMatchRequest
	var seenRule []int
	for i, r := range routes {
		if r == nil {
			continue
		}
		p := pathIndex("spec.http", i)
		if catchAll >= 0 {
			v.warnf(p, "rule is unreachable: rule %d before it has no match conditions and matches every request", catchAll)
			continue
		}
		if len(r.Match) == 0 {
			catchAll = i
			continue
		}
		dups := 0
		for j, m := range r.Match {
			if m == nil {
				continue
			}
			c := m
			if m.Name != "" {
				c = proto.Clone(m).(*networking.HTTPMatchRequest)
				c.Name = ""
			}
			dup := -1
			for k, s := range seen {
				if proto.Equal(s, c) {
					dup = seenRule[k]
					break
				}
			}
			if dup >= 0 {
				dups++
				v.warnf(pathIndex(p+".match", j), "match is not used: rule %d has the same match", dup)
				continue
			}
			seen = append(seen, c)
			seenRule = append(seenRule, i)
		}
		if dups == len(r.Match) {
			v.warnf(p, "rule is unreachable: all its matches are used by earlier rules")
		}
	}
}
