package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mast-mesh/mast/internal/quota/quotatest"
)

// rateLimitGlobal limits each x-user to 5 requests per hour across every
// ingress gateway, john to 1; rateLimitLocal lets each gateway take 3
// requests per hour on its own.
const rateLimitGlobal = `apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: per-user, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  dimensions:
  - {name: user, requestHeader: x-user}
  maxAmount: 5
  validDuration: 1h
  algorithm: %s
  overrides:
  - dimensions: {user: john}
    maxAmount: 1
  failureModeDeny: %t
  timeout: 2s
`

const rateLimitLocal = `apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: per-proxy, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  mode: LOCAL
  maxAmount: 3
  validDuration: 1h
`

// rlResponse is what curl saw.
type rlResponse struct {
	code int
	hdr  map[string]string
	body string
}

// curlRL sends GET /productpage to a gateway with curl, with x-user when
// user is not empty.
func curlRL(t *testing.T, gw, user string) rlResponse {
	t.Helper()
	args := []string{"-sS", "--max-time", "10", "-D", "-", "-H", "Host: web.example.com"}
	if user != "" {
		args = append(args, "-H", "x-user: "+user)
	}
	out, err := exec.Command("curl", append(args, "http://"+gw+":8080/productpage")...).Output()
	if err != nil {
		return rlResponse{body: err.Error()}
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
	lines := strings.Split(head, "\n")
	r := rlResponse{hdr: map[string]string{}, body: body}
	fmt.Sscanf(lines[0], "HTTP/1.1 %d", &r.code)
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			r.hdr[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	return r
}

// TestRateLimitGlobalAcrossGateways: two mastd sharing one real Redis, two
// ingress gateways (one per mastd), one RateLimit: exactly N requests pass
// across both gateways, the rest get 429 with Envoy's draft-03 headers;
// overrides apply; a Redis outage lets requests through unless
// failureModeDeny. Then a LOCAL RateLimit: each gateway takes exactly 3.
func TestRateLimitGlobalAcrossGateways(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	redisURL := quotatest.StartRedis(t)
	app := headerServer(t)
	webIP := uniqueLoopback()
	gws := []string{uniqueLoopback(), uniqueLoopback()}
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(jwtBase, app, webIP))
	var xds []string
	for range gws {
		x := freeAddr(t)
		m := start(t, "mastd", "--config", dir, "--xds-addr", x, "--monitoring-addr", freeAddr(t),
			"--ratelimit-addr", freeAddr(t), "--ratelimit-redis", redisURL, "--debounce-after", "10ms")
		waitLine(t, m, "mastd serving", 30*time.Second)
		xds = append(xds, x)
	}
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~web-1.default~default.svc.cluster.local", webIP),
		"--xds-addr", xds[0], "--admin-addr", webIP+":15000", "--drain-period", "1s",
		"--labels", "app=web", "--meta", "INTERCEPTION_MODE=NONE")
	for i, gw := range gws {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("router~%s~ingress-%d.istio-system~istio-system.svc.cluster.local", gw, i),
			"--xds-addr", xds[i], "--admin-addr", gw+":15000", "--drain-period", "1s",
			"--labels", "istio=ingressgateway", "--meta", "INTERCEPTION_MODE=NONE")
	}
	for _, gw := range gws {
		eventually(t, 30*time.Second, "gateway "+gw+" routes", func() error {
			if r := curlRL(t, gw, ""); r.code != 200 {
				return fmt.Errorf("status %d: %s", r.code, r.body)
			}
			return nil
		})
	}

	for _, algo := range []string{"FIXED_WINDOW", "ROLLING_WINDOW"} {
		writeFile(t, dir, "ratelimit.yaml", fmt.Sprintf(rateLimitGlobal, algo, false))
		// Each probe user has a counter of its own: wait until both
		// gateways enforce this version of the limit.
		for i, gw := range gws {
			n := 0
			eventually(t, 30*time.Second, "gateway "+gw+" enforcing "+algo, func() error {
				n++
				r := curlRL(t, gw, fmt.Sprintf("probe-%s-%d-%d", algo, i, n))
				if r.code != 200 || r.hdr["x-ratelimit-remaining"] != "4" {
					return fmt.Errorf("status %d, headers %v", r.code, r.hdr)
				}
				return nil
			})
		}
		user := "alice-" + algo
		ok, limited := 0, 0
		for i := 0; i < 12; i++ {
			r := curlRL(t, gws[i%2], user)
			switch r.code {
			case 200:
				ok++
				if want := strconv.Itoa(5 - ok); r.hdr["x-ratelimit-remaining"] != want {
					t.Errorf("%s request %d: x-ratelimit-remaining %q, want %s", algo, i, r.hdr["x-ratelimit-remaining"], want)
				}
			case 429:
				limited++
				reset, _ := strconv.Atoi(r.hdr["x-ratelimit-reset"])
				if r.hdr["x-ratelimit-remaining"] != "0" || r.hdr["x-envoy-ratelimited"] != "true" || reset <= 0 || reset > 3600 {
					t.Errorf("%s 429 headers: %v", algo, r.hdr)
				}
			default:
				t.Fatalf("%s request %d: status %d: %s", algo, i, r.code, r.body)
			}
			if want := `5, 5;w=3600;name="istio-system/per-user"`; r.hdr["x-ratelimit-limit"] != want {
				t.Errorf("%s: x-ratelimit-limit %q, want %q", algo, r.hdr["x-ratelimit-limit"], want)
			}
		}
		if ok != 5 || limited != 7 {
			t.Errorf("%s: %d allowed and %d limited across two gateways, want exactly 5 and 7", algo, ok, limited)
		}
		// The override: john gets one request, on either gateway.
		john := []int{curlRL(t, gws[0], "john").code, curlRL(t, gws[1], "john").code, curlRL(t, gws[0], "john").code}
		if john[0] != 200 || john[1] != 429 || john[2] != 429 {
			t.Errorf("john: %v, want [200 429 429]", john)
		}
		// Requests without the dimension are not counted.
		for i := 0; i < 7; i++ {
			if r := curlRL(t, gws[i%2], ""); r.code != 200 || r.hdr["x-ratelimit-limit"] != "" {
				t.Fatalf("request without x-user: %d %v", r.code, r.hdr)
			}
		}
	}

	// Redis goes away: failureModeDeny false lets requests through, true
	// refuses them with 500 (Envoy's status_on_error).
	rc, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(rc)
	client.ShutdownNoSave(context.Background())
	client.Close()
	for _, gw := range gws {
		if r := curlRL(t, gw, "bob"); r.code != 200 {
			t.Errorf("Redis down, failureModeDeny false: %d %s", r.code, r.body)
		}
	}
	writeFile(t, dir, "ratelimit.yaml", fmt.Sprintf(rateLimitGlobal, "FIXED_WINDOW", true))
	for _, gw := range gws {
		eventually(t, 30*time.Second, "gateway "+gw+" failing closed", func() error {
			if r := curlRL(t, gw, "bob"); r.code != 500 {
				return fmt.Errorf("status %d", r.code)
			}
			return nil
		})
	}

	// A LOCAL limit: 3 per gateway, not shared.
	writeFile(t, dir, "ratelimit.yaml", rateLimitLocal)
	for _, gw := range gws {
		eventually(t, 30*time.Second, "gateway "+gw+" with a local limit", func() error {
			r := curlRL(t, gw, "")
			if r.code != 200 || r.hdr["x-ratelimit-limit"] != "3" || r.hdr["x-ratelimit-remaining"] != "2" {
				return fmt.Errorf("status %d, headers %v", r.code, r.hdr)
			}
			return nil
		})
		var codes []int
		for i := 0; i < 4; i++ {
			r := curlRL(t, gw, "")
			codes = append(codes, r.code)
			if r.code == 429 && (r.body != "local_rate_limited" || r.hdr["x-ratelimit-remaining"] != "0") {
				t.Errorf("local 429: %q %v", r.body, r.hdr)
			}
		}
		if fmt.Sprint(codes) != "[200 200 429 429]" {
			t.Errorf("gateway %s: %v after the first request, want [200 200 429 429]", gw, codes)
		}
	}
}
