package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// record builds and records rec as a reporter does: the side's custom
// dimensions are evaluated into the label set.
func record(reg *Registry, b *Builder, rec *telemetry.Record) {
	var l Labels
	b.Build(rec, &l)
	reg.Config(SideOf(rec)).FillCustom(rec, b.Local(), &l)
	reg.RecordRequest(&l, time.Millisecond, 1, 1)
}

func mustAttr(t testing.TB, s string) Attr {
	t.Helper()
	a, err := ParseAttr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A server-side configuration removes a label and adds two custom ones; the
// client side keeps Istio's shape. A later configuration change re-shapes
// the series already recorded (what Prometheus sees without a restart).
func TestSideConfigsShapeSeries(t *testing.T) {
	reg := New(0)
	server := NewBuilder(Local{Peer: reviews})
	client := NewBuilder(Local{Peer: productpage})
	srv := &Config{}
	srv.Removed[RequestCount][RequestProtocol] = true
	srv.Custom = []Dimension{{Name: "request_host", Value: mustAttr(t, "request.host")}, {Name: "user", Value: mustAttr(t, "request.headers['x-user']")}}
	srv.Custom[0].In[RequestCount], srv.Custom[1].In[RequestCount] = true, true
	srv.Disabled[RequestSize] = true
	reg.SetSideConfig(Server, srv)

	in := func(user string) *telemetry.Record {
		return &telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage,
			RequestHeaders: headers.List{{Name: "x-user", Value: user}}}
	}
	record(reg, server, in("jason"))
	record(reg, server, in("jason"))
	record(reg, server, &telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage})
	record(reg, client, &telemetry.Record{Outbound: true, Protocol: "HTTP/1.1", ResponseCode: 200,
		UpstreamCluster: "outbound|9080||reviews.default.svc.cluster.local", UpstreamPeer: &reviews,
		RequestHeaders: headers.List{{Name: "x-user", Value: "jason"}}})

	fams := parse(t, reg)
	byReporter := map[string][]map[string]string{}
	for _, m := range fams["istio_requests_total"].GetMetric() {
		lm := labelMap(m)
		lm["value"] = time.Duration(m.GetCounter().GetValue()).String()
		byReporter[lm["reporter"]] = append(byReporter[lm["reporter"]], lm)
	}
	if len(byReporter["destination"]) != 2 || len(byReporter["source"]) != 1 {
		t.Fatalf("series by reporter: %v", byReporter)
	}
	users := map[string]string{}
	for _, lm := range byReporter["destination"] {
		if _, ok := lm["request_protocol"]; ok {
			t.Error("removed label request_protocol written on the server side")
		}
		if lm["request_host"] != "reviews:9080" {
			t.Errorf("request_host = %q", lm["request_host"])
		}
		users[lm["user"]] = lm["value"]
	}
	if users["jason"] != "2ns" || users["unknown"] != "1ns" {
		t.Errorf("user dimension (count as ns): %v", users)
	}
	src := byReporter["source"][0]
	if src["request_protocol"] != "http" || src["user"] != "" || src["request_host"] != "" {
		t.Errorf("client side reshaped by the server's configuration: %v", src)
	}
	if rb := fams["istio_request_bytes"].GetMetric(); len(rb) != 1 || labelMap(rb[0])["reporter"] != "source" {
		t.Errorf("istio_request_bytes disabled on the server side only: %v", rb)
	}
	if d := fams["istio_request_duration_milliseconds"].GetMetric(); len(d) != 2 {
		t.Errorf("duration: custom dimensions leaked into a metric not carrying them: %d series", len(d))
	}

	// Back to the default: the same series are written in Istio's shape.
	reg.SetSideConfig(Server, nil)
	fams = parse(t, reg)
	for _, m := range fams["istio_requests_total"].GetMetric() {
		lm := labelMap(m)
		if lm["request_protocol"] == "" || lm["user"] != "" {
			t.Errorf("after reset: %v", lm)
		}
	}
	if len(fams["istio_request_bytes"].GetMetric()) != 2 {
		t.Error("istio_request_bytes not back on the server side")
	}
}

