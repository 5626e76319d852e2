package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/mast-mesh/mast/internal/telemetry"
)

func TestExchangeRoundTrip(t *testing.T) {
	p := telemetry.Peer{ID: "sidecar~10.0.0.1~db-1.default~default.svc.cluster.local", Name: "db-1", Workload: "db", Namespace: "default",
		App: "db", Version: "v1", ServiceAccount: "db", Cluster: "Kubernetes"}
	frame := EncodeExchange(&p)
	if binary.BigEndian.Uint32(frame) != 0x3D230467 || int(binary.BigEndian.Uint32(frame[4:])) != len(frame)-8 {
		t.Fatalf("frame header % x", frame[:8])
	}
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		b.Write(append(frame, "stream bytes"...))
		b.Close()
	}()
	c, got, err := ReadExchange(a)
	if err != nil {
		t.Fatal(err)
	}
	if got.Workload != "db" || got.Namespace != "default" || got.App != "db" || got.Version != "v1" || got.ID != p.ID ||
		got.ServiceAccount != "db" || got.CanonicalService != "db" {
		t.Errorf("peer %+v", got)
	}
	rest, _ := io.ReadAll(c)
	if string(rest) != "stream bytes" {
		t.Errorf("stream after the frame: %q", rest)
	}
}

// A peer that negotiated the ALPN but sends no frame (an HTTP client on a
// TCP port, say) keeps its bytes.
func TestNoExchangeGivesBytesBack(t *testing.T) {
	for _, first := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "abc"} {
		a, b := net.Pipe()
		go func() {
			b.Write([]byte(first))
			b.Close()
		}()
		c, p, err := ReadExchange(a)
		if !errors.Is(err, ErrNoExchange) || p != nil {
			t.Errorf("%q: %v, %v", first, p, err)
		}
		got, _ := io.ReadAll(c)
		if string(got) != first {
			t.Errorf("bytes given back %q, want %q", got, first)
		}
		a.Close()
	}
}

func TestExchangeTooLarge(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:], 0x3D230467)
		binary.BigEndian.PutUint32(hdr[4:], MaxExchangeLen+1)
		b.Write(hdr[:])
		b.Close()
	}()
	if _, _, err := ReadExchange(a); err == nil || errors.Is(err, ErrNoExchange) {
		t.Errorf("an oversized frame: %v", err)
	}
}

func FuzzDecodeExchange(f *testing.F) {
	f.Add(EncodeExchange(&telemetry.Peer{Workload: "w", Namespace: "ns", App: "a"})[8:])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x0a}, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeExchange(b)
	})
}
