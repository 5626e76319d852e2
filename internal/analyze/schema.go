package analyze

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// analyzeSchema reports what validation found: errors as IST0106, warnings
// as IST0133. Unreachable rules and unused matches are left to
// analyzeUnreachableRules, which reports them as Istio does (IST0130, IST0131).
func analyzeSchema(c *context) {
	for _, p := range c.in.Problems {
		if strings.HasPrefix(p.Message, "rule is unreachable") || strings.HasPrefix(p.Message, "match is not used") {
			continue
		}
		ref := Ref{Kind: p.Resource.Kind.Kind, Namespace: p.Resource.Namespace, Name: p.Resource.Name, File: p.Source.File, Line: p.Source.Line}
		text := p.Message
		if p.Field != "" {
			text = p.Field + ": " + text
		}
		if p.Severity == config.Error {
			c.report(newMessage(SchemaValidationError, ref, text))
		} else {
			c.report(newMessage(SchemaWarning, ref, text))
		}
	}
	analyzeUnreachableRules(c)
}

// analyzeUnreachableRules follows Istio's validation of VirtualService rules:
// a rule after one without matches, or whose every match an earlier rule
// already has, is never used (IST0130); a match an earlier rule already has,
// or one an earlier prefix match covers, is never used (IST0131).
func analyzeUnreachableRules(c *context) {
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		ref := refOf(r)
		unreachable := func(rule, reason string) {
			c.report(newMessage(VirtualServiceUnreachableRule, ref, rule, reason))
		}
		ineffective := func(rule, match, dup string) {
			c.report(newMessage(VirtualServiceIneffectiveMatch, ref, rule, match, dup))
		}
		var httpRules []rule
		for i, h := range vs.GetHttp() {
			rl := rule{name: httpRouteName(h, i)}
			for _, m := range h.GetMatch() {
				rl.matches = append(rl.matches, m)
			}
			httpRules = append(httpRules, rl)
		}
		unreachableRules(httpRules, unreachable, ineffective)
		overlappingPrefixes(vs.GetHttp(), ineffective)
		var tcpRules, tlsRules []rule
		for i, t := range vs.GetTcp() {
			rl := rule{name: fmt.Sprintf("#%d", i)}
			for _, m := range t.GetMatch() {
				rl.matches = append(rl.matches, m)
			}
			tcpRules = append(tcpRules, rl)
		}
		unreachableRules(tcpRules, unreachable, ineffective)
		for i, t := range vs.GetTls() {
			rl := rule{name: fmt.Sprintf("#%d", i)}
			for _, m := range t.GetMatch() {
				rl.matches = append(rl.matches, m)
			}
			tlsRules = append(tlsRules, rl)
		}
		unreachableRules(tlsRules, unreachable, ineffective)
	}
}

type rule struct {
	name    string
	matches []proto.Message
}

func httpRouteName(h *networking.HTTPRoute, i int) string {
	if h.GetName() != "" {
		return fmt.Sprintf("%q", h.GetName())
	}
	return fmt.Sprintf("#%d", i)
}

func matchName(m proto.Message, i int) string {
	if hm, ok := m.(*networking.HTTPMatchRequest); ok && hm.GetName() != "" {
		return fmt.Sprintf("%q", hm.GetName())
	}
	return fmt.Sprintf("#%d", i)
}

// withoutName returns m with an HTTP match's name cleared: names do not route.
func withoutName(m proto.Message) proto.Message {
	if hm, ok := m.(*networking.HTTPMatchRequest); ok && hm.GetName() != "" {
		cl := proto.Clone(hm).(*networking.HTTPMatchRequest)
		cl.Name = ""
		return cl
	}
	return m
}

func unreachableRules(rules []rule, unreachable func(rule, reason string), ineffective func(rule, match, dup string)) {
	type seen struct {
		m    proto.Message
		rule int
	}
	var encountered []seen
	emptyMatch := -1
	for i, rl := range rules {
		if len(rl.matches) == 0 {
			if emptyMatch >= 0 {
				unreachable(rl.name, "only the last rule can have no matches")
			}
			emptyMatch = i
			continue
		}
		dups := 0
		for j, m := range rl.matches {
			if emptyMatch >= 0 {
				unreachable(rl.name, "route without matches defined before")
				continue
			}
			key := withoutName(m)
			dup := -1
			for _, e := range encountered {
				if proto.Equal(e.m, key) {
					dup = e.rule
					break
				}
			}
			if dup >= 0 {
				ineffective(rl.name, matchName(m, j), rules[dup].name)
				dups++
				continue
			}
			encountered = append(encountered, seen{key, i})
		}
		if dups == len(rl.matches) {
			unreachable(rl.name, "all matches used by prior rules")
		}
	}
}

// prefixMatch is one HTTP match with a URI prefix, as Istio's overlapping
// match check sees it.
type prefixMatch struct {
	route, match, prefix      string
	port                      uint32
	method, authority         string
	headers, query, noHeaders map[string]string
}

func exactOrPrefix(m *networking.StringMatch) string {
	if e := m.GetExact(); e != "" {
		return "exact:" + e
	}
	if p := m.GetPrefix(); p != "" {
		return "prefix:" + p
	}
	return ""
}

func stringMatches(ms map[string]*networking.StringMatch) map[string]string {
	out := map[string]string{}
	for k, v := range ms {
		out[k] = exactOrPrefix(v)
	}
	return out
}

// overlappingPrefixes reports a prefix match that an earlier, shorter prefix
// match with the same other conditions covers (Istio's coveredValidation).
func overlappingPrefixes(routes []*networking.HTTPRoute, ineffective func(rule, match, dup string)) {
	var pms []prefixMatch
	seen := map[string]bool{}
	emptyMatch := false
	for i, h := range routes {
		if len(h.GetMatch()) == 0 {
			emptyMatch = true
			continue
		}
		for j, m := range h.GetMatch() {
			if emptyMatch {
				continue
			}
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(withoutName(m))
			if seen[string(b)] {
				continue
			}
			seen[string(b)] = true
			if m.GetUri().GetPrefix() == "" {
				continue
			}
			method := exactOrPrefix(m.GetMethod())
			if method == "" {
				method = "exact:GET"
			}
			pms = append(pms, prefixMatch{route: httpRouteName(h, i), match: matchName(m, j), prefix: m.GetUri().GetPrefix(),
				port: m.GetPort(), method: method, authority: exactOrPrefix(m.GetAuthority()),
				headers: stringMatches(m.GetHeaders()), query: stringMatches(m.GetQueryParams()), noHeaders: stringMatches(m.GetWithoutHeaders())})
		}
	}
	if len(pms) < 2 {
		return
	}
	for i, a := range pms {
		for _, b := range pms[i+1:] {
			if b.prefix == a.prefix || !covered(a, b) {
				continue
			}
			ineffective(b.route, b.match+" of prefix "+b.prefix, a.match+" of prefix "+a.prefix+" on "+a.route)
		}
	}
}

func covered(a, b prefixMatch) bool {
	if !strings.HasPrefix(b.prefix, a.prefix) || a.port != b.port {
		return false
	}
	if a.method != b.method && !strings.HasPrefix(a.method, b.method) {
		return false
	}
	if a.authority != b.authority && !strings.HasPrefix(a.authority, b.authority) {
		return false
	}
	for _, pair := range [][2]map[string]string{{a.headers, b.headers}, {a.query, b.query}, {a.noHeaders, b.noHeaders}} {
		x, y := pair[0], pair[1]
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || (v != w && !strings.HasPrefix(v, w)) {
				return false
			}
		}
	}
	return true
}
