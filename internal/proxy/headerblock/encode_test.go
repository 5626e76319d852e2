package headerblock

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// roundTrip encodes blocks with one Encoder (table size changes applied
// before the blocks named in resize) and decodes them in order with one
// x/net Decoder, as a peer would; it returns the decoded blocks and each
// block's encoded length.
func roundTrip(t testing.TB, blocks [][]hpack.HeaderField, resize map[int]uint32) ([][]hpack.HeaderField, []int) {
	t.Helper()
	e := NewEncoder()
	dec := hpack.NewDecoder(4096, nil)
	var out [][]hpack.HeaderField
	var sizes []int
	for i, fields := range blocks {
		if v, ok := resize[i]; ok {
			e.SetMaxDynamicTableSizeLimit(v)
			dec.SetAllowedMaxDynamicTableSize(v)
		}
		e.Reset()
		for _, f := range fields {
			e.WriteField(f.Name, f.Value)
		}
		sizes = append(sizes, e.Buf.Len())
		got, err := dec.DecodeFull(e.Buf.Bytes())
		if err != nil {
			t.Fatalf("block %d (%v): decode: %v", i, fields, err)
		}
		out = append(out, got)
	}
	return out, sizes
}

func sameFields(a, b []hpack.HeaderField) bool {
	return slices.EqualFunc(a, b, func(x, y hpack.HeaderField) bool { return x.Name == y.Name && x.Value == y.Value })
}

// TestEncoderRoundTrip: what Encoder writes decodes, with x/net's decoder
// keeping the dynamic table across blocks, to the fields written, whether
// they were indexed or not, across table size changes (the update comes
// first in its block even when the first field is not indexed).
func TestEncoderRoundTrip(t *testing.T) {
	long := strings.Repeat("m", 3500) // over three quarters of the table
	var blocks [][]hpack.HeaderField
	for i := range 40 {
		blocks = append(blocks, []hpack.HeaderField{
			{Name: ":path", Value: fmt.Sprintf("/p/%d", i)},
			{Name: ":method", Value: "GET"},
			{Name: "x-request-id", Value: fmt.Sprintf("%08x-1d0b-4c4e-9c1f-1f9a1b7d2e11", i)},
			{Name: "x-envoy-peer-metadata", Value: strings.Repeat("abc", 100)},
			{Name: "content-length", Value: fmt.Sprint(i * 1000)},
			{Name: "x-b3-traceid", Value: fmt.Sprintf("%016x", i*7919)},
			{Name: "x-long", Value: long},
			{Name: "date", Value: "Sun, 06 Dec 2026 20:00:00 GMT"},
			{Name: "x-custom", Value: "v"},
			{Name: "set-cookie", Value: fmt.Sprintf("a=%d", i)},
		})
	}
	for _, resize := range []map[int]uint32{nil, {3: 100, 7: 4096, 10: 0, 12: 2048, 20: 8192}} {
		got, _ := roundTrip(t, blocks, resize)
		for i := range blocks {
			if !sameFields(got[i], blocks[i]) {
				t.Fatalf("resize %v block %d:\n got %v\nwant %v", resize, i, got[i], blocks[i])
			}
		}
	}
}

// TestEncoderKeepsRepeatedFieldsIndexed: per-message values (request ids)
// do not churn the table, so a long field repeated on every message stays
// indexed: after the first block it costs one byte, where x/net's
// encoder alone writes it out again each time it was evicted.
func TestEncoderKeepsRepeatedFieldsIndexed(t *testing.T) {
	meta := strings.Repeat("Q2xpZW50TWV0YWRhdGE", 40) // 760 bytes, like Istio's peer metadata
	var blocks [][]hpack.HeaderField
	for i := range 200 {
		blocks = append(blocks, []hpack.HeaderField{
			{Name: ":path", Value: "/pkg.Service/Method"},
			{Name: "x-request-id", Value: fmt.Sprintf("%08x-1d0b-4c4e-9c1f-1f9a1b7d2e11", i)},
			{Name: "x-envoy-peer-metadata", Value: meta},
		})
	}
	got, sizes := roundTrip(t, blocks, nil)
	for i := range blocks {
		if !sameFields(got[i], blocks[i]) {
			t.Fatalf("block %d: got %v", i, got[i])
		}
		if i > 0 && sizes[i] > 80 {
			t.Fatalf("block %d is %d bytes: the metadata field was written out again", i, sizes[i])
		}
	}
}

// FuzzEncoder: any fields (names lower case, as the proxy passes them on)
// round-trip through Encoder and x/net's decoder, block after block.
func FuzzEncoder(f *testing.F) {
	f.Add("x-request-id", "abc", ":path", "/", "content-length", "12", uint16(4096))
	f.Add("x-a", strings.Repeat("z", 4000), "x-a", strings.Repeat("z", 4000), "date", "", uint16(0))
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2, n3, v3 string, table uint16) {
		fields := []hpack.HeaderField{{Name: strings.ToLower(n1), Value: v1}, {Name: strings.ToLower(n2), Value: v2}, {Name: strings.ToLower(n3), Value: v3}}
		blocks := [][]hpack.HeaderField{fields, fields, slices.Clone(fields[1:]), fields}
		got, _ := roundTrip(t, blocks, map[int]uint32{2: uint32(table)})
		for i := range blocks {
			if !sameFields(got[i], blocks[i]) {
				t.Fatalf("block %d:\n got %q\nwant %q", i, got[i], blocks[i])
			}
		}
	})
}

// TestPerMessageFieldsPlain: per-message values go out as plain strings
// (no Huffman coding to do here or to undo at the peer); other fields keep
// x/net's encoding.
func TestPerMessageFieldsPlain(t *testing.T) {
	e := NewEncoder()
	id := "8a3c4c3e-1d0b-4c4e-9c1f-1f9a1b7d2e11"
	e.WriteField(":method", "GET")
	e.WriteField("x-request-id", id)
	e.WriteField(":path", "/api/v1/items")
	e.WriteField("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	for _, v := range []string{id, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-request-id", "traceparent"} {
		if !strings.Contains(e.Buf.String(), v) {
			t.Errorf("%q not written as a plain string: % x", v, e.Buf.Bytes())
		}
	}
	got, err := hpack.NewDecoder(4096, nil).DecodeFull(e.Buf.Bytes())
	if err != nil || len(got) != 4 || got[1].Value != id || got[2].Value != "/api/v1/items" || got[3].Name != "traceparent" {
		t.Fatalf("decoded %v, %v", got, err)
	}
}
