package propagate

import (
	"net/http"
	"slices"
	"testing"
)

func TestNamesAreCanonical(t *testing.T) {
	for _, n := range Names() {
		if c := http.CanonicalHeaderKey(n); c != n {
			t.Errorf("header %q is not canonical (want %q): a lookup in a server's http.Header would miss it", n, c)
		}
	}
}

func TestCopy(t *testing.T) {
	tests := []struct {
		name string
		src  map[string]string // raw (lower-case) names as a client sends them
		want map[string]string
	}{
		{
			name: "tracing and user headers",
			src: map[string]string{
				"x-request-id": "r1", "x-b3-traceid": "t", "x-b3-spanid": "s", "x-b3-parentspanid": "p",
				"x-b3-sampled": "1", "x-b3-flags": "0", "b3": "t-s-1", "traceparent": "00-a-b-01",
				"tracestate": "k=v", "x-ot-span-context": "ot", "x-datadog-trace-id": "9",
				"x-datadog-parent-id": "8", "x-datadog-sampling-priority": "1", "end-user": "jason",
				"user-agent": "curl/8", "cookie": "session=jason", "sw8": "sw",
			},
			want: map[string]string{
				"X-Request-Id": "r1", "X-B3-Traceid": "t", "X-B3-Spanid": "s", "X-B3-Parentspanid": "p",
				"X-B3-Sampled": "1", "X-B3-Flags": "0", "B3": "t-s-1", "Traceparent": "00-a-b-01",
				"Tracestate": "k=v", "X-Ot-Span-Context": "ot", "X-Datadog-Trace-Id": "9",
				"X-Datadog-Parent-Id": "8", "X-Datadog-Sampling-Priority": "1", "End-User": "jason",
				"User-Agent": "curl/8", "Cookie": "session=jason", "Sw8": "sw",
			},
		},
		{
			name: "others dropped",
			src:  map[string]string{"accept": "text/html", "content-length": "3", "x-forwarded-for": "1.2.3.4", "host": "h"},
			want: map[string]string{},
		},
		{
			name: "empty",
			src:  map[string]string{},
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := http.Header{}
			for k, v := range tt.src {
				src.Set(k, v)
			}
			dst := http.Header{}
			Copy(dst, src)
			if len(dst) != len(tt.want) {
				t.Errorf("got %d headers %v, want %d", len(dst), dst, len(tt.want))
			}
			for k, v := range tt.want {
				if got := dst.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestNamesIsACopy(t *testing.T) {
	a := Names()
	a[0] = "Changed"
	if slices.Contains(Names(), "Changed") {
		t.Fatal("Names exposes the package's list")
	}
}

func BenchmarkCopy(b *testing.B) {
	src := http.Header{}
	for _, k := range []string{"x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "traceparent", "user-agent", "accept", "accept-encoding"} {
		src.Set(k, "v")
	}
	b.ReportAllocs()
	for b.Loop() {
		dst := make(http.Header, 8)
		Copy(dst, src)
	}
}
