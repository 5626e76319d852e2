package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/celfilter"
	"github.com/mast-mesh/mast/internal/proxy/filter/jwtauthn"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// policyTarget checks the selector / targetRef / targetRefs of a policy.
func (v *validator) policyTarget(sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	if sel != nil {
		set++
	}
	if ref != nil {
		set++
	}
	if len(refs) > 0 {
		set++
	}
	if set > 1 {
		v.errorf("spec", "only one of selector, targetRef or targetRefs can be set")
	}
	v.selectorLabels("spec.selector.matchLabels", sel.GetMatchLabels(), sel != nil)
	if ref != nil {
		v.targetRef("spec.targetRef", ref)
	}
	for i, r := range refs {
		v.targetRef(pathIndex("spec.targetRefs", i), r)
	}
}

func (v *validator) targetRef(p string, r *typev1beta1.PolicyTargetReference) {
	if r.Name == "" {
		v.errorf(p+".name", "targetRef name must be set")
	}
	if r.Namespace != "" {
		v.errorf(p+".namespace", "targetRef namespace must not be set; cross namespace referencing is not supported")
	}
	group := r.Group
	switch {
	case group == "" && r.Kind == "Service":
	case group == "networking.istio.io" && r.Kind == "ServiceEntry":
	case group == "gateway.networking.k8s.io" && r.Kind == "Gateway":
	default:
		v.errorf(p, "targetRef must be to a core Service, networking.istio.io ServiceEntry or gateway.networking.k8s.io Gateway, but was %s/%s", group, r.Kind)
	}
}

