package headerblock

import (
	"bytes"

	"golang.org/x/net/http2/hpack"
)

// Encoder writes header blocks: x/net's hpack.Encoder for most fields, and
// literals without indexing (RFC 7541 section 6.2.2) for fields whose value
// changes from message to message, so that those leave the dynamic table
// alone. Indexing them would only churn the table: each new request id
// evicts older entries, among them the long fields that repeat on every
// message (Istio's peer metadata), which then go out, and are decoded by
// the peer, literally again; and every insertion and eviction costs map
// updates. Like nghttp2 (and so Envoy), Encoder never indexes age, etag,
// location, set-cookie, if-modified-since and if-none-match, nor an entry
// larger than three quarters of the table, and it adds the request id and
// trace context fields a proxy passes on per message, and grpc-timeout.
// Unlike nghttp2 it indexes :path and content-length: in a sidecar they
// repeat (a gRPC method, a health check, a fixed-size message), and an
// indexed field costs the peer's decoder no string (x/net's decoder
// allocates one per literal).
// These literals go out as plain strings, not Huffman-coded: a few bytes
// more on the wire, and no Huffman coding here nor decoding at the peer
// (HPACK decoding is 4-5% of a sidecar's CPU under dpbench's load).
type Encoder struct {
	// Buf holds the block being written.
	Buf bytes.Buffer
	enc *hpack.Encoder
	// resized: a table size change is pending; x/net's encoder writes its
	// update before the next field it encodes, which must come first in
	// the block.
	resized  bool
	maxTable uint32
	lit      []byte
}

// NewEncoder returns an Encoder with HPACK's initial table size.
func NewEncoder() *Encoder {
	e := &Encoder{maxTable: 4096}
	e.enc = hpack.NewEncoder(&e.Buf)
	return e
}

// SetMaxDynamicTableSizeLimit applies the peer's SETTINGS_HEADER_TABLE_SIZE.
func (e *Encoder) SetMaxDynamicTableSizeLimit(v uint32) {
	e.enc.SetMaxDynamicTableSizeLimit(v)
	e.maxTable = min(v, 4096) // x/net's encoder never uses more than 4,096
	e.resized = true
}

// Reset starts a new block.
func (e *Encoder) Reset() { e.Buf.Reset() }

// WriteField appends one field (name lower case) to the block.
func (e *Encoder) WriteField(name, value string) {
	idx, noIndex := noIndexField(name)
	if !noIndex && uint64(len(name))+uint64(len(value))+32 > uint64(e.maxTable)*3/4 {
		noIndex = true
	}
	if !noIndex || e.resized {
		e.resized = false
		e.enc.WriteField(hpack.HeaderField{Name: name, Value: value})
		return
	}
	// Literal Header Field without Indexing: 0000 and the name's static
	// index on a 4-bit prefix, or 0 and the name as a string; plain
	// strings.
	b := appendInt(e.lit[:0], 0x00, 4, idx)
	if idx == 0 {
		b = appendRaw(b, name)
	}
	b = appendRaw(b, value)
	e.lit = b[:0]
	e.Buf.Write(b)
}

// noIndexField reports whether a field of this name is written without
// indexing, with the name's index in HPACK's static table (0: none).
func noIndexField(name string) (uint64, bool) {
	switch name {
	case "age":
		return 21, true
	case "etag":
		return 34, true
	case "if-modified-since":
		return 40, true
	case "if-none-match":
		return 41, true
	case "location":
		return 46, true
	case "set-cookie":
		return 55, true
	case "x-request-id", "x-client-trace-id", "traceparent", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
		"grpc-timeout":
		return 0, true
	}
	return 0, false
}

// appendInt appends v as an HPACK integer on an n-bit prefix, the
// prefix's byte starting with first (RFC 7541 section 5.1).
func appendInt(b []byte, first byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	v -= max
	for v >= 128 {
		b = append(b, byte(v&0x7f)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendRaw appends a string literal without Huffman coding (RFC 7541
// section 5.2).
func appendRaw(b []byte, s string) []byte {
	b = appendInt(b, 0x00, 7, uint64(len(s)))
	return append(b, s...)
}
