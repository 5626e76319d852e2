package metrics

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// TestWriteMatching: WriteMatching writes exactly Write's families whose
// name keep keeps, byte for byte and in order; nil keeps all.
func TestWriteMatching(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	var l Labels
	b.Build(&telemetry.Record{TCP: true, Authority: "mongo.default.svc.cluster.local:27017"}, &l)
	reg.TCPSeries(&l).Bytes(10, 20)
	b.Build(&telemetry.Record{ResponseCode: 200, Authority: "reviews", DownstreamPeer: &productpage}, &l)
	reg.RecordRequest(&l, 3*time.Millisecond, 10, 20)
	b.Build(&telemetry.Record{ResponseCode: 503, Authority: "reviews", DownstreamPeer: &productpage}, &l)
	reg.RecordRequest(&l, 30*time.Millisecond, 10, 20)
	reg.MessageSeries(&l).Add(1, 2)
	var full bytes.Buffer
	if err := reg.Write(&full); err != nil {
		t.Fatal(err)
	}
	var names []string
	text := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(full.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			cur, _, _ = strings.Cut(rest, " ")
			names = append(names, cur)
		}
		text[cur] += line
	}
	if len(names) < 8 {
		t.Fatalf("only %d families:\n%s", len(names), full.String())
	}
	for _, expr := range []string{"^istio_requests_total$|^istio_request_duration_milliseconds$", "tcp", "overflow", "messages", "nomatch", ""} {
		re := regexp.MustCompile(expr)
		var want strings.Builder
		for _, n := range names {
			if re.MatchString(n) {
				want.WriteString(text[n])
			}
		}
		var got bytes.Buffer
		if err := reg.WriteMatching(&got, re.MatchString); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%q:\n%s\nwant\n%s", expr, got.String(), want.String())
		}
	}
	var all bytes.Buffer
	reg.WriteMatching(&all, nil)
	if all.String() != full.String() {
		t.Error("WriteMatching(nil) differs from Write")
	}
}

// BenchmarkWriteMatching is the standard metrics' part of a sidecar's
// scrape (twelve series: both reporters, three peers, two codes): all
// families, and the two mastd's dashboard asks for.
func BenchmarkWriteMatching(b *testing.B) {
	reg := New(0)
	bld := NewBuilder(Local{Peer: productpage, Principal: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"})
	var l Labels
	for _, svc := range []string{"reviews", "details", "ratings"} {
		peer := telemetry.Peer{Workload: svc + "-v1", Namespace: "default", App: svc, Version: "v1", CanonicalService: svc, CanonicalRevision: "v1"}
		for _, code := range []int{200, 503} {
			bld.Build(&telemetry.Record{Outbound: true, Protocol: "HTTP/1.1", ResponseCode: code, UpstreamCluster: "outbound|9080||" + svc + ".default.svc.cluster.local", UpstreamPeer: &peer}, &l)
			reg.RecordRequest(&l, 5*time.Millisecond, 100, 2000)
			bld.Build(&telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: code, DownstreamPeer: &peer, DownstreamMTLS: true}, &l)
			reg.RecordRequest(&l, 3*time.Millisecond, 0, 18)
		}
	}
	dash := regexp.MustCompile("^(istio_requests_total|istio_request_duration_milliseconds)$")
	for _, c := range []struct {
		name string
		keep func(string) bool
	}{{"all", nil}, {"dashboard", dash.MatchString}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var w bytes.Buffer
			for b.Loop() {
				w.Reset()
				reg.WriteMatching(&w, c.keep)
			}
			b.ReportMetric(float64(w.Len()), "bytes/scrape")
		})
	}
}