func (v *validator) authorizationPolicy(ap *security.AuthorizationPolicy) {
	v.policyTarget(ap.Selector, ap.TargetRef, ap.TargetRefs)
	if ap.Action == security.AuthorizationPolicy_CUSTOM {
		if ap.Rules == nil {
			v.errorf("spec.rules", "CUSTOM action without rules is meaningless as it will never be triggered; add an empty rule {} to trigger it for every request")
		} else if ap.GetProvider().GetName() == "" {
			v.errorf("spec.provider.name", "provider.name must not be empty for CUSTOM action")
		}
		for i, r := range ap.Rules {
			for j, from := range r.GetFrom() {
				src := from.GetSource()
				f := pathIndex(pathIndex("spec.rules", i)+".from", j) + ".source"
				for name, l := range map[string][]string{"namespaces": src.GetNamespaces(), "notNamespaces": src.GetNotNamespaces(),
					"principals": src.GetPrincipals(), "notPrincipals": src.GetNotPrincipals(),
					"requestPrincipals": src.GetRequestPrincipals(), "notRequestPrincipals": src.GetNotRequestPrincipals()} {
					if len(l) != 0 {
						v.errorf(f+"."+name, "%s is not supported with CUSTOM action", name)
					}
				}
			}
			for j, when := range r.GetWhen() {
				k := when.GetKey()
				if k == "source.namespace" || k == "source.principal" || strings.HasPrefix(k, "request.auth.") {
					v.errorf(pathIndex(pathIndex("spec.rules", i)+".when", j)+".key", "%s is not supported with CUSTOM action", k)
				}
			}
		}
	}
	if ap.GetProvider() != nil && ap.Action != security.AuthorizationPolicy_CUSTOM {
		v.errorf("spec.provider", "provider must not be set with non CUSTOM action, found %s", ap.Action)
	}
	if ap.Action == security.AuthorizationPolicy_DENY && ap.Rules == nil {
		v.errorf("spec.rules", "DENY action without rules is meaningless as it will never be triggered; add an empty rule {} to trigger it for every request")
	}
	if ap.Action == security.AuthorizationPolicy_AUDIT && ap.Rules == nil {
		v.warnf("spec.rules", "AUDIT action without rules audits nothing")
	}
	if val, ok := v.r.Annotations["istio.io/dry-run"]; ok {
		if ap.Action != security.AuthorizationPolicy_ALLOW && ap.Action != security.AuthorizationPolicy_DENY {
			v.errorf(pathKey("metadata.annotations", "istio.io/dry-run"), "annotation istio.io/dry-run only supports action ALLOW and DENY, found %s", ap.Action)
		} else if _, err := strconv.ParseBool(val); err != nil {
			v.errorf(pathKey("metadata.annotations", "istio.io/dry-run"), "annotation istio.io/dry-run has invalid value %q: want true or false", val)
		}
	}
	for i, r := range ap.Rules {
		p := pathIndex("spec.rules", i)
		if r == nil {
			v.errorf(p, "rule must not be null")
			continue
		}
		if r.From != nil && len(r.From) == 0 {
			v.errorf(p+".from", "from must not be empty")
		}
		if r.To != nil && len(r.To) == 0 {
			v.errorf(p+".to", "to must not be empty")
		}
		tcpFrom, tcpTo, fromExists, toExists := false, false, false, false
		for j, from := range r.From {
			f := pathIndex(p+".from", j)
			src := from.GetSource()
			if src == nil {
				v.errorf(f+".source", "from.source must not be null")
				continue
			}
			fromExists = true
			lists := []struct {
				name string
				l    []string
				ip   bool
				tcp  bool
			}{
				{"principals", src.Principals, false, true}, {"notPrincipals", src.NotPrincipals, false, true},
				{"requestPrincipals", src.RequestPrincipals, false, false}, {"notRequestPrincipals", src.NotRequestPrincipals, false, false},
				{"namespaces", src.Namespaces, false, true}, {"notNamespaces", src.NotNamespaces, false, true},
				{"serviceAccounts", src.ServiceAccounts, false, true}, {"notServiceAccounts", src.NotServiceAccounts, false, true},
				{"ipBlocks", src.IpBlocks, true, true}, {"notIpBlocks", src.NotIpBlocks, true, true},
				{"remoteIpBlocks", src.RemoteIpBlocks, true, true}, {"notRemoteIpBlocks", src.NotRemoteIpBlocks, true, true},
				{"trustDomains", src.TrustDomains, false, true}, {"notTrustDomains", src.NotTrustDomains, false, true},
			}
			empty := true
			for _, l := range lists {
				if len(l.l) > 0 {
					empty = false
					tcpFrom = tcpFrom || l.tcp
				}
				v.nonEmptyValues(f+".source."+l.name, l.l)
				if l.ip {
					for k, ip := range l.l {
						if ip != "" {
							v.check(pathIndex(f+".source."+l.name, k), validateIPSubnet(ip))
						}
					}
				}
			}
			if empty {
				v.errorf(f+".source", "from.source must not be empty")
			}
			if (len(src.ServiceAccounts) > 0 || len(src.NotServiceAccounts) > 0) && (len(src.Principals) > 0 || len(src.NotPrincipals) > 0) {
				v.errorf(f+".source", "serviceAccounts cannot be combined with principals")
			}
		}
		for j, to := range r.To {
			f := pathIndex(p+".to", j)
			op := to.GetOperation()
			if op == nil {
				v.errorf(f+".operation", "to.operation must not be null")
				continue
			}
			toExists = true
			if len(op.Ports) == 0 && len(op.Methods) == 0 && len(op.Paths) == 0 && len(op.Hosts) == 0 &&
				len(op.NotPorts) == 0 && len(op.NotMethods) == 0 && len(op.NotPaths) == 0 && len(op.NotHosts) == 0 {
				v.errorf(f+".operation", "to.operation must not be empty")
			}
			for name, l := range map[string][]string{"hosts": op.Hosts, "notHosts": op.NotHosts, "methods": op.Methods,
				"notMethods": op.NotMethods, "paths": op.Paths, "notPaths": op.NotPaths, "ports": op.Ports, "notPorts": op.NotPorts} {
				v.nonEmptyValues(f+".operation."+name, l)
			}
			for name, l := range map[string][]string{"ports": op.Ports, "notPorts": op.NotPorts} {
				for k, port := range l {
					if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
						v.errorf(pathIndex(f+".operation."+name, k), "invalid port %q: want a number in 0..65535", port)
					}
				}
			}
			for name, l := range map[string][]string{"paths": op.Paths, "notPaths": op.NotPaths} {
				for k, path := range l {
					v.check(pathIndex(f+".operation."+name, k), validatePathTemplate(path))
				}
			}
			tcpTo = tcpTo || op.Ports != nil || op.NotPorts != nil
		}
		for j, c := range r.When {
			f := pathIndex(p+".when", j)
			if c.GetKey() == "" {
				v.errorf(f+".key", "key must not be empty")
				continue
			}
			if len(c.Values) == 0 && len(c.NotValues) == 0 {
				v.errorf(f, "at least one of values or notValues must be set for key %s", c.Key)
				continue
			}
			v.check(f+".key", validateConditionKey(c.Key))
			for k, val := range append(append([]string(nil), c.Values...), c.NotValues...) {
				if strings.HasSuffix(c.Key, ".ip") || c.Key == "remote.ip" {
					if err := validateIPSubnet(val); err != nil {
						v.errorf(f, "invalid value %q for key %s (value %d): %v", val, c.Key, k, err)
					}
				}
				if c.Key == "destination.port" {
					if n, err := strconv.Atoi(val); err != nil || n < 0 || n > 65535 {
						v.errorf(f, "invalid port %q for key destination.port", val)
					}
				}
			}
		}
		if ap.Action == security.AuthorizationPolicy_DENY && (fromExists && !toExists && !tcpFrom || toExists && !tcpTo) {
			v.warnf(p, "this DENY rule uses only HTTP attributes, so it will deny all traffic to TCP ports under its scope; specify the port explicitly")
		}
	}
}

