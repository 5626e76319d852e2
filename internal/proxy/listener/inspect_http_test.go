package listener

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestClassifyHTTP(t *testing.T) {
	for _, tc := range []struct {
		in    string
		proto string
		done  bool
	}{
		{"", "", false},
		{"G", "", false},
		{"GET /", "", false},
		{"GET / HTTP/1.", "", false},
		{"GET / HTTP/1.1\r", "", false},
		{"GET / HTTP/1.1\r\n", ProtoHTTP11, true},
		{"POST /a?b=c HTTP/1.0\r\nHost: x\r\n", ProtoHTTP10, true},
		{"GET / HTTP/1.1\nHost: x", ProtoHTTP11, true},
		{"OPTIONS * HTTP/1.1\r\n", ProtoHTTP11, true},
		{"CONNECT a:443 HTTP/1.1\r\n", ProtoHTTP11, true},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ProtoH2C, true},
		{"PRI * HTTP/2.0\r\n", "", false}, // still the preface
		{"PRI * HTTP/1.1\r\n", ProtoHTTP11, true},
		{"\x16\x03\x01\x02\x00", "", true}, // a TLS ClientHello
		{"SSH-2.0-OpenSSH_9.6\r\n", "", true},
		{"hello world\n", "", true},
		{"GET / HTTP/2.0\r\n", "", true},
		{"GET  / HTTP/1.1\r\n", "", true}, // empty target
		{"GET /\x01 HTTP/1.1\r\n", "", true},
		{"\r\nGET / HTTP/1.1\r\n", "", true},
		{" GET", "", true},
		{"*1\r\n$4\r\nPING\r\n", "", true}, // redis
	} {
		proto, done := classifyHTTP([]byte(tc.in))
		if proto != tc.proto || done != tc.done {
			t.Errorf("classifyHTTP(%q) = %q, %v; want %q, %v", tc.in, proto, done, tc.proto, tc.done)
		}
	}
}

// FuzzClassifyHTTP: never panics; a decision never changes when more bytes
// follow; HTTP is only reported for an HTTP/1 request line or the preface.
func FuzzClassifyHTTP(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "\x16\x03\x01", "hello", "GET /x HTTP/1.0\n", ""} {
		f.Add([]byte(s), []byte("more"))
	}
	f.Fuzz(func(t *testing.T, b, more []byte) {
		proto, done := classifyHTTP(b)
		if !done && proto != "" {
			t.Fatalf("undecided with protocol %q", proto)
		}
		if done {
			p2, d2 := classifyHTTP(append(append([]byte{}, b...), more...))
			if !d2 || p2 != proto {
				t.Fatalf("%q decided %q, but with more bytes %q, %v", b, proto, p2, d2)
			}
		}
		if proto == ProtoH2C && !strings.HasPrefix(string(b), h2Preface) {
			t.Fatalf("h2c without the preface: %q", b)
		}
		if proto == ProtoHTTP11 && !strings.Contains(string(b), " HTTP/1.1") {
			t.Fatalf("http/1.1 without a version: %q", b)
		}
	})
}

func TestInspectHTTP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		send    string
		timeout time.Duration
		proto   string
		err     error
		whole   bool // one write instead of byte by byte
	}{
		{"http/1.1 in one write", "GET /path HTTP/1.1\r\nHost: x\r\n\r\n", time.Minute, ProtoHTTP11, nil, true},
		{"http/1.1 in pieces", "GET /path HTTP/1.1\r\nHost: x\r\n\r\n", time.Minute, ProtoHTTP11, nil, false},
		{"h2 preface", h2Preface + "rest", time.Minute, ProtoH2C, nil, false},
		{"not http", "\x16\x03\x01 tls", time.Minute, "", nil, false},
		{"silent client times out", "", 50 * time.Millisecond, "", errInspectTimeout, false},
		{"partial request line times out", "GET /", 50 * time.Millisecond, "", errInspectTimeout, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			go func() {
				if tc.whole {
					client.Write([]byte(tc.send))
					return
				}
				// Byte by byte: the inspector must cope with any split.
				for i := range len(tc.send) {
					if _, err := client.Write([]byte{tc.send[i]}); err != nil {
						return
					}
				}
			}()
			c, proto, err := inspectHTTP(server, tc.timeout)
			if proto != tc.proto || !errors.Is(err, tc.err) {
				t.Fatalf("got %q, %v; want %q, %v", proto, err, tc.proto, tc.err)
			}
			if tc.err != nil {
				return
			}
			// Everything sent is still there for the filter chain.
			got := make([]byte, len(tc.send))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != tc.send {
				t.Fatalf("replayed %q, %v; want %q", got, err, tc.send)
			}
		})
	}
}
