package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// jaegerTrace is a trace as Jaeger's HTTP API (/api/traces) returns it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		ProcessID string `json:"processID"`
		Tags      []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// jaegerTraces asks the real Jaeger for the traces of service carrying tag.
func jaegerTraces(t *testing.T, service, tagKey, tagValue string) ([]jaegerTrace, error) {
	t.Helper()
	var resp struct {
		Data []jaegerTrace `json:"data"`
	}
	q := url.Values{"service": {service}, "limit": {"20"}, "lookback": {"1h"},
		"tags": {fmt.Sprintf(`{%q:%q}`, tagKey, tagValue)}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := getJSON(ctx, "http://"+localmesh.JaegerUIAddr+"/api/traces?"+q.Encode(), &resp)
	return resp.Data, err
}

// hop is one span of a trace, resolved for checks.
type hop struct {
	service, op, kind, parent, id string
}

func hops(tr jaegerTrace) []hop {
	var out []hop
	for _, s := range tr.Spans {
		h := hop{service: tr.Processes[s.ProcessID].ServiceName, op: s.OperationName, id: s.SpanID}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				h.parent = r.SpanID
			}
		}
		for _, tag := range s.Tags {
			if tag.Key == "span.kind" {
				h.kind, _ = tag.Value.(string)
			}
		}
		out = append(out, h)
	}
	return out
}

// find returns the one span of service (and kind) whose operation starts
// with op.
func find(t *testing.T, hs []hop, service, kind, op string) hop {
	t.Helper()
	var got []hop
	for _, h := range hs {
		if h.service == service && h.kind == kind && strings.HasPrefix(h.op, op) {
			got = append(got, h)
		}
	}
	if len(got) != 1 {
		t.Fatalf("spans of %s (%s, %s...): %v; the trace: %+v", service, kind, op, got, hs)
	}
	return got[0]
}

// proxyStats reads one proxy's /stats/prometheus on 15090 and returns the
// value of the line starting with prefix.
func proxyStats(t *testing.T, stateDir, proc, prefix string) (float64, error) {
	t.Helper()
	st, err := localmesh.ReadRunState(stateDir)
	if err != nil {
		return 0, err
	}
	for _, p := range st.Procs {
		if p.Name != proc {
			continue
		}
		host, _, _ := net.SplitHostPort(p.Admin)
		resp, err := http.Get("http://" + net.JoinHostPort(host, "15090") + "/stats/prometheus")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				f := strings.Fields(sc.Text())
				return strconv.ParseFloat(f[len(f)-1], 64)
			}
		}
		return 0, fmt.Errorf("%s: no %s line", proc, prefix)
	}
	return 0, fmt.Errorf("no process %s", proc)
}

