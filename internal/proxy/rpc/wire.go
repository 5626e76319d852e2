package rpc

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// This file is the gRPC-over-HTTP/2 protocol's header side
// (PROTOCOL-HTTP2.md in grpc/grpc): request headers, grpc-timeout, the
// status in trailers, grpc-message's percent-encoding, metadata and the
// HTTP status of a response that is not gRPC. Where the spec leaves a
// choice the behaviour is grpc-go's (internal/transport/http_util.go,
// http2_client.go's operateHeaders), so callers see the errors they saw
// through grpc-go.

const contentType = "application/grpc"

// reserved are the header names the transport owns: metadata with these
// names is not sent, and is not handed back as metadata.
func reserved(name string) bool {
	if name != "" && name[0] == ':' {
		return true
	}
	switch name {
	case "content-type", "user-agent", "grpc-message-type", "grpc-encoding", "grpc-message", "grpc-status",
		"grpc-timeout", "te":
		return true
	}
	return false
}

// validateMetadata checks an entry as grpc-go does before a call (its
// error is the call's, code Internal).
func validateMetadata(h Header) error {
	if h.Name == "" {
		return Errorf(Internal, "there is an empty key in the header")
	}
	if h.Name[0] == ':' {
		return nil
	}
	for i := 0; i < len(h.Name); i++ {
		c := h.Name[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '.' && c != '-' && c != '_' {
			return Errorf(Internal, "header key %q contains illegal characters not in [0-9a-z-_.]", h.Name)
		}
	}
	if strings.HasSuffix(h.Name, "-bin") {
		return nil
	}
	for i := 0; i < len(h.Value); i++ {
		if h.Value[i] < 0x20 || h.Value[i] > 0x7e {
			return Errorf(Internal, "header key %q contains value with non-printable ASCII characters", h.Name)
		}
	}
	return nil
}

// requestHeaders returns the fields after the pseudo-headers of a call:
// content-type, user-agent, te, grpc-timeout when the call has a
// deadline, then the metadata (reserved names and pseudo-headers skipped,
// -bin values base64-encoded without padding, as grpc-go sends them).
func requestHeaders(userAgent string, timeout time.Duration, hasDeadline bool, md []Header) (headers.List, error) {
	l := make(headers.List, 0, 4+len(md))
	l = append(l, headers.Field{Name: "content-type", Value: contentType},
		headers.Field{Name: "user-agent", Value: userAgent}, headers.Field{Name: "te", Value: "trailers"})
	if hasDeadline {
		l = append(l, headers.Field{Name: "grpc-timeout", Value: encodeTimeout(timeout)})
	}
	for _, h := range md {
		if err := validateMetadata(h); err != nil {
			return nil, err
		}
		if reserved(h.Name) {
			continue
		}
		v := h.Value
		if strings.HasSuffix(h.Name, "-bin") {
			v = base64.RawStdEncoding.EncodeToString([]byte(v))
		}
		l = append(l, headers.Field{Name: h.Name, Value: v})
	}
	return l, nil
}

// maxTimeoutValue is the most digits grpc-timeout carries (8).
const maxTimeoutValue = 100000000 - 1

// encodeTimeout writes d in the largest precision whose value fits in 8
// digits, rounding up (a server never sees a later deadline than the
// client's).
func encodeTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := divUp(d, u.d); v <= maxTimeoutValue {
			return strconv.FormatInt(v, 10) + u.unit
		}
	}
	return strconv.FormatInt(divUp(d, time.Hour), 10) + "H"
}

func divUp(d, r time.Duration) int64 {
	if d%r > 0 {
		return int64(d/r + 1)
	}
	return int64(d / r)
}

