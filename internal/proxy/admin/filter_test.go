package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// families splits a text-format page into its families, by the name of
// each # TYPE line, in order.
func families(page string) (names []string, text map[string]string) {
	text = map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(page, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			cur, _, _ = strings.Cut(rest, " ")
			names = append(names, cur)
		}
		text[cur] += line
	}
	return names, text
}

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Host = "127.0.0.1:15000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// TestPrometheusFilter: ?filter= returns exactly the full page's families
// whose name the expression matches (anywhere in the name), in the same
// order and bytes; without it (or empty) the page is the whole page.
func TestPrometheusFilter(t *testing.T) {
	h := Handler(&fakeSource{}, nil)
	code, full := get(t, h, "/stats/prometheus")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var want strings.Builder
	writePrometheus(&want, collect(&fakeSource{}, nil))
	if full != want.String() {
		t.Fatalf("unfiltered page differs from the whole page:\n%s\nwant\n%s", full, want.String())
	}
	if _, empty := get(t, h, "/stats/prometheus?filter="); empty != full {
		t.Errorf("an empty filter changed the page")
	}
	names, text := families(full)
	if len(names) < 10 {
		t.Fatalf("only %d families in the page", len(names))
	}
	for _, expr := range []string{"control_plane", "^envoy_http_downstream_rq_(total|xx)$", "cx_", "nomatch", "^istio_requests_total$|^istio_request_duration_milliseconds$", "."} {
		code, got := get(t, h, "/stats/prometheus?filter="+url.QueryEscape(expr))
		if code != http.StatusOK {
			t.Fatalf("%s: status %d", expr, code)
		}
		re := regexp.MustCompile(expr)
		var w strings.Builder
		for _, n := range names {
			if re.MatchString(n) {
				w.WriteString(text[n])
			}
		}
		if got != w.String() {
			t.Errorf("filter %q:\n%s\nwant\n%s", expr, got, w.String())
		}
	}
	if _, got := get(t, h, "/stats/prometheus?filter=nomatch"); got != "" {
		t.Errorf("a filter matching nothing returned %q", got)
	}
}

// TestPrometheusFilterBadRegex: an expression RE2 refuses is a 400 that
// names the parameter.
func TestPrometheusFilterBadRegex(t *testing.T) {
	code, body := get(t, Handler(&fakeSource{}, nil), "/stats/prometheus?filter="+url.QueryEscape("envoy_(cluster"))
	if code != http.StatusBadRequest || !strings.Contains(body, "filter") {
		t.Errorf("status %d, body %q; want 400 naming the parameter", code, body)
	}
}

// TestFamilyFilterKeep: the answer depends on the whole name (prefix and
// name), and a nil filter keeps everything.
func TestFamilyFilterKeep(t *testing.T) {
	f, err := new(FilterParser).Parse(url.Values{"filter": {"^envoy_a$"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prefix, name string
		want         bool
	}{{"envoy_", "a", true}, {"", "a", false}, {"envoy_", "a", true}, {"", "envoy_a", true}, {"envoy_", "ab", false}} {
		if got := f.Keep(c.prefix, c.name); got != c.want {
			t.Errorf("Keep(%q, %q) = %v, want %v", c.prefix, c.name, got, c.want)
		}
	}
	var none *FamilyFilter
	if !none.Keep("envoy_", "x") || none.KeepFunc() != nil {
		t.Error("a nil filter does not keep everything")
	}
}

// clusterSource is a sidecar with 30 outbound clusters.
type clusterSource struct {
	fakeSource
	clusters map[string]*upstream.Cluster
}

func (c *clusterSource) Clusters() map[string]*upstream.Cluster { return c.clusters }

func newClusterSource() *clusterSource {
	cfgs := map[string]*xdsparse.Cluster{}
	for c := range 30 {
		n := "outbound|9080|v" + itoa(c%3) + "||svc" + itoa(c) + ".default.svc.cluster.local"
		cfgs[n] = &xdsparse.Cluster{Name: n}
	}
	return &clusterSource{clusters: upstream.NewManager(slog.New(slog.DiscardHandler)).Update(cfgs, nil)}
}

// BenchmarkPrometheusFilter is the sidecar's envoy_* part of a scrape
// (collect and render) of 30 clusters: the whole page, and with the
// dashboard's filter (which excludes every envoy_* family).
func BenchmarkPrometheusFilter(b *testing.B) {
	src := newClusterSource()
	for _, c := range []struct{ name, filter string }{{"full", ""}, {"dashboard", "^(istio_requests_total|istio_request_duration_milliseconds)$"}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			q := url.Values{"filter": {c.filter}}
			var p FilterParser
			for b.Loop() {
				keep, err := p.Parse(q)
				if err != nil {
					b.Fatal(err)
				}
				WritePrometheus(io.Discard, src, keep)
			}
		})
	}
}

// TestFilterParserChanges: the parser's remembered expression never
// answers for another one, also when requests alternate concurrently.
func TestFilterParserChanges(t *testing.T) {
	var p FilterParser
	done := make(chan bool)
	for g := range 4 {
		go func() {
			ok := true
			for i := range 200 {
				expr, name := "^envoy_a$", "a"
				if (i+g)%2 == 1 {
					expr, name = "^envoy_b$", "b"
				}
				f, err := p.Parse(url.Values{"filter": {expr}})
				ok = ok && err == nil && f.Keep("envoy_", name) && !f.Keep("envoy_", "c")
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("a parsed filter answered for another expression")
		}
	}
	if f, err := p.Parse(url.Values{}); f != nil || err != nil {
		t.Errorf("no filter parameter: %v, %v", f, err)
	}
}
