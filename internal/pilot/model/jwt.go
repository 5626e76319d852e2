package model

import (
	"sort"
	"time"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
)

// GatewayNameLabel is the label by which a gateway proxy says which
// gateway.networking.k8s.io Gateway it implements; targetRef(s) of kind
// Gateway select proxies by it, as in Istio.
const GatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

// JWKSKey names a key set mastd fetches: by jwksUri, or, when a rule has
// neither jwks nor jwksUri, by the issuer's OpenID discovery document.
type JWKSKey struct {
	Issuer string
	URI    string
}

// JWKSSnapshot holds the key sets mastd has fetched, as of one push. A
// missing entry was never fetched successfully.
type JWKSSnapshot map[JWKSKey]string

// PolicyApplies reports whether a workload policy (AuthorizationPolicy,
// RequestAuthentication, ...) in namespace policyNS with the given
// selector and target references applies to proxy p, as Istio's
// WorkloadPolicyMatcher decides: target references of kind Gateway select
// gateway proxies by GatewayNameLabel in the same namespace (and nothing
// else); other kinds (Service, ServiceEntry) target waypoints, which do not
// exist here, so they select nothing. Without target references a policy
// in the proxy's namespace or the root namespace applies when its selector
// (none: all) matches the proxy's labels.
func (pc *PushContext) PolicyApplies(p *Proxy, policyNS string, sel *typev1beta1.WorkloadSelector,
	ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) bool {
	if ref != nil {
		refs = append([]*typev1beta1.PolicyTargetReference{ref}, refs...)
	}
	if len(refs) > 0 {
		if policyNS != p.Namespace {
			return false
		}
		for _, r := range refs {
			if r.GetKind() == "Gateway" && r.GetGroup() == "gateway.networking.k8s.io" &&
				p.Type == Router && p.Labels[GatewayNameLabel] == r.GetName() {
				return true
			}
		}
		return false
	}
	if policyNS != p.Namespace && policyNS != pc.Mesh.RootNamespace {
		return false
	}
	return LabelsMatch(sel.GetMatchLabels(), p.Labels)
}

// JWTRules returns the jwtRules of every RequestAuthentication that
// applies to p, sorted by issuer (stable, so the output is deterministic),
// as istiod merges them. Within one resource only the first rule of an
// issuer is used (validation warns about the others).
func (pc *PushContext) JWTRules(p *Proxy) []*security.JWTRule {
	if pc.Config == nil {
		return nil
	}
	var out []*security.JWTRule
	for _, r := range pc.Config.List(config.RequestAuthentication) {
		ra, ok := r.Spec.(*security.RequestAuthentication)
		if !ok || !pc.PolicyApplies(p, r.Namespace, ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs()) {
			continue
		}
		seen := map[string]bool{}
		for _, rule := range ra.GetJwtRules() {
			if rule == nil || seen[rule.GetIssuer()] {
				continue
			}
			seen[rule.GetIssuer()] = true
			out = append(out, rule)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetIssuer() < out[j].GetIssuer() })
	return out
}

// JWKSKeys returns every key set the configuration needs mastd to fetch
// (the rules without inline jwks), each with the longest fetch timeout its
// rules ask for (0: the fetcher's default).
func JWKSKeys(cfg *config.Snapshot) map[JWKSKey]time.Duration {
	out := map[JWKSKey]time.Duration{}
	if cfg == nil {
		return out
	}
	for _, r := range cfg.List(config.RequestAuthentication) {
		ra, ok := r.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		for _, rule := range ra.GetJwtRules() {
			if k, ok := KeyOf(rule); ok {
				out[k] = max(out[k], rule.GetTimeout().AsDuration())
			}
		}
	}
	return out
}

// KeyOf is the key set a rule needs fetched; false when its jwks is inline.
func KeyOf(rule *security.JWTRule) (JWKSKey, bool) {
	switch {
	case rule == nil || rule.GetJwks() != "":
		return JWKSKey{}, false
	case rule.GetJwksUri() != "":
		return JWKSKey{URI: rule.GetJwksUri()}, true
	case rule.GetIssuer() != "":
		return JWKSKey{Issuer: rule.GetIssuer()}, true
	}
	return JWKSKey{}, false
}
