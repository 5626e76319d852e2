// Package pathnorm normalizes request paths once, before routing and policy,
// as the HTTP connection manager's normalize_path, merge_slashes and
// path_with_escaped_slashes_action say (the fields Istio's MeshConfig
// pathNormalization NONE / BASE / MERGE_SLASHES / DECODE_AND_MERGE_SLASHES
// set): escaped slashes are kept, refused, or unescaped first; then
// (normalize_path) percent-encoded unreserved characters are decoded
// (so %2e%2e is "..") and other escapes upper-cased (RFC 3986 6.2.2),
// backslashes become slashes and dot segments are removed (RFC 3986 5.2.4);
// then (merge_slashes) repeated slashes are merged. The query is kept as it
// is; a fragment is refused (Envoy rejects paths with a fragment).
//
// Canonical gives the most reduced form of a path (every escape decoded,
// ";" parameters dropped as servlet containers do) that policy checks in
// addition, so that a spelling the upstream may read differently cannot
// slip past a DENY rule.
package pathnorm

import (
	"errors"
	"strings"
)

// ErrInvalid is returned for a target that is not a valid origin-form path.
var ErrInvalid = errors.New("invalid request path")

// ErrEscapedSlash is returned when escaped slashes are refused.
var ErrEscapedSlash = errors.New("escaped slash in path")

// EscapedSlashes is path_with_escaped_slashes_action.
type EscapedSlashes uint8

// Envoy's actions on %2F, %2f, %5C and %5c in the path.
const (
	KeepEscapedSlashes EscapedSlashes = iota // KEEP_UNCHANGED (and IMPLEMENTATION_SPECIFIC_DEFAULT)
	RejectEscapedSlashes
	UnescapeAndRedirect
	UnescapeAndForward
)

// Options say how a connection manager normalizes paths.
type Options struct {
	NormalizePath  bool // normalize_path
	MergeSlashes   bool // merge_slashes
	EscapedSlashes EscapedSlashes
}

// Base is Envoy's normalize_path alone (Istio's default BASE).
var Base = Options{NormalizePath: true}

// Normalize returns the normalized form of an origin-form target ("/a/b?q")
// under o. redirect reports that o asks for a redirect to the returned
// target (UNESCAPE_AND_REDIRECT with escaped slashes present). It does not
// allocate when the target is already normal.
func (o Options) Normalize(target string) (out string, redirect bool, err error) {
	path, query := target, ""
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i:]
	}
	if path == "" || path[0] != '/' || strings.IndexByte(target, '#') >= 0 {
		return "", false, ErrInvalid
	}
	if !needsWork(path) {
		return target, false, nil
	}
	if err := validEscapes(path); err != nil {
		return "", false, err
	}
	if o.EscapedSlashes != KeepEscapedSlashes && hasEscapedSlash(path) {
		switch o.EscapedSlashes {
		case RejectEscapedSlashes:
			return "", false, ErrEscapedSlash
		case UnescapeAndRedirect:
			redirect = true
		}
		path = unescapeSlashes(path)
	}
	if o.NormalizePath {
		path = removeDots(strings.ReplaceAll(decodeUnreserved(path), `\`, "/"))
	}
	if o.MergeSlashes {
		path = mergeSlashes(path)
	}
	return path + query, redirect, nil
}

// Normalize is Base.Normalize without the redirect.
func Normalize(target string) (string, error) {
	out, _, err := Base.Normalize(target)
	return out, err
}

// Canonical returns the most reduced reading of a normalized path without
// its query: every percent-escape decoded (repeatedly), backslashes as
// slashes, ";" parameters dropped from every segment, slashes merged, dot
// segments removed. It returns p itself (no allocation) when p has none of
// those.
func Canonical(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if !needsWork(p) && strings.IndexByte(p, ';') < 0 {
		return p
	}
	for range 3 {
		d, ok := decodeAll(p)
		if !ok || d == p {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, `\`, "/")
	if strings.IndexByte(p, ';') >= 0 {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if j := strings.IndexByte(s, ';'); j >= 0 {
				segs[i] = s[:j]
			}
		}
		p = strings.Join(segs, "/")
	}
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return removeDots(mergeSlashes(p))
}

func needsWork(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', '\\':
			return true
		case '/':
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return true
			}
		}
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func validEscapes(p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+2 >= len(p) {
			return ErrInvalid
		}
		if _, ok := unhex(p[i+1]); !ok {
			return ErrInvalid
		}
		if _, ok := unhex(p[i+2]); !ok {
			return ErrInvalid
		}
		i += 2
	}
	return nil
}

func hasEscapedSlash(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && (p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F') || p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C')) {
			return true
		}
	}
	return false
}

func unescapeSlashes(p string) string {
	r := strings.NewReplacer("%2F", "/", "%2f", "/", "%5C", `\`, "%5c", `\`)
	return r.Replace(p)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// decodeUnreserved decodes escapes of unreserved characters and upper-cases
// the others; escapes were validated.
func decodeUnreserved(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' || i+2 >= len(p) {
			b.WriteByte(c)
			continue
		}
		h, _ := unhex(p[i+1])
		l, _ := unhex(p[i+2])
		v := h<<4 | l
		if unreserved(v) {
			b.WriteByte(v)
		} else {
			const hexd = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hexd[v>>4])
			b.WriteByte(hexd[v&15])
		}
		i += 2
	}
	return b.String()
}

// decodeAll decodes every valid escape; ok is false when none was found.
func decodeAll(p string) (string, bool) {
	if strings.IndexByte(p, '%') < 0 {
		return p, false
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			h, ok1 := unhex(p[i+1])
			l, ok2 := unhex(p[i+2])
			if ok1 && ok2 {
				b = append(b, h<<4|l)
				i += 2
				continue
			}
		}
		b = append(b, p[i])
	}
	return string(b), true
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// removeDots implements RFC 3986 5.2.4 on an absolute path.
func removeDots(p string) string {
	if !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}
