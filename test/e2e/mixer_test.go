package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// mixerFile is one of Istio's Mixer-era Bookinfo files (copied unchanged
// into internal/mixer/testdata with their licence).
func mixerFile(name string) string {
	return filepath.Join("..", "..", "internal", "mixer", "testdata", "policy-mixer-era", name)
}

// startMeshArgs is startMesh with extra `mast up` flags.
func startMeshArgs(t *testing.T, args ...string) *mesh {
	t.Helper()
	m := &mesh{t: t, stateDir: t.TempDir(), monitor: "127.0.0.1:15014", gateway: "http://127.0.0.1:8080"}
	m.up = startBinary(t, copyBinary(t, "mast"), append([]string{"up", "--state-dir", m.stateDir}, args...)...)
	waitLine(t, m.up, "Press Ctrl-C to stop", 2*time.Minute)
	return m
}

func (m *mesh) get(path string, hdr ...string) (int, string) {
	m.t.Helper()
	req, _ := http.NewRequest("GET", m.gateway+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// remove deletes what a file applied and waits for the push.
func (m *mesh) remove(file string) {
	m.t.Helper()
	before := m.pushVersion()
	if out, err := m.mast("delete", "-f", file); err != nil {
		m.t.Fatalf("mast delete -f %s: %v\n%s", file, err, out)
	}
	m.waitConverged(before)
}

// TestMixerBookinfo applies Istio 1.4's Mixer policy files to `mast up`
// unchanged and checks what Istio's tasks documented: real mastd (Mixer on
// 9091 over mTLS), real sidecars and gateway, Bookinfo.
func TestMixerBookinfo(t *testing.T) {
	if os.Getenv("MAST_E2E_SKIP_MIXER") != "" {
		t.Skip("MAST_E2E_SKIP_MIXER is set")
	}
	m := startMesh(t)
	t.Run("deny-label: reviews-v3 gets no ratings, v2 still shows stars", func(t *testing.T) {
		f := mixerFile("mixer-rule-deny-label.yaml")
		m.apply(f)
		defer m.remove(f)
		seen := map[string]bool{}
		for i := 0; i < 40 && !(seen["v2"] && seen["v3"]); i++ {
			code, page := m.get("/productpage")
			if code != 200 {
				t.Fatalf("productpage: %d\n%.300s", code, page)
			}
			switch v := instanceRE.FindString(page); v {
			case "reviews-v3":
				seen["v3"] = true
				if !strings.Contains(page, "Ratings service is currently unavailable") {
					t.Fatalf("reviews-v3 page shows ratings:\n%.2000s", page)
				}
			case "reviews-v2":
				seen["v2"] = true
				if !strings.Contains(page, "glyphicon-star") || strings.Contains(page, "Ratings service is currently unavailable") {
					t.Fatalf("reviews-v2 page lost its stars:\n%.2000s", page)
				}
			}
		}
		if !seen["v2"] || !seen["v3"] {
			t.Fatalf("saw %v in 40 pages", seen)
		}
	})
	t.Run("ratings-denial: x-user john only", func(t *testing.T) {
		f := mixerFile("mixer-rule-ratings-denial.yaml")
		m.apply(f)
		defer m.remove(f)
		code, body := m.get("/productpage", "x-user", "john")
		if code != 403 || !strings.HasPrefix(body, "PERMISSION_DENIED:") || !strings.Contains(body, "Not allowed") {
			t.Fatalf("x-user john: %d %q", code, body)
		}
		if code, _ := m.get("/productpage", "x-user", "jason"); code != 200 {
			t.Fatalf("x-user jason: %d", code)
		}
		if code, _ := m.get("/productpage"); code != 200 {
			t.Fatalf("no x-user: %d", code)
		}
	})
	t.Run("deny-whitelist: v1 and v2 reach ratings, v3 does not", func(t *testing.T) {
		f := mixerFile("mixer-rule-deny-whitelist.yaml")
		m.apply(f)
		defer m.remove(f)
		seen := map[string]bool{}
		for i := 0; i < 40 && !(seen["reviews-v2"] && seen["reviews-v3"]); i++ {
			_, page := m.get("/productpage")
			v := instanceRE.FindString(page)
			seen[v] = true
			unavailable := strings.Contains(page, "Ratings service is currently unavailable")
			if (v == "reviews-v3") != unavailable && v != "reviews-v1" {
				t.Fatalf("%s: ratings unavailable %v", v, unavailable)
			}
		}
		if !seen["reviews-v2"] || !seen["reviews-v3"] {
			t.Fatalf("saw %v", seen)
		}
	})
	t.Run("deny-ip: the gateway's address is not whitelisted", func(t *testing.T) {
		f := mixerFile("mixer-rule-deny-ip.yaml")
		m.apply(f)
		defer m.remove(f)
		code, body := m.get("/productpage")
		if code != 403 || !strings.HasPrefix(body, "PERMISSION_DENIED:whitelistip.handler.default:") || !strings.HasSuffix(strings.TrimSpace(body), "is not whitelisted") {
			t.Fatalf("productpage through the gateway: %d %q", code, body)
		}
	})
	t.Run("productpage-ratelimit: 2 per 5 s, 429 for the rest", func(t *testing.T) {
		f := mixerFile("mixer-rule-productpage-ratelimit.yaml")
		m.apply(f)
		defer m.remove(f)
		// Windows are aligned to the epoch: start just after one begins.
		time.Sleep(time.Until(time.Now().Truncate(5 * time.Second).Add(5*time.Second + 100*time.Millisecond)))
		var codes []int
		for i := 0; i < 5; i++ {
			code, body := m.get("/productpage")
			if code == 429 && !strings.HasPrefix(body, "RESOURCE_EXHAUSTED:") {
				t.Errorf("429 body %q", body)
			}
			codes = append(codes, code)
		}
		if want := []int{200, 200, 429, 429, 429}; !equalInts(codes, want) {
			t.Fatalf("statuses %v, want %v", codes, want)
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMixerDown: the proxies check with a Mixer nobody serves; with
// policyCheckFailOpen false requests are refused with 503 and a clear
// message, with true they pass; neither hangs beyond the check timeout.
func TestMixerDown(t *testing.T) {
	if os.Getenv("MAST_E2E_SKIP_MIXER") != "" {
		t.Skip("MAST_E2E_SKIP_MIXER is set")
	}
	for _, open := range []bool{false, true} {
		name := "fail closed"
		args := []string{"--mixer-check-server", "127.0.0.1:9"}
		if open {
			name = "fail open"
			args = append(args, "--policy-check-fail-open")
		}
		t.Run(name, func(t *testing.T) {
			m := startMeshArgs(t, args...)
			m.apply(mixerFile("mixer-rule-ratings-denial.yaml"))
			code, body := m.get("/productpage")
			if open && code != 200 {
				t.Fatalf("fail open: %d %q", code, body)
			}
			if !open && (code != 503 || !strings.HasPrefix(body, "UNAVAILABLE:mixer unreachable")) {
				t.Fatalf("fail closed: %d %q", code, body)
			}
			m.up.stop()
		})
	}
}

// mixerTracespan is Istio 1.4's tracespan instance for the zipkin adapter
// (its documented sample, with the collector at the Jaeger addon's Zipkin
// port), sent for every request a sidecar reports.
const mixerTracespan = `apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: zipkin, namespace: istio-system}
spec:
  compiledAdapter: zipkin
  params:
    url: http://` + localmesh.JaegerZipkinAddr + `/api/v2/spans
    sampleProbability: 1.0
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: default, namespace: istio-system}
spec:
  compiledTemplate: tracespan
  params:
    traceId: request.headers["x-b3-traceid"] | ""
    spanId: request.headers["x-b3-spanid"] | ""
    parentSpanId: request.headers["x-b3-parentspanid"] | ""
    spanName: request.path | "/"
    startTime: request.time
    endTime: response.time
    clientSpan: (context.reporter.kind | "inbound") == "outbound"
    rewriteClientSpanId: "false"
    sourceName: source.workload.name | ""
    destinationName: destination.workload.name | ""
    httpStatusCode: response.code | 0
    spanTags:
      http.method: request.method | ""
      source.version: source.labels["version"] | "unknown"
      destination.version: destination.labels["version"] | "unknown"
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: zipkin, namespace: istio-system}
spec:
  match: context.protocol == "http"
  actions:
  - handler: zipkin
    instances: [default]
`

// checkMixerZipkin applies the tracespan configuration to a mesh running
// the Jaeger addon and loads one page with a B3 trace whose sampling
// decision is "no", so that the proxies report no spans of their own:
// every span Jaeger then holds for that trace came through the Mixer's
// zipkin adapter, one server span per sidecar that served the page.
func checkMixerZipkin(t *testing.T, m *mesh) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "tracespan.yaml", mixerTracespan)
	m.apply(filepath.Join(dir, "tracespan.yaml"))
	trace := fmt.Sprintf("%016x", time.Now().UnixNano())
	root := "00f067aa0ba902b7"
	code, _ := m.get("/productpage", "x-b3-traceid", trace, "x-b3-spanid", root, "x-b3-sampled", "0")
	if code != 200 {
		t.Fatalf("productpage: %d", code)
	}
	var tr jaegerTrace
	eventually(t, time.Minute, "the Mixer's spans in Jaeger", func() error {
		var resp struct {
			Data []jaegerTrace `json:"data"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := getJSON(ctx, "http://"+localmesh.JaegerUIAddr+"/api/traces/"+trace, &resp); err != nil {
			return err
		}
		if len(resp.Data) != 1 {
			return fmt.Errorf("trace %s: %d traces", trace, len(resp.Data))
		}
		// productpage's span is reported last: its request ends after the
		// calls it made, and ratings' span may arrive before it, so a span
		// count alone does not say the trace is complete.
		tr = resp.Data[0]
		seen := map[string]bool{}
		for _, s := range tr.Spans {
			seen[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(tr.Processes[s.ProcessID].ServiceName, "-v1"), "-v2"), "-v3")] = true
		}
		for _, want := range []string{"productpage", "details", "reviews"} {
			if !seen[want] {
				return fmt.Errorf("trace %s: no span of %s yet (%v)", trace, want, seen)
			}
		}
		return nil
	})
	services := map[string]bool{}
	for _, s := range tr.Spans {
		svc := tr.Processes[s.ProcessID].ServiceName
		services[svc] = true
		tags := map[string]any{}
		for _, tag := range s.Tags {
			tags[tag.Key] = tag.Value
		}
		if tags["span.kind"] != "server" || tags["http.method"] != "GET" || tags["http.status_code"] != "200" {
			t.Errorf("span %s of %s: tags %v, want a GET server span answered 200", s.OperationName, svc, tags)
		}
		if svc == "productpage-v1" && (s.OperationName != "/productpage" || tags["source.version"] != "unknown") {
			t.Errorf("productpage's span %s, tags %v", s.OperationName, tags)
		}
		if svc == "details-v1" && tags["source.version"] != "v1" {
			t.Errorf("details' span: source.version %v, want productpage's v1 (forwarded by its sidecar)", tags["source.version"])
		}
	}
	for _, want := range []string{"productpage-v1", "details-v1"} {
		if !services[want] {
			t.Errorf("no span of %s in %v", want, services)
		}
	}
	if !services["reviews-v1"] && !services["reviews-v2"] && !services["reviews-v3"] {
		t.Errorf("no span of a reviews version in %v", services)
	}
}
