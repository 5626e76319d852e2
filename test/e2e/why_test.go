package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMastWhy breaks Bookinfo in `mast up` one way at a time with Istio YAML,
// and checks that `mast why` names the failing hop, the cause (response
// flag) and the resource and field at fault; `mast reset` repairs it before
// the next case.
func TestMastWhy(t *testing.T) {
	m := startMesh(t)
	dir := t.TempDir()
	cases := []struct {
		name   string
		yaml   string
		args   []string
		want   []string // substrings of mast why's output
		status string   // substring of the request's answer
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
		},
		{
			name: "a configuration the proxy rejects (NACK)",
			yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http: [{route: [{destination: {host: details}}], headers: {request: {set: {x-served-by: "%HOSTNAME%"}}}}]
`,
			args: []string{"http://details:9080/details/0", "--from", "productpage-v1"},
			want: []string{"Hop:      productpage-v1", "Flag:     NACK", "command operators", "Resource: VirtualService default/details, field spec.http[0].headers"},
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
			var out string
			eventually(t, 30*time.Second, "mast why "+strings.Join(c.args, " "), func() error {
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
		})
	}
	t.Run("proxy-status shows every proxy SYNCED, then the NACK", func(t *testing.T) {
		out, err := m.mast("proxy-status")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "NACKED") || !strings.Contains(out, "RDS NACK: ") {
			t.Errorf("proxy-status after the NACK case:\n%s", out)
		}
		m.mast("reset")
		eventually(t, 30*time.Second, "every proxy SYNCED", func() error {
			out, _ := m.mast("proxy-status")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 8 || strings.Contains(out, "NACK") || strings.Contains(out, "STALE") {
				return fmt.Errorf("not yet:\n%s", out)
			}
			return nil
		})
	})
}
