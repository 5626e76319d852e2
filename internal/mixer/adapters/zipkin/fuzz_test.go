package zipkin

import (
	"encoding/hex"
	"testing"
)

// FuzzSpan: trace and span IDs come from request headers the proxies
// report (x-b3-*), so any strings: a span is built or refused, never a
// panic, and what is built carries IDs of the right width in hex.
func FuzzSpan(f *testing.F) {
	for _, s := range [][3]string{
		{"463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0020000000000001"},
		{"463ac35c9f6413ad", "b2fb4a1d1a96d312", ""},
		{"0", "1", "2"},
		{"zz", "", ""},
		{"00000000000000000000000000000000", "0000000000000000", ""},
		{"463ac35c9f6413ad48485a3953bb612400", "a2fb4a1d1a96d3120", "x"},
	} {
		f.Add(s[0], s[1], s[2], true)
	}
	h := &Handler{bound: 1 << 63, sample: true}
	f.Fuzz(func(t *testing.T, trace, id, parent string, client bool) {
		in := span(trace, id, parent, client, 200)
		in.Fields["rewrite_client_span_id"] = client
		s, ok := h.span(in)
		if !ok {
			return
		}
		for _, x := range []struct {
			v     string
			sizes []int
		}{{s.TraceID, []int{16, 32}}, {s.ID, []int{16}}} {
			if _, err := hex.DecodeString(x.v); err != nil || (len(x.v) != x.sizes[0] && len(x.v) != x.sizes[len(x.sizes)-1]) {
				t.Fatalf("ID %q from (%q, %q)", x.v, trace, id)
			}
		}
	})
}
