package ctl

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

const whyConfig = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 127.0.1.6, labels: {app: ratings, version: v1}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 2}}}
  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {http: {http2MaxRequests: 3}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings}}], retries: {attempts: 3, perTryTimeout: 1s}}]
`

// TestDiagnose checks the cause and the configuration each kind of access
// log entry is explained by (the end-to-end cases are in test/e2e TestMastWhy).
func TestDiagnose(t *testing.T) {
	rs, err := config.Decode("why.yaml", []byte(whyConfig))
	if err != nil {
		t.Fatal(err)
	}
	w := &whyRun{snap: config.NewSnapshot(rs), header: http.Header{}}
	ratings := proxy{Name: "ratings-v1", ID: "sidecar~127.0.1.6~ratings-v1.default~default.svc.cluster.local"}
	reviews := proxy{Name: "reviews-v2", ID: "sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local"}
	cases := []struct {
		p    proxy
		e    accesslog.Entry
		want []string
	}{
		{ratings, accesslog.Entry{ResponseCode: 403, ResponseFlags: "-", ResponseCodeDetails: "rbac_access_denied_matched_policy[none]", UpstreamCluster: "inbound|9080||"},
			[]string{"ratings-v1 (inbound)", "no rule of theirs matches", "AuthorizationPolicy default/allow-get", "spec.rules"}},
		{reviews, accesslog.Entry{ResponseCode: 503, ResponseFlags: "UO", ResponseCodeDetails: "upstream_reset_before_response_started{overflow}", UpstreamCluster: "outbound|9080|v1|ratings.default.svc.cluster.local"},
			[]string{"reviews-v2 (outbound)", "UO", "DestinationRule default/ratings", "spec.subsets[0].trafficPolicy.connectionPool.http.http2MaxRequests = 3"}},
		{reviews, accesslog.Entry{ResponseCode: 503, ResponseFlags: "UO", ResponseCodeDetails: "upstream_reset_before_response_started{overflow}", UpstreamCluster: "outbound|9080||ratings.default.svc.cluster.local"},
			[]string{"spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests = 2, spec.trafficPolicy.connectionPool.tcp.maxConnections = 1"}},
		{reviews, accesslog.Entry{ResponseCode: 504, ResponseFlags: "UT", ResponseCodeDetails: "response_timeout", UpstreamCluster: "outbound|9080||ratings.default.svc.cluster.local"},
			[]string{"per-try timeout of 1s", "VirtualService default/ratings", "spec.http[0].retries.perTryTimeout"}},
		{reviews, accesslog.Entry{ResponseCode: 429, ResponseFlags: "RL", ResponseCodeDetails: "via_upstream", UpstreamCluster: "outbound|9080||ratings.default.svc.cluster.local"},
			nil}, // relayed: the flag is the upstream's
	}
	for _, c := range cases {
		e := hopEntry{Proxy: c.p, Entry: c.e}
		if c.want == nil {
			if failed(&e) {
				t.Errorf("%+v: a relayed answer counted as this hop's failure", c.e)
			}
			continue
		}
		if !failed(&e) {
			t.Errorf("%+v: not a failure", c.e)
			continue
		}
		f := w.diagnose(&e)
		got := strings.Join([]string{f.Hop, f.Flag, f.Cause, f.Resource, f.Field}, " | ")
		for _, want := range c.want {
			if !strings.Contains(got, want) {
				t.Errorf("%s: lacks %q", got, want)
			}
		}
	}
}

func TestTokenIssuer(t *testing.T) {
	if got := tokenIssuer("Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJhQGIifQ.x"); got != "a@b" {
		t.Errorf("tokenIssuer = %q", got)
	}
	for _, bad := range []string{"", "Basic x", "Bearer a.b", "Bearer a.!!.c"} {
		if got := tokenIssuer(bad); got != "" {
			t.Errorf("tokenIssuer(%q) = %q", bad, got)
		}
	}
}
