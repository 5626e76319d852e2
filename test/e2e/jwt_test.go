package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwtBase is a web service behind a sidecar, reached through an ingress
// gateway (Istio's JWT task with the gateway in istio-system).
const jwtBase = webWorkload + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 9080}}}]
`

// jwtRequestAuthn is Istio's task's RequestAuthentication, pointed at the
// test's own JWKS server, with the payload and a claim copied to headers.
const jwtRequestAuthn = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-example
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: %s
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - header: x-jwt-sub
      claim: sub
`

// jwtDenyNoPrincipal is Istio's task's policy: requests without a
// request principal are denied at the gateway.
const jwtDenyNoPrincipal = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: frontend-ingress
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  action: DENY
  rules:
  - from:
    - source:
        notRequestPrincipals: ["*"]
`

// jwtRequireGroup is Istio's "JWT claim based" policy: only tokens with
// group1 in their groups claim are allowed.
const jwtRequireGroup = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-group
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["testing@secure.istio.io/testing@secure.istio.io"]
    when:
    - key: request.auth.claims[groups]
      values: ["group1"]
`

// jwksServer serves a key set that the test can change or take down.
type jwksServer struct {
	mu   sync.Mutex
	body string
	code int
	hits atomic.Int32
	srv  *httptest.Server
}

func (s *jwksServer) set(code int, body string) {
	s.mu.Lock()
	s.code, s.body = code, body
	s.mu.Unlock()
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	s := &jwksServer{body: body, code: 200}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		code, b := s.code, s.body
		s.mu.Unlock()
		w.WriteHeader(code)
		w.Write([]byte(b))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func jwksOf(keys ...jose.JSONWebKey) string {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	return string(b)
}

func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	o, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := o.CompactSerialize()
	return out
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// curlGateway sends GET / to the gateway with curl, with an optional
// Authorization header, and returns the status, the www-authenticate
// header and the body.
func curlGateway(t *testing.T, gw, auth string) (int, string, string) {
	t.Helper()
	args := []string{"-sS", "--max-time", "10", "-D", "-", "-H", "Host: web.example.com"}
	if auth != "" {
		args = append(args, "-H", "Authorization: "+auth)
	}
	out, err := exec.Command("curl", append(args, "http://"+gw+":8080/productpage")...).Output()
	if err != nil {
		return 0, "", err.Error()
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
	lines := strings.Split(head, "\n")
	code := 0
	fmt.Sscanf(lines[0], "HTTP/1.1 %d", &code)
	www := ""
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "www-authenticate") {
			www = strings.TrimSpace(v)
		}
	}
	return code, www, body
}

