package ctl

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/ratelimit/ratelimitpb"
)

// rootNamespace is Istio's default root namespace: policies there apply to
// the whole mesh.
const rootNamespace = "istio-system"

// workload is what policies select a proxy by.
type workload struct {
	namespace string
	labels    map[string]string
}

// workloadOf finds the proxy's workload: a gateway is Istio's ingress
// gateway; a sidecar's labels are its WorkloadEntry's (by address).
func (w *whyRun) workloadOf(p proxy) workload {
	parts := strings.Split(p.ID, "~")
	if len(parts) != 4 {
		return workload{namespace: "default"}
	}
	ns := "default"
	if _, n, ok := strings.Cut(parts[2], "."); ok {
		ns = n
	}
	if parts[0] == "router" {
		return workload{namespace: ns, labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}}
	}
	if p.Labels != nil {
		return workload{namespace: ns, labels: p.Labels}
	}
	for _, r := range w.snap.List(config.WorkloadEntry) {
		we := r.Spec.(*networking.WorkloadEntry)
		if we.GetAddress() == parts[1] {
			return workload{namespace: r.Namespace, labels: we.GetLabels()}
		}
	}
	return workload{namespace: ns}
}

// selects says a policy in namespace ns with selector matchLabels applies to wl.
func (wl workload) selectedBy(ns string, matchLabels map[string]string) bool {
	if ns != wl.namespace && ns != rootNamespace {
		return false
	}
	for k, v := range matchLabels {
		if wl.labels[k] != v {
			return false
		}
	}
	return true
}

func selectorLabels(s *typev1beta1.WorkloadSelector) map[string]string { return s.GetMatchLabels() }

var rbacPolicyRE = regexp.MustCompile(`^(?:istio-dry-run-)?ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[(\d+)\]$`)

// diagnose turns a failing access log entry into a finding: the cause in
// words and the configuration at fault.
func (w *whyRun) diagnose(e *hopEntry) finding {
	f := finding{Hop: e.hopName(), Flag: e.localFlags(), Details: e.ResponseCodeDetails, RequestID: e.RequestID}
	_, _, subset, host, _ := istioCluster(e.UpstreamCluster)
	wl := w.workloadOf(e.Proxy)
	switch d := e.ResponseCodeDetails; {
	case strings.HasPrefix(d, "rbac_access_denied_matched_policy["):
		w.rbacCause(&f, wl, strings.TrimSuffix(strings.TrimPrefix(d, "rbac_access_denied_matched_policy["), "]"))
	case strings.HasPrefix(d, "jwt_authn_access_denied{"):
		w.jwtCause(&f, wl, strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(d, "jwt_authn_access_denied{"), "}"), "_", " "))
	case e.hasLocalFlag("RL"):
		w.rateLimitCause(&f, wl, d)
	case e.hasLocalFlag("UT"):
		w.timeoutCause(&f, e, host)
	case e.hasLocalFlag("UO"):
		w.overflowCause(&f, host, subset)
	case e.hasLocalFlag("FI"):
		f.Cause = fmt.Sprintf("fault injection aborted the request to %s with HTTP %d", host, e.ResponseCode)
		w.vsField(&f, host, e.Proxy, "fault.abort", func(h *networking.HTTPRoute) bool { return h.GetFault().GetAbort() != nil })
	case e.hasLocalFlag("UF"), e.hasLocalFlag("URX"):
		w.connectCause(&f, e, host)
	case e.hasLocalFlag("DI"):
		f.Cause = fmt.Sprintf("fault injection delayed the request to %s (it took %s)", host, e.Duration)
		w.vsField(&f, host, e.Proxy, "fault.delay", func(h *networking.HTTPRoute) bool { return h.GetFault().GetDelay() != nil })
	case e.hasLocalFlag("UH"):
		f.Cause = fmt.Sprintf("no healthy upstream: cluster %s has no endpoint to send to", e.UpstreamCluster)
		w.unhealthyCause(&f, host, subset)
	case e.hasLocalFlag("NR"):
		f.Cause = fmt.Sprintf("no route matches %s %s%s", e.Method, e.Authority, e.requestPath())
	case e.hasLocalFlag("NC"):
		f.Cause = fmt.Sprintf("the route points at cluster %s, which the proxy does not have", e.UpstreamCluster)
	case e.hasLocalFlag("UC"), e.hasLocalFlag("UR"):
		f.Cause = fmt.Sprintf("the upstream %s reset the connection before answering", e.UpstreamHost)
		if e.UpstreamFailure != "" {
			f.Cause += ": " + e.UpstreamFailure
		}
	case e.hasLocalFlag("DC"):
		f.Cause = fmt.Sprintf("the client went away after %s, before the answer (its own timeout?)", e.Duration)
	case e.hasLocalFlag("UAEX"):
		f.Cause = "the external authorizer (AuthorizationPolicy action CUSTOM) denied the request"
	default:
		f.Cause = fmt.Sprintf("the proxy answered %d itself (%s)", e.ResponseCode, d)
	}
	return f
}

