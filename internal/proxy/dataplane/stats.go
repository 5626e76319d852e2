package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/admin"
)

// statsHandler serves /stats/prometheus on Istio's 15090: the Envoy-named
// proxy stats and Istio's standard metrics. It changes nothing and reveals
// no secrets, so it may listen where Prometheus can reach it. ?filter=
// keeps the families whose name matches, as on the admin port
// (admin.FamilyFilter); a bad expression is a 400.
func (p *Proxy) statsHandler() http.Handler {
	mux := http.NewServeMux()
	var filters admin.FilterParser
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		keep, ok := filters.FromRequest(w, r)
		if !ok {
			return
		}
		w.Header().Set("content-type", "text/plain; version=0.0.4; charset=utf-8")
		p.writeProxyMetrics(w, keep)
	})
	return mux
}

// writeProxyMetrics writes the proxy's families that keep keeps (nil: all).
func (p *Proxy) writeProxyMetrics(w io.Writer, keep *admin.FamilyFilter) {
	admin.WritePrometheus(w, p, keep)
	if t := p.cfg.Telemetry; t != nil {
		t.WritePrometheusMatching(w, keep.KeepFunc())
	}
	p.tracers.WritePrometheus(w, keep.KeepFunc())
}

// mergedHandler serves /stats/prometheus on Istio's 15020: the
// application's own metrics (scraped where its prometheus.io annotations
// say, Config.AppMetricsURL) followed by the proxy's, so one scrape of the
// pod gets both, as Istio's agent merges them.
func (p *Proxy) mergedHandler() http.Handler {
	client := &http.Client{Timeout: 5 * time.Second}
	var failures atomic.Uint64
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		var app []byte
		if u := p.cfg.AppMetricsURL; u != "" {
			b, err := scrapeApp(r.Context(), client, u)
			if err != nil {
				failures.Add(1)
				p.log.Debug("application metrics", "url", u, "error", err)
			}
			app = b
		}
		w.Header().Set("content-type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(app)
		if len(app) > 0 && app[len(app)-1] != '\n' {
			w.Write([]byte{'\n'})
		}
		p.writeProxyMetrics(w, nil)
		fmt.Fprintf(w, "# TYPE istio_agent_scrape_failures_total counter\nistio_agent_scrape_failures_total{type=\"application\"} %d\n", failures.Load())
	})
	if len(p.cfg.AppProbers) > 0 {
		host, _, _ := net.SplitHostPort(p.cfg.MergedAddr)
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		mux.Handle("/app-health/", appHealthHandler(p.cfg.AppProbers, host))
	}
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, r *http.Request) {
		if p.Ready() {
			fmt.Fprintln(w, "ready")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	return mux
}

// scrapeApp fetches the application's metrics in the text format.
func scrapeApp(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("content-type"); strings.Contains(ct, "openmetrics") {
		return nil, fmt.Errorf("content type %q: want Prometheus text", ct)
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(resp.Body, 32<<20)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// serveOptional serves h on addr until ctx ends. A failure to listen is
// returned; serving errors end the server quietly.
func serveOptional(addr string, h http.Handler) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, ln.Addr().String(), nil
}
