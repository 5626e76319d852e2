package xdsparse

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// RDS and VHDS resources are decoded from the wire (wire.go, pbwire), as
// clusters are, so that the route configuration's types are never
// unmarshalled in mast-proxy. The generated path it replaced is kept in the
// tests as the oracle (TestDecodeRouteConfigurationMatchesGenerated,
// FuzzDecodeRouteConfiguration).

// Field numbers of envoy.config.route.v3 messages and the core messages
// inside them.
const (
	rcName, rcVirtualHosts, rcRespAdd, rcRespRemove, rcReqAdd, rcReqRemove = 1, 2, 4, 5, 6, 8
	rcVHDS, rcPerFilter, vhdsConfigSource                                  = 9, 16, 1
	rcIgnorePort                                                           = 14

	vhName, vhDomains, vhRoutes, vhRequireTLS, vhReqAdd = 1, 2, 3, 4, 7
	vhRespAdd, vhRespRemove, vhReqRemove, vhPerFilter   = 10, 11, 13, 15
	vhRetry                                             = 16

	rtMatch, rtRoute, rtRedirect, rtDecorator, rtDirect   = 1, 2, 3, 5, 7
	rtReqAdd, rtRespAdd, rtRespRemove, rtReqRemove        = 9, 10, 11, 12
	rtPerFilter, rtName, rtNonForwarding, rtStatPrefix    = 13, 14, 18, 19
	rtFilterAction, decoratorOperation                    = 17, 1
	rmPrefix, rmPath, rmCaseSensitive, rmHeaders, rmQuery = 1, 2, 4, 6, 7
	rmGRPC, rmRuntimeFraction, rmSafeRegex, rmConnect     = 8, 9, 10, 12
	rmDynamicMetadata, rmPathSeparated, rmPathPolicy      = 13, 14, 15
	rmFilterState                                         = 16
	regexRegex                                            = 2

	// Header and string matchers: internal/proxy/match (DecodeHeader,
	// DecodeString); hmName: outliercodes.go.
	qpName, qpString, qpPresent = 1, 5, 6

	hvoHeader, hvoAppend, hvoAppendAction = 1, 2, 3
	hvKey, hvValue, hvRawValue            = 1, 2, 3

	drStatus, drBody                                      = 1, 2
	dsFilename, dsInlineBytes, dsInlineString, dsEnvVar   = 1, 2, 3, 4
	rdHost, rdPath, rdCode, rdHTTPS, rdPrefix, rdStripQ   = 1, 2, 3, 4, 5, 6
	rdScheme, rdPort                                      = 7, 8
	raCluster, raWeighted, raPrefixRewrite, raHostLiteral = 1, 3, 5, 6
	raAutoHost, raTimeout, raRetry, raHash                = 7, 8, 9, 15
	raMaxGRPCTimeout, raIdleTimeout, raUpgrades, raHedge  = 23, 24, 25, 27
	raMirrors, raRegexRewrite, raMaxStreamDuration        = 30, 32, 36
	wcClusters                                            = 1
	cwName, cwWeight, cwReqAdd, cwRespAdd, cwRespRemove   = 1, 2, 4, 5, 6
	cwReqRemove                                           = 9
	rmsPattern, rmsSubstitution                           = 1, 2
	msdMax, msdGRPCHeaderMax                              = 1, 2
	ucType, ucEnabled, ucConnect, ccProxyProtocol         = 1, 2, 3, 1
	hedgeOnPerTryTimeout                                  = 3
	mpCluster, mpRuntimeFraction, mpTraceSampled          = 1, 3, 4
	rfpDefault, fpNumerator, fpDenominator                = 1, 1, 2
	hpHeader, hpCookie, hpConnection, hpTerminal, hpQuery = 1, 2, 3, 4, 5
	hpFilterState, hpHeaderName                           = 6, 1
	ckName, ckTTL, ckPath, ckAttributes, caName, caValue  = 1, 2, 3, 4, 1, 2
	cpSourceIP, hqName                                    = 1, 1
	rpRetryOn, rpNumRetries, rpPerTryTimeout, rpPriority  = 1, 2, 3, 4
	rpHostPredicate, rpHostSelectionMax, rpStatusCodes    = 5, 6, 7
	rpBackOff, boBase, boMax, extName, extTypedConfig     = 8, 1, 2, 1, 3
	ppUpdateFrequency                                     = 1
	previousPrioritiesName                                = "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
	requireTLSNone, requireTLSExternal, requireTLSAll     = 0, 1, 2
	appendIfExistsOrAdd, addIfAbsent, overwriteOrAdd      = 0, 1, 2
	overwriteIfExists                                     = 3
	fracHundred, fracTenThousand, fracMillion             = 0, 1, 2
	redirect301, redirect302, redirect303, redirect307    = 0, 1, 2, 3
	redirect308                                           = 4
)

