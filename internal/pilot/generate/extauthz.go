package generate

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// CUSTOM AuthorizationPolicies as istiod builds them
// (pilot/pkg/security/authz/builder/extauthz.go): an RBAC filter whose
// shadow_rules (action DENY, stat prefix istio_ext_authz_) are the CUSTOM
// rules, so that a request they match carries
// istio_ext_authz_shadow_effective_policy_id = istio-ext-authz-ns[..]...,
// followed by an ext_authz filter for the provider whose
// filter_enabled_metadata requires that mark: the authorizer is asked only
// about the requests the CUSTOM rules select. A provider that is unknown,
// invalid, or one of several different providers for the workload turns
// the rules into enforced DENY rules (fail closed), as istiod does.
const (
	extAuthzFilterName = "envoy.filters.http.ext_authz"
	// extAuthzNetworkFilterName checks TCP connections (gRPC providers).
	extAuthzNetworkFilterName = "envoy.filters.network.ext_authz"
	extAuthzMatchPrefix       = "istio-ext-authz"
	extAuthzShadowPrefix      = "istio_ext_authz_"
	badCustomSuffix           = "-deny-due-to-bad-CUSTOM-action"
	// httpProviderOnTCPSuffix marks the CUSTOM rules of an HTTP provider
	// denied on TCP chains (Mast fails closed where istiod skips them).
	httpProviderOnTCPSuffix = "-deny-due-to-CUSTOM-HTTP-provider-on-TCP"
	// defaultExtAuthzTimeout is istiod's when the provider sets none.
	defaultExtAuthzTimeout = 600
)

// customProvider returns the one provider the proxy's enforced CUSTOM
// policies name.
func customProvider(policies []authzPolicy) (string, error) {
	name := ""
	for _, p := range policies {
		if p.spec.GetAction() != security.AuthorizationPolicy_CUSTOM || p.dryRun {
			continue
		}
		n := p.spec.GetProvider().GetName()
		if name != "" && n != name {
			return "", fmt.Errorf("only 1 provider can be used per workload, found %q and %q", name, n)
		}
		name = n
	}
	if name == "" {
		return "", errors.New("no provider specified in authorization policy")
	}
	return name, nil
}

// customHTTPFilters are the filters of the CUSTOM rules in s.
func (g *gen) customHTTPFilters(s *rbacSet, policies []authzPolicy) []*hcmv3.HttpFilter {
	if len(s.rules) == 0 && !s.enforced {
		return nil // only dry-run CUSTOM policies: validation refuses them, nothing to enforce
	}
	ext, err := g.extAuthzConfig(policies)
	if err != nil {
		return []*hcmv3.HttpFilter{httpFilter(rbacHTTPFilterName, toAny(&rbachttpv3.RBAC{Rules: denyRules(s.rules, badCustomSuffix)}))}
	}
	shadow := &rbachttpv3.RBAC{ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: s.rules}, ShadowRulesStatPrefix: extAuthzShadowPrefix}
	return []*hcmv3.HttpFilter{httpFilter(rbacHTTPFilterName, toAny(shadow)), httpFilter(extAuthzFilterName, toAny(ext))}
}

// customNetworkFilters are the TCP filters of the CUSTOM rules in s, as
// istiod's buildTCP: network RBAC whose shadow rules mark the connections
// the rules match, then envoy.filters.network.ext_authz for the gRPC
// provider gated on that mark. An HTTP provider cannot check connections
// (Envoy's network filter speaks gRPC only): istiod then leaves the TCP
// chain without the CUSTOM policy, letting the connections through; Mast
// fails closed instead and denies the connections the rules match
// (`mast analyze` says so, MST0003).
func (g *gen) customNetworkFilters(s *rbacSet, policies []authzPolicy) []*listenerv3.Filter {
	if len(s.rules) == 0 && !s.enforced {
		return nil
	}
	netRBAC := func(c *rbacnetv3.RBAC) *listenerv3.Filter {
		c.StatPrefix = "tcp."
		return &listenerv3.Filter{Name: rbacNetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(c)}}
	}
	// The provider is checked as a whole (as for HTTP chains) first.
	if _, err := g.extAuthzConfig(policies); err != nil {
		return []*listenerv3.Filter{netRBAC(&rbacnetv3.RBAC{Rules: denyRules(s.rules, badCustomSuffix)})}
	}
	ep, _ := g.customExtensionProvider(policies)
	p := ep.GetEnvoyExtAuthzGrpc()
	if p == nil {
		return []*listenerv3.Filter{netRBAC(&rbacnetv3.RBAC{Rules: denyRules(s.rules, httpProviderOnTCPSuffix)})}
	}
	_, cluster, err := ExtAuthzService(g.pc, p.GetService(), p.GetPort())
	if err != nil {
		return []*listenerv3.Filter{netRBAC(&rbacnetv3.RBAC{Rules: denyRules(s.rules, badCustomSuffix)})}
	}
	ext := &netextauthzv3.ExtAuthz{
		StatPrefix:            "tcp.",
		FailureModeAllow:      p.GetFailOpen(),
		TransportApiVersion:   corev3.ApiVersion_V3,
		GrpcService:           extAuthzGRPCService(cluster, p.GetTimeout()),
		FilterEnabledMetadata: extAuthzMatcher(rbacNetworkFilterName),
	}
	shadow := netRBAC(&rbacnetv3.RBAC{ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: s.rules}, ShadowRulesStatPrefix: extAuthzShadowPrefix})
	return []*listenerv3.Filter{shadow, {Name: extAuthzNetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(ext)}}}
}

