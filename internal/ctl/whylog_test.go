package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// scanHops, shared by the local mesh's log files and Kubernetes' pod logs,
// keeps the access log lines (TEXT and JSON) that keep accepts and skips
// the proxy's other output.
func TestScanHops(t *testing.T) {
	text, err := accesslog.ParseText(accesslog.IstioTextFormat)
	if err != nil {
		t.Fatal(err)
	}
	js, err := accesslog.ParseJSON(accesslog.IstioJSONFormat)
	if err != nil {
		t.Fatal(err)
	}
	line := func(f *accesslog.Format, path string) string {
		rec := &telemetry.Record{Start: time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC), Protocol: "HTTP/1.1", Method: "GET", Path: path, ResponseCode: 503}
		return string(f.Append(nil, rec))
	}
	log := strings.Join([]string{
		"time=2026-12-05T23:00:00Z level=INFO msg=\"xDS connected\"",
		line(text, "/kept-text"),
		"",
		line(js, "/kept-json"),
		line(text, "/dropped"),
		"{not json at all",
	}, "\n")
	px := proxy{Name: "productpage-v1"}
	out, err := scanHops([]hopEntry{{Proxy: proxy{Name: "earlier"}}}, strings.NewReader(log), px, func(e *accesslog.Entry) bool { return e.Path != "/dropped" })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range out[1:] {
		got = append(got, h.Proxy.Name+" "+h.Entry.Path)
	}
	if len(out) != 3 || out[0].Proxy.Name != "earlier" || strings.Join(got, ",") != "productpage-v1 /kept-text,productpage-v1 /kept-json" {
		t.Errorf("scanHops kept %v (of %d)", got, len(out))
	}
}
