package httpproxy

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

// discardWriter is a responseWriter that keeps nothing.
type discardWriter struct{}

func (discardWriter) WriteHead(int, headers.List, int64) error { return nil }
func (discardWriter) Write(p []byte) (int, error)              { return len(p), nil }
func (discardWriter) Flush() error                             { return nil }
func (discardWriter) WriteFlush(p []byte) (int, error)         { return len(p), nil }
func (discardWriter) Finish(headers.List) error                { return nil }
func (discardWriter) Abort()                                   {}
func (discardWriter) Started() bool                            { return false }

// TestResponseHeadWritersDoNotAllocate: the response filters' and the
// telemetry's writers hand the head's list to code that takes its address;
// kept as a parameter, the list would move to the heap on every response.
func TestResponseHeadWritersDoNotAllocate(t *testing.T) {
	h := headers.List{{Name: "content-type", Value: "text/plain"}, {Name: "x-envoy-upstream-service-time", Value: "3"}}
	fw := &filterWriter{responseWriter: discardWriter{}}
	if n := testing.AllocsPerRun(100, func() { fw.WriteHead(200, h, 2) }); n != 0 {
		t.Errorf("filterWriter.WriteHead: %v allocations, want 0", n)
	}
	if fw.h != nil {
		t.Error("filterWriter kept the head after WriteHead")
	}
}

func TestServiceTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0}, {"12", 12 * time.Millisecond}, {"1.5", 1500 * time.Microsecond}, {"", 0}, {"x", 0}, {"-3", -3 * time.Millisecond},
	} {
		if got := serviceTime(c.in); got != c.want {
			t.Errorf("serviceTime(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { serviceTime("12") }); n != 0 {
		t.Errorf("serviceTime: %v allocations, want 0", n)
	}
}

// TestResetKeepsHeadCopy: the pooled request state keeps the array of
// the telemetry's response-head copy and nothing else of the last request.
func TestResetKeepsHeadCopy(t *testing.T) {
	var req dsRequest
	req.tel.respHdr = make(headers.List, 3, 16)
	req.tel.finish, req.tel.grpc = true, true
	req.tel.rec.ResponseCode = 200
	clear(req.tel.respHdr)
	req.tel.respHdr = req.tel.respHdr[:0] // as endTelemetry leaves it
	req.reset()
	next := &req
	if cap(next.tel.respHdr) != 16 || len(next.tel.respHdr) != 0 {
		t.Errorf("respHdr len %d cap %d, want 0 and 16", len(next.tel.respHdr), cap(next.tel.respHdr))
	}
	if next.tel.finish || next.tel.grpc || next.tel.rec.ResponseCode != 0 {
		t.Error("the last request's telemetry leaked into the next")
	}
	ts := &next.tel
	h := headers.List{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}
	if n := testing.AllocsPerRun(100, func() { ts.respHdr = append(ts.respHdr[:0], h...) }); n != 0 {
		t.Errorf("copying a response head into the recycled array: %v allocations, want 0", n)
	}
}

// TestRequestStateReset: a pooled request state keeps only its buffers
// (the body's, the telemetry's response-head copy) for the next request.
func TestRequestStateReset(t *testing.T) {
	r := &dsRequest{method: "GET", target: "/", header: headers.List{{Name: "a", Value: "b"}}, contentLength: 3, remote: "10.0.0.1",
		bodyBuf: make([]byte, 0, 64), tel: telState{respHdr: make(headers.List, 2, 8)}}
	r.up.Path = "/"
	r.tb.st = &streamTimer{}
	// runFilters relies on a cleared filter state (no Reset of its own).
	r.fr.Flags, r.fr.Details, r.fr.Path = filter.FlagFaultAbort, "fault", "/"
	r.reset()
	want := dsRequest{bodyBuf: r.bodyBuf, tel: telState{respHdr: r.tel.respHdr}}
	if !reflect.DeepEqual(r, &want) {
		t.Fatalf("after reset: %+v", r)
	}
	if cap(r.bodyBuf) != 64 || cap(r.tel.respHdr) != 8 || len(r.tel.respHdr) != 0 {
		t.Fatalf("buffers not kept: body cap %d, head copy len %d cap %d", cap(r.bodyBuf), len(r.tel.respHdr), cap(r.tel.respHdr))
	}
}

// TestTelWriterCountsWriteFlush: the telemetry's writer counts the bytes
// of a streamed body's chunks (WriteFlush) as it does Write's.
func TestTelWriterCountsWriteFlush(t *testing.T) {
	req := &dsRequest{}
	tw := &telWriter{responseWriter: discardWriter{}, req: req}
	tw.Write([]byte("abc"))
	tw.WriteFlush([]byte("defg"))
	if got := req.tel.rec.BytesSent; got != 7 {
		t.Fatalf("BytesSent %d, want 7", got)
	}
}

// serviceTimeStrconv is serviceTime as it was before its digit loop.
func serviceTimeStrconv(v string) time.Duration {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	if d, err := time.ParseDuration(v + "ms"); err == nil {
		return d
	}
	return 0
}

// FuzzServiceTime: serviceTime reads what strconv and time read
// (x-envoy-upstream-service-time comes from the upstream).
func FuzzServiceTime(f *testing.F) {
	for _, s := range []string{"0", "12", "007", "+5", "-3", "1.5", "", "x", "1_000", "١٢", "999999999999999999",
		"9999999999999999999", "9223372036854775807", "9223372036854775808", "12a", " 12", "1e3", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := serviceTime(v), serviceTimeStrconv(v); got != want {
			t.Fatalf("serviceTime(%q) = %v, strconv reads %v", v, got, want)
		}
	})
}

// TestUpstreamPrincipalFollowsPeer: the principal the request state keeps
// from response to response is the one of the peer each response names.
func TestUpstreamPrincipalFollowsPeer(t *testing.T) {
	s := &Server{Telemetry: reporter.New(reporter.Config{Local: telemetry.Peer{Workload: "client", Namespace: "default", ServiceAccount: "client"}})}
	hcm := &xdsparse.HTTPManager{}
	var req dsRequest
	for i, sa := range []string{"a", "a", "b", "", "b", "a", ""} {
		req.reset()
		w := s.startTelemetry(&req, discardWriter{}, hcm, time.Now())
		var h headers.List
		want := ""
		if sa != "" {
			p := telemetry.Peer{Workload: sa, Namespace: "ns", ServiceAccount: sa}
			h = headers.List{{Name: peer.HeaderMetadata, Value: peer.Encode(&p)}}
			want = "spiffe://cluster.local/ns/ns/sa/" + sa
		}
		if err := w.WriteHead(200, h, 0); err != nil {
			t.Fatal(err)
		}
		if got := req.tel.rec.UpstreamPrincipal; got != want {
			t.Errorf("response %d from %q: upstream principal %q, want %q", i, sa, got, want)
		}
	}
}
