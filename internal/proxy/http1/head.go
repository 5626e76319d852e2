// Package http1 is mast-proxy's HTTP/1.x wire code: a strict request-head
// parser (the proxy's first line against request smuggling), a response-head
// parser for upstream replies, body framing readers (Content-Length,
// chunked) and writers. It rejects ambiguous framing instead of guessing.
package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Error is a protocol error with the HTTP status the proxy answers with.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("http1: %d %s", e.Status, e.Msg) }

func bad(format string, a ...any) error {
	return &Error{Status: 400, Msg: fmt.Sprintf(format, a...)}
}

// StatusOf returns the status for a parse error (400 when unknown).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 400
}

// Limits bound a request head.
type Limits struct {
	MaxHeaderBytes int // total head size, request line included (default 60 KiB)
	MaxHeaders     int // number of header fields (default 100)
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 60 * 1024
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 100
	}
	return l
}

// Head is a parsed request or response head. Header names are lower-case.
// Its strings are copies, never the reader's buffer: the pieces that equal
// the last head's on the same Reader are that head's strings, the others
// share one allocation per head.
type Head struct {
	// Request line.
	Method string
	Target string
	// Status line (responses).
	Status int
	Reason string

	Minor   int // HTTP/1.Minor
	Headers headers.List

	// Framing, derived and validated.
	ContentLength int64 // -1 when absent
	Chunked       bool
	Close         bool // the connection must close after this message
	Expect100     bool
	Upgrade       bool
	// HopByHop says a field is hop-by-hop (IsHopByHop; a field that
	// Connection names comes with a Connection field): without one,
	// StripHopByHop would leave Headers as they are.
	HopByHop bool
}

// Reader reads heads from a connection, reusing its buffers.
type Reader struct {
	br  *bufio.Reader
	buf []byte
	lim Limits
	// spans are the fields of the head being parsed that differ from the
	// last head's, as offsets in buf after their move (kept.go); nf counts
	// all its fields, w ends the bytes moved (reused: a head's fields cost
	// no allocation of their own).
	spans []fieldSpan
	nf, w int
	// eols are the offsets in buf of the head's line ends (each LF),
	// which readHead found: the parser does not look for them again.
	eols []int
	// seen has bit j set when line j (j < 64) of the head equals the
	// last head's first line (j = 0) or raw field line j-1 (kept.go):
	// scanBuffered found it there, so parseFields does not compare it again.
	seen uint64
	// raw holds, while a head is parsed, the changed field lines whose
	// names had upper-case letters, as they arrived (kept.go).
	raw []byte
	// head is the last head's bytes as they arrived, up to its empty
	// line, when it was found in the buffered bytes at once (kept.go),
	// headEOLs the offsets of its lines' LFs; whole: the head being read
	// was.
	head     []byte
	headEOLs []int
	whole    bool
	// patched lists the lines of the head being read that are not the
	// last head's (patch.go): np of them.
	patched [maxPatched]int
	np      int
	// last are the strings of the last head read (kept.go).
	last lastHead
}

// fieldSpan is field k of a head, a line in its head buffer: the line
// (without CRLF) is buf[name:eol], the name buf[name:colon], the value
// (without OWS) buf[value:end]; the line as it arrived, when its name had
// upper-case letters, is at raw in Reader.raw (else raw < 0).
type fieldSpan struct{ k, name, colon, value, end, eol, raw int }

// NewReader returns a head reader over br.
func NewReader(br *bufio.Reader, lim Limits) *Reader {
	return &Reader{br: br, lim: lim.withDefaults()}
}

// Reset makes r read from br and drops its head buffer (an idle
// connection parked without its reader holds neither).
func (r *Reader) Reset(br *bufio.Reader) {
	r.br, r.buf, r.spans, r.eols, r.raw, r.head, r.headEOLs, r.last = br, nil, nil, nil, nil, nil, nil, lastHead{}
}

// Buffered returns the underlying reader.
func (r *Reader) Buffered() *bufio.Reader { return r.br }

// maxKeptLines is the most line offsets a Reader keeps for its next head
// (heads of up to MaxHeaders fields, 100 by default, fit).
const maxKeptLines = 256

// How readHead read a head.
const (
	// readLines: its bytes are in r.buf, the offset of each line's LF in
	// r.eols.
	readLines = iota
	// readAgain: it is the last head's bytes again (kept.go), consumed;
	// r.buf and r.eols are not set.
	readAgain
	// readPatched: it is the last head's bytes with the lines r.patch
	// lists replaced (patch.go), consumed; its bytes are in r.head, the
	// offsets of its lines' LFs in r.headEOLs.
	readPatched
)

