package http1

import (
	"bufio"
	"strings"
	"testing"
)

// TestHostAndExpect: the Host count and the first Expect field, which the
// framing pass finds along with Content-Length and Transfer-Encoding.
func TestHostAndExpect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		status int // 0: valid
		expect bool
	}{
		{name: "one host", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nhost: b\r\n\r\n", status: 400},
		{name: "no host in 1.1", in: "GET / HTTP/1.1\r\nX: y\r\n\r\n", status: 400},
		{name: "no host in 1.0", in: "GET / HTTP/1.0\r\n\r\n"},
		{name: "no host, CONNECT", in: "CONNECT a:443 HTTP/1.1\r\n\r\n"},
		{name: "expect 100-continue", in: "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", expect: true},
		{name: "first expect counts", in: "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n", expect: true},
		{name: "first expect counts, other", in: "POST / HTTP/1.1\r\nHost: a\r\nExpect: x\r\nExpect: 100-continue\r\n\r\n"},
		{name: "framing error first", in: "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parse(tc.in)
			if tc.status != 0 {
				if err == nil || StatusOf(err) != tc.status {
					t.Fatalf("err %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Expect100 != tc.expect {
				t.Errorf("Expect100 %v, want %v", h.Expect100, tc.expect)
			}
		})
	}
	// A response's Host and Expect fields mean nothing.
	r := NewReader(bufioOf("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n"), Limits{})
	var h Head
	if err := r.ReadResponse(&h); err != nil || h.Expect100 {
		t.Errorf("response: %v, Expect100 %v", err, h.Expect100)
	}
}

func bufioOf(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