func TestParseAttr(t *testing.T) {
	rec := &telemetry.Record{Outbound: true, Method: "GET", Path: "/p?q=1", Authority: "a:80", ResponseCode: 404,
		UpstreamHost: "10.0.0.1:9080", DownstreamRemote: "[::1]:5000", UpstreamPeer: &reviews, UpstreamCluster: "outbound|9080||r",
		RequestHeaders: headers.List{{Name: "x-user", Value: "u"}}, ResponseHeaders: headers.List{{Name: "server", Value: "s"}}}
	local := &Local{Principal: "spiffe://me"}
	for in, want := range map[string]string{
		"'lit'": "lit", `"lit"`: "lit", "request.host": "a:80", "request.method": "GET", "request.url_path": "/p",
		"request.headers['X-User']": "u", `request.headers["x-user"]`: "u", "response.headers['server']": "s",
		"response.code": "404", "destination.port": "9080", "destination.address": "10.0.0.1", "source.address": "::1",
		"source.port": "5000", "source.principal": "spiffe://me", "upstream_peer.app": "reviews", "upstream_peer.version": "v2",
		"upstream_peer.labels['app'].value": "reviews", "upstream_peer.labels['service.istio.io/canonical-name']": "reviews",
		"downstream_peer.workload": "", "xds.cluster_name": "outbound|9080||r", "connection.mtls": "false",
		"request.headers['absent']": "",
	} {
		a, err := ParseAttr(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := a.Eval(rec, local); got != want {
			t.Errorf("%s = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "request", "request.size", "request.headers[x]", "request.headers['']", "upstream_peer.labels['team']",
		"'a'b'", "foo.bar", "request.headers['x'", "upstream_peer.secret"} {
		if _, err := ParseAttr(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseAttr(f *testing.F) {
	for _, s := range []string{"'x'", "request.host", "request.headers['x-user']", "upstream_peer.labels['app'].value", "response.code", "downstream_peer.app", "[']", "a['"} {
		f.Add(s)
	}
	rec := &telemetry.Record{Authority: "a", DownstreamPeer: &productpage, UpstreamPeer: &reviews, DownstreamRemote: "1.2.3.4:5"}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAttr(s)
		if err != nil {
			return
		}
		a.Eval(rec, &Local{})
	})
}

// Custom dimensions cost no allocation once their label set is known.
func TestCustomDimensionsDoNotAllocate(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	cfg := &Config{}
	cfg.Custom = []Dimension{{Name: "user", Value: mustAttr(t, "request.headers['x-user']")}, {Name: "port", Value: mustAttr(t, "destination.port")}}
	cfg.Custom[0].In[RequestCount], cfg.Custom[1].In[RequestCount] = true, true
	reg.SetConfig(cfg)
	rec := &telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage,
		DownstreamLocal: "10.0.0.2:9080", RequestHeaders: headers.List{{Name: "x-user", Value: "jason"}}}
	record(reg, b, rec)
	if n := testing.AllocsPerRun(100, func() { record(reg, b, rec) }); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// The receiving proxy names destination_service after its inbound
// cluster's service (Istio's cluster metadata), not the Host header a
// gateway's client sent (127.0.0.1:8080, say).
func TestInboundDestinationServiceFromCluster(t *testing.T) {
	b := NewBuilder(Local{Peer: productpage})
	for _, c := range []struct {
		authority string
		services  []string
		want      string
	}{
		{"127.0.0.1:8080", []string{"productpage.default.svc.cluster.local"}, "productpage.default.svc.cluster.local"},
		{"pp-alias:9080", []string{"productpage.default.svc.cluster.local", "pp-alias.default.svc.cluster.local"}, "pp-alias.default.svc.cluster.local"},
		{"127.0.0.1", []string{"a.default.svc.cluster.local", "b.default.svc.cluster.local"}, "a.default.svc.cluster.local"},
		{"productpage:9080", nil, "productpage.default.svc.cluster.local"},
	} {
		var l Labels
		b.Build(&telemetry.Record{Authority: c.authority, ClusterServices: c.services, DownstreamPeer: &reviews}, &l)
		if got := l.Std[DestinationService]; got != c.want {
			t.Errorf("%s %v: destination_service %q, want %q", c.authority, c.services, got, c.want)
		}
		if got := l.Std[DestinationServiceNamespace]; got != "default" {
			t.Errorf("%s: destination_service_namespace %q", c.authority, got)
		}
	}
}

// BenchmarkRecordCustom is BenchmarkRecord with two custom dimensions (a
// request header and the destination port) on every HTTP metric.
func BenchmarkRecordCustom(b *testing.B) {
	reg := New(0)
	bl := NewBuilder(Local{Peer: reviews})
	cfg := &Config{}
	cfg.Custom = []Dimension{{Name: "user", Value: mustAttr(b, "request.headers['x-user']")}, {Name: "port", Value: mustAttr(b, "destination.port")}}
	for m := RequestCount; m <= ResponseSize; m++ {
		cfg.Custom[0].In[m], cfg.Custom[1].In[m] = true, true
	}
	reg.SetConfig(cfg)
	rec := &telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage,
		DownstreamLocal: "10.0.0.2:9080", RequestHeaders: headers.List{{Name: "x-user", Value: "jason"}}}
	b.ReportAllocs()
	for b.Loop() {
		record(reg, bl, rec)
	}
}

// There is no bound on custom dimensions (Istio has none): twelve on one
// metric are all written, and recording their known label set still costs
// no allocation.
func TestManyCustomDimensions(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	cfg := &Config{}
	var hdrs headers.List
	for i := range 12 {
		name := fmt.Sprintf("dim_%02d", i)
		cfg.Custom = append(cfg.Custom, Dimension{Name: name, Value: mustAttr(t, "request.headers['x-"+name+"']")})
		cfg.Custom[i].In[RequestCount] = true
		hdrs = append(hdrs, headers.Field{Name: "x-" + name, Value: fmt.Sprint("v", i)})
	}
	reg.SetSideConfig(Server, cfg)
	rec := &telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage, RequestHeaders: hdrs}
	record(reg, b, rec)
	if n := testing.AllocsPerRun(100, func() { record(reg, b, rec) }); n != 0 {
		t.Fatalf("%v allocations per request with 12 custom dimensions", n)
	}
	m := parse(t, reg)["istio_requests_total"].GetMetric()
	if len(m) != 1 || m[0].GetCounter().GetValue() != 102 {
		t.Fatalf("series %v", m)
	}
	lm := labelMap(m[0])
	for i := range 12 {
		if got := lm[fmt.Sprintf("dim_%02d", i)]; got != fmt.Sprint("v", i) {
			t.Errorf("dim_%02d = %q", i, got)
		}
	}
	// A thirteenth dimension added later reads "unknown" on the series
	// recorded before it existed.
	cfg2 := &Config{Custom: append(append([]Dimension(nil), cfg.Custom...), Dimension{Name: "late", Value: mustAttr(t, "'x'")})}
	cfg2.Custom[12].In[RequestCount] = true
	reg.SetSideConfig(Server, cfg2)
	if got := labelMap(parse(t, reg)["istio_requests_total"].GetMetric()[0])["late"]; got != "unknown" {
		t.Errorf("late dimension on an old series = %q", got)
	}
}

// FuzzDecodeKey: a key of any bytes decodes without panicking.
func FuzzDecodeKey(f *testing.F) {
	var l Labels
	l.Std[Reporter] = "source"
	f.Add(string(l.appendKey(nil)))
	f.Add("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Fuzz(func(t *testing.T, k string) {
		var d decodedKey
		decodeKey(k, &d)
	})
}