// DecodeRouteConfiguration decodes and compiles an encoded
// RouteConfiguration, as an RDS response (or an inline route_config)
// carries it. It returns the name whenever the message could be decoded,
// so that a refused configuration keeps its previous version.
func DecodeRouteConfiguration(b []byte) (string, *RouteTable, error) {
	if err := validateWire(descRouteConfiguration, b); err != nil {
		return "", nil, fmt.Errorf("route configuration: decode: %w", err)
	}
	rc := decodeWire(descRouteConfiguration, b)
	name := rc.Str(rcName)
	if name == "" {
		return "", nil, fmt.Errorf("route configuration: name is empty")
	}
	t, err := parseRouteConfigurationWire(name, rc)
	if err != nil {
		return name, nil, err
	}
	return name, t, nil
}

func parseRouteConfigurationWire(name string, rc *pbwire.Msg) (*RouteTable, error) {
	fail := func(err error) error { return fmt.Errorf("route configuration %q: %w", name, err) }
	if err := checkWire(rc, routeRules); err != nil {
		return nil, fail(err)
	}
	t := &RouteTable{Name: name, exact: map[string]*VirtualHost{}}
	var err error
	if t.Headers, err = headerOpsWire(rc, rcReqAdd, rcReqRemove, rcRespAdd, rcRespRemove); err != nil {
		return nil, fail(err)
	}
	if rc.Has(rcVHDS) {
		if !rc.Sub(rcVHDS).Sub(vhdsConfigSource).Has(csADS) {
			return nil, fail(fmt.Errorf("vhds.config_source: only ads is supported"))
		}
		t.VHDS = true
	}
	t.IgnorePort = rc.Bool(rcIgnorePort)
	reg := builtin.Registry()
	if t.filters, err = reg.PerRoute(perFilterWire(rc, rcPerFilter)); err != nil {
		return nil, fail(err)
	}
	for i, pvh := range rc.Subs(rcVirtualHosts) {
		vh, err := parseVirtualHostWire(pvh, reg, t.filters)
		if err != nil {
			return nil, fail(fmt.Errorf("virtual_hosts[%d] %q: %w", i, pvh.Str(vhName), err))
		}
		if err := t.add(vh); err != nil {
			return nil, err // add names the route configuration
		}
	}
	t.inline = t.VirtualHosts
	t.sortWildcards()
	return t, nil
}

// perFilterWire returns map field num (typed_per_filter_config) as the
// filter registry takes it, nil when empty.
func perFilterWire(m *pbwire.Msg, num protowire.Number) map[string]*anypb.Any {
	keys, values := mapEntries(m, num)
	if len(keys) == 0 {
		return nil
	}
	out := make(map[string]*anypb.Any, len(keys))
	for i, k := range keys {
		out[k] = wireAny(values[i])
	}
	return out
}

// wireAny decodes an encoded google.protobuf.Any (the last of each field
// wins, as in proto.Unmarshal).
func wireAny(b []byte) *anypb.Any {
	a := &anypb.Any{}
	eachField(b, func(f wireField) error {
		if f.typ == protowire.BytesType {
			switch f.num {
			case anyTypeURL:
				a.TypeUrl = string(f.b)
			case anyValue:
				a.Value = f.b
			}
		}
		return nil
	})
	return a
}

// decodeVirtualHost parses one encoded virtual host received on demand.
func decodeVirtualHost(b []byte, reg *filter.Registry, tableFilters map[string]any) (*VirtualHost, error) {
	m := decodeWire(descVirtualHost, b)
	if err := checkWire(m, routeRules); err != nil {
		return nil, fmt.Errorf("virtual host %q: %w", m.Str(vhName), err)
	}
	vh, err := parseVirtualHostWire(m, reg, tableFilters)
	if err != nil {
		return nil, fmt.Errorf("virtual host %q: %w", m.Str(vhName), err)
	}
	return vh, nil
}

