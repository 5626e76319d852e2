package http1

import (
	"io"
	"strconv"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// IsHopByHop reports whether name (lower-case) is a hop-by-hop header, a
// connection-level header never forwarded (RFC 9110 7.6.1).
func IsHopByHop(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization":
		return true
	}
	return false
}

// StripHopByHop removes hop-by-hop headers and the ones Connection names.
// "te: trailers" is kept, as gRPC needs it.
func StripHopByHop(l *headers.List) {
	// Most messages have none (and so no Connection header naming
	// others): one pass of comparisons instead of a deleting pass per
	// name.
	found := false
	for i := range *l {
		if IsHopByHop((*l)[i].Name) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var named []string
	for _, f := range *l {
		if f.Name == "connection" {
			for _, tok := range splitComma(f.Value) {
				if n := headers.Lower(tok); n != "te" {
					named = append(named, n)
				}
			}
		}
	}
	for _, n := range named {
		l.Del(n)
	}
	te, hasTE := l.Get("te")
	kept := (*l)[:0]
	for _, f := range *l {
		if !IsHopByHop(f.Name) {
			kept = append(kept, f)
		}
	}
	clear((*l)[len(kept):])
	*l = kept
	if hasTE && headers.EqualFold(te, "trailers") {
		l.Add("te", "trailers")
	}
}

func splitComma(s string) []string {
	var out []string
	for s != "" {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		tok := s[:i]
		for len(tok) > 0 && (tok[0] == ' ' || tok[0] == '\t') {
			tok = tok[1:]
		}
		for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t') {
			tok = tok[:len(tok)-1]
		}
		if tok != "" {
			out = append(out, tok)
		}
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

// AppendRequestHead appends a request head in origin-form. host goes first
// as the Host header; contentLength -1 with chunked writes
// Transfer-Encoding: chunked.
func AppendRequestHead(b []byte, method, target, host string, h headers.List, contentLength int64, chunked bool) []byte {
	b = appendRequestLine(b, method, target, host)
	b = appendFields(b, h)
	return appendFraming(b, contentLength, chunked, false)
}

// appendRequestLine appends a request line and the host field.
func appendRequestLine(b []byte, method, target, host string) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nhost: "...)
	b = append(b, host...)
	return append(b, "\r\n"...)
}

// AppendResponseHead appends a response status line and headers.
func AppendResponseHead(b []byte, minor, status int, h headers.List, contentLength int64, chunked, close bool) []byte {
	b = appendStatusLine(b, minor, status)
	b = appendFields(b, h)
	return appendFraming(b, contentLength, chunked, close)
}

// appendStatusLine appends a status line.
func appendStatusLine(b []byte, minor, status int) []byte {
	if minor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = appendDecimal(b, int64(status))
	b = append(b, ' ')
	b = append(b, StatusText(status)...)
	return append(b, "\r\n"...)
}

func appendFields(b []byte, h headers.List) []byte {
	for _, f := range h {
		if written(f.Name) {
			b = appendField(b, f)
		}
	}
	return b
}

// written reports whether a field called name is written as it is: the
// head writers write host and the framing fields themselves, and
// pseudo-headers not at all.
func written(name string) bool {
	return name != "host" && name != "content-length" && name != "transfer-encoding" && name != "" && name[0] != ':'
}

func appendField(b []byte, f headers.Field) []byte {
	b = append(b, f.Name...)
	b = append(b, ": "...)
	b = append(b, f.Value...)
	return append(b, "\r\n"...)
}

// appendFraming appends the framing fields, connection: close when close,
// and the empty line that ends a head.
func appendFraming(b []byte, contentLength int64, chunked, close bool) []byte {
	switch {
	case chunked:
		b = append(b, "transfer-encoding: chunked\r\n"...)
	case contentLength >= 0:
		b = append(b, "content-length: "...)
		b = appendDecimal(b, contentLength)
		b = append(b, "\r\n"...)
	}
	if close {
		b = append(b, "connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// appendDecimal appends n in decimal, as strconv.AppendInt(b, n, 10) does:
// a head's status code and content length take a digit loop instead of
// strconv's general path (about a third of the instructions).
func appendDecimal(b []byte, n int64) []byte {
	if n < 0 {
		return strconv.AppendInt(b, n, 10)
	}
	var d [20]byte // math.MaxInt64 has 19 digits
	i := len(d)
	u := uint64(n)
	for u >= 10 {
		q := u / 10
		i--
		d[i] = byte('0' + u - q*10)
		u = q
	}
	i--
	d[i] = byte('0' + u)
	return append(b, d[i:]...)
}

// ChunkedWriter writes the chunked transfer coding.
type ChunkedWriter struct {
	W io.Writer
	// Buf is scratch space for chunk headers, kept when the writer is reused.
	Buf []byte
}

func (c *ChunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.Buf = strconv.AppendInt(c.Buf[:0], int64(len(p)), 16)
	c.Buf = append(c.Buf, "\r\n"...)
	if _, err := c.W.Write(c.Buf); err != nil {
		return 0, err
	}
	n, err := c.W.Write(p)
	if err != nil {
		return n, err
	}
	_, err = io.WriteString(c.W, "\r\n") // no copy when W is a StringWriter (bufio)
	return n, err
}

// Close writes the last chunk and trailers.
func (c *ChunkedWriter) Close(trailers headers.List) error {
	c.Buf = append(c.Buf[:0], "0\r\n"...)
	c.Buf = appendFields(c.Buf, trailers)
	c.Buf = append(c.Buf, "\r\n"...)
	_, err := c.W.Write(c.Buf)
	return err
}

// StatusText returns the reason phrase for code.
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 204:
		return "No Content"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Payload Too Large"
	case 418:
		return "I'm a teapot"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status"
}
