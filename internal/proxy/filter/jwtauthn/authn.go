package jwtauthn

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Request is what the filter reads and changes of one request.
type Request struct {
	Method string
	// Scheme is "http" or "https"; the realm of WWW-Authenticate uses it.
	Scheme string
	Host   string
	// Path is the request target in origin form, query included.
	Path    string
	Headers *headers.List
}

// Identity is one verified token, as later filters see it.
type Identity struct {
	Provider string
	// Principal is "<iss>/<sub>", Istio's request principal.
	Principal string
	Issuer    string
	Subject   string
	Audiences []string
	Presenter string // azp
	// Claims is the whole payload (string, float64, bool, []any, map[string]any).
	Claims map[string]any
	// MetadataKey is the provider's payload_in_metadata ("" when unset).
	MetadataKey string
}

// Outcome is the decision of the filter for one request.
type Outcome struct {
	// Status is StatusOK when the request may continue.
	Status Status
	// Identities are the tokens that verified, in the order they were
	// checked; Identities[0] is the request principal.
	Identities []Identity
}

// Authenticate finds and verifies the request's tokens and applies the
// first rule whose path matches. On success it also applies each verified
// provider's header effects (forward, forward_payload_header,
// claim_to_headers). Headers a verified token may write are removed from
// every request first, so a client cannot forge them.
func (c *Config) Authenticate(r *Request, now time.Time) Outcome {
	for _, h := range c.sanitize {
		r.Headers.Del(h)
	}
	if c.bypassCORS && r.Method == "OPTIONS" && r.Headers.Has("origin") && r.Headers.Has("access-control-request-method") {
		return Outcome{}
	}
	path, _, _ := strings.Cut(r.Path, "?")
	for i := range c.rules {
		ru := &c.rules[i]
		if !ru.match.matches(path) {
			continue
		}
		if ru.req == nil {
			return Outcome{}
		}
		ev := evaluation{c: c, r: r, now: now.Unix()}
		st := ev.eval(ru.req)
		if st != StatusOK {
			return Outcome{Status: st}
		}
		return Outcome{Identities: ev.identities}
	}
	return Outcome{}
}

// Reply is the local reply for a refused request: status code, body, and
// the value of WWW-Authenticate ("" when strip_failure_response is set).
func (c *Config) Reply(o Outcome, r *Request) (code int, body, wwwAuthenticate string) {
	code, body = o.Status.HTTPStatus(), o.Status.String()
	if c.stripFailure {
		return code, body, ""
	}
	return code, body, WWWAuthenticate(o.Status, r)
}

// maxRealmPath bounds the request path echoed in the realm.
const maxRealmPath = 256

// WWWAuthenticate is Envoy's challenge: Bearer realm="<scheme>://<host><path>"
// plus error="invalid_token" unless the token was missing. The query is
// left out so that a token sent as a parameter is never echoed.
func WWWAuthenticate(st Status, r *Request) string {
	path, _, _ := strings.Cut(r.Path, "?")
	if len(path) > maxRealmPath {
		path = path[:maxRealmPath]
	}
	scheme := r.Headers.Value("x-forwarded-proto")
	if scheme == "" {
		scheme = r.Scheme
	}
	if scheme == "" {
		scheme = "http"
	}
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	writeQuoted(&b, scheme+"://"+r.Host+path)
	b.WriteByte('"')
	if st != StatusMissing {
		b.WriteString(`, error="invalid_token"`)
	}
	return b.String()
}

func writeQuoted(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '"' && c != '\\' && c >= 0x20 && c != 0x7f {
			b.WriteByte(c)
		}
	}
}

type evaluation struct {
	c          *Config
	r          *Request
	now        int64
	identities []Identity
}

func (e *evaluation) eval(q *requirement) Status {
	switch q.kind {
	case reqAllowAll:
		return StatusOK
	case reqProvider:
		return e.provider(q.provider, q.audiences)
	case reqAll:
		for _, ch := range q.children {
			if st := e.eval(ch); st != StatusOK {
				return st
			}
		}
		return StatusOK
	case reqAny:
		final := StatusMissing
		for _, ch := range q.children {
			st := e.eval(ch)
			if st == StatusOK {
				return StatusOK
			}
			// As Envoy: prefer errors other than missing / unknown issuer,
			// and unknown issuer over missing.
			if (st != StatusMissing && st != StatusUnknownIssuer) || final == StatusMissing {
				final = st
			}
		}
		switch {
		case q.allowMissingOrFailed:
			return StatusOK
		case q.allowMissing && final == StatusMissing:
			return StatusOK
		}
		return final
	case reqAllowMissing, reqAllowMissingOrFailed:
		st := e.anyProvider()
		if q.kind == reqAllowMissingOrFailed || st == StatusMissing {
			return StatusOK
		}
		return st
	}
	return StatusVerificationFail
}

