package rpctest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Dialer connects an rpc.Conn to addr, over TLS with conf when conf is not
// nil (conf names the server "localhost" and carries the client's
// certificate).
type Dialer func(t testing.TB, addr string, conf *tls.Config) rpc.Conn

// Conformance checks the rpc.Conn that dial makes against grpc-go servers:
// unary calls and streams both ways, metadata, large messages, every
// status code with a non-ASCII message, deadlines, cancellation seen by
// the server, server restarts and mTLS.
func Conformance(t *testing.T, dial Dialer) {
	t.Run("Unary", func(t *testing.T) { testUnary(t, dial) })
	t.Run("Health", func(t *testing.T) { testHealth(t, dial) })
	t.Run("Status", func(t *testing.T) { testStatus(t, dial) })
	t.Run("Large", func(t *testing.T) { testLarge(t, dial) })
	t.Run("Stream", func(t *testing.T) { testStream(t, dial) })
	t.Run("ServerStream", func(t *testing.T) { testPush(t, dial) })
	t.Run("Deadline", func(t *testing.T) { testDeadline(t, dial) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, dial) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, dial) })
	t.Run("MTLS", func(t *testing.T) { testMTLS(t, dial) })
}

func testUnary(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	req := []byte("hello \x00 world")
	resp, err := c.Invoke(Ctx(t), Unary, req, rpc.Header{Name: "x-echo", Value: "e1 ~"},
		rpc.Header{Name: "x-bin", Value: "\x00\xff raw"}, rpc.Header{Name: "x-multi", Value: "a"}, rpc.Header{Name: "x-multi", Value: "b"})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if !bytes.Equal(resp, req) {
		t.Fatalf("response %q, want %q", resp, req)
	}
	empty, err := c.Invoke(Ctx(t), Unary, nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty message: %q, %v", empty, err)
	}
	_, err = c.Invoke(Ctx(t), Unary, nil, rpc.Header{Name: "x-bad", Value: "é"})
	if rpc.CodeOf(err) != rpc.Internal {
		t.Errorf("non-ASCII metadata value: %v, want Internal (grpc-go refuses it before sending)", err)
	}
	md := s.Metadata()[0]
	if got := md.Get("x-echo"); len(got) != 1 || got[0] != "e1 ~" {
		t.Errorf("server saw x-echo %q", got)
	}
	if got := md.Get("x-bin"); len(got) != 1 || got[0] != "\x00\xff raw" {
		t.Errorf("server saw x-bin %q", got)
	}
	if got := md.Get("x-multi"); strings.Join(got, ",") != "a,b" {
		t.Errorf("server saw x-multi %q", got)
	}
	if got := md.Get("content-type"); len(got) != 1 || !strings.HasPrefix(got[0], "application/grpc") {
		t.Errorf("content-type %q", got)
	}
}

func testHealth(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"": healthpb.HealthCheckResponse_SERVING, "down": healthpb.HealthCheckResponse_NOT_SERVING} {
		raw, err := c.Invoke(Ctx(t), Health, HealthRequest(svc))
		if err != nil {
			t.Fatalf("Check(%q): %v", svc, err)
		}
		var resp healthpb.HealthCheckResponse
		if err := proto.Unmarshal(raw, &resp); err != nil || resp.Status != want {
			t.Errorf("Check(%q) = %v, %v; want %v", svc, resp.Status, err, want)
		}
	}
	_, err := c.Invoke(Ctx(t), Health, HealthRequest("nope"))
	if rpc.CodeOf(err) != rpc.NotFound {
		t.Errorf("Check(nope): %v, want NotFound", err)
	}
	_, err = c.Invoke(Ctx(t), "/grpc.health.v1.Health/Nope", nil)
	if rpc.CodeOf(err) != rpc.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
}

// Message is a status message that needs grpc-message's percent-encoding.
const Message = "déjà vu: 100% ✓\r\nline two"

