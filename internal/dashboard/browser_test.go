package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/mast-mesh/mast/test/browser"
)

// serve runs the dashboard's handler, as mastd mounts it, on a test server.
func serve(tb testing.TB, d *Dashboard) string {
	mux := http.NewServeMux()
	mux.Handle("/ui/", d.Handler())
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// poll waits until the expression is true in the page.
func poll(tb testing.TB, ctx context.Context, what, expr string, timeout time.Duration) {
	tb.Helper()
	var err error
	for range 3 { // a navigation in progress may replace the page's context once
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			break
		}
	}
	if err != nil {
		var got string
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { let r = ''; try { r = JSON.stringify({view: app.view, selected: app.selected, dirty: app.dirty}); renderAll(); renderConfig(); } catch (e) { r += ' ' + e.stack } return r + '\n' + (document.body ? document.body.innerText.slice(0, 1000) : ''); })()`))
		tb.Fatalf("%s (%s): %v\npage text:\n%s", what, expr, err, got)
	}
}

func eval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.Fatalf("%s: %v", expr, err)
	}
	return v
}

// TestPageInBrowser loads the page in headless chromium over a synthetic
// mesh: the graph, deep links, search, keyboard, charts and print layout.
func TestPageInBrowser(t *testing.T) {
	m := newSynthetic(t, 12)
	d := New(m.config())
	d.inject(m.traffic(100))
	d.inject(m.traffic(130))
	d.inject(m.traffic(160))
	base := serve(t, d)
	ctx := browser.New(t, 1280, 900)

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "every workload and service drawn", `document.querySelectorAll('#graph .node').length === 25`, 10*time.Second)
	if n := eval[int](t, ctx, `document.querySelectorAll('#edges tbody tr').length`); n != 24 {
		t.Errorf("edges table: %d rows, want 24", n)
	}
	rate := eval[string](t, ctx, `document.querySelector('#edges tbody tr[data-source="workload:ns0/svc0000-v1"] td:nth-child(3)').textContent`)
	if rate != "30.0" {
		t.Errorf("svc0000-v1's outgoing rate shows %q, want 30.0 (30 requests per 1 s round)", rate)
	}
	if share := eval[string](t, ctx, `document.querySelector('#edges tbody tr[data-source="workload:ns0/svc0000-v1"] td:nth-child(4)').textContent`); share != "" {
		t.Errorf("a workload's edge shows share %q; shares are for a service's split only", share)
	}
	if sec := eval[string](t, ctx, `document.querySelector('#edges tbody tr[data-target="workload:ns1/svc0001-v1"] td:nth-child(8)').textContent`); sec != "mTLS" {
		t.Errorf("edge into svc0001-v1: security %q, want mTLS", sec)
	}
	// Nothing from another origin: every resource the page loaded is the server's.
	for _, u := range eval[[]string](t, ctx, `performance.getEntriesByType('resource').map(e => e.name)`) {
		if !strings.HasPrefix(u, base+"/") {
			t.Errorf("the page loaded %s, not from mastd", u)
		}
	}

	// A deep link to a resource opens the configuration with its analysis.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/#/config/"+"VirtualService%2Fns0%2Fsvc0000")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the selected VirtualService row", `!!document.querySelector('#view-config.active tr.selected')`, 10*time.Second)
	row := eval[string](t, ctx, `document.querySelector('#resources tr.selected').innerText`)
	if !strings.Contains(row, "IST0101") || !strings.Contains(row, "v9") || !strings.Contains(row, "12 proxies") {
		t.Errorf("VirtualService row %q: want IST0101 naming subset v9 and 12 proxies", row)
	}
	// The selected resource's proxies are listed, asked of api/affected.
	poll(t, ctx, "the VirtualService's 12 proxies listed", `document.querySelectorAll('#resources tr.selected details li a[href^="#/proxies/"]').length === 12`, 10*time.Second)

	// The proxies (sync state per type, certificate) and policy views.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.hash = '#/proxies'; true`)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the proxies table", `document.querySelectorAll('#proxies tbody tr').length === 12`, 5*time.Second)
	if got := eval[string](t, ctx, `document.querySelector('#proxies tbody tr').innerText`); !strings.Contains(got, "SYNCED") || !strings.Contains(got, "spiffe://cluster.local/ns/ns0/sa/svc0000") {
		t.Errorf("first proxy row %q: want SYNCED and its SPIFFE identity", got)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.hash = '#/policy'; true`)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the policy table", `document.querySelectorAll('#policies tbody tr').length === 12`, 5*time.Second)
	if got := eval[string](t, ctx, `document.querySelector('#policies tbody tr').innerText`); !strings.Contains(got, "PERMISSIVE") {
		t.Errorf("first policy row %q: want PERMISSIVE", got)
	}

	// Search: type, then Enter opens the first match.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("search")), chromedp.SendKeys(chromedp.ID("search"), "svc0003-v1")); err != nil {
		t.Fatal(err)
	}
	// The workload, its WorkloadEntry and its proxy.
	poll(t, ctx, "search results", `document.querySelectorAll('#results a').length === 3`, 5*time.Second)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the search's first match opened", `location.hash === '#/graph/workload%3Ans3%2Fsvc0003-v1'`, 5*time.Second)

	// Keyboard: Tab from the top reaches the skip link, then the sections.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/ui/#/graph/workload%3Ans3%2Fsvc0003-v1")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the node's golden-signal charts", `document.querySelectorAll('#detail .chart svg path.line').length === 4`, 10*time.Second)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, ctx, `document.activeElement.getAttribute('href')`); got != "#/graph" {
		t.Errorf("after two Tabs the focus is on %q, want the home link #/graph", got)
	}
	// Every graph node is a focusable link with a label.
	if n := eval[int](t, ctx, `[...document.querySelectorAll('#graph .node')].filter(a => a.getAttribute('href') && a.getAttribute('aria-label')).length`); n != 25 {
		t.Errorf("%d graph nodes are labelled links, want 25", n)
	}

	// Printed, every section shows.
	if _, err := chromedp.Run(ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
	})); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, ctx, `[...document.querySelectorAll('main > section')].map(s => getComputedStyle(s).display).join(',')`); got != "block,block,block,block" {
		t.Errorf("printed sections display %q, want all block", got)
	}
	if got := eval[string](t, ctx, `getComputedStyle(document.getElementById('search-form')).display`); got != "none" {
		t.Errorf("printed search box display %q, want none", got)
	}
}

// visibleDrawn is true when every graph node inside the visible part of the
// graph's scroll area is drawn (large graphs draw only near what is seen).
const visibleDrawn = `(() => {
	const w = document.getElementById('graph-wrap');
	if (!app.layout || !app.graph) return false;
	const have = new Set([...document.querySelectorAll('#graph .node')].map((a) => a.dataset.id));
	let want = 0;
	for (const [id, p] of app.layout.pos) {
		if (p.x < w.scrollLeft || p.x > w.scrollLeft + w.clientWidth || p.y < w.scrollTop || p.y > w.scrollTop + w.clientHeight) continue;
		want++;
		if (!have.has(id)) return false;
	}
	return want > 0;
})()`

// TestLargeGraphDrawsWhatIsSeen: a graph of 501 nodes draws the nodes near
// the visible part of its scroll area, follows scrolling, and draws every
// node when printed.
func TestLargeGraphDrawsWhatIsSeen(t *testing.T) {
	const n = 250
	m := newSynthetic(t, n)
	d := New(m.config())
	d.inject(m.traffic(100))
	d.inject(m.traffic(200))
	base := serve(t, d)
	ctx := browser.New(t, 1280, 800)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/")); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the visible nodes drawn", visibleDrawn, 30*time.Second)
	drawn := eval[int](t, ctx, `document.querySelectorAll('#graph .node').length`)
	if drawn == 0 || drawn >= 2*n+1 {
		t.Errorf("%d of %d nodes drawn at first: want those near the visible part only", drawn, 2*n+1)
	}
	// Scrolled to the far corner, the nodes there are drawn.
	eval[bool](t, ctx, `(() => { const w = document.getElementById('graph-wrap'); w.scrollTo(w.scrollWidth, w.scrollHeight); return true; })()`)
	poll(t, ctx, "the nodes at the bottom drawn after scrolling", visibleDrawn+` && document.getElementById('graph-wrap').scrollTop > 0`, 10*time.Second)
	// A deep link to a node far down scrolls to it, and it is drawn.
	last := eval[string](t, ctx, `app.graph.nodes.map((n) => n.id).filter((id) => app.layout.pos.get(id).y > 5000)[0] || ''`)
	if last == "" {
		t.Fatal("no node below 5,000 px: the layout changed, adjust the test")
	}
	eval[bool](t, ctx, `(() => { document.getElementById('graph-wrap').scrollTo(0, 0); location.hash = '#/graph/' + encodeURIComponent(`+"`"+last+"`"+`); return true; })()`)
	poll(t, ctx, "the deep-linked node drawn", `!!document.querySelector('#graph .node.selected')`, 10*time.Second)
	// Printed, the whole graph is drawn.
	eval[bool](t, ctx, `window.dispatchEvent(new Event('beforeprint')); true`)
	if got := eval[int](t, ctx, `document.querySelectorAll('#graph .node').length`); got != 2*n+1 {
		t.Errorf("printing draws %d nodes, want all %d", got, 2*n+1)
	}
	eval[bool](t, ctx, `window.dispatchEvent(new Event('afterprint')); true`)
	if got := eval[int](t, ctx, `document.querySelectorAll('#graph .node').length`); got >= 2*n+1 {
		t.Errorf("after printing %d nodes stay drawn, want the visible part only", got)
	}
}

// BenchmarkPageLoad measures the page in headless chromium over a mesh of
// 1,000 services (1,000 workloads and proxies calling each other as a binary tree:
// 2,001 graph nodes, 2,000 edges, 2,001 resources): from navigation until the visible graph, the
// edges table and the live status are drawn; then, untimed, the configuration view.
func BenchmarkPageLoad(b *testing.B) {
	n := 1000
	m := newSynthetic(b, n)
	d := New(m.config())
	start, cpu0 := time.Now(), processCPU()
	d.inject(m.traffic(100))
	d.inject(m.traffic(200))
	b.Logf("first state (analysis, affected proxies, JSON) over %d services: %v (CPU %v)", n, time.Since(start), processCPU()-cpu0)
	base := serve(b, d)
	d.mu.Lock()
	b.Logf("api/state %d bytes, api/graph %d bytes", len(d.stateJSON), len(d.graphJSON))
	d.mu.Unlock()
	ctx := browser.New(b, 1366, 768)
	// Loaded: the graph drawn where it is seen (every node in the visible
	// part of its scroll area; the rest is drawn as it is scrolled to),
	// the edges table (its 300 busiest rows and the button for all) and
	// the live status.
	done := visibleDrawn + ` && document.querySelectorAll('#edges tbody tr').length === 301 && document.getElementById('live').textContent.startsWith('Live')`
	var configMs float64
	var cpu, selfCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // let the browser settle
		cpu0, self0 := treeCPU(), processCPU()
		b.StartTimer()
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/")); err != nil {
			b.Fatal(err)
		}
		poll(b, ctx, "the page drawn", done, time.Minute)
		b.StopTimer()
		cpu += treeCPU() - cpu0
		selfCPU += processCPU() - self0
		b.Logf("profile: %s", eval[string](b, ctx, `(() => {
			const r = performance.getEntriesByType('resource').map((e) => e.name.replace(/.*\//, '') + ' ' + Math.round(e.startTime) + '+' + Math.round(e.duration) + 'ms ' + e.transferSize + 'B');
			const n = performance.getEntriesByType('navigation')[0];
			let t = performance.now(); app.layoutKey = null; renderGraph(); const g = performance.now() - t;
			t = performance.now(); renderEdgesTable(); const e = performance.now() - t;
			t = performance.now(); JSON.parse(app.rawGraph); const jg = performance.now() - t;
			const mark = (m) => { const e = performance.getEntriesByName(m)[0]; return e ? Math.round(e.startTime) + 'ms' : 'not yet'; };
			return 'dcl ' + Math.round(n.domContentLoadedEventEnd) + 'ms; graph drawn at ' + mark('mast-graph-drawn') + ', state at ' + mark('mast-state') + '; ' + r.join('; ') + '; drawing the graph again ' + Math.round(g) + 'ms (' + document.querySelectorAll('#graph .node').length + ' nodes), edges table ' + Math.round(e) + 'ms, parsing the graph ' + Math.round(jg) + 'ms; state arrived: ' + !!app.state;
		})()`))
		// Switching to the configuration view draws its 2,001 rows.
		configMs += eval[float64](b, ctx, `(() => { const t = performance.now(); location.hash = '#/config'; route(); return performance.now() - t; })()`)
		b.StartTimer()
	}
	b.ReportMetric(configMs/float64(b.N), "config-view-ms")
	// CPU of the server, the browser's processes and the polling, per
	// load: on a shared machine, the wall time measures the load as much.
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/load")
	b.ReportMetric(float64(selfCPU.Milliseconds())/float64(b.N), "server-cpu-ms/load")
	b.StopTimer()
	if out := os.Getenv("MAST_DASHBOARD_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(out, png, 0o644)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// treeCPU is the CPU time (user + system) used by this process and every
// process under it (the browser's), read from /proc in clock ticks.
func treeCPU() time.Duration {
	parent := map[int]int{}
	ticks := map[int]int64{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		parent[pid], ticks[pid] = ppid, ut+st
	}
	self := os.Getpid()
	var total int64
	for pid, t := range ticks {
		for p := pid; p > 1; p = parent[p] {
			if p == self {
				total += t
				break
			}
		}
	}
	return time.Duration(total) * time.Second / 100 // USER_HZ
}

// processCPU is the CPU time (user + system) this process has used: on a
// shared machine, wall times measure the machine's load as much as the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
