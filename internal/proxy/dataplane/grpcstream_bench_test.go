package dataplane

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// streamEchoBackend is an h2c server answering like a bidirectional gRPC
// method: every request message is echoed as it arrives, flushed.
func streamEchoBackend(tb testing.TB) string {
	return h2cBackend(tb, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/grpc")
		w.Header().Set("trailer", "grpc-status")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 16<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("grpc-status", "0")
	})
}

// startTwoHopStream is startTwoHopH2c with the streaming echo backend,
// and sidecars that do not collect garbage a second after their
// configuration arrived (ReleaseMemoryAfter): that collection would fall
// inside the measured messages, at a point that moves with the machine's
// load, and blur the instructions per message counted under callgrind.
func startTwoHopStream(tb testing.TB) string {
	tb.Helper()
	addrA, addrB := freeAddr(tb), freeAddr(tb)
	runTwoHop(tb, addrA, xdstest.HTTPListener("inB", addrB, "rB"), h2Cluster("toB"), h2Cluster("app"), streamEchoBackend(tb),
		func(_ int, c *Config) { c.ReleaseMemoryAfter = -1 })
	return addrA
}

// grpcStream is one bidirectional stream: ping sends a message and reads
// its echo.
type grpcStream struct {
	pw   *io.PipeWriter
	resp *http.Response
	in   []byte
}

func openStream(tb testing.TB, c *http.Client, url string) *grpcStream {
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", url, pr)
	req.ContentLength = -1
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 {
		tb.Fatalf("status %d", resp.StatusCode)
	}
	return &grpcStream{pw: pw, resp: resp}
}

func (g *grpcStream) ping(msg []byte) error {
	if _, err := g.pw.Write(msg); err != nil {
		return err
	}
	if cap(g.in) < len(msg) {
		g.in = make([]byte, len(msg))
	}
	_, err := io.ReadFull(g.resp.Body, g.in[:len(msg)])
	if err == nil && !bytes.Equal(g.in[:len(msg)], msg) {
		return &unexpected{g.resp.StatusCode, g.in[:len(msg)], nil}
	}
	return err
}

func (g *grpcStream) close(tb testing.TB) {
	g.pw.Close()
	io.Copy(io.Discard, g.resp.Body)
	g.resp.Body.Close()
	if got := g.resp.Trailer.Get("grpc-status"); got != "0" {
		tb.Errorf("grpc-status %q", got)
	}
}

// streamMsg is a 1 KiB length-prefixed gRPC message, dpbench's size.
func streamMsg() []byte {
	msg := make([]byte, 5+1024)
	msg[3], msg[4] = 4, 0
	for i := 5; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	return msg
}

// TestTwoHopGRPCStream checks the benchmark's topology: messages of one
// bidirectional stream are echoed through both sidecars as they go.
func TestTwoHopGRPCStream(t *testing.T) {
	addr := startTwoHopStream(t)
	g := openStream(t, h2cClient(), "http://"+addr+"/pkg.Svc/Stream")
	msg := streamMsg()
	for i := 0; i < 5; i++ {
		if err := g.ping(msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	g.close(t)
}

// BenchmarkTwoHopGRPCStream measures one ping-pong message of a
// bidirectional gRPC stream through two sidecars (HTTP/2 on every hop),
// like dpbench's grpc-stream load on one connection; it reports the
// process's CPU per message (client, both sidecars, backend) and latency.
func BenchmarkTwoHopGRPCStream(b *testing.B) {
	addr := startTwoHopStream(b)
	g := openStream(b, h2cClient(), "http://"+addr+"/pkg.Svc/Stream")
	msg := streamMsg()
	measure(b, func() error { return g.ping(msg) })
	g.close(b)
}

// BenchmarkDirectGRPCStream is BenchmarkTwoHopGRPCStream without the
// sidecars (the client talks to the backend): the difference between the
// two is what the two hops cost per message.
func BenchmarkDirectGRPCStream(b *testing.B) {
	g := openStream(b, h2cClient(), "http://"+streamEchoBackend(b)+"/pkg.Svc/Stream")
	msg := streamMsg()
	measure(b, func() error { return g.ping(msg) })
	g.close(b)
}
