package http1

import (
	"bytes"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// The parser as it was before heads reused the last head's strings
// (b87538b): the reference the differential fuzz (FuzzKeptFields)
// compares ReadRequest and ReadResponse with. It shares readHead and the
// framing checks, which did not change.

type refSpan struct{ name, colon, value, end int }

func refReadRequest(r *Reader, h *Head) error {
	if _, err := r.readHead(true); err != nil {
		return err
	}
	*h = Head{Headers: h.Headers[:0], ContentLength: -1}
	b := r.buf
	eol := r.eols[0]
	line := b[:eol-1]
	m, t, ok1 := cutSpace(line)
	t, v, ok2 := cutSpace(t)
	if !ok1 || !ok2 || len(m) == 0 || len(t) == 0 {
		return bad("malformed request line")
	}
	for _, c := range m {
		if !isToken(c) {
			return bad("invalid method")
		}
	}
	for _, c := range t {
		if c <= ' ' || c == 0x7f {
			return bad("invalid request target")
		}
	}
	switch string(v) {
	case "HTTP/1.1":
		h.Minor = 1
	case "HTTP/1.0":
		h.Minor = 0
	default:
		if bytes.HasPrefix(v, []byte("HTTP/")) && len(v) == 8 && v[6] == '.' {
			return &Error{Status: 505, Msg: "HTTP version not supported"}
		}
		return bad("malformed HTTP version")
	}
	spans, err := refParseFields(r)
	if err != nil {
		return err
	}
	s := refFields(r, h, spans)
	h.Method, h.Target = s[:len(m)], s[len(m)+1:len(m)+1+len(t)]
	return requestFraming(h)
}

func refReadResponse(r *Reader, h *Head) error {
	if _, err := r.readHead(false); err != nil {
		return err
	}
	*h = Head{Headers: h.Headers[:0], ContentLength: -1}
	b := r.buf
	eol := r.eols[0]
	line := b[:eol-1]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return bad("malformed status line")
	}
	switch line[7] {
	case '0':
	case '1':
		h.Minor = 1
	default:
		return bad("unsupported HTTP version")
	}
	code, _, hasReason := cutSpace(line[9:])
	if len(code) != 3 {
		return bad("malformed status code")
	}
	n := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return bad("malformed status code")
		}
		n = n*10 + int(c-'0')
	}
	if n < 100 {
		return bad("malformed status code")
	}
	h.Status = n
	spans, err := refParseFields(r)
	if err != nil {
		return err
	}
	s := refFields(r, h, spans)
	if hasReason {
		h.Reason = s[13:len(line)]
	}
	return responseFraming(h)
}

func refFields(r *Reader, h *Head, spans []refSpan) string {
	s := string(r.buf)
	for _, sp := range spans {
		h.Headers = append(h.Headers, headers.Field{Name: s[sp.name:sp.colon], Value: s[sp.value:sp.end]})
	}
	return s
}

func refParseFields(r *Reader) ([]refSpan, error) {
	b := r.buf
	var spans []refSpan
	i := r.eols[0] + 1
	for _, lf := range r.eols[1:] {
		end, next := lf-1, lf+1
		if end == i {
			return spans, nil
		}
		if b[i] == ' ' || b[i] == '\t' {
			return nil, bad("obsolete line folding")
		}
		colon := i + bytes.IndexByte(b[i:end], ':')
		if colon <= i {
			return nil, bad("header line without name and colon")
		}
		name := b[i:colon]
		for j, c := range name {
			if name[j] = lowerToken[c]; name[j] == 0 {
				return nil, bad("invalid header name")
			}
		}
		v, e := colon+1, end
		for v < e && (b[v] == ' ' || b[v] == '\t') {
			v++
		}
		for e > v && (b[e-1] == ' ' || b[e-1] == '\t') {
			e--
		}
		if !validValue(b[v:e]) {
			return nil, bad("invalid character in header %q", b[i:colon])
		}
		if len(spans) >= r.lim.MaxHeaders {
			return nil, &Error{Status: 431, Msg: "too many header fields"}
		}
		spans = append(spans, refSpan{name: i, colon: colon, value: v, end: e})
		i = next
	}
	return spans, nil
}