// rbacCause names the AuthorizationPolicy rule an RBAC denial matched, or
// the ALLOW policies none of whose rules matched.
func (w *whyRun) rbacCause(f *finding, wl workload, policy string) {
	if m := rbacPolicyRE.FindStringSubmatch(policy); m != nil {
		f.Cause = fmt.Sprintf("denied by rule %s of AuthorizationPolicy %s/%s", m[3], m[1], m[2])
		if r, ok := w.snap.Get(config.Key{Kind: config.AuthorizationPolicy, Namespace: m[1], Name: m[2]}); ok {
			f.Cause = fmt.Sprintf("denied by rule %s of %s AuthorizationPolicy %s/%s", m[3], r.Spec.(*security.AuthorizationPolicy).GetAction(), m[1], m[2])
		}
		f.Resource, f.Field = "AuthorizationPolicy "+m[1]+"/"+m[2], "spec.rules["+m[3]+"]"
		return
	}
	var allow []string
	for _, r := range w.snap.List(config.AuthorizationPolicy) {
		ap := r.Spec.(*security.AuthorizationPolicy)
		if ap.GetAction() == security.AuthorizationPolicy_ALLOW && wl.selectedBy(r.Namespace, selectorLabels(ap.GetSelector())) {
			allow = append(allow, r.Namespace+"/"+r.Name)
		}
	}
	f.Cause = "denied: ALLOW policies apply to this workload and no rule of theirs matches the request"
	if len(allow) > 0 {
		f.Resource, f.Field = "AuthorizationPolicy "+strings.Join(allow, ", "), "spec.rules"
	}
}

// jwtCause names the RequestAuthentication whose jwt rules refused the token.
func (w *whyRun) jwtCause(f *finding, wl workload, reason string) {
	f.Cause = "the request's JWT was refused: " + reason
	iss := tokenIssuer(w.header.Get("Authorization"))
	for _, r := range w.snap.List(config.RequestAuthentication) {
		ra := r.Spec.(*security.RequestAuthentication)
		if !wl.selectedBy(r.Namespace, selectorLabels(ra.GetSelector())) {
			continue
		}
		f.Resource, f.Field = "RequestAuthentication "+r.Namespace+"/"+r.Name, "spec.jwtRules"
		for i, jr := range ra.GetJwtRules() {
			if iss != "" && jr.GetIssuer() == iss {
				f.Field = fmt.Sprintf("spec.jwtRules[%d]", i)
				switch {
				case strings.Contains(reason, "Audiences"):
					f.Field += ".audiences"
				case strings.Contains(reason, "Jwks"), strings.Contains(reason, "verification"):
					f.Field += ".jwks"
					if jr.GetJwksUri() != "" {
						f.Field += "Uri"
					}
				}
			}
		}
		if strings.Contains(reason, "issuer is not configured") {
			f.Cause += fmt.Sprintf(" (token issuer %q; the rules accept %s)", iss, issuers(ra))
			f.Field = "spec.jwtRules[].issuer"
		}
		return
	}
}

func issuers(ra *security.RequestAuthentication) string {
	var out []string
	for _, jr := range ra.GetJwtRules() {
		out = append(out, fmt.Sprintf("%q", jr.GetIssuer()))
	}
	return strings.Join(out, ", ")
}

// tokenIssuer reads the iss claim of a bearer token without verifying it
// (only to name the rule that refused it).
func tokenIssuer(authz string) string {
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return ""
	}
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	json.Unmarshal(b, &claims)
	return claims.Iss
}

