package rbac

import (
	"net/netip"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// input is what one evaluation looks at: the request (nil for a network
// filter), the connection, and the path as this pass reads it.
type input struct {
	r    *filter.Request
	c    *filter.Conn
	path string // without query
}

// match returns the name of the first policy (in name order) that matches.
func (e *Engine) match(in *input) (string, bool) {
	for i := range e.Policies {
		p := &e.Policies[i]
		if anyMatch(p.Permissions, in) && anyMatch(p.Principals, in) {
			return p.Name, true
		}
	}
	return "", false
}

func anyMatch(ns []node, in *input) bool {
	for i := range ns {
		if ns[i].match(in) {
			return true
		}
	}
	return false
}

func (n *node) match(in *input) bool {
	switch n.kind {
	case kAny:
		return true
	case kAnd:
		for i := range n.kids {
			if !n.kids[i].match(in) {
				return false
			}
		}
		return true
	case kOr:
		return anyMatch(n.kids, in)
	case kNot:
		return !n.kids[0].match(in)
	case kHeader:
		if in.r == nil {
			return false
		}
		v, ok := in.r.Header(n.hdr.Name)
		if ok && n.hdr.Name[0] != ':' && n.hdr.Name != "host" && in.r.Headers.Count(n.hdr.Name) > 1 {
			v = joined(*in.r.Headers, n.hdr.Name)
		}
		return n.hdr.MatchValue(v, ok)
	case kPath:
		return in.r != nil && n.str.Match(in.path)
	case kTemplate:
		return in.r != nil && n.tmpl.match(in.path)
	case kDestIP:
		return in.c != nil && n.cidr.Contains(in.c.Local.Addr())
	case kDestPort:
		return in.c != nil && uint32(in.c.Local.Port()) == n.lo
	case kDestRange:
		p := uint32(0)
		if in.c != nil {
			p = uint32(in.c.Local.Port())
		}
		return in.c != nil && p >= n.lo && p < n.hi
	case kSNI:
		return in.c != nil && n.str.Match(in.c.SNI)
	case kAuthn:
		if in.c == nil || in.c.Principal == "" {
			return false
		}
		return !n.hasStr || n.str.Match(in.c.Principal)
	case kDirectIP:
		return in.c != nil && n.cidr.Contains(in.c.Remote.Addr())
	case kRemoteIP:
		a := netip.Addr{}
		if in.r != nil {
			a = in.r.RemoteIP
		}
		if !a.IsValid() && in.c != nil {
			a = in.c.Remote.Addr()
		}
		return a.IsValid() && n.cidr.Contains(a)
	case kMeta:
		return n.meta.match(in) != n.meta.invert
	}
	return false
}

func joined(h headers.List, name string) string {
	var b strings.Builder
	for _, f := range h {
		if f.Name == name {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f.Value)
		}
	}
	return b.String()
}

// Istio's istio_authn dynamic metadata keys, which mast-proxy derives from
// the JWT result and the peer certificate instead of storing them.
const (
	istioAuthn   = "istio_authn"
	keyPrincipal = "request.auth.principal"
	keyAudiences = "request.auth.audiences"
	keyPresenter = "request.auth.presenter"
	keyClaims    = "request.auth.claims"
	keyRawClaims = "request.auth.raw_claims"
	keySrcPrinc  = "source.principal"
	keySrcNS     = "source.namespace"
	keySrcUser   = "source.user"
)

func (m *metaMatcher) match(in *input) bool {
	if m.filter != istioAuthn {
		// Other filters' dynamic metadata, flattened to one key level.
		if in.r == nil || len(m.path) != 1 {
			return false
		}
		for _, e := range in.r.Meta {
			if e.Filter == m.filter && e.Key == m.path[0] {
				return m.value.matchString(e.Value)
			}
		}
		return false
	}
	switch m.path[0] {
	case keySrcPrinc, keySrcUser:
		if in.c == nil || in.c.Principal == "" || len(m.path) != 1 {
			return false
		}
		return m.value.matchString(strings.TrimPrefix(in.c.Principal, "spiffe://"))
	case keySrcNS:
		if in.c == nil || in.c.Namespace == "" || len(m.path) != 1 {
			return false
		}
		return m.value.matchString(in.c.Namespace)
	}
	if in.r == nil || in.r.JWT == nil {
		return false
	}
	j := in.r.JWT
	switch m.path[0] {
	case keyPrincipal:
		return len(m.path) == 1 && j.Principal != "" && m.value.matchString(j.Principal)
	case keyPresenter:
		return len(m.path) == 1 && j.Presenter != "" && m.value.matchString(j.Presenter)
	case keyAudiences:
		if len(m.path) != 1 {
			return false
		}
		for _, a := range j.Audiences {
			if m.value.matchString(a) {
				return true
			}
		}
		return false
	case keyClaims:
		if len(m.path) < 2 {
			return false
		}
		var v any = j.Claims
		for _, k := range m.path[1:] {
			obj, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = obj[k]; !ok {
				return false
			}
		}
		return m.value.matchAny(v)
	}
	return false
}

func (v *valueMatcher) matchString(s string) bool {
	switch {
	case v.present:
		return true
	case v.str != nil:
		return v.str.Match(s)
	case v.oneOf != nil:
		return v.oneOf.matchString(s)
	}
	return false
}

// matchAny matches a decoded JSON claim: strings as strings, lists by
// any element (list_match one_of; Istio also matches a plain string
// matcher against lists of strings), booleans by bool_match.
func (v *valueMatcher) matchAny(x any) bool {
	switch t := x.(type) {
	case string:
		// Istio's authn filter stores every claim as a list of strings, so
		// one_of matches a string claim as a list of one.
		return v.matchString(t)
	case bool:
		if v.present {
			return true
		}
		return v.boolean != nil && *v.boolean == t
	case []any:
		if v.present {
			return true
		}
		if v.oneOf == nil {
			return false
		}
		for _, e := range t {
			if v.oneOf.matchAny(e) {
				return true
			}
		}
		return false
	case nil:
		return false
	default:
		return v.present
	}
}
