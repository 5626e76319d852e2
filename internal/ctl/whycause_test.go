package ctl

import (
	"github.com/mast-mesh/mast/internal/pilot/ads"
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
	snap := config.NewSnapshot(rs)
	w := &whyRun{snap: snap, vs: mergeVS(snap), header: http.Header{}}
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

// TestDiagnoseDelegated: with VirtualService delegation, mast why sees the
// routes as mastd merges them (model.MergeDelegates) and names the
// delegate's field when the delegate sets it (its timeout, its fault, its
// subset), the root's when the delegated route inherits it (retries).
func TestDiagnoseDelegated(t *testing.T) {
	rs, err := config.Decode("why.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - {match: [{uri: {prefix: /health}}], route: [{destination: {host: ratings}}]}
  - {match: [{uri: {prefix: /ratings}}], delegate: {name: ratings-team, namespace: team}, retries: {attempts: 2, retryOn: connect-failure}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-team, namespace: team}
spec:
  http:
  - {match: [{uri: {prefix: /ratings/slow}}], route: [{destination: {host: ratings.default.svc.cluster.local}}], timeout: 0.5s}
  - {route: [{destination: {host: ratings.default.svc.cluster.local, subset: v9}}], fault: {abort: {httpStatus: 500, percentage: {value: 100}}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	snap := config.NewSnapshot(rs)
	w := &whyRun{snap: snap, vs: mergeVS(snap), header: http.Header{}}
	reviews := proxy{Name: "reviews-v2", ID: "sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local"}
	const cluster = "outbound|9080||ratings.default.svc.cluster.local"
	for _, c := range []struct {
		e    accesslog.Entry
		want []string
	}{
		{accesslog.Entry{ResponseCode: 504, ResponseFlags: "UT", ResponseCodeDetails: "response_timeout", UpstreamCluster: cluster},
			[]string{"timeout of 500ms", "VirtualService team/ratings-team (delegate of default/ratings)", "spec.http[0].timeout"}},
		{accesslog.Entry{ResponseCode: 500, ResponseFlags: "FI", ResponseCodeDetails: "fault_filter_abort", UpstreamCluster: cluster},
			[]string{"VirtualService team/ratings-team (delegate of default/ratings)", "spec.http[1].fault.abort"}},
		{accesslog.Entry{ResponseCode: 503, ResponseFlags: "UF,URX", ResponseCodeDetails: "upstream_reset_before_response_started{connection_failure}",
			UpstreamCluster: cluster, UpstreamHost: "127.0.1.6:9080"},
			[]string{"retries are exhausted (VirtualService default/ratings spec.http[1].retries: 2 attempts"}},
	} {
		e := hopEntry{Proxy: reviews, Entry: c.e}
		f := w.diagnose(&e)
		got := strings.Join([]string{f.Hop, f.Flag, f.Cause, f.Resource, f.Field}, " | ")
		for _, want := range c.want {
			if !strings.Contains(got, want) {
				t.Errorf("%s: lacks %q", got, want)
			}
		}
	}
	// A route to an undefined subset: the delegate's destination.
	res, field := w.vs.at(w.vs.list[0], 2, "route[0].destination.subset")
	if res != "VirtualService team/ratings-team (delegate of default/ratings)" || field != "spec.http[1].route[0].destination.subset" {
		t.Errorf("subset of merged route 2: %s %s", res, field)
	}
	// The root's own route keeps its index.
	if res, field := w.vs.at(w.vs.list[0], 0, "match"); res != "VirtualService default/ratings" || field != "spec.http[0].match" {
		t.Errorf("merged route 0: %s %s", res, field)
	}
	// describe service shows the merged routes and the delegate.
	var out strings.Builder
	d := &describer{snap: snap, w: &out, shown: map[string]bool{}}
	se, _ := config.Decode("se.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ratings, namespace: default}\nspec: {hosts: [ratings.default.svc.cluster.local], ports: [{number: 9080, name: http, protocol: HTTP}]}\n"))
	d.describeService(se[0], nil)
	if !strings.Contains(out.String(), "VirtualService: ratings.default\n   3 HTTP route(s)\n   Delegates merged: team/ratings-team") {
		t.Errorf("describe service ratings:\n%s", out.String())
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

// TestDiagnoseNoHealthyUpstream: a UH is explained by the DestinationRule's
// outlier detection when it has one (every endpoint ejected), else by the
// ServiceEntry whose workload selector no registered workload matches.
func TestDiagnoseNoHealthyUpstream(t *testing.T) {
	rs, err := config.Decode("why.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: default}
spec:
  hosts: [details.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-v1, namespace: default}
spec: {address: 127.0.1.2, labels: {app: details, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	snap := config.NewSnapshot(rs)
	w := &whyRun{snap: snap, vs: mergeVS(snap), header: http.Header{}}
	reviews := proxy{Name: "reviews-v2", ID: "sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local"}
	for _, c := range []struct {
		cluster string
		want    []string
	}{
		{"outbound|9080||ratings.default.svc.cluster.local", []string{"reviews-v2 (outbound) | UH", "no workload with labels map[app:ratings] is registered",
			"ServiceEntry default/ratings | spec.workloadSelector.labels"}},
		{"outbound|9080|v1|details.default.svc.cluster.local", []string{"ejected by DestinationRule default/details's outlier detection",
			"DestinationRule default/details | spec.subsets[0].trafficPolicy.outlierDetection"}},
	} {
		e := hopEntry{Proxy: reviews, Entry: accesslog.Entry{ResponseCode: 503, ResponseFlags: "UH", ResponseCodeDetails: "no_healthy_upstream", UpstreamCluster: c.cluster}}
		f := w.diagnose(&e)
		got := strings.Join([]string{f.Hop, f.Flag, f.Cause, f.Resource, f.Field}, " | ")
		for _, want := range c.want {
			if !strings.Contains(got, want) {
				t.Errorf("%s: lacks %q", got, want)
			}
		}
	}
	// The configuration walk: a cluster without endpoints.
	f := w.cluster(reviews, &configDump{Clusters: []dumpCluster{{Name: "outbound|9080||ratings.default.svc.cluster.local"}}}, "outbound|9080||ratings.default.svc.cluster.local")
	if f == nil || f.Flag != "UH" || f.Resource != "ServiceEntry default/ratings" || f.Field != "spec.workloadSelector.labels" {
		t.Errorf("cluster without endpoints: %+v", f)
	}
}

// TestNACKsOnlyWhenInForce: a proxy whose latest response of a type was
// rejected is a cause; a NACK kept on record after a later version was
// accepted, or a version still in flight, is not (mast why named a stale
// NACK and its DestinationRule after the NACKed config had been fixed).
func TestNACKsOnlyWhenInForce(t *testing.T) {
	p := proxy{Name: "reviews-v2", ID: "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local"}
	status := func(state, sent, acked string) []ads.ProxyStatus {
		return []ads.ProxyStatus{{ID: p.ID, Types: []ads.TypeStatus{{TypeURL: ads.RouteType, State: state,
			VersionSent: sent, VersionAcked: acked, LastNACK: `route "80": unknown field`}}}}
	}
	for _, c := range []struct {
		name  string
		syncz []ads.ProxyStatus
		want  int
	}{
		{"rejected now", status(ads.StateNACKed, "v3", "v2"), 1},
		{"accepted since", status(ads.StateSynced, "v4", "v4"), 0},
		{"newer version in flight", status(ads.StateStale, "v4", "v2"), 0},
	} {
		w := &whyRun{syncz: c.syncz}
		if got := w.nacks(p); len(got) != c.want {
			t.Errorf("%s: %d findings %+v, want %d", c.name, len(got), got, c.want)
		}
	}
}
