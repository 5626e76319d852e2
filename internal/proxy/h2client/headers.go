package h2client

import (
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/headerblock"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// connSpecific are the header fields HTTP/2 forbids (RFC 9113 8.2.2): they
// are dropped on the way out and on the way in.
func connSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// sendContentLength says whether a request of this method and known body
// length gets a content-length field (x/net's rule: always for a body,
// and for an empty one only where a body is expected).
func sendContentLength(method string, n int64) bool {
	if n > 0 {
		return true
	}
	if n < 0 {
		return false
	}
	switch method {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// headerListSize is the size (RFC 9113 6.5.2) of the header list
// encodeRequestHead sends.
func headerListSize(r *Request, scheme string, cl int64) uint32 {
	size := uint32(len(":method")+len(r.Method)+len(":scheme")+len(scheme)+len(":authority")+len(r.Authority)+len(":path")+len(r.Path)) + 4*32
	for _, f := range r.Header {
		if f.Name == "" || f.Name[0] == ':' || f.Name == "host" || f.Name == "content-length" || connSpecific(f.Name) {
			continue
		}
		size += uint32(len(f.Name) + len(f.Value) + 32)
	}
	if cl >= 0 {
		size += uint32(len("content-length") + 20 + 32)
	}
	return size
}

// encodeRequestHead appends the request's header block to the encoder's
// buffer: pseudo-headers, then the request's fields as they came, except the
// connection-specific ones, host (it is :authority) and content-length
// (cl says what to send: -1 none).
func encodeRequestHead(enc *headerblock.Encoder, r *Request, scheme string, cl int64) {
	put := enc.WriteField
	put(":method", r.Method)
	put(":scheme", scheme)
	put(":authority", r.Authority)
	put(":path", r.Path)
	for _, f := range r.Header {
		if f.Name == "" || f.Name[0] == ':' || f.Name == "host" || f.Name == "content-length" || connSpecific(f.Name) {
			continue
		}
		if f.Name == "te" && !headers.EqualFold(f.Value, "trailers") {
			continue
		}
		put(f.Name, f.Value)
	}
	if cl >= 0 {
		var b [20]byte
		put("content-length", string(strconv.AppendInt(b[:0], cl, 10)))
	}
}

// encodeTrailers appends a trailer block.
func encodeTrailers(enc *headerblock.Encoder, tr headers.List) {
	for _, f := range tr {
		if f.Name == "" || f.Name[0] == ':' || connSpecific(f.Name) {
			continue
		}
		enc.WriteField(f.Name, f.Value)
	}
}

// ResponseHead is a response's status line and headers translated from
// one HEADERS block.
type ResponseHead struct {
	Status int
	Header headers.List
	// ContentLength is the content-length field's value (one valid
	// field), 0 for a block that ends the stream (unless HEAD), else -1.
	ContentLength int64
}

// ParseResponseHead translates a response header block the framer
// decoded (field names already checked as valid and lowercase, pseudo
// fields first): exactly one valid :status and no other pseudo-header.
// Connection-specific fields are dropped. isHead says the request was HEAD;
// endStream that the block ended the stream. The upstream is untrusted:
// every violation is an error, never a panic.
func ParseResponseHead(fields []hpack.HeaderField, isHead, endStream bool) (ResponseHead, error) {
	return parseResponseHead(nil, fields, isHead, endStream)
}

// parseResponseHead is ParseResponseHead with the header list appended to
// dst (a kept Stream's list), grown to hold the router's additions.
func parseResponseHead(dst headers.List, fields []hpack.HeaderField, isHead, endStream bool) (ResponseHead, error) {
	h := ResponseHead{Status: -1, ContentLength: -1}
	n := 0
	for _, f := range fields {
		if !f.IsPseudo() {
			n++
			continue
		}
		if f.Name != ":status" {
			return h, protoErr("pseudo-header %s in a response", f.Name)
		}
		if h.Status >= 0 {
			return h, protoErr("more than one :status")
		}
		if len(f.Value) != 3 {
			return h, protoErr(":status %q", f.Value)
		}
		st, err := strconv.Atoi(f.Value)
		if err != nil || st < 100 {
			return h, protoErr(":status %q", f.Value)
		}
		h.Status = st
	}
	if h.Status < 0 {
		return h, protoErr("response without :status")
	}
	if cap(dst) < n+4 {
		dst = make(headers.List, 0, n+4) // room for the router's additions
	}
	h.Header = dst[:0]
	clCount := 0
	for _, f := range fields {
		if f.IsPseudo() || connSpecific(f.Name) {
			continue
		}
		if f.Name == "content-length" {
			clCount++
			if v, err := strconv.ParseUint(f.Value, 10, 63); err == nil && clCount == 1 {
				h.ContentLength = int64(v)
			} else {
				h.ContentLength = -1
			}
		}
		h.Header = append(h.Header, headers.Field{Name: f.Name, Value: f.Value})
	}
	if clCount > 1 {
		h.ContentLength = -1
	}
	if clCount == 0 && endStream && !isHead {
		h.ContentLength = 0
	}
	return h, nil
}

// parseTrailers translates a trailer block into dst's array when it is
// large enough: no pseudo-header allowed.
func parseTrailers(dst headers.List, fields []hpack.HeaderField) (headers.List, error) {
	out := dst[:0]
	if cap(out) < len(fields) {
		out = make(headers.List, 0, len(fields))
	}
	for _, f := range fields {
		if f.IsPseudo() {
			return nil, protoErr("pseudo-header %s in trailers", f.Name)
		}
		if connSpecific(f.Name) {
			continue
		}
		out = append(out, headers.Field{Name: f.Name, Value: f.Value})
	}
	return out, nil
}
