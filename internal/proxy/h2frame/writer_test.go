package h2frame

import (
	"bufio"
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// TestWriteDataIsFramers checks that WriteData writes the bytes x/net's
// Framer writes for the same DATA frames, whatever room w's buffer has
// left, and that a Framer reads them back.
func TestWriteDataIsFramers(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1100) // 17,600 bytes
	for _, size := range []int{16, 64} {
		for _, lead := range []int{0, 1, size - 9, size - 8, size - 1} {
			for _, n := range []int{0, 1, 9, size - 1, size, 1029, 16384} {
				for _, end := range []bool{false, true} {
					id := uint32(1<<31 - 1)
					if end {
						id = 3
					}
					var want bytes.Buffer
					want.Write(payload[:lead])
					if err := http2.NewFramer(&want, nil).WriteData(id, end, payload[:n]); err != nil {
						t.Fatal(err)
					}
					var got bytes.Buffer
					w := bufio.NewWriterSize(&got, size)
					w.Write(payload[:lead])
					if err := WriteData(w, id, end, payload[:n]); err != nil {
						t.Fatal(err)
					}
					w.Flush()
					if !bytes.Equal(got.Bytes(), want.Bytes()) {
						t.Fatalf("buffer %d, %d bytes before, %d-byte payload, end %v: wrote\n%x\nwant\n%x", size, lead, n, end, got.Bytes(), want.Bytes())
					}
					fr := http2.NewFramer(nil, bytes.NewReader(got.Bytes()[lead:]))
					f, err := fr.ReadFrame()
					if err != nil {
						t.Fatal(err)
					}
					df, ok := f.(*http2.DataFrame)
					if !ok || df.StreamID != id || df.StreamEnded() != end || !bytes.Equal(df.Data(), payload[:n]) {
						t.Fatalf("read back %v", f)
					}
				}
			}
		}
	}
}

func TestWriteDataRejects(t *testing.T) {
	w := bufio.NewWriter(&bytes.Buffer{})
	for _, id := range []uint32{0, 1 << 31} {
		if err := WriteData(w, id, false, nil); err == nil {
			t.Errorf("stream %d: no error", id)
		}
	}
	if err := WriteData(w, 1, false, make([]byte, maxPayload+1)); err != http2.ErrFrameTooLarge {
		t.Errorf("oversized payload: %v", err)
	}
	if w.Buffered() != 0 {
		t.Errorf("%d bytes buffered after rejected frames", w.Buffered())
	}
}

// BenchmarkWriteData shows the copy WriteData saves against the Framer.
func BenchmarkWriteData(b *testing.B) {
	p := make([]byte, 1029)
	w := bufio.NewWriterSize(discard{}, 16<<10)
	b.Run("framer", func(b *testing.B) {
		fr := http2.NewFramer(w, nil)
		for range b.N {
			fr.WriteData(1, false, p)
			w.Flush()
		}
	})
	b.Run("h2frame", func(b *testing.B) {
		for range b.N {
			WriteData(w, 1, false, p)
			w.Flush()
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
