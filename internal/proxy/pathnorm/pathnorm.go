// Package pathnorm normalizes request paths before routing: percent-encoded
// unreserved characters are decoded (so %2e%2e is "..") and other escapes
// upper-cased (RFC 3986 6.2.2), repeated slashes are merged and dot segments
// removed (RFC 3986 5.2.4). The query is kept as it is. Routing on the
// normalized path stops "/public/../admin" and "//admin" from bypassing a
// route meant for "/admin".
package pathnorm

import (
	"errors"
	"strings"
)

// ErrInvalid is returned for a target that is not a valid origin-form path.
var ErrInvalid = errors.New("invalid request path")

// Normalize returns the normalized form of an origin-form target ("/a/b?q").
// It does not allocate when the target is already normal.
func Normalize(target string) (string, error) {
	path, query := target, ""
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i:]
	}
	if path == "" || path[0] != '/' || strings.IndexByte(target, '#') >= 0 {
		return "", ErrInvalid
	}
	if !needsWork(path) {
		return target, nil
	}
	dec, err := decodeUnreserved(path)
	if err != nil {
		return "", err
	}
	out := removeDots(mergeSlashes(dec))
	return out + query, nil
}

func needsWork(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
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

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func decodeUnreserved(p string) (string, error) {
	if strings.IndexByte(p, '%') < 0 {
		return p, nil
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) {
			return "", ErrInvalid
		}
		h, ok1 := unhex(p[i+1])
		l, ok2 := unhex(p[i+2])
		if !ok1 || !ok2 {
			return "", ErrInvalid
		}
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
	return b.String(), nil
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
