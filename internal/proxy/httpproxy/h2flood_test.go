package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
)

// floodReason runs frames (after the client preface) through a floodConn
// and returns why it cut the connection, or "".
func floodReason(t *testing.T, write func(fr *http2.Framer)) string {
	t.Helper()
	var in bytes.Buffer
	in.WriteString(h2Preface)
	write(http2.NewFramer(&in, nil))
	reason := ""
	nc, peer := net.Pipe()
	defer peer.Close()
	fc := newFloodConn(nc, bufio.NewReader(&in), func(r string) { reason = r })
	io.Copy(io.Discard, fc)
	return reason
}

// The legacy server's flood counter (--legacy-http2-server) leaves PINGs to
// Go's server, which bounds the ACKs a client leaves unread: a gRPC client
// pings once per response it reads, and the bucket cut it after 1,000.
// SETTINGS floods are still cut.
func TestLegacyFloodConnCountsNoPings(t *testing.T) {
	if r := floodReason(t, func(fr *http2.Framer) {
		for i := 0; i < 5*controlBurst; i++ {
			fr.WritePing(false, [8]byte{byte(i)})
		}
	}); r != "" {
		t.Fatalf("PINGs cut the connection: %s", r)
	}
	if r := floodReason(t, func(fr *http2.Framer) {
		for i := 0; i < 2*controlBurst; i++ {
			fr.WriteSettings()
		}
	}); r == "" {
		t.Fatal("a SETTINGS flood was not cut")
	}
}