func (v *validator) nonEmptyValues(field string, l []string) {
	for i, s := range l {
		if s == "" {
			v.errorf(pathIndex(field, i), "empty value is not allowed")
		}
	}
}

// conditionKeys are the fixed keys of AuthorizationPolicy conditions; the
// bracketed families are checked by prefix.
var conditionKeys = []string{"source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
	"request.auth.principal", "request.auth.audiences", "request.auth.presenter", "destination.ip",
	"destination.port", "connection.sni"}

func validateConditionKey(k string) error {
	for _, known := range conditionKeys {
		if k == known {
			return nil
		}
	}
	for _, prefix := range []string{"request.headers[", "request.auth.claims[", "request.experimental.auth.claims["} {
		if strings.HasPrefix(k, prefix) {
			if !strings.HasSuffix(k, "]") || len(k) == len(prefix)+1 {
				return errf("key %q must be of form %sNAME]", k, prefix)
			}
			return nil
		}
	}
	if strings.HasPrefix(k, "experimental.envoy.filters.") {
		return nil
	}
	return errf("unknown attribute %q", k)
}

// validatePathTemplate checks the {*} and {**} path templates of authorization paths.
func validatePathTemplate(p string) error {
	if !strings.Contains(p, "{") && !strings.Contains(p, "}") {
		return nil
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "{*}":
		case s == "{**}":
			if i != len(segs)-1 {
				return errf("invalid path template %q: {**} must be the last segment", p)
			}
		case strings.ContainsAny(s, "{}"):
			return errf("invalid path template %q: only whole segments {*} and {**} are supported", p)
		}
	}
	return nil
}

func (v *validator) peerAuthentication(pa *security.PeerAuthentication) {
	emptySelector := pa.Selector == nil || len(pa.Selector.MatchLabels) == 0
	if emptySelector && len(pa.PortLevelMtls) != 0 {
		v.errorf("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS; portLevelMtls needs a selector")
	}
	if pa.PortLevelMtls != nil && len(pa.PortLevelMtls) == 0 {
		v.errorf("spec.portLevelMtls", "port level mTLS, if defined, must have at least one element")
	}
	for port := range pa.PortLevelMtls {
		if port == 0 || port > 65535 {
			v.errorf(pathKey("spec.portLevelMtls", strconv.Itoa(int(port))), "port must be in range 1..65535")
		}
	}
	v.selectorLabels("spec.selector.matchLabels", pa.GetSelector().GetMatchLabels(), pa.Selector != nil)
}