func parseVirtualHostWire(p *pbwire.Msg, reg *filter.Registry, tableFilters map[string]any) (*VirtualHost, error) {
	domains := wireStrings(p, vhDomains)
	if len(domains) == 0 {
		return nil, fmt.Errorf("domains: empty")
	}
	vh := &VirtualHost{Name: p.Str(vhName), Domains: domains}
	for i, d := range domains {
		if d == "" || strings.Count(d, "*") > 1 || (strings.Contains(d, "*") && d != "*" && !strings.HasPrefix(d, "*") && !strings.HasSuffix(d, "*")) {
			return nil, fmt.Errorf("domains[%d] %q: invalid wildcard", i, d)
		}
	}
	switch rt := int32(p.U64(vhRequireTLS)); rt {
	case requireTLSNone:
	case requireTLSExternal, requireTLSAll:
		vh.RequireTLS = true
	default:
		return nil, fmt.Errorf("require_tls %d: unknown", rt)
	}
	var err error
	if vh.Headers, err = headerOpsWire(p, vhReqAdd, vhReqRemove, vhRespAdd, vhRespRemove); err != nil {
		return nil, err
	}
	if p.Has(vhRetry) {
		if vh.Retry, err = parseRetryWire(p.Sub(vhRetry)); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	vhFilters, err := reg.PerRoute(perFilterWire(p, vhPerFilter))
	if err != nil {
		return nil, err
	}
	vhFilters = mergePerFilter(tableFilters, vhFilters)
	for i, pr := range p.Subs(vhRoutes) {
		r, err := parseRouteWire(pr, vh)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, pr.Str(rtName), err)
		}
		own, err := reg.PerRoute(perFilterWire(pr, rtPerFilter))
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, pr.Str(rtName), err)
		}
		r.PerFilter = mergePerFilter(vhFilters, own)
		vh.Routes = append(vh.Routes, r)
	}
	return vh, nil
}

// wireStrings returns repeated string field num, nil when empty.
func wireStrings(m *pbwire.Msg, num protowire.Number) []string {
	run := m.Vals(num)
	if len(run) == 0 {
		return nil
	}
	out := make([]string, len(run))
	for i := range run {
		out[i] = string(run[i].B)
	}
	return out
}

// wireBool returns a google.protobuf.BoolValue field's value (def when
// absent).
func wireBool(m *pbwire.Msg, num protowire.Number, def bool) bool {
	if !m.Has(num) {
		return def
	}
	return wrapperU64(m, num, 0) != 0
}

