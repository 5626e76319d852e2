package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Istio's "Authorization for HTTP traffic" task, file by file: deny
// everything in the namespace, then allow productpage's GET from the
// ingress gateway's identity, details and reviews from productpage's,
// ratings from reviews'. Identities are the SPIFFE IDs of the sidecars'
// mTLS certificates, enforced by each workload's own sidecar.
var authzTaskSteps = []struct {
	name, yaml string
}{
	{"allow-nothing", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: default
spec:
  {}
`},
	{"productpage-viewer", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: "productpage-viewer"
  namespace: default
spec:
  selector:
    matchLabels:
      app: productpage
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]
    to:
    - operation:
        methods: ["GET"]
`},
	{"details-viewer", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: "details-viewer"
  namespace: default
spec:
  selector:
    matchLabels:
      app: details
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]
    to:
    - operation:
        methods: ["GET"]
`},
	{"reviews-viewer", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: "reviews-viewer"
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]
    to:
    - operation:
        methods: ["GET"]
`},
	{"ratings-viewer", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: "ratings-viewer"
  namespace: default
spec:
  selector:
    matchLabels:
      app: ratings
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/bookinfo-reviews"]
    to:
    - operation:
        methods: ["GET"]
`},
}

// TestLocalMeshAuthorizationTask runs Istio's authorization task against
// `mast up` (real mastd, sidecars with mTLS, gateway, Bookinfo) and checks
// the page Istio's task shows after each step.
func TestLocalMeshAuthorizationTask(t *testing.T) {
	m := startMesh(t)
	dir := t.TempDir()
	// reviews v3 calls ratings (and shows red stars), as in the task.
	writeFile(t, dir, "reviews-v3.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\n"+
		"spec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v3}}]}]\n")
	m.apply(filepath.Join(dir, "reviews-v3.yaml"))
	get := func() (int, string) {
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Get(m.gateway + "/productpage")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, page := get(); code != 200 || !strings.Contains(page, "glyphicon-star") {
		t.Fatalf("before any policy: %d, stars shown %v", code, strings.Contains(page, "glyphicon-star"))
	}
	type want struct {
		status     int
		has, hasNt []string
	}
	wants := map[string]want{
		"allow-nothing":      {403, []string{"RBAC: access denied"}, nil},
		"productpage-viewer": {200, []string{"Error fetching product details!", "Error fetching product reviews!"}, nil},
		"details-viewer":     {200, []string{"Error fetching product reviews!"}, []string{"Error fetching product details!"}},
		"reviews-viewer":     {200, []string{"Ratings service is currently unavailable"}, []string{"Error fetching product details!", "Error fetching product reviews!"}},
		"ratings-viewer":     {200, []string{"glyphicon-star"}, []string{"Error fetching", "Ratings service is currently unavailable"}},
	}
	for _, step := range authzTaskSteps {
		t.Run(step.name, func(t *testing.T) {
			writeFile(t, dir, step.name+".yaml", step.yaml)
			m.apply(filepath.Join(dir, step.name+".yaml"))
			w := wants[step.name]
			code, page := get()
			if code != w.status {
				t.Fatalf("GET /productpage: %d, want %d\n%.400s", code, w.status, page)
			}
			for _, s := range w.has {
				if !strings.Contains(page, s) {
					t.Errorf("page lacks %q\n%.2000s", s, page)
				}
			}
			for _, s := range w.hasNt {
				if strings.Contains(page, s) {
					t.Errorf("page still shows %q", s)
				}
			}
		})
	}
	t.Run("dry-run DENY does not block", func(t *testing.T) {
		writeFile(t, dir, "dry.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-productpage-dry
  namespace: default
  annotations: {istio.io/dry-run: "true"}
spec:
  selector: {matchLabels: {app: productpage}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/productpage"]}}]}]
`)
		m.apply(filepath.Join(dir, "dry.yaml"))
		if code, _ := get(); code != 200 {
			t.Fatalf("a dry-run DENY blocked the page: %d", code)
		}
	})
	t.Run("DENY by path wins over ALLOW", func(t *testing.T) {
		writeFile(t, dir, "deny.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-productpage
  namespace: default
spec:
  selector: {matchLabels: {app: productpage}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/productpage"]}}]}]
`)
		m.apply(filepath.Join(dir, "deny.yaml"))
		if code, page := get(); code != 403 || !strings.Contains(page, "RBAC: access denied") {
			t.Fatalf("DENY on /productpage: %d %.200q", code, page)
		}
	})
}
