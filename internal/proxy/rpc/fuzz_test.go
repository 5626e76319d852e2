package rpc

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// parseBlock reads "name: value" lines into a header list (the fuzzer's
// way of writing a header block).
func parseBlock(s string) headers.List {
	var l headers.List
	for line := range strings.SplitSeq(s, "\n") {
		name, value, _ := strings.Cut(line, ": ")
		if name != "" {
			l = append(l, headers.Field{Name: name, Value: value})
		}
	}
	return l
}

// FuzzResponse runs a response (HTTP status, head block, body, trailer
// block) from an untrusted server through the client's response side:
// checkHead, metadata, readMsg until the end, trailerStatus. Every
// failure must be a *Status (never a panic), and no message longer than
// the limit is returned.
func FuzzResponse(f *testing.F) {
	msg := func(flag byte, n int) []byte {
		return append([]byte{flag, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'x'}, n)...)
	}
	f.Add(200, "content-type: application/grpc", msg(0, 3), "grpc-status: 0")
	f.Add(200, "content-type: application/grpc+proto\ngrpc-status: 5\ngrpc-message: not%20found%E2%9C%93", []byte{}, "")
	f.Add(200, "content-type: application/grpc\ngrpc-encoding: gzip", msg(1, 4), "grpc-status: 0")
	f.Add(200, "content-type: application/grpc", msg(0, 100), "grpc-status: 0")
	f.Add(200, "content-type: application/grpc", msg(2, 1), "grpc-status: 0")
	f.Add(200, "content-type: application/grpc", []byte{0, 0, 0}, "grpc-status: 0")
	f.Add(200, "content-type: application/grpc", msg(0, 2), "grpc-status: x")
	f.Add(200, "content-type: application/grpc\nx-bin: AAEC", msg(0, 0), "grpc-status: 13\ngrpc-message: %zz%4\ny-bin: !!")
	f.Add(404, "content-type: text/html", []byte("<html>not found</html>"), "")
	f.Add(503, "", []byte{}, "")
	f.Fuzz(func(t *testing.T, status int, head string, body []byte, trailer string) {
		const max = 64
		hdr := parseBlock(head)
		if st := checkHead(status, hdr); st != nil {
			st = readNonGRPC(bytes.NewReader(body), st)
			if st.Code == OK {
				t.Fatalf("non-gRPC response with status OK: %v", st)
			}
			return
		}
		if _, st := headMetadata(hdr); st != nil && st.Code != Internal {
			t.Fatalf("metadata error %v", st)
		}
		r := bytes.NewReader(body)
		for {
			m, err := readMsg(r, max, hdr.Value("grpc-encoding"))
			if err == io.EOF {
				break
			}
			if err != nil {
				var s *Status
				if !errors.As(err, &s) {
					t.Fatalf("readMsg error %T %v, want *Status", err, err)
				}
				return
			}
			if len(m) > max {
				t.Fatalf("message of %d bytes past the limit %d", len(m), max)
			}
		}
		tr := parseBlock(trailer)
		if len(tr) == 0 {
			tr = hdr
		}
		st, _ := trailerStatus(tr)
		if st == nil {
			t.Fatal("no status")
		}
		if enc := encodeMessage(st.Message); decodeMessage(enc) != st.Message && strings.ToValidUTF8(st.Message, "\uFFFD") == st.Message {
			t.Fatalf("grpc-message %q does not survive encode/decode (%q)", st.Message, enc)
		}
	})
}
