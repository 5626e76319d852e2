package jwtauthn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxTokenSize bounds the length of a token this filter will parse; longer
// tokens are refused as malformed before any decoding.
const MaxTokenSize = 32 << 10

// maxNumericDate is the largest exp/nbf/iat accepted: 2^53, the largest
// integer a JSON number decodes to exactly.
const maxNumericDate = 1 << 53

// maxClaimsDepth bounds the nesting of the decoded payload, so a hostile
// token cannot make claim lookups or copies recurse deeply.
const maxClaimsDepth = 32

// supportedAlgs are the signature algorithms a token may use. HMAC is
// absent on purpose: this filter verifies with public keys only, so an
// HS256 token "signed" with a published RSA key is refused at parse time.
var supportedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// token is a parsed, not yet verified JWT.
type token struct {
	raw    string
	jws    *jose.JSONWebSignature
	alg    string
	kid    string
	claims Claims
}

// Claims is a token's decoded payload with its registered claims picked out.
type Claims struct {
	Issuer    string
	Subject   string
	Audiences []string
	Presenter string // azp
	Expires   int64  // 0: absent
	NotBefore int64  // 0: absent
	IssuedAt  int64  // 0: absent
	// All is the whole payload as decoded JSON (string, float64, bool,
	// []any, map[string]any), for claim_to_headers and policy conditions.
	All map[string]any
	// Payload is the payload as it was sent, base64url-decoded.
	Payload []byte
	// PayloadB64 is the payload segment of the token, as sent.
	PayloadB64 string
}

// parseToken parses a compact JWS and decodes its payload. It checks the
// shape of everything a later step reads, and nothing about trust.
func parseToken(raw string) (*token, Status) {
	if len(raw) > MaxTokenSize {
		return nil, StatusBadFormat
	}
	if strings.Count(raw, ".") != 2 {
		return nil, StatusBadFormat
	}
	head, rest, _ := strings.Cut(raw, ".")
	payloadB64, sigB64, _ := strings.Cut(rest, ".")
	hb, err := decodeSegment(head)
	if err != nil {
		return nil, StatusHeaderBadBase64
	}
	var h struct {
		Alg any `json:"alg"`
		Kid any `json:"kid"`
	}
	if !json.Valid(hb) || json.Unmarshal(hb, &h) != nil || !isObject(hb) {
		return nil, StatusHeaderBadJSON
	}
	alg, ok := h.Alg.(string)
	if !ok {
		return nil, StatusHeaderBadAlg
	}
	if !algSupported(alg) {
		return nil, StatusHeaderNotImplementedAlg
	}
	kid := ""
	if h.Kid != nil {
		if kid, ok = h.Kid.(string); !ok {
			return nil, StatusHeaderBadKid
		}
	}
	pb, err := decodeSegment(payloadB64)
	if err != nil {
		return nil, StatusPayloadBadBase64
	}
	if _, err := decodeSegment(sigB64); err != nil || sigB64 == "" {
		return nil, StatusSignatureBadBase64
	}
	claims, st := parseClaims(pb)
	if st != StatusOK {
		return nil, st
	}
	claims.PayloadB64 = payloadB64
	jws, err := jose.ParseSignedCompact(raw, supportedAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, StatusBadFormat
	}
	return &token{raw: raw, jws: jws, alg: alg, kid: kid, claims: claims}, StatusOK
}

var errBadSegment = errors.New("not base64url")

// decodeSegment decodes one base64url segment without padding. Unlike
// encoding/base64 it refuses line breaks and every other character
// outside the base64url alphabet.
func decodeSegment(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, errBadSegment
		}
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func algSupported(alg string) bool {
	for _, a := range supportedAlgs {
		if string(a) == alg {
			return true
		}
	}
	return false
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// parseClaims decodes a JWT payload and checks the types of the registered
// claims as Envoy's jwt_verify_lib does.
func parseClaims(pb []byte) (Claims, Status) {
	c := Claims{Payload: pb}
	if !isObject(pb) || jsonDepth(pb) > maxClaimsDepth {
		return c, StatusPayloadBadJSON
	}
	d := json.NewDecoder(bytes.NewReader(pb))
	if err := d.Decode(&c.All); err != nil || d.More() {
		return c, StatusPayloadBadJSON
	}
	var ok bool
	if v, present := c.All["iss"]; present {
		if c.Issuer, ok = v.(string); !ok {
			return c, StatusPayloadIssNotString
		}
	}
	if v, present := c.All["sub"]; present {
		if c.Subject, ok = v.(string); !ok {
			return c, StatusPayloadSubNotString
		}
	}
	if v, present := c.All["azp"]; present {
		if c.Presenter, ok = v.(string); !ok {
			return c, StatusPayloadAzpNotString
		}
	}
	switch v := c.All["aud"].(type) {
	case nil:
		if _, present := c.All["aud"]; present {
			return c, StatusPayloadAudNotString
		}
	case string:
		c.Audiences = []string{v}
	case []any:
		c.Audiences = make([]string, 0, len(v))
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return c, StatusPayloadAudNotString
			}
			c.Audiences = append(c.Audiences, s)
		}
	default:
		return c, StatusPayloadAudNotString
	}
	for _, f := range []struct {
		name string
		dst  *int64
		bad  Status
	}{
		{"exp", &c.Expires, StatusPayloadExpNotInteger},
		{"nbf", &c.NotBefore, StatusPayloadNbfNotInteger},
		{"iat", &c.IssuedAt, StatusPayloadIatNotInteger},
	} {
		v, present := c.All[f.name]
		if !present {
			continue
		}
		n, ok := v.(float64)
		if !ok || n <= 0 || n > maxNumericDate || n != math.Trunc(n) {
			return c, f.bad
		}
		*f.dst = int64(n)
	}
	return c, StatusOK
}

// jsonDepth returns the deepest nesting of objects and arrays in b, which
// must be valid JSON for the answer to mean anything; it never fails.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}
