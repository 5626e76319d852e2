package h2server

import (
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Request is what a HEADERS frame (with its CONTINUATIONs) asked for.
type Request struct {
	Method, Scheme, Authority string
	// Target is :path, or the authority of a CONNECT request.
	Target string
	// Header holds the regular fields, names lower case as received,
	// cookie fields joined into one (RFC 9113 section 8.2.3).
	Header headers.List
	// ContentLength is the declared body length, -1 when unknown and 0
	// for a request that ended with its headers.
	ContentLength int64
	// TooLarge: the header list exceeded the limit; the fields are
	// incomplete and the request must be refused with 431.
	TooLarge bool
	// Fields is the number of regular fields received.
	Fields int
}

// readRequest translates a request's decoded header block into r, reusing
// r.Header's backing array. It returns a non-empty reason when the request
// is malformed (RFC 9113 section 8.1.1, 8.2.2, 8.3.1): the stream is then
// reset with PROTOCOL_ERROR. Name and value syntax and pseudo-field order
// were checked while decoding (headerblock.go); a value with leading or
// trailing SP or HTAB is malformed here (section 8.2.1), as nghttp2 and
// Envoy treat it, although Go's HTTP/2 server lets it through.
func readRequest(r *Request, fields []hpack.HeaderField, endStream, truncated bool) string {
	*r = Request{Header: r.Header[:0], ContentLength: -1, TooLarge: truncated}
	cookie := -1
	var seen [4]bool // each pseudo-header once
	for _, f := range fields {
		if v := f.Value; v != "" && (isWS(v[0]) || isWS(v[len(v)-1])) {
			return "field " + f.Name + ": value starts or ends with whitespace"
		}
		if len(f.Name) > 0 && f.Name[0] == ':' {
			var i int
			switch f.Name {
			case ":method":
				r.Method, i = f.Value, 0
			case ":scheme":
				r.Scheme, i = f.Value, 1
			case ":authority":
				r.Authority, i = f.Value, 2
			case ":path":
				r.Target, i = f.Value, 3
			default: // :status, :protocol (extended CONNECT is not offered)
				return "unexpected pseudo-header " + f.Name
			}
			if seen[i] {
				return "repeated pseudo-header " + f.Name
			}
			seen[i] = true
			continue
		}
		r.Fields++
		switch f.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return "connection-specific field " + f.Name
		case "te":
			if f.Value != "trailers" {
				return `te other than "trailers"`
			}
		case "content-length":
			n, err := strconv.ParseUint(f.Value, 10, 63)
			if err != nil || (r.ContentLength >= 0 && int64(n) != r.ContentLength) {
				return "invalid content-length"
			}
			r.ContentLength = int64(n)
		case "cookie":
			if cookie >= 0 {
				// Empty crumbs carry nothing; joining them would leave
				// "; " at an end of the value.
				switch c := &r.Header[cookie]; {
				case f.Value == "":
				case c.Value == "":
					c.Value = f.Value
				default:
					c.Value += "; " + f.Value
				}
				continue
			}
			cookie = len(r.Header)
		}
		r.Header = append(r.Header, headers.Field{Name: f.Name, Value: f.Value})
	}
	if r.Method == "CONNECT" {
		if r.Target != "" || r.Scheme != "" || r.Authority == "" {
			return "malformed CONNECT"
		}
		r.Target = r.Authority
	} else if r.Method == "" || r.Target == "" || (r.Scheme != "http" && r.Scheme != "https") {
		return "missing or invalid :method, :scheme or :path"
	}
	if r.Authority == "" {
		r.Authority, _ = r.Header.Get("host")
	}
	if endStream {
		if r.ContentLength > 0 {
			return "content-length without a body"
		}
		r.ContentLength = 0
	}
	if truncated {
		r.ContentLength = 0
	}
	return ""
}

// isWS reports whether c is ASCII whitespace as RFC 9113 section 8.2.1
// means it (SP or HTAB).
func isWS(c byte) bool { return c == ' ' || c == '\t' }