// provider checks every token found in p's locations: all must verify.
func (e *evaluation) provider(p *Provider, audiences []string) Status {
	toks := p.extract(e.r, nil)
	if len(toks) == 0 {
		return StatusMissing
	}
	for _, loc := range toks {
		if st := e.verify(p, loc, audiences); st != StatusOK {
			return st
		}
	}
	return StatusOK
}

// anyProvider checks every token found in any provider's locations
// against the provider of its issuer (allow_missing and
// allow_missing_or_failed). It reports the first failure.
func (e *evaluation) anyProvider() Status {
	var toks []extracted
	for _, p := range e.c.ordered {
		toks = p.extract(e.r, toks)
	}
	if len(toks) == 0 {
		return StatusMissing
	}
	for _, loc := range toks {
		t, st := parseToken(loc.token)
		if st != StatusOK {
			return st
		}
		var p *Provider
		for _, cand := range e.c.ordered {
			if cand.Issuer == t.claims.Issuer || cand.Issuer == "" {
				p = cand
				break
			}
		}
		if p == nil {
			return StatusUnknownIssuer
		}
		if st := e.check(p, t, loc, nil); st != StatusOK {
			return st
		}
	}
	return StatusOK
}

func (e *evaluation) verify(p *Provider, loc extracted, audiences []string) Status {
	if t := p.cache.get(loc.token); t != nil {
		return e.checkClaims(p, t, loc, audiences, true)
	}
	t, st := parseToken(loc.token)
	if st != StatusOK {
		return st
	}
	return e.check(p, t, loc, audiences)
}

// check verifies a parsed token for provider p in jwt_verify_lib's order:
// issuer, time, audience, key and signature. On success it records the
// identity and applies p's header effects.
func (e *evaluation) check(p *Provider, t *token, loc extracted, audiences []string) Status {
	return e.checkClaims(p, t, loc, audiences, false)
}

// checkClaims is check; verified says the signature already verified with
// p's keys (a cached token).
func (e *evaluation) checkClaims(p *Provider, t *token, loc extracted, audiences []string, verified bool) Status {
	cl := &t.claims
	if p.Issuer != "" && cl.Issuer != p.Issuer {
		return StatusUnknownIssuer
	}
	if cl.NotBefore != 0 && cl.NotBefore > e.now+p.clockSkew {
		return StatusNotYetValid
	}
	if cl.Expires != 0 && cl.Expires < e.now-p.clockSkew {
		return StatusExpired
	}
	if cl.Expires == 0 && p.requireExp {
		return StatusExpRequired
	}
	if audiences == nil {
		audiences = p.audiences
	}
	if len(audiences) > 0 && !audienceAllowed(audiences, cl.Audiences) {
		return StatusAudienceNotAllowed
	}
	if !verified {
		if st := p.keys.verify(t); st != StatusOK {
			return st
		}
		p.cache.put(t)
	}
	e.identities = append(e.identities, Identity{
		Provider:    p.Name,
		Principal:   cl.Issuer + "/" + cl.Subject,
		Issuer:      cl.Issuer,
		Subject:     cl.Subject,
		Audiences:   cl.Audiences,
		Presenter:   cl.Presenter,
		Claims:      cl.All,
		MetadataKey: p.PayloadInMetadata,
	})
	p.apply(e.r, t, loc)
	return StatusOK
}

func audienceAllowed(allowed, got []string) bool {
	for _, g := range got {
		g = normalizeAudience(g)
		for _, a := range allowed {
			if a == g {
				return true
			}
		}
	}
	return false
}

// apply writes a verified token's header effects.
func (p *Provider) apply(r *Request, t *token, loc extracted) {
	if !p.forward && loc.header != "" {
		r.Headers.Del(loc.header)
	}
	if p.payloadHeader != "" {
		v := t.claims.PayloadB64
		if p.padPayloadHeader {
			v = base64.URLEncoding.EncodeToString(t.claims.Payload)
		}
		r.Headers.Set(p.payloadHeader, v)
	}
	for _, ch := range p.claimHeaders {
		if v, ok := claimString(Lookup(t.claims.All, ch.path)); ok {
			r.Headers.Set(ch.header, v)
		}
	}
}

// Lookup returns the claim at path (nested objects), or nil.
func Lookup(claims map[string]any, path []string) any {
	var v any = claims
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[k]; !ok {
			return nil
		}
	}
	return v
}

// claimString renders a claim as claim_to_headers does: strings as they
// are, numbers and booleans in JSON, string lists joined by commas.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return headerSafe(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return headerSafe(strings.Join(parts, ","))
	}
	return "", false
}

// headerSafe refuses values that cannot be carried in a header field.
func headerSafe(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", false
		}
	}
	return s, true
}
