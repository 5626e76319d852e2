package http1

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// headSeq is the state FuzzHeadWriter's edits change: the arguments of
// the next head written.
type headSeq struct {
	req                  bool
	method, target, host string
	minor, status        int
	fields               headers.List
	contentLength        int64
	chunked, close       bool
}

// edit changes s by one edit: op picks it, x and y say where and what.
// The field list is edited in place, as a caller reuses its list.
func (s *headSeq) edit(op, x, y byte) {
	names := []string{"a", "x-request-id", "host", "content-length", "transfer-encoding", "", ":path", "connection", "x-envoy-peer-metadata"}
	val := func() string { return strings.Repeat(string(rune('a'+y%26)), int(y%40)) }
	n := len(s.fields)
	switch op % 11 {
	case 0: // a value, a new string
		if n > 0 {
			s.fields[int(x)%n].Value = val()
		}
	case 1: // a value, the same bytes in a new string
		if n > 0 {
			s.fields[int(x)%n].Value = strings.Clone(s.fields[int(x)%n].Value)
		}
	case 2: // a name
		if n > 0 {
			s.fields[int(x)%n].Name = names[int(y)%len(names)]
		}
	case 3: // a field added
		s.fields = slices.Insert(s.fields, int(x)%(n+1), headers.Field{Name: names[int(y)%len(names)], Value: val()})
	case 4: // a field dropped
		if n > 0 {
			s.fields = slices.Delete(s.fields, int(x)%n, int(x)%n+1)
		}
	case 5: // the content length
		s.contentLength = int64(y) - 2
	case 6: // chunked, close
		s.chunked, s.close = x&1 != 0, x&2 != 0
	case 7: // the version, the status
		s.minor, s.status = int(x&1), 100+int(y)*2
	case 8: // request or response
		s.req = !s.req
	case 9: // the request line
		switch x % 3 {
		case 0:
			s.method = []string{"GET", "POST", "PUT"}[y%3]
		case 1:
			s.target = "/" + val()
		default:
			s.host = val()
		}
	case 10: // the same head again
	}
}

// FuzzHeadWriter: a HeadWriter's heads are AppendRequestHead's and
// AppendResponseHead's, byte for byte, along any sequence of heads on one
// connection, each an edit of the one before.
func FuzzHeadWriter(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 1, 5, 1, 0, 0, 3, 1, 7, 10, 0, 0, 2, 0, 3})
	f.Add([]byte{8, 0, 0, 10, 0, 0, 0, 2, 39, 0, 2, 1, 7, 1, 50, 6, 3, 0, 10, 0, 0})
	f.Add([]byte{3, 9, 8, 9, 1, 4, 9, 2, 5, 4, 0, 0, 5, 0, 0, 2, 1, 2, 10, 0, 0})
	f.Add([]byte{8, 0, 0, 10, 0, 0, 6, 2, 0, 6, 0, 0, 5, 3, 0, 6, 1, 0, 0, 1, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 300 {
			return
		}
		s := headSeq{req: true, method: "GET", target: "/", host: "h", minor: 1, status: 200, contentLength: -1,
			fields: headers.List{{Name: "a", Value: "1"}, {Name: "x-request-id", Value: "0001"}, {Name: "host", Value: "h"}}}
		var w HeadWriter
		for i := 0; i+2 < len(ops); i += 3 {
			s.edit(ops[i], ops[i+1], ops[i+2])
			var got, want []byte
			if s.req {
				got = w.Request(s.method, s.target, s.host, s.fields, s.contentLength, s.chunked)
				want = AppendRequestHead(nil, s.method, s.target, s.host, s.fields, s.contentLength, s.chunked)
			} else {
				got = w.Response(s.minor, s.status, s.fields, s.contentLength, s.chunked, s.close)
				want = AppendResponseHead(nil, s.minor, s.status, s.fields, s.contentLength, s.chunked, s.close)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("head %d:\n%q\nwant\n%q", i/3, got, want)
			}
		}
	})
}

// TestHeadWriterAgain: a head made of the last head's strings is the last
// head's bytes again, not written; a changed field is written in its
// place, the same length or not.
func TestHeadWriterAgain(t *testing.T) {
	h := headers.List{{Name: "user-agent", Value: "ua"}, {Name: "x-request-id", Value: "0001"}, {Name: "x-peer", Value: strings.Repeat("m", 300)}}
	var w HeadWriter
	first := w.Request("POST", "/echo", "h", h, 2, false)
	p := &first[0]
	if again := w.Request("POST", "/echo", "h", h, 2, false); &again[0] != p {
		t.Error("the same head was written again")
	}
	for _, id := range []string{"0002", "00000003", "4"} {
		h[1].Value = id
		got := w.Request("POST", "/echo", "h", h, 2, false)
		if want := AppendRequestHead(nil, "POST", "/echo", "h", h, 2, false); !bytes.Equal(got, want) {
			t.Fatalf("x-request-id %s: %q, want %q", id, got, want)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		h[1].Value = "0005"
		w.Request("POST", "/echo", "h", h, 2, false)
		h[1].Value = "0006"
		w.Request("POST", "/echo", "h", h, 2, false)
	})
	if allocs != 0 {
		t.Errorf("a changed field: %v allocations, want 0", allocs)
	}
}
