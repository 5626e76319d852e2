package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mast-mesh/mast/test/browser"
)

// bookinfoWorkloads are the graph nodes of Bookinfo's seven proxies.
var bookinfoWorkloads = []string{
	"workload:istio-system/istio-ingressgateway", "workload:default/productpage-v1", "workload:default/details-v1",
	"workload:default/reviews-v1", "workload:default/reviews-v2", "workload:default/reviews-v3", "workload:default/ratings-v1",
}

// bookinfoEdges are the edges Bookinfo's traffic draws, service by service.
var bookinfoEdges = [][2]string{
	{"workload:istio-system/istio-ingressgateway", "service:productpage.default.svc.cluster.local"},
	{"service:productpage.default.svc.cluster.local", "workload:default/productpage-v1"},
	{"workload:default/productpage-v1", "service:details.default.svc.cluster.local"},
	{"service:details.default.svc.cluster.local", "workload:default/details-v1"},
	{"workload:default/productpage-v1", "service:reviews.default.svc.cluster.local"},
	{"service:reviews.default.svc.cluster.local", "workload:default/reviews-v1"},
	{"service:reviews.default.svc.cluster.local", "workload:default/reviews-v2"},
	{"service:reviews.default.svc.cluster.local", "workload:default/reviews-v3"},
	{"workload:default/reviews-v2", "service:ratings.default.svc.cluster.local"},
	{"workload:default/reviews-v3", "service:ratings.default.svc.cluster.local"},
	{"service:ratings.default.svc.cluster.local", "workload:default/ratings-v1"},
}

// loadBookinfo requests the product page from workers goroutines until the
// test ends.
func loadBookinfo(t *testing.T, url string, workers int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// pagePoll waits until expr is true on the page, reporting what the page
// shows when it is not.
func pagePoll(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	var err error
	for range 3 { // a navigation may replace the page's context once
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			break
		}
	}
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main .active') ? document.querySelector('main .active').innerText.slice(0, 3000) : ''`))
		t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, text)
	}
}

func pageEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// screenshot saves the page into $MAST_DASHBOARD_SCREENSHOTS (docs/ when
// refreshing the README's pictures), else into the test's directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("MAST_DASHBOARD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0); true`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardBookinfo opens mastd's dashboard in headless chromium while
// Bookinfo runs under load in `mast up`: it sees the seven workloads and
// Bookinfo's edges with traffic, Istio's 80/20 reviews split as two
// weighted edges once applied, and an ineffective DestinationRule's
// analysis message; `mast dashboard` prints the page's URL.
func TestDashboardBookinfo(t *testing.T) {
	ctx := browser.New(t, 1366, 900)
	m := startMesh(t)
	base := "http://" + m.monitor + "/ui/"
	if out, err := m.mast("dashboard", "--browser=false"); err != nil || strings.TrimSpace(out) != base {
		t.Fatalf("mast dashboard --browser=false: %v, %q, want %s", err, out, base)
	}
	loadBookinfo(t, m.gateway+"/productpage", 2)

	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	var cond []string
	for _, w := range bookinfoWorkloads {
		cond = append(cond, fmt.Sprintf(`!!document.querySelector('#graph .node[data-id="%s"]')`, w))
	}
	for _, e := range bookinfoEdges {
		cond = append(cond, fmt.Sprintf(`Number((document.querySelector('#edges tr[data-source="%s"][data-target="%s"]') || {dataset: {}}).dataset.rate) > 0`, e[0], e[1]))
	}
	pagePoll(t, ctx, "the seven Bookinfo workloads and their edges with traffic", strings.Join(cond, " && "), 90*time.Second)
	screenshot(t, ctx, "dashboard-graph.png")

	// Istio's traffic-shifting task: 80 % to v1, 20 % to v2.
	m.apply("../../samples/bookinfo/networking/virtual-service-reviews-80-20.yaml")
	share := func(v string) string {
		return fmt.Sprintf(`Number((document.querySelector('#edges tr[data-source="service:reviews.default.svc.cluster.local"][data-target="workload:default/reviews-%s"]') || {dataset: {share: 0}}).dataset.share)`, v)
	}
	pagePoll(t, ctx, "reviews-v2's edge at about 20 % and v1's at 80 % within 30 s",
		fmt.Sprintf(`Math.abs(%s - 0.2) < 0.08 && Math.abs(%s - 0.8) < 0.08 && %s < 0.02`, share("v2"), share("v1"), share("v3")), 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#/graph/"+"service%3Areviews.default.svc.cluster.local")); err != nil {
		t.Fatal(err)
	}
	pagePoll(t, ctx, "the reviews service's charts", `document.querySelectorAll('#detail .chart svg path.line').length >= 2`, 30*time.Second)
	screenshot(t, ctx, "dashboard-split.png")

	// An ineffective resource: a DestinationRule for a host that does not exist.
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(typo, []byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings-typo, namespace: default}
spec:
  host: ratingz
  subsets:
  - name: v1
    labels: {version: v1}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	m.apply(typo)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#/config/DestinationRule%2Fdefault%2Fratings-typo")); err != nil {
		t.Fatal(err)
	}
	pagePoll(t, ctx, "the DestinationRule's analysis message",
		`(document.querySelector('#resources tr.selected') || {innerText: ''}).innerText.includes('IST0174') && document.querySelector('#resources tr.selected').innerText.includes('ratingz')`, 30*time.Second)
	screenshot(t, ctx, "dashboard-config.png")

	// Every proxy synced, with its certificate.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#/proxies")); err != nil {
		t.Fatal(err)
	}
	pagePoll(t, ctx, "seven proxies, synced, with certificates",
		`document.querySelectorAll('#proxies tbody tr').length === 7 && [...document.querySelectorAll('#proxies tbody tr')].every(r => r.innerText.includes('SYNCED') && !r.innerText.includes('NACK') && r.innerText.includes('spiffe://cluster.local/ns/') && r.innerText.includes('expires'))`, 30*time.Second)
	// The mTLS mode and policies of every workload.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#/policy")); err != nil {
		t.Fatal(err)
	}
	pagePoll(t, ctx, "a policy row per workload with its mTLS mode",
		`document.querySelectorAll('#policies tbody tr').length === 7 && [...document.querySelectorAll('#policies tbody tr')].every(r => /PERMISSIVE|STRICT|DISABLE/.test(r.innerText))`, 30*time.Second)
	if got := pageEval[int](t, ctx, `performance.getEntriesByType('resource').filter(e => !e.name.startsWith(location.origin + '/')).length`); got != 0 {
		t.Errorf("the page loaded %d resources from elsewhere than mastd", got)
	}
}