// TestJWTTask is Istio's "JWT authentication" and "JWT claim based
// routing/authorization" tasks through real mastd and mast-proxy
// processes, with the JWKS served on loopback by the test and tokens
// signed by its keys; curl is the client.
func TestJWTTask(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rotated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := newJWKSServer(t, jwksOf(
		jose.JSONWebKey{Key: ecKey.Public(), KeyID: "ec", Use: "sig"},
		jose.JSONWebKey{Key: rsaKey.Public(), KeyID: "rsa", Use: "sig"}))

	app := headerServer(t)
	webIP, gwIP := uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(jwtBase, app, webIP))
	xdsAddr := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t),
		"--debounce-after", "10ms", "--jwks-refresh", "200ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~web-1.default~default.svc.cluster.local", webIP),
		"--xds-addr", xdsAddr, "--admin-addr", webIP+":15000", "--drain-period", "1s",
		"--labels", "app=web", "--meta", "INTERCEPTION_MODE=NONE")
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("router~%s~ingress-1.istio-system~istio-system.svc.cluster.local", gwIP),
		"--xds-addr", xdsAddr, "--admin-addr", gwIP+":15000", "--drain-period", "1s",
		"--labels", "istio=ingressgateway", "--meta", "INTERCEPTION_MODE=NONE")

	now := time.Now().Unix()
	claims := func(kv ...any) map[string]any {
		m := map[string]any{"iss": "testing@secure.istio.io", "sub": "testing@secure.istio.io", "exp": now + 3600, "iat": now}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	valid := signJWT(t, jose.ES256, ecKey, "ec", claims())
	validRSA := signJWT(t, jose.RS256, rsaKey, "rsa", claims())
	withGroups := signJWT(t, jose.ES256, ecKey, "ec", claims("groups", []string{"group1", "group2"}))

	expect := func(what, auth string, want int) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			if code, _, body := curlGateway(t, gwIP, auth); code != want {
				return fmt.Errorf("status %d, want %d: %s", code, want, body)
			}
			return nil
		})
	}
	expect("the gateway routes before any policy", "", 200)

	writeFile(t, dir, "jwt.yaml", fmt.Sprintf(jwtRequestAuthn, jwks.srv.URL+"/jwks.json"))
	expect("an invalid token once the RequestAuthentication applies", "Bearer deadbeef", 401)
	expect("a token signed by the issuer's fetched key (ES256)", "Bearer "+valid, 200)
	if code, _, _ := curlGateway(t, gwIP, "Bearer "+validRSA); code != 200 {
		t.Errorf("RS256 token: %d", code)
	}
	// Istio's task: an invalid token is refused with 401, as by Envoy.
	code, www, body := curlGateway(t, gwIP, "Bearer deadbeef")
	if code != 401 || !strings.HasPrefix(body, "Jwt is not in the form of Header.Payload.Signature") ||
		www != `Bearer realm="http://web.example.com/productpage", error="invalid_token"` {
		t.Errorf("invalid token: %d %q %q", code, www, body)
	}
	// No token: RequestAuthentication lets it through.
	if code, _, body := curlGateway(t, gwIP, ""); code != 200 {
		t.Errorf("no token: %d %s", code, body)
	}
	// The application sees the payload and the claim, not the token.
	_, _, body = curlGateway(t, gwIP, "Bearer "+valid)
	var seen map[string]string
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatalf("app answer %q: %v", body, err)
	}
	if seen["authorization"] != "" || seen["x-jwt-sub"] != "testing@secure.istio.io" || seen["x-jwt-payload"] != strings.Split(valid, ".")[1] {
		t.Errorf("app saw authorization %q, x-jwt-sub %q, x-jwt-payload %q", seen["authorization"], seen["x-jwt-sub"], seen["x-jwt-payload"])
	}

	// Hostile tokens: all refused with 401 (a sample of the unit corpus).
	rsaDER, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})
	hs := func() string {
		si := b64url([]byte(`{"alg":"HS256","typ":"JWT","kid":"rsa"}`)) + "." + b64url(mustJSON(claims()))
		m := hmac.New(sha256.New, rsaPEM)
		m.Write([]byte(si))
		return si + "." + b64url(m.Sum(nil))
	}()
	parts := strings.Split(valid, ".")
	hostile := map[string]string{
		"alg none":                     b64url([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		"HS256 with the RSA key":       hs,
		"expired":                      signJWT(t, jose.ES256, ecKey, "ec", claims("exp", now-3600)),
		"not yet valid":                signJWT(t, jose.ES256, ecKey, "ec", claims("nbf", now+3600)),
		"wrong issuer":                 signJWT(t, jose.ES256, ecKey, "ec", claims("iss", "https://evil.example.com")),
		"unknown kid":                  signJWT(t, jose.ES256, ecKey, "nope", claims()),
		"attacker key under known kid": signJWT(t, jose.ES256, attacker, "ec", claims()),
		"tampered payload":             parts[0] + "." + b64url(mustJSON(claims("sub", "admin"))) + "." + parts[2],
		"truncated signature":          parts[0] + "." + parts[1] + "." + parts[2][:10],
		"two segments":                 parts[0] + "." + parts[1],
	}
	for name, tok := range hostile {
		if code, _, body := curlGateway(t, gwIP, "Bearer "+tok); code != 401 {
			t.Errorf("%s: status %d, want 401: %s", name, code, body)
		}
	}

	// Istio's task: deny requests without a request principal.
	writeFile(t, dir, "deny.yaml", jwtDenyNoPrincipal)
	expect("no token under notRequestPrincipals *", "", 403)
	if code, _, body := curlGateway(t, gwIP, ""); body != "RBAC: access denied" {
		t.Errorf("no token: %d %q, want RBAC: access denied", code, body)
	}
	if code, _, _ := curlGateway(t, gwIP, "Bearer "+valid); code != 200 {
		t.Errorf("valid token under the deny policy: %d", code)
	}

	// Claim-based: groups must contain group1.
	writeFile(t, dir, "groups.yaml", jwtRequireGroup)
	expect("a token without the group", "Bearer "+valid, 403)
	if code, _, _ := curlGateway(t, gwIP, "Bearer "+withGroups); code != 200 {
		t.Errorf("token with groups [group1 group2]: %d", code)
	}

	// The issuer goes down: mastd keeps the last good keys.
	jwks.set(503, "unavailable")
	hits := jwks.hits.Load()
	eventually(t, 30*time.Second, "mastd retrying the JWKS", func() error {
		if jwks.hits.Load() < hits+3 {
			return fmt.Errorf("%d fetches", jwks.hits.Load()-hits)
		}
		return nil
	})
	if code, _, _ := curlGateway(t, gwIP, "Bearer "+withGroups); code != 200 {
		t.Errorf("issuer down: valid token %d, want 200 (last good key set kept)", code)
	}
	// Key rotation: the new key works, the removed one no longer does.
	jwks.set(200, jwksOf(jose.JSONWebKey{Key: rotated.Public(), KeyID: "ec2", Use: "sig"}))
	expect("a token signed by the rotated key", "Bearer "+signJWT(t, jose.ES256, rotated, "ec2", claims("groups", []string{"group1"})), 200)
	expect("a token signed by the removed key", "Bearer "+withGroups, 401)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