func parseRouteWire(p *pbwire.Msg, vh *VirtualHost) (*Route, error) {
	r := &Route{Name: p.Str(rtName), VHost: vh, CaseSensitive: true, Operation: p.Sub(rtDecorator).Str(decoratorOperation), StatPrefix: p.Str(rtStatPrefix)}
	if !p.Has(rtMatch) {
		return nil, fmt.Errorf("match: missing")
	}
	m := p.Sub(rtMatch)
	r.CaseSensitive = wireBool(m, rmCaseSensitive, true)
	switch {
	case m.Has(rmPrefix):
		r.Kind, r.Path = PathPrefix, m.Str(rmPrefix)
	case m.Has(rmPath):
		r.Kind, r.Path = PathExact, m.Str(rmPath)
	case m.Has(rmSafeRegex):
		re, err := compileRegex(m.Sub(rmSafeRegex).Str(regexRegex), true)
		if err != nil {
			return nil, fmt.Errorf("match.safe_regex: %w", err)
		}
		r.Kind, r.Regex = PathRegex, re
	case m.Has(rmPathSeparated):
		ps := m.Str(rmPathSeparated)
		if strings.ContainsAny(ps, "?#") || (len(ps) > 1 && strings.HasSuffix(ps, "/")) {
			return nil, fmt.Errorf("match.path_separated_prefix %q: must not contain ?# or end in /", ps)
		}
		r.Kind, r.Path = PathSeparatedPrefix, ps
	case m.Has(rmConnect):
		r.Kind = PathConnect
	case m.Has(rmPathPolicy):
		return nil, fmt.Errorf("match: path specifier path_match_policy not supported")
	default:
		return nil, fmt.Errorf("match: no path specifier")
	}
	if !r.CaseSensitive {
		r.Path = strings.ToLower(r.Path)
		if r.Regex != nil {
			re, err := compileRegex("(?i)"+m.Sub(rmSafeRegex).Str(regexRegex), true)
			if err != nil {
				return nil, fmt.Errorf("match.safe_regex: %w", err)
			}
			r.Regex = re
		}
	}
	if m.Has(rmGRPC) {
		r.Headers = append(r.Headers, HeaderMatcher{Name: "content-type", Str: StringMatcher{Kind: StrPrefix, Value: "application/grpc"}})
	}
	if m.Has(rmRuntimeFraction) || len(m.Vals(rmDynamicMetadata)) > 0 || len(m.Vals(rmFilterState)) > 0 {
		return nil, fmt.Errorf("match: runtime_fraction, dynamic_metadata and filter_state are not supported")
	}
	headers := m.Vals(rmHeaders)
	for i := range headers {
		hm, err := match.DecodeHeader(headers[i].B)
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d] %q: %w", i, m.SubOf(&headers[i]).Str(hmName), err)
		}
		r.Headers = append(r.Headers, hm)
	}
	for i, q := range m.Subs(rmQuery) {
		qm := QueryMatcher{Name: q.Str(qpName)}
		if q.Has(qpString) {
			sm, err := match.DecodeString(q.Bytes(qpString))
			if err != nil {
				return nil, fmt.Errorf("match.query_parameters[%d] %q: %w", i, qm.Name, err)
			}
			qm.Str = sm
		} else {
			qm.Present = true // present_match, or no specifier
		}
		r.Query = append(r.Query, qm)
	}
	var err error
	if r.HeaderOps, err = headerOpsWire(p, rtReqAdd, rtReqRemove, rtRespAdd, rtRespRemove); err != nil {
		return nil, err
	}
	switch {
	case p.Has(rtRoute):
		ra, err := parseRouteActionWire(p.Sub(rtRoute))
		if err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
		if ra.Retry == nil {
			ra.Retry = vh.Retry
		}
		r.Action = ra
	case p.Has(rtRedirect):
		rd, err := parseRedirectWire(p.Sub(rtRedirect))
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		r.Redirect = rd
	case p.Has(rtDirect):
		dr := p.Sub(rtDirect)
		st := int(uint32(dr.U64(drStatus)))
		if st < 200 || st > 599 {
			return nil, fmt.Errorf("direct_response.status %d: want 200-599", st)
		}
		d := &DirectResponse{Status: st}
		if dr.Has(drBody) {
			b := dr.Sub(drBody)
			switch {
			case b.Str(dsInlineString) != "":
				d.Body = b.Str(dsInlineString)
			case len(b.Bytes(dsInlineBytes)) > 0:
				d.Body = string(b.Bytes(dsInlineBytes))
			case b.Str(dsFilename) != "" || b.Str(dsEnvVar) != "":
				return nil, fmt.Errorf("direct_response.body: only inline bodies are supported")
			}
		}
		r.Direct = d
	case p.Has(rtNonForwarding):
		r.Direct = &DirectResponse{Status: 404}
	case p.Has(rtFilterAction):
		return nil, fmt.Errorf("action filter_action not supported")
	default:
		return nil, fmt.Errorf("action: missing")
	}
	return r, nil
}

// headerOpsWire reads one level's header additions and removals.
func headerOpsWire(m *pbwire.Msg, reqAdd, reqRm, respAdd, respRm protowire.Number) (HeaderOps, error) {
	var h HeaderOps
	var err error
	if h.RequestAdd, err = headerValueOpsWire(m.Subs(reqAdd), "request_headers_to_add"); err != nil {
		return h, err
	}
	if h.ResponseAdd, err = headerValueOpsWire(m.Subs(respAdd), "response_headers_to_add"); err != nil {
		return h, err
	}
	for _, v := range m.Vals(reqRm) {
		h.RequestRemove = append(h.RequestRemove, strings.ToLower(string(v.B)))
	}
	for _, v := range m.Vals(respRm) {
		h.ResponseRemove = append(h.ResponseRemove, strings.ToLower(string(v.B)))
	}
	return h, nil
}