// rateLimitCause names the RateLimit resources the hop enforces.
func (w *whyRun) rateLimitCause(f *finding, wl workload, details string) {
	mode := ratelimitpb.RateLimit_GLOBAL
	if details == "local_rate_limited" {
		mode = ratelimitpb.RateLimit_LOCAL
	}
	f.Cause = fmt.Sprintf("rate limited (%s, a %s limit)", details, mode)
	for _, r := range w.snap.List(config.RateLimit) {
		rl := r.Spec.(*ratelimitpb.RateLimit)
		if rl.GetMode() != mode || !wl.selectedBy(r.Namespace, rl.GetSelector().GetMatchLabels()) {
			continue
		}
		f.Cause = fmt.Sprintf("rate limited by RateLimit %s/%s: %d requests per %s", r.Namespace, r.Name,
			rl.GetMaxAmount(), rl.GetValidDuration().AsDuration())
		f.Resource, f.Field = "RateLimit "+r.Namespace+"/"+r.Name, "spec.maxAmount"
		return
	}
}

// unhealthyCause explains a UH logged for host (and subset): endpoints
// ejected by the DestinationRule's outlier detection, or no workload
// registered behind the service.
func (w *whyRun) unhealthyCause(f *finding, host, subset string) {
	for _, r := range w.snap.List(config.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		if fqdnOf(r.Namespace, dr.GetHost()) != host {
			continue
		}
		path, od := "spec.trafficPolicy.outlierDetection", dr.GetTrafficPolicy().GetOutlierDetection()
		for i, ss := range dr.GetSubsets() {
			if ss.GetName() == subset && ss.GetTrafficPolicy().GetOutlierDetection() != nil {
				path, od = fmt.Sprintf("spec.subsets[%d].trafficPolicy.outlierDetection", i), ss.GetTrafficPolicy().GetOutlierDetection()
			}
		}
		if od == nil {
			continue
		}
		f.Cause = fmt.Sprintf("no healthy upstream: every endpoint of %s is ejected by DestinationRule %s/%s's outlier detection "+
			"(its endpoints failed; is the workload stopped?)", host, r.Namespace, r.Name)
		f.Resource, f.Field = "DestinationRule "+r.Namespace+"/"+r.Name, path
		return
	}
	if subset == "" {
		w.noWorkloads(f, host)
	}
}

// timeoutCause names the VirtualService timeout the request ran into.
func (w *whyRun) timeoutCause(f *finding, e *hopEntry, host string) {
	f.Cause = fmt.Sprintf("%s did not answer in time: the proxy gave up after %s (upstream request timeout)", host, e.Duration)
	vs, i, h := w.httpRouteFor(host, e.Proxy, func(h *networking.HTTPRoute) bool {
		return h.GetTimeout() != nil || h.GetRetries().GetPerTryTimeout() != nil
	})
	if vs == nil {
		f.Cause += "; no VirtualService (of the configuration in force now) sets a timeout for it"
		return
	}
	if h.GetTimeout() != nil {
		f.Cause = fmt.Sprintf("%s did not answer within the route's timeout of %s", host, h.GetTimeout().AsDuration())
		f.Resource, f.Field = w.vs.at(*vs, i, "timeout")
		return
	}
	f.Cause = fmt.Sprintf("%s did not answer within the per-try timeout of %s", host, h.GetRetries().GetPerTryTimeout().AsDuration())
	f.Resource, f.Field = w.vs.at(*vs, i, "retries.perTryTimeout")
}

// overflowCause names the DestinationRule connection-pool limits of host.
func (w *whyRun) overflowCause(f *finding, host, subset string) {
	f.Cause = fmt.Sprintf("circuit breaker open: the connection pool to %s is full (upstream overflow)", host)
	for _, r := range w.snap.List(config.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		if fqdnOf(r.Namespace, dr.GetHost()) != host {
			continue
		}
		path, cp := "spec.trafficPolicy.connectionPool", dr.GetTrafficPolicy().GetConnectionPool()
		for i, ss := range dr.GetSubsets() {
			if ss.GetName() == subset && ss.GetTrafficPolicy().GetConnectionPool() != nil {
				path, cp = fmt.Sprintf("spec.subsets[%d].trafficPolicy.connectionPool", i), ss.GetTrafficPolicy().GetConnectionPool()
			}
		}
		if cp == nil {
			continue
		}
		limits := map[string]int64{
			"tcp.maxConnections":            int64(cp.GetTcp().GetMaxConnections()),
			"http.http1MaxPendingRequests":  int64(cp.GetHttp().GetHttp1MaxPendingRequests()),
			"http.http2MaxRequests":         int64(cp.GetHttp().GetHttp2MaxRequests()),
			"http.maxRequestsPerConnection": int64(cp.GetHttp().GetMaxRequestsPerConnection()),
			"http.maxConcurrentStreams":     int64(cp.GetHttp().GetMaxConcurrentStreams()),
		}
		var set []string
		for _, k := range slices.Sorted(maps.Keys(limits)) {
			if limits[k] > 0 {
				set = append(set, fmt.Sprintf("%s.%s = %d", path, k, limits[k]))
			}
		}
		f.Resource = "DestinationRule " + r.Namespace + "/" + r.Name
		f.Field = strings.Join(set, ", ")
		f.Cause = fmt.Sprintf("circuit breaker open: more concurrent requests to %s than DestinationRule %s/%s's connection pool allows", host, r.Namespace, r.Name)
		return
	}
}

