package jwtauthn

import (
	"net/url"
	"strings"
)

// extracted is one token found in a request and where it was found.
type extracted struct {
	token  string
	header string // the header it came from, "" for parameters and cookies
}

// extract appends the tokens found in p's locations to out.
func (p *Provider) extract(r *Request, out []extracted) []extracted {
	for _, loc := range p.headers {
		for _, f := range *r.Headers {
			if f.Name != loc.name {
				continue
			}
			if t, ok := tokenAfterPrefix(f.Value, loc.prefix); ok {
				out = appendToken(out, extracted{token: t, header: loc.name})
			}
		}
	}
	if len(p.params) > 0 {
		if _, q, ok := strings.Cut(r.Path, "?"); ok {
			for _, name := range p.params {
				if v, ok := queryParam(q, name); ok && v != "" {
					out = appendToken(out, extracted{token: v})
				}
			}
		}
	}
	if len(p.cookies) > 0 {
		for _, f := range *r.Headers {
			if f.Name != "cookie" {
				continue
			}
			for _, name := range p.cookies {
				if v, ok := cookieValue(f.Value, name); ok && v != "" {
					out = appendToken(out, extracted{token: v})
				}
			}
		}
	}
	return out
}

func appendToken(out []extracted, e extracted) []extracted {
	for _, o := range out {
		if o == e {
			return out
		}
	}
	return append(out, e)
}

// tokenAfterPrefix returns what follows prefix (matched without regard to
// case, as for the Bearer scheme). As in Envoy the token ends at the first
// character a JWT cannot contain, but only when that character is a
// separator (space, tab, comma); otherwise the whole word is the token, so
// that "Bearer %%%.x.y" is a malformed token (401), not a missing one.
func tokenAfterPrefix(v, prefix string) (string, bool) {
	v = strings.TrimLeft(v, " \t")
	if prefix != "" {
		if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
			return "", false
		}
		v = strings.TrimLeft(v[len(prefix):], " \t")
		end := 0
		for end < len(v) && isTokenChar(v[end]) {
			end++
		}
		if end < len(v) && v[end] != ' ' && v[end] != '\t' && v[end] != ',' {
			end = strings.IndexAny(v, " \t,")
			if end < 0 {
				end = len(v)
			}
		}
		v = v[:end]
	} else {
		v = strings.TrimRight(v, " \t")
	}
	return v, v != ""
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '=' || c == '+' || c == '/' || c == '~'
}

// queryParam returns the first value of name in a raw query, decoded.
func queryParam(q, name string) (string, bool) {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != name {
			continue
		}
		if d, err := url.QueryUnescape(v); err == nil {
			return d, true
		}
		// A value that does not decode is passed on as it is, to be
		// refused as a malformed token rather than ignored as missing.
		return v, true
	}
	return "", false
}

// cookieValue returns the value of the cookie name in a Cookie header.
func cookieValue(h, name string) (string, bool) {
	for h != "" {
		var kv string
		kv, h, _ = strings.Cut(h, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}