// headerValueOpsWire compiles HeaderValueOptions.
func headerValueOpsWire(ops []*pbwire.Msg, field string) ([]HeaderValueOp, error) {
	var out []HeaderValueOp
	for i, o := range ops {
		h := o.Sub(hvoHeader)
		key := h.Str(hvKey)
		v := h.Str(hvValue)
		if v == "" && len(h.Bytes(hvRawValue)) > 0 {
			v = string(h.Bytes(hvRawValue))
		}
		op, err := headerValueOp(key, v, field, i)
		if err != nil {
			return nil, err
		}
		if o.Has(hvoAppend) {
			op.Append = wireBool(o, hvoAppend, true)
		}
		switch o.U64(hvoAppendAction) {
		case appendIfExistsOrAdd:
			if !o.Has(hvoAppend) {
				op.Append = true
			}
		case addIfAbsent:
			op.Append, op.IfAbsent = false, true
		case overwriteOrAdd, overwriteIfExists:
			op.Append = false
		}
		out = append(out, op)
	}
	return out, nil
}

func parseRouteActionWire(p *pbwire.Msg) (*RouteAction, error) {
	a := &RouteAction{Timeout: 15 * time.Second}
	switch {
	case p.Has(raCluster):
		if a.Cluster = p.Str(raCluster); a.Cluster == "" {
			return nil, fmt.Errorf("cluster: empty")
		}
	case p.Has(raWeighted):
		for i, w := range p.Sub(raWeighted).Subs(wcClusters) {
			if w.Str(cwName) == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: name is empty", i)
			}
			ops, err := headerOpsWire(w, cwReqAdd, cwReqRemove, cwRespAdd, cwRespRemove)
			if err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: %w", i, err)
			}
			wt := wrapperU32(w, cwWeight, 0)
			a.Weighted = append(a.Weighted, WeightedCluster{Name: w.Str(cwName), Weight: wt, HeaderOps: ops})
			a.TotalWeight += wt
		}
		if a.TotalWeight == 0 {
			return nil, fmt.Errorf("weighted_clusters: total weight is 0")
		}
	default:
		return nil, fmt.Errorf("cluster specifier: missing")
	}
	a.PrefixRewrite = p.Str(raPrefixRewrite)
	if p.Has(raRegexRewrite) {
		rr := p.Sub(raRegexRewrite)
		re, err := compileRegex(rr.Sub(rmsPattern).Str(regexRegex), false)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
		a.RegexRewrite, a.RegexSubst = re, convertSubst(rr.Str(rmsSubstitution))
	}
	switch {
	case p.Has(raHostLiteral):
		a.HostRewrite = p.Str(raHostLiteral)
	case p.Has(raAutoHost):
		a.AutoHost = wireBool(p, raAutoHost, false)
	}
	if p.Has(raTimeout) {
		a.Timeout = wireDuration(p.Bytes(raTimeout))
	}
	if p.Has(raIdleTimeout) {
		a.IdleTimeout = wireDuration(p.Bytes(raIdleTimeout))
	}
	if p.Has(raMaxGRPCTimeout) {
		a.GRPCTimeout, a.GRPCTimeoutMax = true, wireDuration(p.Bytes(raMaxGRPCTimeout))
	}
	if p.Has(raMaxStreamDuration) {
		m := p.Sub(raMaxStreamDuration)
		a.MaxStreamDuration = wireDuration(m.Bytes(msdMax))
		if m.Has(msdGRPCHeaderMax) {
			a.GRPCTimeout, a.GRPCTimeoutMax = true, wireDuration(m.Bytes(msdGRPCHeaderMax))
		}
	}
	for i, u := range p.Subs(raUpgrades) {
		t := strings.ToLower(u.Str(ucType))
		if t == "" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: empty", i)
		}
		if u.Has(ucConnect) {
			if t != "connect" {
				return nil, fmt.Errorf("upgrade_configs[%d] %q: connect_config is only valid for CONNECT", i, t)
			}
			if u.Sub(ucConnect).Has(ccProxyProtocol) {
				return nil, fmt.Errorf("upgrade_configs[%d].connect_config.proxy_protocol_config: not supported", i)
			}
			a.ConnectTerminate = true
		}
		if a.Upgrades == nil {
			a.Upgrades = map[string]bool{}
		}
		a.Upgrades[t] = wireBool(u, ucEnabled, true)
	}
	var err error
	if p.Has(raRetry) {
		if a.Retry, err = parseRetryWire(p.Sub(raRetry)); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	if p.Has(raHedge) {
		// initial_requests and additional_request_chance are refused by
		// the field rules (Envoy does not implement them either).
		a.HedgeOnPerTryTimeout = p.Sub(raHedge).U64(hedgeOnPerTryTimeout) != 0
	}
	for i, m := range p.Subs(raMirrors) {
		mp, err := parseMirrorWire(m)
		if err != nil {
			return nil, fmt.Errorf("request_mirror_policies[%d]: %w", i, err)
		}
		a.Mirrors = append(a.Mirrors, mp)
	}
	for i, hp := range p.Subs(raHash) {
		h, err := parseHashPolicyWire(hp, i)
		if err != nil {
			return nil, err
		}
		a.Hash = append(a.Hash, h)
	}
	return a, nil
}

