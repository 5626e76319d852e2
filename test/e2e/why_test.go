package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestMastWhy breaks Bookinfo in `mast up` one way at a time with Istio YAML,
// and checks that `mast why` names the failing hop, the cause (response
// flag) and the resource and field at fault; `mast reset` repairs it before
// the next case.
func TestMastWhy(t *testing.T) {
	m := startMesh(t)
	dir := t.TempDir()
	// The JWT case: a RequestAuthentication trusting one key, a token signed by another.
	trusted, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := jwksOf(jose.JSONWebKey{Key: trusted.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"})
	token := signJWT(t, jose.RS256, other, "k1", map[string]any{"iss": "testing@mast.io", "sub": "u1", "exp": time.Now().Add(time.Hour).Unix()})
	cases := []struct {
		name   string
		yaml   string
		del    string // resources removed with mast delete (a workload gone)
		args   []string
		want   []string // substrings of mast why's output
		status string   // substring of the request's answer
		load   func()   // run before each attempt
		then   func(t *testing.T, out string)
	}{
		{
			name: "no route (NR): the only rule matches a header the request lacks",
			yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
`,
			args:   []string{"http://reviews:9080/reviews/0", "--from", "productpage-v1"},
			status: "404",
			want:   []string{"Hop:      productpage-v1", "Flag:     NR", "Resource: VirtualService default/reviews", "Field:    spec.http[].match"},
		},
		{
			name: "a route to a subset no DestinationRule defines",
			yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
`,
			args:   []string{"http://reviews:9080/reviews/0", "--from", "productpage-v1"},
			status: "503",
			want:   []string{"Hop:      productpage-v1", "Flag:     NC", `subset "v9"`, "Resource: VirtualService default/reviews", "Field:    spec.http[0].route[0].destination.subset"},
		},
		{
			name: "a subset selecting no workload (UH)",
			yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v9, labels: {version: v9}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
`,
			args:   []string{"http://reviews:9080/reviews/0", "--from", "productpage-v1"},
			status: "503",
			want:   []string{"Flag:     UH", "selects no workload", "Resource: DestinationRule default/reviews", "Field:    spec.subsets[1].labels"},
			then: func(t *testing.T, _ string) {
				wantOutput(t, m, []string{"describe", "service", "reviews"}, "Service: reviews", "DestinationRule: reviews.default for \"reviews\"",
					"Subsets: v1,v9", "VirtualService: reviews.default", "WARNING: [IST0173]")
			},
		},
		{
			name: "no healthy upstream (UH): the only workload of a service is gone (its WorkloadEntry deleted, as a stopped pod leaves its endpoints)",
			del: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1}
spec: {address: 127.0.1.6}
`,
			args:   []string{"http://ratings:9080/ratings/0", "--from", "reviews-v2"},
			status: "503",
			want: []string{"Hop:      reviews-v2", "Flag:     UH", "no workload with labels map[app:ratings] is registered",
				"Resource: ServiceEntry default/ratings", "Field:    spec.workloadSelector.labels"},
		},
		{
			name:   "an unknown host",
			args:   []string{"http://nosuch:9080/", "--from", "productpage-v1"},
			status: "404",
			want:   []string{"Hop:      productpage-v1", "Flag:     NR", `unknown host "nosuch:9080"`},
		},
		{
			name: "mTLS mismatch: STRICT PeerAuthentication, DestinationRule DISABLE",
			yaml: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy: {tls: {mode: DISABLE}}
  subsets: [{name: v1, labels: {version: v1}}]
`,
			args:   []string{"http://ratings:9080/ratings/0", "--from", "reviews-v2"},
			status: "503",
			want: []string{"Hop:      reviews-v2 -> ratings-v1", "mTLS mismatch", "PeerAuthentication default/default",
				"Resource: DestinationRule default/ratings", "Field:    spec.trafficPolicy.tls.mode"},
			then: func(t *testing.T, _ string) {
				wantOutput(t, m, []string{"describe", "pod", "ratings-v1"}, "Pod: ratings-v1", "Service: ratings", "Matching subsets: v1",
					"Traffic Policy TLS Mode: DISABLE", "Workload mTLS mode: STRICT (PeerAuthentication default.default)", "RBAC policies: none",
					"WARNING: the workload requires mutual TLS, but DestinationRule ratings.default (DISABLE) makes its clients send without it")
			},
		},
		{
			name: "a configuration the proxy rejects (NACK)",
			yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http: [{route: [{destination: {host: details}}], headers: {request: {set: {x-version: "%UPSTREAM_METADATA(istio:version)%"}}}}]
`,
			args: []string{"http://details:9080/details/0", "--from", "productpage-v1"},
			want: []string{"Hop:      productpage-v1", "Flag:     NACK", "command operator %UPSTREAM_METADATA%", "Resource: VirtualService default/details, field spec.http[0].headers"},
			then: func(t *testing.T, _ string) {
				out, err := m.mast("proxy-status")
				if err != nil || !strings.Contains(out, "NACKED") || !strings.Contains(out, "RDS NACK: ") {
					t.Errorf("proxy-status after the NACK: %v\n%s", err, out)
				}
				// With the proxy named, what mastd would send is compared
				// with what the proxy holds: the rejected route differs by
				// the header it would set.
				out, err = m.mast("proxy-status", "productpage-v1")
				if err != nil || !strings.Contains(out, "Clusters Match") || !strings.Contains(out, "Routes Don't Match") ||
					!strings.Contains(out, "UPSTREAM_METADATA(istio:version)") {
					t.Errorf("proxy-status productpage-v1 after the NACK: %v\n%s", err, out)
				}
			},
		},
		{
			name: "authorization denied: the DENY rule of an AuthorizationPolicy, then the same by request id",
			yaml: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ratings}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{to: [{operation: {methods: [POST]}}]}, {to: [{operation: {paths: ["/ratings/*"]}}]}]
`,
			args:   []string{"http://ratings:9080/ratings/0", "--from", "reviews-v2"},
			status: "403",
			want: []string{"Hop:      ratings-v1 (inbound)", "Details:  rbac_access_denied_matched_policy[ns[default]-policy[deny-ratings]-rule[1]]",
				"denied by rule 1 of DENY AuthorizationPolicy default/deny-ratings", "Resource: AuthorizationPolicy default/deny-ratings", "Field:    spec.rules[1]"},
			then: func(t *testing.T, out string) {
				id := regexp.MustCompile(`request id: (\S+)`).FindStringSubmatch(out)
				if id == nil {
					t.Fatalf("no request id in:\n%s", out)
				}
				got, err := m.mast("why", "--request-id", id[1])
				if err != nil || !strings.Contains(got, "logged by reviews-v2 (outbound)") || !strings.Contains(got, "logged by ratings-v1 (inbound)") ||
					!strings.Contains(got, "Field:    spec.rules[1]") {
					t.Errorf("mast why --request-id %s: %v\n%s", id[1], err, got)
				}
				got, err = m.mast("x", "authz", "check", "ratings-v1")
				if err != nil || !regexp.MustCompile(`(?m)^DENY +deny-ratings\.default +2$`).MatchString(got) {
					t.Errorf("mast x authz check ratings-v1: %v\n%s", err, got)
				}
			},
		},
		{
			name: "a refused JWT (401): the RequestAuthentication and why",
			yaml: `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-productpage}
spec:
  selector: {matchLabels: {app: productpage}}
  jwtRules: [{issuer: testing@mast.io, jwks: '` + jwks + `'}]
`,
			args:   []string{"http://127.0.0.1:8080/productpage", "-H", "Authorization: Bearer " + token},
			status: "401",
			want: []string{"Hop:      productpage-v1 (inbound)", "Details:  jwt_authn_access_denied{Jwt_verification_fails}",
				"the request's JWT was refused: Jwt verification fails", "Resource: RequestAuthentication default/jwt-productpage", "Field:    spec.jwtRules[0].jwks"},
		},
		{
			name: "a timeout (UT): the VirtualService timeout, with the delay behind it",
			yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}], timeout: 0.5s}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http: [{fault: {delay: {fixedDelay: 2s, percentage: {value: 100}}}, route: [{destination: {host: ratings, subset: v1}}]}]
`,
			args:   []string{"http://reviews:9080/reviews/0", "--from", "productpage-v1"},
			status: "504",
			want: []string{"Hop:      productpage-v1 (outbound)", "Flag:     UT", "within the route's timeout of 500ms",
				"Resource: VirtualService default/reviews", "Field:    spec.http[0].timeout"},
		},
		{
			name: "fault injection (FI): the VirtualService abort",
			yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http: [{fault: {abort: {httpStatus: 500, percentage: {value: 100}}}, route: [{destination: {host: ratings, subset: v1}}]}]
`,
			args:   []string{"http://ratings:9080/ratings/0", "--from", "reviews-v2"},
			status: "500",
			want: []string{"Hop:      reviews-v2 (outbound)", "Flag:     FI", "Details:  fault_filter_abort",
				"Resource: VirtualService default/ratings", "Field:    spec.http[0].fault.abort"},
		},
		{
			name: "rate limited (RL): the RateLimit",
			yaml: `apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: ratings-quota}
spec:
  selector: {matchLabels: {app: ratings}}
  mode: LOCAL
  maxAmount: 1
  validDuration: 1h
`,
			args:   []string{"http://ratings:9080/ratings/0", "--from", "reviews-v2"},
			status: "429",
			want: []string{"Hop:      ratings-v1 (inbound)", "Flag:     RL", "Details:  local_rate_limited",
				"rate limited by RateLimit default/ratings-quota: 1 requests per 1h0m0s", "Resource: RateLimit default/ratings-quota", "Field:    spec.maxAmount"},
		},
		{
			name: "connection failure with retries exhausted (UF,URX): the endpoint and the retry policy",
			yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: nowhere}
spec:
  hosts: [nowhere.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nowhere}
spec:
  hosts: [nowhere.local]
  http: [{route: [{destination: {host: nowhere.local}}], retries: {attempts: 2, retryOn: connect-failure}}]
`,
			args:   []string{"http://nowhere.local:9080/", "--from", "productpage-v1"},
			status: "503",
			want: []string{"Hop:      productpage-v1 (outbound)", "Flag:     UF,URX", "could not connect to 127.0.0.1:1", "connection refused",
				"retries are exhausted (VirtualService default/nowhere spec.http[0].retries: 2 attempts", "Resource: ServiceEntry default/nowhere", "Field:    spec.endpoints[0]"},
		},
		{
			name: "circuit breaker (UO) among the failures of the last minute (--since)",
			yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http: [{fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}, route: [{destination: {host: ratings, subset: v1}}]}]
