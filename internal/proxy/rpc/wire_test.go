package rpc_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// h2cServer serves handler over plaintext HTTP/2 with net/http, for the
// responses a grpc-go server never sends.
func h2cServer(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func grpcMsg(flag byte, body string) []byte {
	b := make([]byte, 5, 5+len(body))
	b[0] = flag
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

func TestResponses(t *testing.T) {
	var got http.Header
	addr := h2cServer(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		got.Set("Host", r.Host)
		got.Set("X-Method", r.Method)
		got.Set("X-Path", r.URL.Path)
		switch r.URL.Path {
		case "/t.S/NotFound":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(404)
			w.Write([]byte("nope"))
		case "/t.S/Gzip":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Encoding", "gzip")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write(grpcMsg(1, "compressed"))
			w.Header().Set("Grpc-Status", "0")
		case "/t.S/Big":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write(grpcMsg(0, strings.Repeat("b", 2000)))
			w.Header().Set("Grpc-Status", "0")
		case "/t.S/TrailersOnly":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "7")
			w.Header().Set("Grpc-Message", "no%20way %E2%9C%93")
		case "/t.S/NoTrailers":
			w.Header().Set("Content-Type", "application/grpc")
			w.Write(grpcMsg(0, "x"))
		case "/t.S/OK":
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write(grpcMsg(0, "ok"))
			w.Header().Set("Grpc-Status", "0")
		}
	})
	c, err := rpc.Dial("dns:///"+addr, rpc.Options{Authority: "svc.example:8080", MaxRecvMsgSize: 1000, UserAgent: "ua-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	resp, err := c.Invoke(ctx, "/t.S/OK", []byte("req"), rpc.Header{Name: "x-data-bin", Value: "\x00\x01\x02"}, rpc.Header{Name: "x-plain", Value: "v"},
		rpc.Header{Name: "content-type", Value: "text/html"}, rpc.Header{Name: "te", Value: "gzip"})
	if err != nil || string(resp) != "ok" {
		t.Fatalf("OK call: %q, %v", resp, err)
	}
	for k, want := range map[string]string{"Content-Type": "application/grpc", "Te": "trailers", "User-Agent": "ua-test",
		"Host": "svc.example:8080", "X-Method": "POST", "X-Path": "/t.S/OK", "X-Data-Bin": "AAEC", "X-Plain": "v"} {
		if v := strings.Join(got.Values(k), ","); v != want {
			t.Errorf("request header %s: %q, want %q", k, v, want)
		}
	}
	if tm := got.Get("Grpc-Timeout"); !strings.HasSuffix(tm, "u") && !strings.HasSuffix(tm, "m") {
		t.Errorf("grpc-timeout %q, want about an hour in microseconds", tm)
	} else if tm[len(tm)-1] == 'u' && !strings.HasPrefix(tm, "35") {
		t.Errorf("grpc-timeout %q, want about an hour", tm)
	}
	for _, tc := range []struct {
		method string
		code   rpc.Code
		msg    string
	}{
		{"/t.S/NotFound", rpc.Unimplemented, "unexpected HTTP status code received from server: 404 (Not Found); transport: received unexpected content-type \"text/plain\"\ndata: \"nope\""},
		{"/t.S/Gzip", rpc.Unimplemented, "grpc: Decompressor is not installed for grpc-encoding \"gzip\" (mast-proxy's gRPC client takes no compression)"},
		{"/t.S/Big", rpc.ResourceExhausted, "grpc: received message larger than max (2000 vs. 1000)"},
		{"/t.S/TrailersOnly", rpc.PermissionDenied, "no way ✓"},
		{"/t.S/NoTrailers", rpc.Internal, "server closed the stream without sending trailers"},
	} {
		_, err := c.Invoke(context.Background(), tc.method, nil)
		if rpc.CodeOf(err) != tc.code || rpc.MessageOf(err) != tc.msg {
			t.Errorf("%s: %v, want %v %q", tc.method, err, tc.code, tc.msg)
		}
		s, err := c.NewStream(context.Background(), tc.method)
		if err != nil {
			t.Fatal(err)
		}
		s.CloseSend()
		for err == nil {
			_, err = s.Recv()
		}
		if tc.method == "/t.S/NoTrailers" {
			continue // the stream sees the message first, then the same end
		}
		if rpc.CodeOf(err) != tc.code || rpc.MessageOf(err) != tc.msg {
			t.Errorf("stream %s: %v, want %v %q", tc.method, err, tc.code, tc.msg)
		}
	}
}

// TestEncodeTimeout checks grpc-timeout's encoding: the finest unit whose
// value fits in 8 digits, rounded up.
func TestEncodeTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                     "0n",
		0:                                "0n",
		time.Nanosecond:                  "1n",
		99999999 * time.Nanosecond:       "99999999n",
		100000000 * time.Nanosecond:      "100000u",
		100000001 * time.Nanosecond:      "100001u",
		time.Hour:                        "3600000m",
		100000 * time.Second:             "100000S",
		99999999 * time.Minute:           "99999999M",
		100000000 * time.Minute:          "1666667H",
		30*time.Second + time.Nanosecond: "30000001u",
	} {
		if got := rpc.EncodeTimeout(d); got != want {
			t.Errorf("encodeTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestMessageEncoding checks grpc-message's percent-encoding both ways.
func TestMessageEncoding(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"plain text ~":    "plain text ~",
		"100%":            "100%25",
		"é\n":             "%C3%A9%0A",
		"bad \xff utf8":   "bad %EF%BF%BD utf8",
		"déjà vu: 100% ✓": "d%C3%A9j%C3%A0 vu: 100%25 %E2%9C%93",
	} {
		if got := rpc.EncodeMessage(in); got != want {
			t.Errorf("encodeMessage(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"%41%4": "A%4", "%zz": "%zz", "a%2": "a%2", "%E2%9C%93": "✓"} {
		if got := rpc.DecodeMessage(in); got != want {
			t.Errorf("decodeMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