func parseHashPolicyWire(hp *pbwire.Msg, i int) (HashPolicy, error) {
	h := HashPolicy{Terminal: hp.U64(hpTerminal) != 0}
	switch {
	case hp.Has(hpHeader):
		h.Header = strings.ToLower(hp.Sub(hpHeader).Str(hpHeaderName))
	case hp.Has(hpCookie):
		c := hp.Sub(hpCookie)
		h.Cookie = c.Str(ckName)
		if h.Cookie == "" || strings.ContainsAny(h.Cookie, "=;, \t") {
			return h, fmt.Errorf("hash_policy[%d].cookie.name %q: not a cookie name", i, h.Cookie)
		}
		if c.Has(ckTTL) {
			h.GenerateCookie, h.CookieTTL, h.CookiePath = true, wireDuration(c.Bytes(ckTTL)), c.Str(ckPath)
			if h.CookieTTL < 0 || !cookieText(h.CookiePath) {
				return h, fmt.Errorf("hash_policy[%d].cookie: ttl %v or path %q cannot be set on a cookie", i, h.CookieTTL, h.CookiePath)
			}
		}
		for j, a := range c.Subs(ckAttributes) {
			n, v := a.Str(caName), a.Str(caValue)
			if n == "" || strings.ContainsAny(n, "=") || !cookieText(n) || !cookieText(v) {
				return h, fmt.Errorf("hash_policy[%d].cookie.attributes[%d]: %q=%q cannot be set on a cookie", i, j, n, v)
			}
			h.CookieAttributes = append(h.CookieAttributes, CookieAttribute{Name: n, Value: v})
		}
	case hp.Has(hpConnection):
		h.SourceIP = hp.Sub(hpConnection).U64(cpSourceIP) != 0
	case hp.Has(hpQuery):
		h.Query = hp.Sub(hpQuery).Str(hqName)
	case hp.Has(hpFilterState):
		return h, fmt.Errorf("hash_policy[%d]: filter_state not supported", i)
	default:
		return h, fmt.Errorf("hash_policy[%d]: no policy specifier", i)
	}
	return h, nil
}

func parseMirrorWire(m *pbwire.Msg) (MirrorPolicy, error) {
	cluster := m.Str(mpCluster)
	if cluster == "" {
		return MirrorPolicy{}, fmt.Errorf("cluster: empty (cluster_header is not supported)")
	}
	mp := MirrorPolicy{Cluster: cluster, Numerator: 100, Denominator: 100}
	if m.Has(mpRuntimeFraction) {
		// No runtime here: the default value is the fraction.
		d := m.Sub(mpRuntimeFraction).Sub(rfpDefault)
		mp.Numerator = uint32(d.U64(fpNumerator))
		switch den := int32(d.U64(fpDenominator)); den {
		case fracHundred:
			mp.Denominator = 100
		case fracTenThousand:
			mp.Denominator = 10_000
		case fracMillion:
			mp.Denominator = 1_000_000
		default:
			return MirrorPolicy{}, fmt.Errorf("runtime_fraction.default_value.denominator %d: unknown", den)
		}
		mp.Numerator = min(mp.Numerator, mp.Denominator)
	}
	if m.Has(mpTraceSampled) && !wireBool(m, mpTraceSampled, true) {
		mp.Unsampled = true
	}
	return mp, nil
}