// readHead reads raw head bytes up to and including the empty line, and
// says where it left them. Lines must end in CRLF; a bare LF is rejected.
func (r *Reader) readHead(skipEmpty bool) (read int, err error) {
	r.buf, r.eols, r.seen, r.raw, r.whole = r.buf[:0], r.eols[:0], 0, r.raw[:0], false
	if cap(r.eols) > maxKeptLines {
		r.eols = nil // a head of many lines does not keep their offsets
	}
	empties := 0
	if done, read, err := r.scanBuffered(skipEmpty, &empties); done {
		return read, err
	}
	return readLines, r.readLines(skipEmpty, empties)
}

// readLines is readHead past the buffered bytes: line by line.
func (r *Reader) readLines(skipEmpty bool, empties int) error {
	for {
		line, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// An overlong line: keep collecting it, bounded by the limit.
			r.buf = append(r.buf, line...)
			if len(r.buf) > r.lim.MaxHeaderBytes {
				return &Error{Status: 431, Msg: "request header fields too large"}
			}
			continue
		}
		if err != nil {
			if err == io.EOF && len(r.buf) == 0 && len(line) == 0 {
				return io.EOF
			}
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			if len(r.buf) == 0 || r.buf[len(r.buf)-1] != '\r' || len(line) != 1 {
				return bad("line not terminated by CRLF")
			}
		}
		full := len(r.buf) == 0 && len(line) == 2
		if full && skipEmpty && empties < 4 {
			// RFC 9112 2.2: ignore empty lines before the request line.
			empties++
			continue
		}
		r.buf = append(r.buf, line...)
		r.eols = append(r.eols, len(r.buf)-1)
		if len(r.buf) > r.lim.MaxHeaderBytes {
			return &Error{Status: 431, Msg: "request header fields too large"}
		}
		// Only a line of at most two bytes can end the head: no comparison
		// for the others.
		if len(line) <= 2 && (bytes.HasSuffix(r.buf, []byte("\r\n\r\n")) || (len(r.buf) == 2 && full)) {
			return nil
		}
	}
}

// scanBuffered is readHead's fast path: it looks for the whole head in
// what the reader has buffered (a head usually arrives in one read) and
// copies it once, instead of reading it line by line. It applies the same
// rules in the same order. done false: the head goes on past the buffered
// bytes; the complete lines seen are in r.buf and consumed, and readHead
// reads on from there.
func (r *Reader) scanBuffered(skipEmpty bool, empties *int) (done bool, read int, err error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return true, readLines, err // nothing read: io.EOF is a clean close
		}
	}
	b, _ := r.br.Peek(r.br.Buffered())
	if r.last.whole {
		if len(b) >= len(r.head) && string(b[:len(r.head)]) == string(r.head) {
			r.br.Discard(len(r.head))
			return true, readAgain, nil
		}
		r.last.whole = false // r.head is overwritten
		if r.patch(b) {
			r.whole = true
			return true, readPatched, nil
		}
	}
	start, i := 0, 0 // the head is b[start:i] so far
	for {
		k := r.seenLine(b, i)
		if k < 0 {
			k = bytes.IndexByte(b[i:], '\n')
		}
		if k < 0 {
			r.buf = append(r.buf, b[start:i]...)
			r.br.Discard(i)
			return false, readLines, nil
		}
		if k < 1 || b[i+k-1] != '\r' {
			return true, readLines, bad("line not terminated by CRLF")
		}
		empty := k == 1
		i += k + 1
		if empty && i-2 == start {
			if skipEmpty && *empties < 4 {
				// RFC 9112 2.2: ignore empty lines before the request line.
				*empties++
				start = i
				continue
			}
		}
		if i-start > r.lim.MaxHeaderBytes {
			return true, readLines, &Error{Status: 431, Msg: "request header fields too large"}
		}
		r.eols = append(r.eols, i-1-start) // r.buf is empty: the head is b[start:]
		if empty {
			r.buf = append(r.buf, b[start:i]...)
			r.head = append(r.head[:0], b[start:i]...)
			r.headEOLs = append(r.headEOLs[:0], r.eols...)
			r.br.Discard(i)
			r.whole = true
			return true, readLines, nil
		}
	}
}

