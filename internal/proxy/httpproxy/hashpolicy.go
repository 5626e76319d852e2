package httpproxy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// computeHash returns the request's hash under policies, whether any
// policy applied, and the Set-Cookie value of a cookie it generated ("" for
// none). As Envoy's: a cookie policy with a ttl gives a request without the
// cookie one, whose value (a hash of the connection's two addresses, so
// that a connection's requests agree) is hashed as if it had been sent.
func computeHash(policies []xdsparse.HashPolicy, req *dsRequest, path string) (uint64, bool, string) {
	var h uint64
	found := false
	setCookie := ""
	for _, p := range policies {
		var v string
		ok := false
		switch {
		case p.Header != "":
			v, ok = req.header.Get(p.Header)
			if p.Header == "host" || p.Header == ":authority" {
				v, ok = req.authority, true
			}
		case p.Cookie != "":
			v, ok = cookie(req.header, p.Cookie)
			if !ok && p.GenerateCookie {
				local := ""
				if req.local != nil {
					local = req.local.String()
				}
				v, ok = fmt.Sprintf("%016x", upstream.Hash64(req.remoteAddr+local)), true
				setCookie = generatedCookie(p, v)
			}
		case p.SourceIP:
			v, ok = req.remote, req.remote != ""
		case p.Query != "":
			_, q, _ := strings.Cut(path, "?")
			v, ok = xdsparse.QueryParam(q, p.Query)
		}
		if !ok {
			continue
		}
		h = h*31 + upstream.Hash64(v)
		found = true
		if p.Terminal {
			break
		}
	}
	return h, found, setCookie
}

// generatedCookie is the Set-Cookie value for a generated hash cookie, in
// Envoy's form: name="value", Max-Age (whole seconds of the ttl; none for a
// session cookie), Path, the attributes in order, HttpOnly.
func generatedCookie(p xdsparse.HashPolicy, value string) string {
	var b strings.Builder
	b.WriteString(p.Cookie)
	b.WriteString(`="`)
	b.WriteString(value)
	b.WriteByte('"')
	if secs := int64(p.CookieTTL / time.Second); secs > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(secs, 10))
	}
	if p.CookiePath != "" {
		b.WriteString("; Path=")
		b.WriteString(p.CookiePath)
	}
	for _, a := range p.CookieAttributes {
		b.WriteString("; ")
		b.WriteString(a.Name)
		if a.Value != "" {
			b.WriteByte('=')
			b.WriteString(a.Value)
		}
	}
	b.WriteString("; HttpOnly")
	return b.String()
}

// cookie is the value of the request's cookie name, without the double
// quotes of a quoted value (Envoy's parseCookieValue); an empty value is no
// cookie.
func cookie(h headers.List, name string) (string, bool) {
	for _, f := range h {
		if f.Name != "cookie" {
			continue
		}
		for _, part := range strings.Split(f.Value, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == name {
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, v != ""
			}
		}
	}
	return "", false
}