func parseRetryWire(p *pbwire.Msg) (*RetryPolicy, error) {
	r := &RetryPolicy{NumRetries: 1, BackoffBase: 25 * time.Millisecond}
	if err := parseRetryOn(r, p.Str(rpRetryOn)); err != nil {
		return nil, err
	}
	if p.Has(rpNumRetries) {
		r.NumRetries = int(wrapperU32(p, rpNumRetries, 0))
	}
	if p.Has(rpPerTryTimeout) {
		r.PerTryTimeout = wireDuration(p.Bytes(rpPerTryTimeout))
	}
	for _, c := range p.Vals(rpStatusCodes) {
		r.StatusCodes = append(r.StatusCodes, int(uint32(c.N)))
	}
	if p.Has(rpBackOff) {
		b := p.Sub(rpBackOff)
		if b.Has(boBase) {
			r.BackoffBase = wireDuration(b.Bytes(boBase))
		}
		if r.BackoffBase <= 0 {
			return nil, fmt.Errorf("retry_back_off.base_interval: must be > 0")
		}
		r.BackoffMax = 10 * r.BackoffBase
		if b.Has(boMax) {
			r.BackoffMax = wireDuration(b.Bytes(boMax))
		}
		if r.BackoffMax < r.BackoffBase {
			return nil, fmt.Errorf("retry_back_off.max_interval: less than base_interval")
		}
	} else {
		r.BackoffMax = 10 * r.BackoffBase
	}
	for _, hp := range p.Subs(rpHostPredicate) {
		switch n := hp.Str(extName); n {
		case "envoy.retry_host_predicates.previous_hosts":
			r.PreviousHosts = true
		case "envoy.retry_host_predicates.omit_canary_hosts", "envoy.retry_host_predicates.omit_host_metadata":
		default:
			return nil, fmt.Errorf("retry_host_predicate %q: not supported", n)
		}
	}
	r.HostSelectionMax = int(int64(p.U64(rpHostSelectionMax)))
	if p.Has(rpPriority) {
		rp := p.Sub(rpPriority)
		name := rp.Str(extName)
		if name != "envoy.retry_priorities.previous_priorities" {
			return nil, fmt.Errorf("retry_priority %q: not supported", name)
		}
		if !rp.Has(extTypedConfig) {
			return nil, fmt.Errorf("retry_priority %q: typed_config is missing", name)
		}
		v, err := unpackAny(rp.Bytes(extTypedConfig), previousPrioritiesName)
		if err == nil {
			err = validateWire(descPreviousPriorities, v)
		}
		if err != nil {
			return nil, fmt.Errorf("retry_priority %q: %w", name, err)
		}
		freq := int32(decodeWire(descPreviousPriorities, v).U64(ppUpdateFrequency))
		if freq <= 0 {
			return nil, fmt.Errorf("retry_priority %q: update_frequency must be > 0", name)
		}
		r.PriorityUpdateFrequency = int(freq)
	}
	return r, nil
}

func parseRedirectWire(p *pbwire.Msg) (*Redirect, error) {
	rd := &Redirect{Host: p.Str(rdHost), Port: uint32(p.U64(rdPort)), StripQuery: p.U64(rdStripQ) != 0}
	switch {
	case p.Has(rdHTTPS):
		if p.U64(rdHTTPS) != 0 {
			rd.Scheme = "https"
		}
	case p.Has(rdScheme):
		rd.Scheme = p.Str(rdScheme)
	}
	switch {
	case p.Has(rdPath):
		rd.Path = p.Str(rdPath)
	case p.Has(rdPrefix):
		rd.PrefixRewrite = p.Str(rdPrefix)
	}
	switch c := int32(p.U64(rdCode)); c {
	case redirect301:
		rd.Code = 301
	case redirect302:
		rd.Code = 302
	case redirect303:
		rd.Code = 303
	case redirect307:
		rd.Code = 307
	case redirect308:
		rd.Code = 308
	default:
		return nil, fmt.Errorf("response_code %d: unknown", c)
	}
	return rd, nil
}

func compileRegex(expr string, anchored bool) (*regexp.Regexp, error) {
	return match.CompileRegex(expr, anchored)
}
