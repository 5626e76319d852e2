package dataplane

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// startTwoHopH2 runs bench client -> A -> B -> backend with HTTP/2
// prior knowledge (h2c) from the client to A and from A to B; B speaks
// HTTP/1.1 to the backend. It returns A's address.
func startTwoHopH2(tb testing.TB) string {
	tb.Helper()
	backend := rawBackend(tb)
	addrA, addrB := freeAddr(tb), freeAddr(tb)
	cB := xdstest.EDSCluster("toB")
	cB.ProtocolSelection = clusterv3.Cluster_USE_CONFIGURED_PROTOCOL
	cB.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{} //nolint:staticcheck // the field Istio still sets
	runTwoHop(tb, addrA, xdstest.HTTPListener("inB", addrB, "rB"), cB, xdstest.EDSCluster("app"), backend, nil)
	return addrA
}

// h2Client is a minimal HTTP/2 prior-knowledge client on one connection
// (a Framer and an HPACK encoder, so that the benchmark's own cost stays
// small next to the proxies').
type h2Client struct {
	c      net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	stream uint32
}

func dialH2(tb testing.TB, addr string) *h2Client {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	io.WriteString(c, http2.ClientPreface)
	h := &h2Client{c: c, fr: http2.NewFramer(c, c), stream: 1}
	h.enc = hpack.NewEncoder(&h.hbuf)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := h.fr.WriteSettings(); err != nil {
		tb.Fatal(err)
	}
	h.fr.WriteWindowUpdate(0, 1<<30)
	return h
}

// get sends GET /bench and reads the response to its end; it answers
// SETTINGS and PINGs, and returns the status.
func (h *h2Client) get() (string, error) {
	h.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "server"}, {":path", "/bench"},
		{"user-agent", "b"}, {"x-request-id", "8a3c4c3e-1d0b-4c4e-9c1f-1f9a1b7d2e11"}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := h.stream
	h.stream += 2
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return "", err
	}
	status := ""
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return "", err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			return "", fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "", fmt.Errorf("RST_STREAM %v", f.ErrCode)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				if status == "" {
					status = f.PseudoValue("status")
				}
				if f.StreamEnded() {
					return status, nil
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				if n := len(f.Data()); n > 0 {
					h.fr.WriteWindowUpdate(id, uint32(n))
				}
				if f.StreamEnded() {
					return status, nil
				}
			}
		}
	}
}

// BenchmarkTwoHopH2 measures a request through two sidecars over HTTP/2
// prior knowledge (client -h2c-> A -h2c-> B -> backend), one connection,
// one request at a time; it reports CPU per request (both sidecars, the
// backend and the client) and the median and p99 latency.
func BenchmarkTwoHopH2(b *testing.B) {
	h := dialH2(b, startTwoHopH2(b))
	// The proxies listen before their routes arrive: wait for a 200.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := h.get()
		if err != nil {
			b.Fatal(err)
		}
		if st == "200" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("status %s 20 s after start", st)
		}
	}
	measure(b, func() error {
		if st, err := h.get(); err != nil || st != "200" {
			return fmt.Errorf("status %q, %v", st, err)
		}
		return nil
	})
}
