package tracing

import (
	"encoding/hex"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

const (
	tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid = "00f067aa0ba902b7"
)

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        headers.List
		ok       bool
		decision Decision
		trace    string
		b3single bool
	}{
		{"traceparent sampled", headers.List{{Name: "traceparent", Value: "00-" + tid + "-" + sid + "-01"}}, true, Sampled, tid, false},
		{"traceparent not sampled", headers.List{{Name: "traceparent", Value: "00-" + tid + "-" + sid + "-00"}}, true, NotSampled, tid, false},
		{"traceparent zero trace", headers.List{{Name: "traceparent", Value: "00-00000000000000000000000000000000-" + sid + "-01"}}, false, Undecided, "", false},
		{"traceparent version ff", headers.List{{Name: "traceparent", Value: "ff-" + tid + "-" + sid + "-01"}}, false, Undecided, "", false},
		{"traceparent v00 with extra", headers.List{{Name: "traceparent", Value: "00-" + tid + "-" + sid + "-01-xx"}}, false, Undecided, "", false},
		{"traceparent future version", headers.List{{Name: "traceparent", Value: "01-" + tid + "-" + sid + "-01-xx"}}, true, Sampled, tid, false},
		{"b3 single", headers.List{{Name: "b3", Value: tid + "-" + sid + "-1-" + sid}}, true, Sampled, tid, true},
		{"b3 single no state", headers.List{{Name: "b3", Value: tid + "-" + sid}}, true, Undecided, tid, true},
		{"b3 single 64-bit", headers.List{{Name: "b3", Value: tid[16:] + "-" + sid + "-0"}}, true, NotSampled, "0000000000000000" + tid[16:], true},
		{"b3 deny only", headers.List{{Name: "b3", Value: "0"}}, false, NotSampled, "", true},
		{"b3 bad state", headers.List{{Name: "b3", Value: tid + "-" + sid + "-x"}}, false, Undecided, "", false},
		{"b3 multi", headers.List{{Name: "x-b3-traceid", Value: tid}, {Name: "x-b3-spanid", Value: sid}, {Name: "x-b3-sampled", Value: "1"}}, true, Sampled, tid, false},
		{"b3 multi debug", headers.List{{Name: "x-b3-traceid", Value: tid}, {Name: "x-b3-spanid", Value: sid}, {Name: "x-b3-flags", Value: "1"}}, true, Sampled, tid, false},
		{"b3 multi sampled only", headers.List{{Name: "x-b3-sampled", Value: "0"}}, false, NotSampled, "", false},
		{"b3 multi bad span", headers.List{{Name: "x-b3-traceid", Value: tid}, {Name: "x-b3-spanid", Value: "zz"}}, false, Undecided, "", false},
		{"none", headers.List{{Name: "x-request-id", Value: "abc"}}, false, Undecided, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, ok := Extract(tc.h)
			if ok != tc.ok || sc.Decision != tc.decision || sc.B3Single != tc.b3single {
				t.Fatalf("Extract = %+v, %v; want ok %v decision %v b3single %v", sc, ok, tc.ok, tc.decision, tc.b3single)
			}
			if tc.trace != "" && hex.EncodeToString(sc.TraceID[:]) != tc.trace {
				t.Fatalf("trace ID %x, want %s", sc.TraceID, tc.trace)
			}
		})
	}
}

func TestInjectRoundTrip(t *testing.T) {
	var span, parent SpanContext
	hex.Decode(span.TraceID[:], []byte(tid))
	hex.Decode(span.SpanID[:], []byte("1111111111111111"))
	hex.Decode(parent.SpanID[:], []byte(sid))
	span.TraceState = "vendor=x"
	span.B3Single = true
	h := headers.List{{Name: "x-b3-flags", Value: "1"}}
	Inject(&h, &span, &parent, true)
	want := map[string]string{
		"traceparent": "00-" + tid + "-1111111111111111-01", "tracestate": "vendor=x",
		"x-b3-traceid": tid, "x-b3-spanid": "1111111111111111", "x-b3-parentspanid": sid, "x-b3-sampled": "1",
		"b3": tid + "-1111111111111111-1-" + sid,
	}
	for k, v := range want {
		if got := h.Value(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if h.Has("x-b3-flags") {
		t.Errorf("x-b3-flags kept")
	}
	for _, only := range []string{"traceparent", "b3", "x-b3-traceid"} {
		var in headers.List
		for _, f := range h {
			if f.Name == only || only == "x-b3-traceid" && (f.Name == "x-b3-spanid" || f.Name == "x-b3-sampled") {
				in = append(in, f)
			}
		}
		got, ok := Extract(in)
		if !ok || got.TraceID != span.TraceID || got.SpanID != span.SpanID || got.Decision != Sampled {
			t.Errorf("from %s only: %+v %v", only, got, ok)
		}
	}
	Inject(&h, &span, nil, false)
	if h.Has("x-b3-parentspanid") || h.Value("x-b3-sampled") != "0" || h.Value("traceparent")[53:] != "00" {
		t.Errorf("unsampled root: %v", h)
	}
}

func TestDecide(t *testing.T) {
	c := &Config{RandomSampling: 1, ClientSampling: 100, OverallSampling: 100}
	roll := func(v float64) func() float64 { return func() float64 { return v } }
	if !c.Decide(Sampled, nil, roll(99)) || c.Decide(NotSampled, nil, roll(0)) {
		t.Fatal("an incoming decision is not honoured")
	}
	if c.Decide(Undecided, nil, roll(1)) || !c.Decide(Undecided, nil, roll(0.5)) {
		t.Fatal("random sampling at 1 %")
	}
	client := headers.List{{Name: "x-client-trace-id", Value: "abc"}}
	if !c.Decide(Undecided, client, roll(99)) {
		t.Fatal("x-client-trace-id is not traced at client_sampling 100")
	}
	c.OverallSampling = 0
	if c.Decide(Undecided, client, roll(0)) {
		t.Fatal("overall_sampling 0 traced")
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{"00-" + tid + "-" + sid + "-01", tid + "-" + sid + "-1-" + sid, "d", tid[16:] + "-" + sid, "", "00-"} {
		f.Add(s, s, tid, sid, "1")
	}
	f.Fuzz(func(t *testing.T, tp, b3, xt, xs, samp string) {
		h := headers.List{{Name: "traceparent", Value: tp}, {Name: "b3", Value: b3}, {Name: "x-b3-traceid", Value: xt},
			{Name: "x-b3-spanid", Value: xs}, {Name: "x-b3-sampled", Value: samp}}
		sc, ok := Extract(h)
		if ok && !sc.Valid() {
			t.Fatalf("ok with an invalid context: %+v", sc)
		}
		if ok {
			var out headers.List
			Inject(&out, &sc, nil, sc.Decision == Sampled)
			back, ok2 := Extract(out)
			if !ok2 || back.TraceID != sc.TraceID || back.SpanID != sc.SpanID {
				t.Fatalf("round trip %+v -> %+v", sc, back)
			}
		}
	})
}