func (v *validator) requestAuthentication(ra *security.RequestAuthentication) {
	v.policyTarget(ra.Selector, ra.TargetRef, ra.TargetRefs)
	for i, r := range append([]*typev1beta1.PolicyTargetReference{ra.TargetRef}, ra.TargetRefs...) {
		if r != nil && r.Kind != "Gateway" {
			f := "spec.targetRef"
			if i > 0 {
				f = pathIndex("spec.targetRefs", i-1)
			}
			v.warnf(f, "targetRef %s %q selects a waypoint, and Mast runs none: this policy applies to no proxy (use a selector)", r.Kind, r.Name)
		}
	}
	issuers := map[string]bool{}
	for i, r := range ra.JwtRules {
		p := pathIndex("spec.jwtRules", i)
		if r == nil {
			v.errorf(p, "jwt rule must not be null")
			continue
		}
		if r.Issuer == "" {
			v.errorf(p+".issuer", "issuer must be set")
		} else if issuers[r.Issuer] {
			v.warnf(p+".issuer", "duplicate issuer %q; only the first rule for an issuer is used", r.Issuer)
		}
		issuers[r.Issuer] = true
		v.nonEmptyValues(p+".audiences", r.Audiences)
		if r.JwksUri != "" {
			u, err := url.Parse(r.JwksUri)
			switch {
			case err != nil:
				v.errorf(p+".jwksUri", "invalid jwksUri %q: %v", r.JwksUri, err)
			case u.Scheme != "http" && u.Scheme != "https":
				v.errorf(p+".jwksUri", "jwksUri %q: scheme must be http or https", r.JwksUri)
			case u.Hostname() == "":
				v.errorf(p+".jwksUri", "jwksUri %q has no host", r.JwksUri)
			}
		}
		if r.Jwks != "" {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(r.Jwks), &set); err != nil {
				v.errorf(p+".jwks", "jwks parse error: %v", err)
			} else if len(set.Keys) == 0 {
				v.errorf(p+".jwks", "jwks has no keys")
			} else if _, err := jwtauthn.ParseJWKS([]byte(r.Jwks)); err != nil {
				// The proxy would refuse the key set (and the listener with it).
				v.errorf(p+".jwks", "%v (RSA of at least 2048 bits, EC P-256/384/521 and Ed25519 keys are supported)", err)
			}
		}
		if r.JwksUri != "" && r.Jwks != "" {
			v.warnf(p+".jwks", "both jwks and jwksUri are set; jwks is used")
		}
		for j, h := range r.FromHeaders {
			if h.GetName() == "" {
				v.errorf(pathIndex(p+".fromHeaders", j)+".name", "location header name must be non-empty")
			}
		}
		v.nonEmptyValues(p+".fromParams", r.FromParams)
		v.nonEmptyValues(p+".fromCookies", r.FromCookies)
		for j, c := range r.OutputClaimToHeaders {
			f := pathIndex(p+".outputClaimToHeaders", j)
			if c.GetClaim() == "" || c.GetHeader() == "" {
				v.errorf(f, "outputClaimToHeaders header and claim must be non-empty")
				continue
			}
			v.check(f+".header", validateHeaderName(c.Header))
		}
		v.check(p+".timeout", validateDuration(r.Timeout))
	}
}

func (v *validator) telemetry(t *telemetry.Telemetry) {
	v.policyTarget(t.Selector, t.TargetRef, t.TargetRefs)
	providers := func(p string, refs []*telemetry.ProviderRef) {
		for i, r := range refs {
			if r.GetName() == "" {
				v.errorf(pathIndex(p, i)+".name", "providers.name may not be empty")
			}
		}
	}
	if len(t.Tracing) > 1 {
		v.warnf("spec.tracing", "multiple tracing configurations are not currently supported")
	}
	for i, tr := range t.Tracing {
		p := pathIndex("spec.tracing", i)
		if len(tr.Providers) > 1 {
			v.warnf(p+".providers", "multiple providers are not currently supported")
		}
		providers(p+".providers", tr.Providers)
		if s := tr.RandomSamplingPercentage.GetValue(); s < 0 || s > 100 {
			v.errorf(p+".randomSamplingPercentage", "randomSamplingPercentage %v must be in range [0.0, 100.0]", s)
		}
		for name, tag := range tr.CustomTags {
			f := pathKey(p+".customTags", name)
			if name == "" {
				v.errorf(f, "tag name may not be empty")
			}
			switch ct := tag.GetType().(type) {
			case *telemetry.Tracing_CustomTag_Literal:
				if ct.Literal.GetValue() == "" {
					v.errorf(f+".literal.value", "literal tag value may not be empty")
				}
			case *telemetry.Tracing_CustomTag_Header:
				if ct.Header.GetName() == "" {
					v.errorf(f+".header.name", "header tag name may not be empty")
				}
			case *telemetry.Tracing_CustomTag_Environment:
				if ct.Environment.GetName() == "" {
					v.errorf(f+".environment.name", "environment tag name may not be empty")
				}
			default:
				v.errorf(f, "custom tag must set one of literal, header or environment")
			}
		}
	}
	for i, m := range t.Metrics {
		p := pathIndex("spec.metrics", i)
		providers(p+".providers", m.Providers)
		v.check(p+".reportingInterval", validateDuration(m.ReportingInterval))
		for j, o := range m.Overrides {
			f := pathIndex(p+".overrides", j)
			for name, to := range o.TagOverrides {
				tf := pathKey(f+".tagOverrides", name)
				if name == "" {
					v.warnf(tf, "tagOverrides name may not be empty")
				} else if !metrics.ValidLabelName(name) {
					v.errorf(tf, "%q is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", name)
				}
				switch to.GetOperation() {
				case telemetry.MetricsOverrides_TagOverride_UPSERT:
					if to.GetValue() == "" {
						v.errorf(tf+".value", "tagOverrides value must be set when operation is UPSERT")
					} else if _, err := celfilter.TagValue(to.GetValue()); err != nil {
						// mastd translates the value for mast-proxy
						// (internal/celfilter): invalid CEL and values
						// outside Istio's attributes are refused here.
						v.errorf(tf+".value", "%v", err)
					}
				case telemetry.MetricsOverrides_TagOverride_REMOVE:
					if to.GetValue() != "" {
						v.errorf(tf+".value", "tagOverrides value may only be set when operation is UPSERT")
					}
				}
			}
			if cm, ok := o.GetMatch().GetMetricMatch().(*telemetry.MetricSelector_CustomMetric); ok && cm.CustomMetric == "" {
				v.errorf(f+".match.customMetric", "customMetric may not be empty")
			}
		}
	}
	for i, a := range t.AccessLogging {
		p := pathIndex("spec.accessLogging", i)
		providers(p+".providers", a.Providers)
		if a.Filter != nil && a.Filter.Expression == "" {
			v.errorf(p+".filter.expression", "filter expression may not be empty")
		} else if a.Filter != nil {
			// mastd compiles the expression into Envoy's access log
			// filters (internal/celfilter): invalid CEL and expressions
			// outside what it can translate are refused here.
			if _, err := celfilter.Compile(a.Filter.Expression); err != nil {
				v.errorf(p+".filter.expression", "%v", err)
			}
		}
	}
}

