package xdsparse

import (
	"strings"

	"github.com/mast-mesh/mast/internal/hostport"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Input is what route matching looks at. Path is the normalized request path,
// optionally followed by ?query.
type Input struct {
	Authority string
	Method    string
	Scheme    string
	Path      string
	Headers   headers.List
}

// header returns the value used for matching header name; pseudo-headers and
// host come from the request line.
func (in *Input) header(name string) (string, bool) {
	switch name {
	case "host", ":authority":
		return in.Authority, in.Authority != ""
	case ":method":
		return in.Method, true
	case ":path":
		return in.Path, true
	case ":scheme":
		return in.Scheme, true
	}
	return in.Headers.Get(name)
}

// VirtualHostFor selects the virtual host for authority the way Envoy does:
// exact domain, then the longest suffix wildcard, then the longest prefix
// wildcard, then "*"; without the authority's port when the route
// configuration ignores it (IgnorePort). It does not allocate for
// authorities up to 256 bytes.
func (t *RouteTable) VirtualHostFor(authority string) *VirtualHost {
	if t.IgnorePort {
		authority = hostport.WithoutPort(authority)
	}
	// The domains are lower-case: an authority that names one exactly is
	// lower-case too and needs no lower-cased copy (the usual case).
	if vh, ok := t.exact[authority]; ok {
		return vh
	}
	if !hasUpper(authority) {
		return t.wildcard(authority)
	}
	var buf [256]byte
	var host string
	if len(authority) <= len(buf) {
		n := copy(buf[:], authority)
		b := buf[:n]
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		if vh, ok := t.exact[string(b)]; ok {
			return vh
		}
		host = unsafeString(b)
	} else {
		host = strings.ToLower(authority)
		if vh, ok := t.exact[host]; ok {
			return vh
		}
	}
	return t.wildcard(host)
}

// wildcard is VirtualHostFor's choice for a lower-case host that no domain
// names exactly.
func (t *RouteTable) wildcard(host string) *VirtualHost {
	for _, e := range t.suffix {
		if len(host) > len(e.fix) && strings.HasSuffix(host, e.fix) {
			return e.vh
		}
	}
	for _, e := range t.prefix {
		if len(host) > len(e.fix) && strings.HasPrefix(host, e.fix) {
			return e.vh
		}
	}
	return t.any
}

// hasUpper reports whether s has an ASCII upper-case letter. It looks at
// eight bytes at a time: a byte below 0x80 is in 'A'..'Z' when, with its
// top bit set, subtracting 'A' leaves the top bit and subtracting '[' does
// not (no borrow crosses bytes: each is at least 0x80 before, and the
// subtrahends are below).
func hasUpper(s string) bool {
	const hi = 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		c := s[i : i+8] // one bounds check; the eight loads combine into one
		w := uint64(c[0]) | uint64(c[1])<<8 | uint64(c[2])<<16 | uint64(c[3])<<24 |
			uint64(c[4])<<32 | uint64(c[5])<<40 | uint64(c[6])<<48 | uint64(c[7])<<56
		if ((w|hi)-0x4141414141414141) & ^((w|hi)-0x5b5b5b5b5b5b5b5b) & ^w & hi != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// Match returns the first route of the selected virtual host that matches, or nil.
func (t *RouteTable) Match(in *Input) *Route {
	vh := t.VirtualHostFor(in.Authority)
	if vh == nil {
		return nil
	}
	return vh.Match(in)
}

// Match returns the first matching route of the virtual host, or nil.
func (vh *VirtualHost) Match(in *Input) *Route {
	path, query := in.Path, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	connect := in.Method == "CONNECT"
	for _, r := range vh.Routes {
		if (r.Kind == PathConnect) != connect {
			continue
		}
		if r.matchPath(path) && r.matchHeaders(in) && r.matchQuery(query) {
			return r
		}
	}
	return nil
}

func (r *Route) matchPath(path string) bool {
	switch r.Kind {
	case PathPrefix:
		if r.CaseSensitive {
			return strings.HasPrefix(path, r.Path)
		}
		return headers.HasPrefixFold(path, r.Path)
	case PathExact:
		if r.CaseSensitive {
			return path == r.Path
		}
		return headers.EqualFold(path, r.Path)
	case PathRegex:
		return r.Regex.MatchString(path)
	case PathSeparatedPrefix:
		var ok bool
		if r.CaseSensitive {
			ok = strings.HasPrefix(path, r.Path)
		} else {
			ok = headers.HasPrefixFold(path, r.Path)
		}
		return ok && (len(path) == len(r.Path) || path[len(r.Path)] == '/' || r.Path == "/")
	case PathConnect:
		return true
	}
	return false
}

func (r *Route) matchHeaders(in *Input) bool {
	for i := range r.Headers {
		if !matchHeader(&r.Headers[i], in) {
			return false
		}
	}
	return true
}

func matchHeader(m *HeaderMatcher, in *Input) bool {
	v, ok := in.header(m.Name)
	if ok && in.Headers.Count(m.Name) > 1 {
		v = joinValues(in.Headers, m.Name)
	}
	return m.MatchValue(v, ok)
}

func joinValues(l headers.List, name string) string {
	var b strings.Builder
	for _, f := range l {
		if f.Name == name {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f.Value)
		}
	}
	return b.String()
}

func (r *Route) matchQuery(query string) bool {
	for i := range r.Query {
		q := &r.Query[i]
		v, ok := QueryParam(query, q.Name)
		if !ok {
			return false
		}
		if !q.Present && !q.Str.Match(v) {
			return false
		}
	}
	return true
}

// QueryParam returns the raw value of the first parameter called name in query.
func QueryParam(query, name string) (string, bool) {
	for query != "" {
		var kv string
		if i := strings.IndexByte(query, '&'); i >= 0 {
			kv, query = query[:i], query[i+1:]
		} else {
			kv, query = query, ""
		}
		k, v := kv, ""
		if i := strings.IndexByte(kv, '='); i >= 0 {
			k, v = kv[:i], kv[i+1:]
		}
		if k == name {
			return v, true
		}
	}
	return "", false
}
