package metrics

import (
	"time"
	"unsafe"
)

// SeriesMemo is a caller's memo of the HTTP series it recorded last: its
// registry, the series and the standard labels it was recorded with. A
// caller keeps one per request state, across requests (one request at a
// time uses it), and passes it to RecordRequestMemo.
//
// Consecutive requests on a connection usually have the same labels, and
// most of their strings are the very same strings each time (the peer
// cache's decoded peers, the proxy's own workload, the cluster's name,
// constants), so comparing them with the memo's stops at the pointers and
// costs far less than building the series key (key.go) and hashing it for
// the map. Strings that differ in place (header values) are compared by
// their bytes: the memo never answers for labels that are not equal.
//
// The memo holds the last request's label strings until the next request
// replaces them: at most a few header values (the authority, grpc-status)
// and the head they were sliced from.
type SeriesMemo struct {
	reg *Registry
	s   *httpSeries
	std [NumLabels]string
}

// RecordRequestMemo is RecordRequest, answered from m when l has no custom
// dimensions and names the series m holds (nil m: RecordRequest).
func (r *Registry) RecordRequestMemo(l *Labels, m *SeriesMemo, d time.Duration, requestBytes, responseBytes int64) {
	if m == nil || (l.cfg != nil && len(l.cfg.Custom) > 0) {
		r.RecordRequest(l, d, requestBytes, responseBytes)
		return
	}
	s := m.s
	if s == nil || m.reg != r || !sameStd(&m.std, &l.Std) {
		// A label set without custom dimensions has one key whatever
		// its Config (key.go), so the series found stands for l.Std.
		if s = lookup(r, r.http, l, newHTTPSeries); s == nil {
			*m = SeriesMemo{}
			return
		}
		m.reg, m.s, m.std = r, s, l.Std
	}
	s.record(d, requestBytes, responseBytes)
}

// sameStd reports whether a and b are the same labels. When every string
// of one is the very string of the other (pointer and length), which a
// repeated label set mostly is, one compare of the arrays' string headers
// (400 bytes) answers. Else each label is compared, by its pointer first
// and by its bytes when the pointers differ. (The strings a memo holds
// stay alive, so equal pointers and lengths are equal bytes.)
func sameStd(a, b *[NumLabels]string) bool {
	const n = int(unsafe.Sizeof(*a))
	if string(unsafe.Slice((*byte)(unsafe.Pointer(a)), n)) == string(unsafe.Slice((*byte)(unsafe.Pointer(b)), n)) {
		return true
	}
	for i := range a {
		x, y := a[i], b[i]
		if len(x) != len(y) || unsafe.StringData(x) != unsafe.StringData(y) && x != y {
			return false
		}
	}
	return true
}