// connectCause explains a connection failure (UF) and exhausted retries (URX).
func (w *whyRun) connectCause(f *finding, e *hopEntry, host string) {
	reason := e.UpstreamFailure
	if reason == "" {
		reason = "connection failure"
	}
	if e.inbound() {
		f.Cause = fmt.Sprintf("the sidecar could not reach its own application at %s: %s (is the application running and listening there?)", e.UpstreamHost, reason)
		f.Resource, f.Field = "Sidecar (ingress) or WorkloadEntry of "+e.Proxy.Name, "spec.ingress[].defaultEndpoint"
		return
	}
	f.Cause = fmt.Sprintf("could not connect to %s, an endpoint of %s: %s", e.UpstreamHost, host, reason)
	addr, _, _ := strings.Cut(e.UpstreamHost, ":")
	for _, r := range w.snap.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		for i, ep := range se.GetEndpoints() {
			if ep.GetAddress() == addr {
				f.Resource, f.Field = "ServiceEntry "+r.Namespace+"/"+r.Name, fmt.Sprintf("spec.endpoints[%d]", i)
			}
		}
	}
	for _, r := range w.snap.List(config.WorkloadEntry) {
		if r.Spec.(*networking.WorkloadEntry).GetAddress() == addr {
			f.Resource, f.Field = "WorkloadEntry "+r.Namespace+"/"+r.Name, "spec.address"
		}
	}
	if e.hasLocalFlag("URX") {
		f.Cause += "; the route's retries are exhausted"
		if vs, i, h := w.httpRouteFor(host, e.Proxy, func(h *networking.HTTPRoute) bool { return h.GetRetries() != nil }); vs != nil {
			res, field := w.vs.at(*vs, i, "retries")
			f.Cause += fmt.Sprintf(" (%s %s: %d attempts, retryOn %q)", res, field,
				h.GetRetries().GetAttempts(), h.GetRetries().GetRetryOn())
		}
	}
}

// vsField points f at the first route of host's VirtualService that has
// what want checks, naming field below spec.http[i].
func (w *whyRun) vsField(f *finding, host string, p proxy, field string, want func(*networking.HTTPRoute) bool) {
	if vs, i, _ := w.httpRouteFor(host, p, want); vs != nil {
		f.Resource, f.Field = w.vs.at(*vs, i, field)
	}
}

// httpRouteFor finds the VirtualService route (of the VirtualServices with
// delegation merged) that sends to host and has what want checks
// (gateway-bound VirtualServices for a gateway hop); w.vs.at names it.
func (w *whyRun) httpRouteFor(host string, p proxy, want func(*networking.HTTPRoute) bool) (*config.Resource, int, *networking.HTTPRoute) {
	gateway := strings.HasPrefix(p.ID, "router~")
	for _, r := range w.vs.list {
		vs := r.Spec.(*networking.VirtualService)
		bound := len(vs.GetGateways()) > 0 && !(len(vs.GetGateways()) == 1 && vs.GetGateways()[0] == "mesh")
		if bound != gateway {
			continue
		}
		for i, h := range vs.GetHttp() {
			if !want(h) {
				continue
			}
			for _, d := range h.GetRoute() {
				if fqdnOf(r.Namespace, d.GetDestination().GetHost()) == host {
					r := r
					return &r, i, h
				}
			}
		}
	}
	return nil, 0, nil
}