// seenLine returns the offset of the LF ending the line at b[i:] when
// that line is the last head's line at the same index (r.seen gets its
// bit), else -1: a line of the last head is found by one comparison
// instead of a search for its end. The last head's lines hold no LF, so
// the LF after an equal line is the first one.
func (r *Reader) seenLine(b []byte, i int) int {
	j := len(r.eols)
	var want string
	switch {
	case j == 0:
		want = r.last.first
	case j <= len(r.last.raw) && j < 64:
		want = r.last.raw[j-1]
	}
	n := len(want)
	if n == 0 || i+n+1 >= len(b) || b[i+n] != '\r' || b[i+n+1] != '\n' || string(b[i:i+n]) != want {
		return -1
	}
	r.seen |= 1 << j
	return n + 1
}

// cutSpace is bytes.Cut(b, []byte(" ")) without Cut's and Index's
// general-separator work: one IndexByte.
func cutSpace(b []byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// checkRequestLine validates a request line's method and target.
func checkRequestLine(m, t []byte) error {
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
	return nil
}

// ReadRequest reads and validates one request head into h. io.EOF means
// the client closed cleanly between requests.
func (r *Reader) ReadRequest(h *Head) error {
	read, err := r.readHead(true)
	if err != nil {
		return err
	}
	return r.request(h, read)
}

// request parses the request head readHead read.
func (r *Reader) request(h *Head, read int) error {
	switch read {
	case readAgain:
		r.lastAgain(h)
		return nil
	case readPatched:
		return r.readPatched(h, true)
	}
	*h = Head{Headers: h.Headers[:0], ContentLength: -1}
	line := r.buf[:r.eols[0]-1]
	// A request line equal to the last head's was validated then.
	same := r.keepFirst(len(line))
	first, err := requestLine(h, line, same)
	if err != nil {
		return err
	}
	if err := r.parseFields(); err != nil {
		return err
	}
	line0 := r.strings(h, same, len(line), first)
	h.Method, h.Target = line0[0], line0[1]
	return r.framed(h, requestFraming(h))
}

// requestLine parses a request line into h.Minor and returns its
// method's and target's spans; same: it is the last head's, validated
// then.
func requestLine(h *Head, line []byte, same bool) ([2]span, error) {
	m, t, ok1 := cutSpace(line)
	t, v, ok2 := cutSpace(t)
	if !ok1 || !ok2 || len(m) == 0 || len(t) == 0 {
		return [2]span{}, bad("malformed request line")
	}
	if !same {
		if err := checkRequestLine(m, t); err != nil {
			return [2]span{}, err
		}
	}
	switch string(v) {
	case "HTTP/1.1":
		h.Minor = 1
	case "HTTP/1.0":
		h.Minor = 0
	default:
		if bytes.HasPrefix(v, []byte("HTTP/")) && len(v) == 8 && v[6] == '.' {
			return [2]span{}, &Error{Status: 505, Msg: "HTTP version not supported"}
		}
		return [2]span{}, bad("malformed HTTP version")
	}
	return [2]span{{0, len(m)}, {len(m) + 1, len(m) + 1 + len(t)}}, nil
}

// ReadResponse reads one response head (upstream side).
func (r *Reader) ReadResponse(h *Head) error {
	read, err := r.readHead(false)
	if err != nil {
		return err
	}
	return r.response(h, read)
}

// response parses the response head readHead read.
func (r *Reader) response(h *Head, read int) error {
	switch read {
	case readAgain:
		r.lastAgain(h)
		return nil
	case readPatched:
		return r.readPatched(h, false)
	}
	*h = Head{Headers: h.Headers[:0], ContentLength: -1}
	line := r.buf[:r.eols[0]-1]
	first, err := statusLine(h, line)
	if err != nil {
		return err
	}
	same := r.keepFirst(len(line))
	if err := r.parseFields(); err != nil {
		return err
	}
	h.Reason = r.strings(h, same, len(line), first)[0]
	return r.framed(h, responseFraming(h))
}

// statusLine parses a status line into h.Minor and h.Status and returns
// its reason's span.
func statusLine(h *Head, line []byte) ([2]span, error) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return [2]span{}, bad("malformed status line")
	}
	switch line[7] {
	case '0':
	case '1':
		h.Minor = 1
	default:
		return [2]span{}, bad("unsupported HTTP version")
	}
	code, _, hasReason := cutSpace(line[9:])
	if len(code) != 3 {
		return [2]span{}, bad("malformed status code")
	}
	n := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return [2]span{}, bad("malformed status code")
		}
		n = n*10 + int(c-'0')
	}
	if n < 100 {
		return [2]span{}, bad("malformed status code")
	}
	h.Status = n
	reason := span{-1, -1}
	if hasReason {
		reason = span{13, len(line)}
	}
	return [2]span{reason, {-1, -1}}, nil
}