// denyRules are the CUSTOM rules turned into enforced DENY rules, their
// names marked with suffix (fail closed).
func denyRules(rules map[string]*rbacv3.Policy, suffix string) *rbacv3.RBAC {
	deny := make(map[string]*rbacv3.Policy, len(rules))
	for k, v := range rules {
		deny[k+suffix] = v
	}
	return &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: deny}
}

// customExtensionProvider resolves the CUSTOM policies' provider.
func (g *gen) customExtensionProvider(policies []authzPolicy) (*meshconfig.MeshConfig_ExtensionProvider, error) {
	name, err := customProvider(policies)
	if err != nil {
		return nil, err
	}
	ep := g.pc.Mesh.ExtensionProvider(name)
	if ep == nil {
		return nil, fmt.Errorf("extension provider %q not found", name)
	}
	return ep, nil
}

// extAuthzConfig resolves the CUSTOM provider into the ext_authz config.
func (g *gen) extAuthzConfig(policies []authzPolicy) (*extauthzv3.ExtAuthz, error) {
	ep, err := g.customExtensionProvider(policies)
	if err != nil {
		return nil, err
	}
	switch {
	case ep.GetEnvoyExtAuthzHttp() != nil:
		return g.extAuthzHTTP(ep.GetEnvoyExtAuthzHttp())
	case ep.GetEnvoyExtAuthzGrpc() != nil:
		return g.extAuthzGRPC(ep.GetEnvoyExtAuthzGrpc())
	}
	return nil, fmt.Errorf("extension provider %q is not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider", ep.GetName())
}

// ExtAuthzService resolves a provider's service ("host" or "ns/host") and
// port to its hostname and outbound cluster, as istiod's LookupCluster.
func ExtAuthzService(pc *model.PushContext, service string, port uint32) (host, cluster string, err error) {
	if port < 1 || port > 65535 {
		return "", "", fmt.Errorf("port must be in the range [1, 65535], found: %d", port)
	}
	ns, host := "", service
	if i := strings.IndexByte(service, '/'); i >= 0 {
		ns, host = service[:i], service[i+1:]
	}
	svc := pc.Service(host)
	if svc == nil || ns != "" && svc.Namespace != ns {
		return "", "", fmt.Errorf("could not find service %s in the registry", service)
	}
	return host, ClusterName("outbound", port, "", host), nil
}

// ParseStatusOnError is istiod's statusOnError: empty, or an HTTP status
// Envoy names.
func ParseStatusOnError(s string) (*typev3.HttpStatus, error) {
	if s == "" {
		return nil, nil
	}
	code, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("invalid statusOnError %q: %v", s, err)
	}
	if _, ok := typev3.StatusCode_name[int32(code)]; !ok {
		return nil, fmt.Errorf("unsupported statusOnError %s", s)
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(code)}, nil
}

func extAuthzTimeout(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return &durationpb.Duration{Seconds: defaultExtAuthzTimeout}
	}
	return d
}