func testStatus(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	for code := rpc.Canceled; code <= rpc.Unauthenticated; code++ {
		md := []rpc.Header{{Name: "x-code", Value: itoa(int(code))}, {Name: "x-message-bin", Value: Message}}
		_, err := c.Invoke(Ctx(t), Unary, []byte("x"), md...)
		var st *rpc.Status
		if !errors.As(err, &st) || st.Code != code || st.Message != Message {
			t.Errorf("unary %v: got %v", code, err)
		}
		str, err := c.NewStream(Ctx(t), Stream, md...)
		if err != nil {
			t.Fatalf("NewStream: %v", err)
		}
		str.CloseSend()
		if _, err := str.Recv(); !errors.As(err, &st) || st.Code != code || st.Message != Message {
			t.Errorf("stream %v: got %v", code, err)
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func testLarge(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	req := make([]byte, 3<<20+17)
	for i := range req {
		req[i] = byte(i * 7)
	}
	resp, err := c.Invoke(Ctx(t), Unary, req)
	if err != nil || !bytes.Equal(resp, req) {
		t.Fatalf("3 MB echo: %d bytes, %v", len(resp), err)
	}
	resp, err = c.Invoke(Ctx(t), Unary, []byte("x"), rpc.Header{Name: "x-size", Value: "2000000"})
	if err != nil || len(resp) != 2000000 {
		t.Fatalf("2 MB response: %d bytes, %v", len(resp), err)
	}
}

func testStream(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	str, err := c.NewStream(Ctx(t), Stream, rpc.Header{Name: "x-echo", Value: "s"})
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	sizes := []int{0, 1, 5, 16 << 10, 70000, 1<<20 + 3, 10}
	go func() {
		for _, n := range sizes {
			if err := str.Send(bytes.Repeat([]byte{byte(n)}, n)); err != nil {
				t.Errorf("Send(%d): %v", n, err)
				return
			}
		}
		str.CloseSend()
	}()
	for _, n := range sizes {
		m, err := str.Recv()
		if err != nil || !bytes.Equal(m, bytes.Repeat([]byte{byte(n)}, n)) {
			t.Fatalf("Recv %d bytes: got %d, %v", n, len(m), err)
		}
	}
	if _, err := str.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if v, _ := rpc.Lookup(str.Trailer(), "x-trailer"); v != "stream" {
		t.Errorf("trailer %v", str.Trailer())
	}
	h, err := str.Header()
	if err != nil {
		t.Fatalf("Header: %v", err)
	}
	if _, ok := rpc.Lookup(h, "content-type"); !ok {
		t.Errorf("response headers %v lack content-type", h)
	}
}

func testPush(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	str, err := c.NewStream(Ctx(t), Push, rpc.Header{Name: "x-size", Value: "1000"})
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	for i := range 1000 {
		m, err := str.Recv()
		if err != nil || len(m) != 1 || m[0] != byte(i) {
			t.Fatalf("message %d: %v, %v", i, m, err)
		}
	}
	str.CloseSend()
	if _, err := str.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func testDeadline(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Invoke(ctx, Sleep, nil)
	if rpc.CodeOf(err) != rpc.DeadlineExceeded {
		t.Fatalf("Invoke past deadline: %v", err)
	}
	if err := <-s.Ended; err == nil {
		t.Fatal("server's context did not end")
	}
}

func testCancel(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	str, err := c.NewStream(ctx, Sleep)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	if err := str.Send([]byte("x")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	cancel()
	if _, err := str.Recv(); rpc.CodeOf(err) != rpc.Canceled {
		t.Fatalf("Recv after cancel: %v", err)
	}
	if err := <-s.Ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("server saw %v, want context.Canceled", err)
	}
}

func testRestart(t *testing.T, dial Dialer) {
	s := Start(t, "127.0.0.1:0", nil)
	c := dial(t, s.Addr, nil)
	defer c.Close()
	if _, err := c.Invoke(Ctx(t), Unary, []byte("1")); err != nil {
		t.Fatalf("first call: %v", err)
	}
	s.Stop()
	_, err := c.Invoke(Ctx(t), Unary, []byte("2"))
	if rpc.CodeOf(err) != rpc.Unavailable {
		t.Fatalf("call to a stopped server: %v, want Unavailable", err)
	}
	Start(t, s.Addr, nil)
	for i := 0; ; i++ {
		_, err := c.Invoke(Ctx(t), Unary, []byte("3"))
		if err == nil {
			break
		}
		if rpc.CodeOf(err) != rpc.Unavailable || i == 300 {
			t.Fatalf("call after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testMTLS(t *testing.T, dial Dialer) {
	pki := NewPKI(t)
	s := Start(t, "127.0.0.1:0", pki.Server)
	c := dial(t, s.Addr, pki.Client)
	defer c.Close()
	resp, err := c.Invoke(Ctx(t), Unary, []byte("tls"))
	if err != nil || string(resp) != "tls" {
		t.Fatalf("mTLS call: %q, %v", resp, err)
	}
	str, err := c.NewStream(Ctx(t), Stream)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	str.Send([]byte("s"))
	if m, err := str.Recv(); err != nil || string(m) != "s" {
		t.Fatalf("mTLS stream: %q, %v", m, err)
	}
	str.CloseSend()
	if _, err := str.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	noCert := pki.Client.Clone()
	noCert.Certificates = nil
	c2 := dial(t, s.Addr, noCert)
	defer c2.Close()
	if _, err := c2.Invoke(Ctx(t), Unary, []byte("x")); rpc.CodeOf(err) != rpc.Unavailable {
		t.Fatalf("call without a client certificate: %v, want Unavailable", err)
	}
}