// parseFields validates the field lines of r.buf (the lines after the
// first), lower-casing the names in place. A line equal to the last head's
// at the same index was validated then and keeps its strings; the others
// are moved to r.buf[r.w:] and recorded in r.spans.
func (r *Reader) parseFields() error {
	b := r.buf
	r.spans, r.nf = r.spans[:0], 0
	i := r.eols[0] + 1
	for j, lf := range r.eols[1:] {
		end, next := lf-1, lf+1 // the line is b[i:end], CRLF after it
		if end == i {
			return nil
		}
		k := r.nf
		if r.seen&(2<<j) != 0 || k < len(r.last.raw) && string(b[i:end]) == r.last.raw[k] {
			if k >= r.lim.MaxHeaders {
				return &Error{Status: 431, Msg: "too many header fields"}
			}
		} else if err := r.field(i, end, k); err != nil {
			return err
		}
		r.nf++
		i = next
	}
	return nil // (not reached: readHead's last line is the empty one)
}

// field validates field line k, r.buf[i:end] (without CRLF), which is not
// the last head's line k as it arrived, lower-casing its name in place.
// Unless it is the last head's line k but for its name's case, it moves
// to r.buf[r.w:] (i >= r.w) and is recorded in r.spans.
func (r *Reader) field(i, end, k int) error {
	b := r.buf
	if b[i] == ' ' || b[i] == '\t' {
		return bad("obsolete line folding")
	}
	colon := i + bytes.IndexByte(b[i:end], ':')
	if colon <= i {
		return bad("header line without name and colon")
	}
	name := b[i:colon]
	var upper byte // a letter's case bit, when the name has upper-case ones
	for _, c := range name {
		l := lowerToken[c]
		if l == 0 {
			return bad("invalid header name")
		}
		upper |= l ^ c
	}
	raw := -1
	if upper != 0 {
		// The line as it arrived is kept with it (kept.go).
		raw = len(r.raw)
		r.raw = append(r.raw, b[i:end]...)
		for j, c := range name {
			name[j] = lowerToken[c]
		}
	}
	// The same line but for its name's case (a client's Host, Content-Type...).
	same := k < len(r.last.lines) && string(b[i:end]) == r.last.lines[k]
	if same && raw >= 0 {
		r.raw = r.raw[:raw]
	}
	v, e := colon+1, end
	for v < e && (b[v] == ' ' || b[v] == '\t') {
		v++
	}
	for e > v && (b[e-1] == ' ' || b[e-1] == '\t') {
		e--
	}
	if !same && !validValue(b[v:e]) {
		return bad("invalid character in header %q", b[i:colon])
	}
	if k >= r.lim.MaxHeaders {
		return &Error{Status: 431, Msg: "too many header fields"}
	}
	if !same {
		d := r.w - i // the line moves left by -d
		copy(b[r.w:], b[i:end])
		r.w += end - i
		r.spans = append(r.spans, fieldSpan{k: k, name: i + d, colon: colon + d, value: v + d, end: e + d, eol: end + d, raw: raw})
	}
	return nil
}

func requestFraming(h *Head) error {
	var f framing
	if err := f.check(h); err != nil {
		return err
	}
	switch n := f.hosts; {
	case n > 1:
		return bad("multiple Host headers")
	case n == 0 && h.Minor == 1 && !strings.Contains(h.Target, "://") && h.Method != "CONNECT":
		return bad("missing Host header")
	}
	if f.hasExpect && headers.EqualFold(f.expect, "100-continue") {
		h.Expect100 = true
	}
	return nil
}

func responseFraming(h *Head) error {
	var f framing
	if err := f.check(h); err != nil {
		return err
	}
	if h.Status/100 == 1 || h.Status == 204 || h.Status == 304 {
		h.ContentLength, h.Chunked = 0, false
	}
	return nil
}

// framing is what one pass over a head's fields finds for its framing:
// besides what check sets in the Head, the Host fields' count and the
// first Expect field (requestFraming's).
type framing struct {
	hosts     int
	expect    string
	hasExpect bool
}

