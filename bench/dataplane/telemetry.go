package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// spanSink is the -telemetry mode's Zipkin collector: it accepts and
// counts span batches, so that tracing costs the proxies what it costs
// with a real collector that keeps up.
type spanSink struct {
	srv     *http.Server
	batches atomic.Int64
}

func (b *bench) startSpanSink() error {
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ServerIP, ZipkinPort))
	if err != nil {
		return fmt.Errorf("span sink: %w", err)
	}
	s := &spanSink{}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.batches.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})}
	go s.srv.Serve(ln)
	b.sink = s
	return nil
}

func (s *spanSink) close() { s.srv.Close() }

// setMastTelemetry switches Mast's telemetry on or off (MastTelemetry) and
// waits until both sidecars hold the new configuration: with it off, their
// listeners carry the stats filter that drops every metric; with it on,
// tracing to the sink instead.
func (b *bench) setMastTelemetry(ctx context.Context, on bool) error {
	if b.mastCfgDir == "" || on == b.telemetryOn {
		return nil
	}
	path := filepath.Join(b.mastCfgDir, "telemetry.yaml")
	if err := os.WriteFile(path+".tmp", []byte(MastTelemetry(on)), 0o644); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, ip := range []string{MastClientIP, MastServerIP} {
		for {
			dump, err := fetch(ctx, "http://"+ip+":15000/config_dump")
			if err == nil && strings.Contains(dump, `"istio.stats"`) != on && strings.Contains(dump, "ZipkinConfig") == on {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("mast sidecar %s: telemetry %v not applied after 60s (%v)", ip, on, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	b.telemetryOn = on
	return nil
}

func fetch(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// TelemetryCost is the -telemetry mode's comparison: Mast's two hops with
// metrics and tracing off and on, against nginx's two hops of the same
// run, per protocol ("" when the mode did not run).
func (r *Report) TelemetryCost() string {
	var b strings.Builder
	for _, proto := range Protocols {
		on := r.find(proto, Path{Peer: Mast, Hops: 2, Telemetry: true}.Name())
		off := r.find(proto, Path{Peer: Mast, Hops: 2}.Name())
		ngx := r.find(proto, Path{Peer: Nginx, Hops: 2}.Name())
		if on == nil || off == nil || on.P50.N == 0 || off.P50.N == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("## Telemetry cost (two hops, fixed rate)\n\n")
			b.WriteString("Off: the Telemetry API disables every standard metric, no tracing. On: Istio's standard metrics, tracing at 1 % to a Zipkin collector (the harness's sink). CPU is both hops' CPU time per request; ratios are against nginx's two hops measured in the same run.\n\n")
			b.WriteString("| protocol | path | p50 ms | p99 ms | CPU µs/request | p50 / nginx | p99 / nginx | CPU / nginx |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		}
		for _, s := range []*Summary{off, on, ngx} {
			if s == nil || s.P50.N == 0 {
				continue
			}
			cpu := s.CPUPer1000Total.Median * 1000 // s per 1,000 requests -> µs per request
			rat := func(a, n float64) string {
				if ngx == nil || n == 0 {
					return "—"
				}
				return fmt.Sprintf("%.2f", a/n)
			}
			var nc, n50, n99 float64
			if ngx != nil {
				nc, n50, n99 = ngx.CPUPer1000Total.Median*1000, ngx.P50.Median, ngx.P99.Median
			}
			fmt.Fprintf(&b, "| %s | %s | %.3f | %.3f | %.1f | %s | %s | %s |\n", proto, s.Path, s.P50.Median, s.P99.Median, cpu,
				rat(s.P50.Median, n50), rat(s.P99.Median, n99), rat(cpu, nc))
		}
		if offCPU := off.CPUPer1000Total.Median; offCPU > 0 {
			fmt.Fprintf(&b, "| %s | telemetry on / off | %.2f | %.2f | %.2f | | | |\n", proto, on.P50.Median/off.P50.Median,
				on.P99.Median/off.P99.Median, on.CPUPer1000Total.Median/offCPU)
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
