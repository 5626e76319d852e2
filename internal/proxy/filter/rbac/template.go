package rbac

import (
	"fmt"
	"strings"
)

// template is a compiled URI template (envoy.path.match.uri_template):
// literal segments, "{*}" (or "{name}") for exactly one non-empty segment and
// "{**}" (or "{name=**}") for any number of segments (the last segment
// only). Only whole-segment operators are supported.
type template struct {
	segs []tseg
}

type tsegKind uint8

const (
	tLiteral tsegKind = iota
	tOne
	tMany
)

type tseg struct {
	kind tsegKind
	lit  string
}

func parseTemplate(t string) (*template, error) {
	if len(t) == 0 || t[0] != '/' || len(t) > 256 {
		return nil, fmt.Errorf("%q: must start with / and be at most 256 bytes", t)
	}
	out := &template{}
	parts := strings.Split(t[1:], "/")
	for i, p := range parts {
		switch {
		case p == "{*}" || p == "*":
			out.segs = append(out.segs, tseg{kind: tOne})
		case p == "{**}" || p == "**":
			if i != len(parts)-1 {
				return nil, fmt.Errorf("%q: ** must be the last segment", t)
			}
			out.segs = append(out.segs, tseg{kind: tMany})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name, op, _ := strings.Cut(p[1:len(p)-1], "=")
			if !validName(name) {
				return nil, fmt.Errorf("%q: variable %q: invalid name", t, p)
			}
			switch op {
			case "", "*":
				out.segs = append(out.segs, tseg{kind: tOne})
			case "**":
				if i != len(parts)-1 {
					return nil, fmt.Errorf("%q: ** must be the last segment", t)
				}
				out.segs = append(out.segs, tseg{kind: tMany})
			default:
				return nil, fmt.Errorf("%q: variable %q: only * and ** are supported", t, p)
			}
		case strings.ContainsAny(p, "{}*"):
			return nil, fmt.Errorf("%q: segment %q: operators must be whole segments", t, p)
		default:
			out.segs = append(out.segs, tseg{kind: tLiteral, lit: p})
		}
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// match reports whether path (no query) matches, without allocating.
func (t *template) match(path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest := path[1:]
	for i, s := range t.segs {
		if s.kind == tMany {
			// Any number of segments, including none; Envoy's ** also
			// matches the empty remainder after a trailing slash.
			return true
		}
		seg, tail, more := strings.Cut(rest, "/")
		switch s.kind {
		case tLiteral:
			if seg != s.lit {
				return false
			}
		case tOne:
			if seg == "" {
				return false
			}
		}
		if i == len(t.segs)-1 {
			return !more
		}
		if !more {
			return false // the template has more segments
		}
		rest = tail
	}
	return rest == ""
}