// TestTracingBookinfoJaeger: `mast up --addons jaeger` (a real Jaeger
// all-in-one receiving OTLP), then one Bookinfo page load gives exactly
// one trace in Jaeger's HTTP API with the spans of every hop correctly
// parented: the gateway's client span is the root, each sidecar's server
// span is the child of its caller's client span, and each client span the
// child of its workload's server span (the Bookinfo apps forward the
// trace headers). Then Telemetry resources switch the mesh to the Zipkin
// provider and turn span reporting off for ratings, without a restart.
func TestTracingBookinfoJaeger(t *testing.T) {
	if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), ".cache", "mast", "jaeger-all-in-one-v1.76.0")); err != nil && os.Getenv("MAST_JAEGER") == "" {
		t.Skip("needs Jaeger all-in-one v1.76.0: run scripts/build-jaeger.sh (.ci/run does)")
	}
	m := &mesh{t: t, stateDir: t.TempDir(), monitor: "127.0.0.1:15014", gateway: "http://127.0.0.1:8080"}
	// Read by the environment custom tag below: the proxies inherit it.
	t.Setenv("MAST_E2E_TAG_ENV", "from-env")
	m.up = startBinary(t, copyBinary(t, "mast"), "up", "--state-dir", m.stateDir, "--addons", "jaeger")
	waitLine(t, m.up, "Press Ctrl-C to stop", 2*time.Minute)
	if !strings.Contains(m.up.Output(), "Jaeger           http://"+localmesh.JaegerUIAddr) {
		t.Fatalf("mast up did not print Jaeger's URL:\n%s", m.up.Output())
	}

	// One page load that reaches ratings (reviews v2 or v3), marked by a
	// user agent the services forward and the proxies tag.
	var ua string
	pageLoad := func(prefix string) {
		for i := 0; ; i++ {
			agent := fmt.Sprintf("%s-%d", prefix, i)
			req, _ := http.NewRequest(http.MethodGet, m.gateway+"/productpage", nil)
			req.Header.Set("user-agent", agent)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /productpage: %s", resp.Status)
			}
			if v := instanceRE.FindString(string(b)); v == "reviews-v2" || v == "reviews-v3" {
				ua = agent
				return
			}
			if i > 30 {
				t.Fatal("no page load reached reviews v2 or v3")
			}
		}
	}
	pageLoad("mast-e2e-otlp")
	const gw = "istio-ingressgateway.istio-system"
	var tr jaegerTrace
	eventually(t, time.Minute, "the page load's trace in Jaeger", func() error {
		trs, err := jaegerTraces(t, gw, "user_agent", ua)
		if err != nil {
			return err
		}
		if len(trs) != 1 {
			return fmt.Errorf("%d traces for the page load, want 1", len(trs))
		}
		if n := len(trs[0].Spans); n < 8 {
			return fmt.Errorf("%d spans so far, want 8", n)
		}
		tr = trs[0]
		return nil
	})
	hs := hops(tr)
	if len(hs) != 8 {
		t.Fatalf("%d spans, want 8 (gateway, productpage server + 2 clients, details, reviews server + client, ratings): %+v", len(hs), hs)
	}
	root := find(t, hs, gw, "client", "productpage.default.svc.cluster.local:9080")
	if root.parent != "" {
		t.Errorf("the gateway's span has a parent %s: the page load started the trace", root.parent)
	}
	pp := find(t, hs, "productpage.default", "server", "productpage.default.svc.cluster.local:9080")
	ppDetails := find(t, hs, "productpage.default", "client", "details.default.svc.cluster.local:9080")
	details := find(t, hs, "details.default", "server", "details.default.svc.cluster.local:9080")
	ppReviews := find(t, hs, "productpage.default", "client", "reviews.default.svc.cluster.local:9080")
	reviews := find(t, hs, "reviews.default", "server", "reviews.default.svc.cluster.local:9080")
	revRatings := find(t, hs, "reviews.default", "client", "ratings.default.svc.cluster.local:9080")
	ratings := find(t, hs, "ratings.default", "server", "ratings.default.svc.cluster.local:9080")
	for _, e := range []struct {
		child, parent hop
		what          string
	}{
		{pp, root, "productpage's server span under the gateway's"},
		{ppDetails, pp, "productpage's call to details under its server span"},
		{details, ppDetails, "details' server span under productpage's call"},
		{ppReviews, pp, "productpage's call to reviews under its server span"},
		{reviews, ppReviews, "reviews' server span under productpage's call"},
		{revRatings, reviews, "reviews' call to ratings under its server span"},
		{ratings, revRatings, "ratings' server span under reviews' call"},
	} {
		if e.child.parent != e.parent.id {
			t.Errorf("%s: parent %s, want %s", e.what, e.child.parent, e.parent.id)
		}
	}
	for _, s := range tr.Spans {
		tags := map[string]any{}
		for _, tag := range s.Tags {
			tags[tag.Key] = tag.Value
		}
		for _, k := range []string{"istio.canonical_service", "istio.namespace", "http.url", "http.status_code", "upstream_cluster", "peer.address", "node_id", "guid:x-request-id"} {
			if _, ok := tags[k]; !ok {
				t.Errorf("span %s of %s: no %s tag (%v)", s.OperationName, tr.Processes[s.ProcessID].ServiceName, k, tags)
			}
		}
		if tags["http.status_code"] != "200" {
			t.Errorf("span %s: http.status_code %v", s.OperationName, tags["http.status_code"])
		}
	}

	// The Telemetry API, without a restart: the mesh reports over Zipkin
	// v2 JSON instead, and ratings reports no spans at all.
	dir := t.TempDir()
	writeFile(t, dir, "telemetry.yaml", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 100
    customTags:
      e2e: {literal: {value: zipkin-run}}
      e2e-ua: {header: {name: user-agent, defaultValue: no-ua}}
      e2e-no-header: {header: {name: x-mast-e2e-absent, defaultValue: header-default}}
      e2e-env: {environment: {name: MAST_E2E_TAG_ENV, defaultValue: no-env}}
      e2e-env-default: {environment: {name: MAST_E2E_TAG_UNSET, defaultValue: env-default}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ratings-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  tracing:
  - disableSpanReporting: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-client-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  tracing:
  - match: {mode: CLIENT}
    disableSpanReporting: true
`)
	m.apply(filepath.Join(dir, "telemetry.yaml"))
	pageLoad("mast-e2e-zipkin")
	eventually(t, time.Minute, "the Zipkin-reported trace in Jaeger", func() error {
		trs, err := jaegerTraces(t, gw, "e2e", "zipkin-run")
		if err != nil {
			return err
		}
		for _, tr := range trs {
			hs := hops(tr)
			for _, s := range tr.Spans {
				for _, tag := range s.Tags {
					if tag.Key == "user_agent" && tag.Value == ua && len(hs) >= 6 {
						for _, sp := range tr.Spans {
							for _, tg := range sp.Tags {
								if tg.Key == "istio.canonical_service" && tg.Value == "ratings" {
									t.Fatalf("ratings reported a span with disableSpanReporting: %+v", hs)
								}
							}
						}
						// Header and environment custom tags, with their defaults.
						tags := map[string]any{}
						for _, tg := range s.Tags {
							tags[tg.Key] = tg.Value
						}
						for k, want := range map[string]string{"e2e-ua": ua, "e2e-no-header": "header-default", "e2e-env": "from-env", "e2e-env-default": "env-default"} {
							if got := fmt.Sprint(tags[k]); got != want {
								t.Errorf("span %s: custom tag %s = %q, want %q", s.OperationName, k, got, want)
							}
						}
						return nil
					}
				}
			}
		}
		return fmt.Errorf("not yet (%d traces tagged e2e=zipkin-run)", len(trs))
	})
	// match.mode CLIENT: reviews v2 and v3 still report the span of the
	// request they serve but not the one of their call to ratings.
	eventually(t, time.Minute, "a reviews-v2/v3 server span without a reviews client span", func() error {
		trs, err := jaegerTraces(t, gw, "e2e", "zipkin-run")
		if err != nil {
			return err
		}
		for _, tr := range trs {
			served, called := false, false
			for _, s := range tr.Spans {
				kind, node, svc := "", "", ""
				for _, tg := range s.Tags {
					switch tg.Key {
					case "span.kind":
						kind, _ = tg.Value.(string)
					case "node_id":
						node = fmt.Sprint(tg.Value)
					case "istio.canonical_service":
						svc = fmt.Sprint(tg.Value)
					}
				}
				if svc != "reviews" {
					continue
				}
				served = served || kind == "server" && (strings.Contains(node, "reviews-v2") || strings.Contains(node, "reviews-v3"))
				called = called || kind == "client"
			}
			if called {
				t.Fatalf("reviews reported a client span with match.mode CLIENT disableSpanReporting: %+v", hops(tr))
			}
			if served {
				return nil
			}
		}
		return fmt.Errorf("not yet (%d traces tagged e2e=zipkin-run)", len(trs))
	})
	eventually(t, 30*time.Second, "the gateway counting spans sent over Zipkin", func() error {
		v, err := proxyStats(t, m.stateDir, "istio-ingressgateway", `envoy_tracing_spans_sent{provider="zipkin"`)
		if err != nil || v < 1 {
			return fmt.Errorf("zipkin spans sent %v: %v", v, err)
		}
		return nil
	})

	// Telemetry access logging, without a restart: off for details, only
	// errors (a CEL filter) for productpage; ratings' server side off.
	logLines := func(proc, what string) int {
		b, err := os.ReadFile(filepath.Join(m.stateDir, "logs", proc+".log"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), what)
	}
	writeFile(t, dir, "logging.yaml", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: details-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  accessLogging:
  - disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: productpage-errors, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-json, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging:
  - providers: [{name: stdout-json}]
    match: {mode: SERVER}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ratings-server-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  accessLogging:
  - match: {mode: SERVER}
    disabled: true
`)
	// reviews' lines: Istio's TEXT (the default provider) and JSON from
	// mast up's stdout-json provider (envoyFileAccessLog with labels).
	reviewsLines := func(what string) int {
		n := 0
		for _, v := range []string{"v1", "v2", "v3"} {
			n += logLines("reviews-"+v+"-sidecar", what)
		}
		return n
	}
	const reviewsJSON = `"log_provider":"stdout-json"`
	if n := reviewsLines(reviewsJSON); n != 0 {
		t.Fatalf("reviews logged %d JSON lines before any Telemetry named the provider", n)
	}
	if n := logLines("details-v1-sidecar", `"GET /details/0 `); n == 0 {
		t.Fatal("details logged nothing before the Telemetry resource")
	}
	m.apply(filepath.Join(dir, "logging.yaml"))
	time.Sleep(1500 * time.Millisecond) // the access log sink flushes every second
	detailsLogged := logLines("details-v1-sidecar", `"GET /details/0 `)
	// reviews calls ratings in absolute form through its sidecar
	// ("GET http://ratings:9080/ratings/0 HTTP/1.1").
	const ratingsText = `/ratings/0 HTTP/1.1"`
	ratingsLogged := logLines("ratings-v1-sidecar", ratingsText)
	reviewsCalls := reviewsLines(ratingsText)
	reviewsJSONCalls := func() int {
		n := 0
		for _, v := range []string{"v1", "v2", "v3"} {
			b, _ := os.ReadFile(filepath.Join(m.stateDir, "logs", "reviews-"+v+"-sidecar.log"))
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, reviewsJSON) && strings.Contains(line, `/ratings/0"`) {
					n++
				}
			}
		}
		return n
	}
	reviewsText := reviewsLines(`"GET /reviews/0 `)
	pages := logLines("productpage-v1-sidecar", `"GET /productpage `)
	for i := 0; i < 3; i++ {
		m.page(http.DefaultClient)
	}
	resp, err := http.Get(m.gateway + "/static/mast-e2e-missing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("GET /static/mast-e2e-missing: %s, want an error", resp.Status)
	}
	eventually(t, 30*time.Second, "productpage logging the error", func() error {
		if n := logLines("productpage-v1-sidecar", `"GET /static/mast-e2e-missing `); n == 0 {
			return fmt.Errorf("no line for the %d response", resp.StatusCode)
		}
		return nil
	})
	if n := logLines("details-v1-sidecar", `"GET /details/0 `); n != detailsLogged {
		t.Errorf("details logged %d more requests with logging disabled", n-detailsLogged)
	}
	if n := logLines("productpage-v1-sidecar", `"GET /productpage `); n != pages {
		t.Errorf("productpage logged %d more 200s with filter response.code >= 400", n-pages)
	}
	// Telemetry accessLogging providers: reviews now logs through
	// stdout-json only.
	eventually(t, 30*time.Second, "reviews logging JSON through the stdout-json provider", func() error {
		if n := reviewsLines(reviewsJSON); n == 0 || reviewsLines(`"path":"/reviews/0"`) == 0 {
			return fmt.Errorf("%d JSON lines", n)
		}
		return nil
	})
	if n := reviewsLines(`"GET /reviews/0 `); n != reviewsText {
		t.Errorf("reviews logged %d more TEXT lines with providers [stdout-json]", n-reviewsText)
	}
	// match.mode SERVER: reviews' calls to ratings (its client side) are
	// still logged by MeshConfig's file, never as JSON; ratings' server
	// side is off.
	eventually(t, 30*time.Second, "reviews' client side logging its calls to ratings through MeshConfig's file", func() error {
		if n := reviewsLines(ratingsText); n <= reviewsCalls {
			m.page(http.DefaultClient) // reviews-v1 does not call ratings
			return fmt.Errorf("%d lines before, %d now", reviewsCalls, n)
		}
		return nil
	})
	if n := reviewsJSONCalls(); n != 0 {
		t.Errorf("reviews logged %d client-side JSON lines with match.mode SERVER", n)
	}
	if n := logLines("ratings-v1-sidecar", ratingsText); n != ratingsLogged {
		t.Errorf("ratings logged %d more requests with its server side disabled", n-ratingsLogged)
	}

	t.Run("Mixer's zipkin adapter", func(t *testing.T) { checkMixerZipkin(t, m) })
}
