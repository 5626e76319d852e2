package headerblock

import (
	"bytes"
	"slices"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// decodeBoth reads block as one HEADERS frame with x/net's
// Framer.ReadMetaHeaders and with Block (limit bytes of header list).
func decodeBoth(t *testing.T, block []byte, limit int) (ref *http2.MetaHeadersFrame, refErr error, b *Block, done bool, err error) {
	var wire bytes.Buffer
	if err := http2.NewFramer(&wire, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, bytes.NewReader(wire.Bytes()))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = uint32(limit)
	f, refErr := fr.ReadFrame()
	ref, _ = f.(*http2.MetaHeadersFrame)

	raw, rerr := http2.NewFramer(nil, bytes.NewReader(wire.Bytes())).ReadFrame()
	if rerr != nil {
		t.Fatal(rerr)
	}
	b = new(Block)
	b.Init(limit)
	hf := raw.(*http2.HeadersFrame)
	b.Start(hf.StreamID, hf.StreamEnded(), hf.HasPriority(), hf.Priority.StreamDep)
	done, err = b.Fragment(hf.HeaderBlockFragment(), true)
	return ref, refErr, b, done, err
}

func encode(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

func TestMatchesReadMetaHeaders(t *testing.T) {
	cases := []struct {
		name    string
		block   []byte
		limit   int
		invalid bool
		trunc   bool
	}{
		{"response", encode(":status", "200", "content-type", "text/plain", "x-a", "1"), 1 << 10, false, false},
		{"upper-case name", encode(":status", "200", "X-A", "1"), 1 << 10, true, false},
		{"pseudo after regular", encode("x-a", "1", ":status", "200"), 1 << 10, true, false},
		{"bad value", encode(":status", "200", "x-a", "a\x00b"), 1 << 10, true, false},
		{"over the limit", encode(":status", "200", "x-a", "01234567890123456789", "x-b", "01234567890123456789", "x-c", "01234567890123456789",
			"x-d", "01234567890123456789", "x-e", "01234567890123456789"), 150, false, true},
	}
	for _, tc := range cases {
		ref, refErr, b, done, err := decodeBoth(t, tc.block, tc.limit)
		if err != nil || !done {
			t.Fatalf("%s: done %v, err %v", tc.name, done, err)
		}
		if b.Invalid != tc.invalid || b.Truncated != tc.trunc {
			t.Fatalf("%s: invalid %v truncated %v, want %v %v", tc.name, b.Invalid, b.Truncated, tc.invalid, tc.trunc)
		}
		if tc.invalid {
			if refErr == nil {
				t.Fatalf("%s: x/net accepted what Block refuses", tc.name)
			}
			continue
		}
		if refErr != nil || ref == nil {
			t.Fatalf("%s: x/net: %v", tc.name, refErr)
		}
		if ref.Truncated != b.Truncated || (!b.Truncated && !slices.Equal(ref.Fields, b.Fields)) {
			t.Fatalf("%s: fields %v (truncated %v), x/net %v (truncated %v)", tc.name, b.Fields, b.Truncated, ref.Fields, ref.Truncated)
		}
	}
}

// FuzzBlock: arbitrary header blocks decode without panicking, and a
// block x/net's Framer.ReadMetaHeaders accepts whole gives the same fields.
func FuzzBlock(f *testing.F) {
	f.Add(encode(":status", "200", "content-type", "text/plain"), uint16(1024))
	f.Add(encode(":method", "GET", ":path", "/", ":scheme", "http", ":authority", "a", "te", "trailers"), uint16(4096))
	f.Add(encode("x-a", "1", ":status", "200"), uint16(64))
	f.Add([]byte{0x3f, 0xe1, 0x1f}, uint16(100)) // dynamic table size update
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(100))
	f.Fuzz(func(t *testing.T, block []byte, limit uint16) {
		if len(block) > 16384 {
			return
		}
		ref, refErr, b, done, err := decodeBoth(t, block, int(limit)+1)
		if err != nil || !done {
			if refErr == nil {
				t.Fatalf("Block failed (%v) where x/net accepted: %v", err, ref.Fields)
			}
			return
		}
		if refErr == nil && ref != nil && !ref.Truncated {
			if b.Invalid || b.Truncated || !slices.Equal(ref.Fields, b.Fields) {
				t.Fatalf("fields %v (invalid %v truncated %v), x/net %v", b.Fields, b.Invalid, b.Truncated, ref.Fields)
			}
		}
	})
}
