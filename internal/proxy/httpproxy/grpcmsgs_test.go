package httpproxy

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func grpcMessage(payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// Messages are counted however the stream is cut into reads: split inside
// a prefix, inside a payload, several per read, empty payloads.
func TestGRPCFramesCount(t *testing.T) {
	var stream []byte
	for _, p := range [][]byte{[]byte("hello"), nil, bytes.Repeat([]byte("x"), 70000), []byte("a"), nil} {
		stream = append(stream, grpcMessage(p)...)
	}
	for _, chunk := range []int{1, 2, 3, 5, 7, 4096, len(stream)} {
		var g grpcFrames
		for i := 0; i < len(stream); i += chunk {
			g.feed(stream[i:min(i+chunk, len(stream))])
		}
		if got := g.count.Load(); got != 5 {
			t.Errorf("chunks of %d: %d messages, want 5", chunk, got)
		}
		if g.skip != 0 || g.hdrN != 0 {
			t.Errorf("chunks of %d: left mid-message (%d, %d)", chunk, g.skip, g.hdrN)
		}
	}
}

// FuzzGRPCFrames: any bytes are counted without panicking, and never as
// more messages than 5-byte prefixes fit.
func FuzzGRPCFrames(f *testing.F) {
	f.Add(grpcMessage([]byte("hi")), 3)
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 1}, 1)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var g grpcFrames
		for i := 0; i < len(b); i += chunk {
			g.feed(b[i:min(i+chunk, len(b))])
		}
		if got := g.count.Load(); got > uint64(len(b)/5) {
			t.Fatalf("%d messages in %d bytes", got, len(b))
		}
	})
}