// CheckCustomProviders reports the CUSTOM AuthorizationPolicies of rs whose
// provider is not one of MeshConfig's extensionProviders (providers). They
// are errors of the policy, but the policy stays: the proxies it selects
// deny the requests its rules match (fail closed), as istiod does.
func CheckCustomProviders(rs []Resource, providers []string) Problems {
	var probs Problems
	for _, r := range rs {
		ap, ok := r.Spec.(*security.AuthorizationPolicy)
		if !ok || ap.GetAction() != security.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() == "" {
			continue
		}
		name := ap.GetProvider().GetName()
		if slices.Contains(providers, name) {
			continue
		}
		probs = append(probs, Problem{Severity: Error, Source: r.Source, Resource: r.Key(), Field: "spec.provider.name",
			Message: fmt.Sprintf("extension provider %q is not defined in MeshConfig extensionProviders %v; the requests this policy selects are denied", name, providers)})
	}
	return probs
}

// CheckCustomProviderConflicts reports pairs of enforced CUSTOM
// AuthorizationPolicies that name different providers and can select the
// same workload: their scopes overlap (the same namespace, or one in the
// root namespace) and no label their selectors both name has different
// values. istiod (without PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS) and
// mastd support one CUSTOM provider per workload: on a workload both
// select, the requests and connections every CUSTOM policy selects are
// denied. Each finding names both policies.
func CheckCustomProviderConflicts(rs []Resource, rootNamespace string) Problems {
	type custom struct {
		r        Resource
		provider string
		sel      map[string]string
	}
	var cs []custom
	for _, r := range rs {
		ap, ok := r.Spec.(*security.AuthorizationPolicy)
		if !ok || ap.GetAction() != security.AuthorizationPolicy_CUSTOM || r.Annotations["istio.io/dry-run"] == "true" ||
			ap.GetTargetRef() != nil || len(ap.GetTargetRefs()) > 0 {
			continue
		}
		cs = append(cs, custom{r, ap.GetProvider().GetName(), ap.GetSelector().GetMatchLabels()})
	}
	overlap := func(a, b custom) bool {
		if a.r.Namespace != b.r.Namespace && a.r.Namespace != rootNamespace && b.r.Namespace != rootNamespace {
			return false
		}
		for k, v := range a.sel {
			if w, ok := b.sel[k]; ok && w != v {
				return false
			}
		}
		return true
	}
	var probs Problems
	for i, a := range cs {
		for j, b := range cs {
			if i == j || a.provider == b.provider || !overlap(a, b) {
				continue
			}
			probs = append(probs, Problem{Severity: Error, Source: a.r.Source, Resource: a.r.Key(), Field: "spec.provider.name",
				Message: fmt.Sprintf("provider %q differs from provider %q of CUSTOM AuthorizationPolicy %s/%s, which can select the same workloads; "+
					"one CUSTOM provider per workload is supported (as istiod without PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS), "+
					"so on a workload both select the requests and connections every CUSTOM policy selects are denied",
					a.provider, b.provider, b.r.Namespace, b.r.Name)})
		}
	}
	return probs
}