// check validates Content-Length and Transfer-Encoding (RFC 9112 6) and
// sets h.HopByHop.
func (fr *framing) check(h *Head) error {
	var te string
	cl := int64(-1)
	teCount := 0
	for _, f := range h.Headers {
		switch f.Name {
		case "host":
			fr.hosts++
		case "expect":
			if !fr.hasExpect {
				fr.expect, fr.hasExpect = f.Value, true
			}
		case "keep-alive", "proxy-connection", "te", "upgrade", "proxy-authenticate", "proxy-authorization":
			h.HopByHop = true
		case "transfer-encoding":
			h.HopByHop = true
			teCount++
			if te != "" {
				te += ","
			}
			te += f.Value
		case "content-length":
			for rest := f.Value; ; {
				part, more, found := strings.Cut(rest, ",")
				n, err := parseContentLength(strings.TrimSpace(part))
				if err != nil {
					return err
				}
				if cl >= 0 && n != cl {
					return bad("conflicting Content-Length values")
				}
				cl = n
				if !found {
					break
				}
				rest = more
			}
		case "connection":
			h.HopByHop = true
			for rest := f.Value; rest != ""; {
				var tok string
				tok, rest, _ = strings.Cut(rest, ",")
				tok = strings.TrimSpace(tok)
				switch {
				case headers.EqualFold(tok, "close"):
					h.Close = true
				case headers.EqualFold(tok, "upgrade"):
					h.Upgrade = true
				}
			}
		}
	}
	if h.Minor == 0 {
		ka := false
		for _, v := range h.Headers {
			if v.Name == "connection" && headers.ContainsFold(v.Value, "keep-alive") {
				ka = true
			}
		}
		if !ka {
			h.Close = true
		}
	}
	if teCount > 0 {
		if cl >= 0 {
			return bad("both Transfer-Encoding and Content-Length")
		}
		if h.Minor == 0 {
			return bad("Transfer-Encoding in HTTP/1.0")
		}
		codings := strings.Split(te, ",")
		last := strings.TrimSpace(codings[len(codings)-1])
		if !headers.EqualFold(last, "chunked") {
			return bad("Transfer-Encoding does not end in chunked")
		}
		if len(codings) > 1 {
			// Only chunked alone is implemented: report the first other coding.
			c := strings.TrimSpace(codings[0])
			if headers.EqualFold(c, "chunked") {
				return bad("chunked applied more than once")
			}
			return &Error{Status: 501, Msg: "transfer coding " + strconv.Quote(c) + " not implemented"}
		}
		h.Chunked = true
		return nil
	}
	h.ContentLength = cl
	return nil
}

func parseContentLength(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, bad("invalid Content-Length")
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, bad("invalid Content-Length")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// isToken reports whether c is a tchar (RFC 9110 5.6.2).
func isToken(c byte) bool { return tokenChars[c] }

// lowerToken maps a tchar to its lower case, any other byte to 0
// (read-only).
var lowerToken = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case 'A' <= c && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		case tokenChars[c]:
			t[c] = byte(c)
		}
	}
	return t
}()

// tokenChars are RFC 9110's tchar, by byte (read-only).
var tokenChars = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		case strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0:
			t[c] = true
		}
	}
	return t
}()

// validValue reports whether a field value has no control character but
// tab and no DEL (RFC 9110 5.5). It looks at sixteen bytes at a time, then
// eight: a sidecar's heads carry values of hundreds of bytes
// (x-envoy-peer-metadata). A word with a byte below 0x20 or equal to 0x7f
// is always flagged (the lowest such byte takes no borrow from below),
// tabs too; the bytes from a flagged word on are checked one by one.
func validValue[S ~string | ~[]byte](v S) bool {
	for len(v) >= 16 {
		_ = v[15] // one bounds check for both words
		w := uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
			uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56
		x := uint64(v[8]) | uint64(v[9])<<8 | uint64(v[10])<<16 | uint64(v[11])<<24 |
			uint64(v[12])<<32 | uint64(v[13])<<40 | uint64(v[14])<<48 | uint64(v[15])<<56
		if (ctlBytes(w)|ctlBytes(x))&0x8080808080808080 != 0 {
			break
		}
		v = v[16:]
	}
	if len(v) >= 8 {
		_ = v[7] // one bounds check for the word
		w := uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
			uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56
		if ctlBytes(w)&0x8080808080808080 == 0 {
			v = v[8:]
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ctlBytes has the high bit set in (at least) the lowest byte of w that
// is below 0x20 or is 0x7f, when there is one.
func ctlBytes(w uint64) uint64 {
	const ones = 0x0101010101010101
	del := w ^ (ones * 0x7f)
	return (w-ones*0x20)&^w | (del-ones)&^del
}

// trimOWS strips optional whitespace (spaces and tabs, RFC 9110 5.6.3)
// from both ends of a field value; strings.Trim with a cutset costs a
// set's construction per call.
func trimOWS(v string) string {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}