`,
			load: func() { burst(t, "http://127.0.1.1:15001", "http://reviews:9080/reviews/0", 8) },
			args: []string{"--since", "1m"},
			want: []string{"Hop:      productpage-v1 (outbound)", "Flag:     UO", "circuit breaker open", "Resource: DestinationRule default/reviews",
				"Field:    spec.trafficPolicy.connectionPool.http.http2MaxRequests = 1", "Requests: "},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if out, err := m.mast("reset"); err != nil {
				t.Fatalf("mast reset: %v\n%s", err, out)
			}
			if c.yaml != "" {
				f := filepath.Join(dir, fmt.Sprintf("case%d.yaml", i))
				if err := os.WriteFile(f, []byte(c.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := m.mast("apply", "-f", f); err != nil {
					t.Fatalf("mast apply: %v\n%s", err, out)
				}
			}
			if c.del != "" {
				f := filepath.Join(dir, fmt.Sprintf("case%d-delete.yaml", i))
				if err := os.WriteFile(f, []byte(c.del), 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := m.mast("delete", "-f", f); err != nil {
					t.Fatalf("mast delete: %v\n%s", err, out)
				}
			}
			var out string
			eventually(t, 30*time.Second, "mast why "+strings.Join(c.args, " "), func() error {
				if c.load != nil {
					c.load()
				}
				var err error
				out, err = m.mast(append([]string{"why"}, c.args...)...)
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				if c.status != "" && !strings.Contains(out, "answered: "+c.status) {
					return fmt.Errorf("request not answered %s yet:\n%s", c.status, out)
				}
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						return fmt.Errorf("output lacks %q:\n%s", w, out)
					}
				}
				return nil
			})
			t.Logf("mast why %s:\n%s", strings.Join(c.args, " "), out)
			if c.then != nil {
				c.then(t, out)
			}
		})
	}
	t.Run("proxy-config secret and bootstrap", func(t *testing.T) { proxyConfigSecrets(t, m) })
	t.Run("version names every proxy's version", func(t *testing.T) {
		out, err := m.mast("version")
		if n := len(regexp.MustCompile(`(?m)^  \S+ \((sotw|delta) stream\): [^u]`).FindAllString(out, -1)); err != nil || n != 7 {
			t.Errorf("mast version: %v, %d proxies with a version:\n%s", err, n, out)
		}
	})
	t.Run("proxy-status shows every proxy SYNCED after the NACK", func(t *testing.T) {
		m.mast("reset")
		eventually(t, 30*time.Second, "every proxy SYNCED", func() error {
			out, _ := m.mast("proxy-status")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 8 || strings.Contains(out, "NACK") || strings.Contains(out, "STALE") {
				return fmt.Errorf("not yet:\n%s", out)
			}
			return nil
		})
		out, err := m.mast("proxy-status", "productpage-v1")
		for _, want := range []string{"Clusters Match", "Endpoints Match", "Listeners Match", "Routes Match"} {
			if err != nil || !strings.Contains(out, want) {
				t.Errorf("proxy-status productpage-v1 once SYNCED lacks %q: %v\n%s", want, err, out)
			}
		}
	})
}

// burst sends n concurrent GETs of target through an HTTP proxy (a
// sidecar's outbound listener) and waits for their answers.
func burst(t *testing.T, proxyURL, target string, n int) {
	pu, _ := url.Parse(proxyURL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 20 * time.Second}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := c.Get(target); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}

// wantOutput runs mast with args and checks its output has every want.
func wantOutput(t *testing.T, m *mesh, args []string, want ...string) {
	t.Helper()
	out, err := m.mast(args...)
	t.Logf("mast %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Errorf("mast %s: %v", strings.Join(args, " "), err)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("mast %s: output lacks %q", strings.Join(args, " "), w)
		}
	}
}