// decodeMessage undoes grpc-message's percent-encoding; a '%' not
// followed by two hex digits stays as it is.
func decodeMessage(m string) string {
	if !strings.Contains(m, "%") {
		return m
	}
	var b strings.Builder
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c == '%' && i+2 < len(m) {
			if v, err := strconv.ParseUint(m[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// encodeMessage percent-encodes a status message for grpc-message (the
// server side's, used by the SDS server): printable ASCII but '%' stays,
// everything else is %XX per byte of its UTF-8 encoding.
func encodeMessage(m string) string {
	clean := true
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < ' ' || c > '~' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return m
	}
	var b strings.Builder
	for len(m) > 0 {
		r, size := utf8.DecodeRuneInString(m)
		for _, c := range []byte(string(r)) {
			if size == 1 && c >= ' ' && c <= '~' && c != '%' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		m = m[size:]
	}
	return b.String()
}

// httpCodes maps the HTTP status of a response that is not gRPC to a
// code (gRPC's http-grpc-status-mapping.md); others are Unknown.
var httpCodes = map[int]Code{
	http.StatusBadRequest:         Internal,
	http.StatusUnauthorized:       Unauthenticated,
	http.StatusForbidden:          PermissionDenied,
	http.StatusNotFound:           Unimplemented,
	http.StatusTooManyRequests:    Unavailable,
	http.StatusBadGateway:         Unavailable,
	http.StatusServiceUnavailable: Unavailable,
	http.StatusGatewayTimeout:     Unavailable,
}

// nonGRPCDataMax is how much of a non-gRPC response's body its status
// message quotes.
const nonGRPCDataMax = 1024

// checkHead returns nil for the head of a gRPC response (a gRPC
// content-type), else the call's status: code from the HTTP status, the
// message naming status and content-type; its body, when it has one,
// gets quoted by nonGRPC.
func checkHead(status int, hdr headers.List) *Status {
	ctErr := "malformed header: missing HTTP content-type"
	for _, f := range hdr {
		if f.Name != "content-type" {
			continue
		}
		if grpcContentType(f.Value) {
			return nil
		}
		ctErr = fmt.Sprintf("transport: received unexpected content-type %q", f.Value)
		break
	}
	code, ok := httpCodes[status]
	if !ok {
		code = Unknown
	}
	return &Status{Code: code, Message: fmt.Sprintf("unexpected HTTP status code received from server: %d (%s); %s",
		status, http.StatusText(status), ctErr)}
}

// nonGRPC completes a non-gRPC response's status with (the start of) its
// body.
func nonGRPC(st *Status, body []byte) *Status {
	return &Status{Code: st.Code, Message: fmt.Sprintf("%s\ndata: %q", st.Message, body)}
}

// grpcContentType reports whether v is application/grpc or
// application/grpc+subtype / ;parameters.
func grpcContentType(v string) bool {
	if !headers.HasPrefixFold(v, contentType) {
		return false
	}
	rest := v[len(contentType):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// trailerStatus reads the status from a trailer block (or a Trailers-Only
// response's headers) and returns it with the block's metadata. A missing
// grpc-status is Unknown (as grpc-go); a malformed one or malformed -bin
// metadata is an error status of its own.
func trailerStatus(tr headers.List) (*Status, []Header) {
	st := &Status{Code: Unknown}
	var md []Header
	for _, f := range tr {
		switch f.Name {
		case "grpc-status":
			n, err := strconv.ParseInt(f.Value, 10, 32)
			if err != nil {
				return &Status{Code: Unknown, Message: fmt.Sprintf("transport: malformed grpc-status: %v", err)}, nil
			}
			st.Code = Code(uint32(n))
		case "grpc-message":
			st.Message = decodeMessage(f.Value)
		default:
			h, err := metadataOf(f)
			if err != nil {
				return err, nil
			}
			if h != nil {
				md = append(md, *h)
			}
		}
	}
	return st, md
}

// metadataOf returns a response field as metadata: nil for the fields the
// transport owns (content-type is kept, as grpc-go keeps it), -bin
// values decoded.
func metadataOf(f headers.Field) (*Header, *Status) {
	if reserved(f.Name) && f.Name != "content-type" && f.Name != "user-agent" {
		return nil, nil
	}
	v := f.Value
	if strings.HasSuffix(f.Name, "-bin") {
		enc := base64.RawStdEncoding
		if len(v)%4 == 0 {
			enc = base64.StdEncoding
		}
		b, err := enc.DecodeString(v)
		if err != nil {
			return nil, &Status{Code: Internal, Message: fmt.Sprintf("transport: malformed %s: %v", f.Name, err)}
		}
		v = string(b)
	}
	return &Header{Name: f.Name, Value: v}, nil
}

// headMetadata returns a response head's metadata.
func headMetadata(hdr headers.List) ([]Header, *Status) {
	md := make([]Header, 0, len(hdr))
	for _, f := range hdr {
		h, err := metadataOf(f)
		if err != nil {
			return nil, err
		}
		if h != nil {
			md = append(md, *h)
		}
	}
	return md, nil
}
