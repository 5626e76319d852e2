package http1

import (
	"bufio"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// TestPatchedHeads: a head that is the last head with lines replaced is
// read from those lines alone (readPatched) when it has as many lines and
// at most maxPatched of them changed, and line by line otherwise; either
// way it reads as on a fresh Reader: the same head, the same error, the
// same body. Unchanged fields keep the last head's strings.
func TestPatchedHeads(t *testing.T) {
	peer := "X-Envoy-Peer-Metadata: " + strings.Repeat("m", 300) + "\r\n"
	base := "POST /echo HTTP/1.1\r\nHost: h\r\nUser-Agent: ua\r\nX-Request-Id: 0001\r\n" + peer + "Content-Length: 2\r\n\r\nab"
	manyLines := "POST /echo HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("x: 1\r\n", 10) + "Content-Length: 2\r\n\r\nab"
	manyLines9 := strings.Replace(strings.Replace(manyLines, "x: 1", "x: 2", 9), "Host: h", "Host: g", 1)
	for _, c := range []struct {
		name    string
		heads   []string
		patched []bool // read by readPatched, for heads after the first
	}{
		{"request id", []string{base, strings.Replace(base, "0001", "0002", 1), strings.Replace(base, "0001", "0003", 1)}, []bool{true, true}},
		{"longer, then shorter value", []string{base, strings.Replace(base, "0001", "00001234", 1), strings.Replace(base, "0001", "1", 1)}, []bool{true, true}},
		{"two lines", []string{base, strings.Replace(strings.Replace(base, "0001", "0002", 1), "ua", "ub", 1)}, []bool{true}},
		{"first line", []string{base, strings.Replace(base, "/echo", "/echo?id=7", 1), strings.Replace(base, "POST", "PUT", 1)}, []bool{true, true}},
		{"status line and a date", []string{
			"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 01:57:00 GMT\r\nContent-Length: 2\r\n\r\nok",
			"HTTP/1.1 204 No Content\r\nDate: Mon, 07 Dec 2026 01:57:01 GMT\r\nContent-Length: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 01:57:01 GMT\r\nContent-Length: 2\r\n\r\nok",
		}, []bool{true, true}},
		{"content length", []string{base, strings.Replace(base, "Content-Length: 2\r\n\r\nab", "Content-Length: 3\r\n\r\nabc", 1)}, []bool{true}},
		{"chunked", []string{base, strings.Replace(base, "Content-Length: 2\r\n\r\nab", "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", 1)}, []bool{true}},
		{"a second host", []string{base, strings.Replace(base, "User-Agent: ua", "Host: h2", 1)}, []bool{true}},
		{"host renamed", []string{base, strings.Replace(base, "Host: h", "Hostx: h", 1)}, []bool{true}},
		{"connection close", []string{base, strings.Replace(base, "User-Agent: ua", "Connection: close", 1)}, []bool{true}},
		{"expect", []string{base, strings.Replace(base, "User-Agent: ua", "Expect: 100-continue", 1)}, []bool{true}},
		{"HTTP/1.0", []string{base, strings.Replace(base, "HTTP/1.1", "HTTP/1.0", 1)}, []bool{true}},
		{"name's case only", []string{base, strings.Replace(base, "User-Agent", "user-agent", 1), base}, []bool{true, true}},
		{"invalid value", []string{base, strings.Replace(base, "0001", "00\x011", 1)}, []bool{true}},
		{"invalid name", []string{base, strings.Replace(base, "X-Request-Id", "X Request-Id", 1)}, []bool{true}},
		{"folded line", []string{base, strings.Replace(base, "X-Request-Id: 0001", " folded", 1)}, []bool{true}},
		{"invalid method", []string{base, strings.Replace(base, "POST", "P(ST", 1)}, []bool{true}},
		{"bare LF", []string{base, strings.Replace(base, "0001\r\n", "0002\n", 1)}, []bool{false}},
		{"line added", []string{base, strings.Replace(base, "Host: h\r\n", "Host: h\r\nA: b\r\n", 1)}, []bool{false}},
		{"line dropped", []string{base, strings.Replace(base, "User-Agent: ua\r\n", "", 1)}, []bool{false}},
		{"empty line", []string{base, strings.Replace(base, "User-Agent: ua\r\n", "\r\n", 1)}, []bool{false}},
		{"empty lines before", []string{base, "\r\n" + base}, []bool{false}},
		{"eight lines", []string{manyLines, strings.Replace(manyLines, "x: 1", "x: 2", 8)}, []bool{true}},
		{"nine lines", []string{manyLines, manyLines9}, []bool{false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(bufio.NewReader(strings.NewReader(strings.Join(c.heads, ""))), Limits{})
			resp := strings.HasPrefix(c.heads[0], "HTTP/")
			var prev Head
			for i, in := range c.heads {
				var h, fresh Head
				fr := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{})
				read, err := r.readHead(!resp)
				switch {
				case err != nil:
				case resp:
					err = r.response(&h, read)
				default:
					err = r.request(&h, read)
				}
				var errFresh error
				if resp {
					errFresh = fr.ReadResponse(&fresh)
				} else {
					errFresh = fr.ReadRequest(&fresh)
				}
				if fmt.Sprint(err) != fmt.Sprint(errFresh) || !reflect.DeepEqual(h, fresh) {
					t.Fatalf("head %d: %+v, %v; want %+v, %v", i, h, err, fresh, errFresh)
				}
				if i > 0 && (read == readPatched) != c.patched[i-1] {
					t.Errorf("head %d: read %d, want patched %v", i, read, c.patched[i-1])
				}
				if err != nil {
					return
				}
				body, err := io.ReadAll(NewBody(r.Buffered(), &h, resp))
				want, _ := io.ReadAll(NewBody(fr.Buffered(), &fresh, resp))
				if err != nil || string(body) != string(want) {
					t.Fatalf("head %d: body %q, %v; want %q", i, body, err, want)
				}
				if i > 0 && read == readPatched && len(h.Headers) == len(prev.Headers) {
					for k, f := range h.Headers {
						if f == prev.Headers[k] && unsafe.StringData(f.Value) != unsafe.StringData(prev.Headers[k].Value) {
							t.Errorf("head %d: unchanged field %q got a new string", i, f.Name)
						}
					}
				}
				prev = h
			}
		})
	}
}