func (g *gen) extAuthzHTTP(p *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider) (*extauthzv3.ExtAuthz, error) {
	host, cluster, err := ExtAuthzService(g.pc, p.GetService(), p.GetPort())
	if err != nil {
		return nil, err
	}
	status, err := ParseStatusOnError(p.GetStatusOnError())
	if err != nil {
		return nil, err
	}
	if pp := p.GetPathPrefix(); pp != "" && (!strings.HasPrefix(pp, "/") || strings.ContainsAny(pp, "?# \t\r\n")) {
		return nil, fmt.Errorf("pathPrefix must be a path beginning with `/`, found: %q", pp)
	}
	if err := checkRequestBody(p.GetIncludeRequestBodyInCheck()); err != nil {
		return nil, err
	}
	svc := &extauthzv3.HttpService{
		PathPrefix: p.GetPathPrefix(),
		ServerUri: &corev3.HttpUri{Uri: "http://" + host, Timeout: extAuthzTimeout(p.GetTimeout()),
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}},
	}
	allowed := headerPatterns(p.GetIncludeRequestHeadersInCheck())
	if allowed == nil {
		allowed = headerPatterns(p.GetIncludeHeadersInCheck())
	}
	var add []*corev3.HeaderValue
	keys := make([]string, 0, len(p.GetIncludeAdditionalHeadersInCheck()))
	for k := range p.GetIncludeAdditionalHeadersInCheck() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add = append(add, &corev3.HeaderValue{Key: k, Value: p.GetIncludeAdditionalHeadersInCheck()[k]})
	}
	if allowed != nil || len(add) > 0 {
		svc.AuthorizationRequest = &extauthzv3.AuthorizationRequest{AllowedHeaders: allowed, HeadersToAdd: add}
	}
	if len(p.GetHeadersToUpstreamOnAllow()) > 0 || len(p.GetHeadersToDownstreamOnDeny()) > 0 || len(p.GetHeadersToDownstreamOnAllow()) > 0 {
		svc.AuthorizationResponse = &extauthzv3.AuthorizationResponse{
			AllowedUpstreamHeaders:        headerPatterns(p.GetHeadersToUpstreamOnAllow()),
			AllowedClientHeaders:          headerPatterns(p.GetHeadersToDownstreamOnDeny()),
			AllowedClientHeadersOnSuccess: headerPatterns(p.GetHeadersToDownstreamOnAllow()),
		}
	}
	return &extauthzv3.ExtAuthz{
		StatusOnError:         status,
		FailureModeAllow:      p.GetFailOpen(),
		TransportApiVersion:   corev3.ApiVersion_V3,
		Services:              &extauthzv3.ExtAuthz_HttpService{HttpService: svc},
		FilterEnabledMetadata: extAuthzMatcher(rbacHTTPFilterName),
		WithRequestBody:       requestBody(p.GetIncludeRequestBodyInCheck()),
		ClearRouteCache:       p.GetClearRouteCache(),
	}, nil
}

func (g *gen) extAuthzGRPC(p *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider) (*extauthzv3.ExtAuthz, error) {
	_, cluster, err := ExtAuthzService(g.pc, p.GetService(), p.GetPort())
	if err != nil {
		return nil, err
	}
	status, err := ParseStatusOnError(p.GetStatusOnError())
	if err != nil {
		return nil, err
	}
	if err := checkRequestBody(p.GetIncludeRequestBodyInCheck()); err != nil {
		return nil, err
	}
	return &extauthzv3.ExtAuthz{
		StatusOnError:         status,
		FailureModeAllow:      p.GetFailOpen(),
		Services:              &extauthzv3.ExtAuthz_GrpcService{GrpcService: extAuthzGRPCService(cluster, p.GetTimeout())},
		FilterEnabledMetadata: extAuthzMatcher(rbacHTTPFilterName),
		TransportApiVersion:   corev3.ApiVersion_V3,
		WithRequestBody:       requestBody(p.GetIncludeRequestBodyInCheck()),
		ClearRouteCache:       p.GetClearRouteCache(),
	}, nil
}

// headerPatterns is istiod's generateHeaders: case-insensitive exact
// names, "prefix*" and "*suffix".
func headerPatterns(names []string) *matcherv3.ListStringMatcher {
	if len(names) == 0 {
		return nil
	}
	out := &matcherv3.ListStringMatcher{}
	for _, n := range names {
		m := &matcherv3.StringMatcher{IgnoreCase: true}
		switch {
		case strings.HasPrefix(n, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: n[1:]}
		case strings.HasSuffix(n, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: n[:len(n)-1]}
		default:
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: n}
		}
		out.Patterns = append(out.Patterns, m)
	}
	return out
}

// extAuthzGRPCService is a gRPC provider's service: envoy_grpc to the
// provider's cluster.
func extAuthzGRPCService(cluster string, timeout *durationpb.Duration) *corev3.GrpcService {
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
			// "|" is not valid in an authority (istiod's spelling).
			ClusterName: cluster, Authority: strings.ReplaceAll(cluster, "|", "_.")}},
		Timeout: extAuthzTimeout(timeout),
	}
}

// extAuthzMatcher is filter_enabled_metadata: the mark the RBAC filter
// rbacFilter (HTTP or network) sets for a request its CUSTOM shadow rules
// match.
func extAuthzMatcher(rbacFilter string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: rbacFilter,
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: extAuthzShadowPrefix + "shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: extAuthzMatchPrefix}}}},
	}
}

func checkRequestBody(b *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody) error {
	if b != nil && b.GetMaxRequestBytes() == 0 {
		return errors.New("includeRequestBodyInCheck.maxRequestBytes: must be greater than 0")
	}
	return nil
}

func requestBody(b *meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody) *extauthzv3.BufferSettings {
	if b == nil {
		return nil
	}
	return &extauthzv3.BufferSettings{MaxRequestBytes: b.GetMaxRequestBytes(), AllowPartialMessage: b.GetAllowPartialMessage(), PackAsBytes: b.GetPackAsBytes()}
}
