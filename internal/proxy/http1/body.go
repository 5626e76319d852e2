package http1

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Body reads one message body framed by Content-Length, chunked encoding or
// connection close. It never reads past the end of the message, so the
// connection can carry the next one.
type Body struct {
	br       *bufio.Reader
	remain   int64 // bytes left: in the message (length) or chunk (chunked)
	chunked  bool
	untilEOF bool
	done     bool
	err      error
	maxTrail int
	// Trailers collected from a chunked body (names lower-case).
	Trailers headers.List
}

// NewBody returns a body reader for the message whose head is h. untilEOF
// applies to responses without length, read until the connection closes.
func NewBody(br *bufio.Reader, h *Head, untilEOF bool) *Body {
	b := &Body{}
	b.Reset(br, h, untilEOF)
	return b
}

// Reset re-arms b for the message whose head is h, so a connection can reuse
// one Body for all its messages.
func (b *Body) Reset(br *bufio.Reader, h *Head, untilEOF bool) {
	*b = Body{br: br, maxTrail: 16 * 1024, Trailers: b.Trailers[:0]}
	switch {
	case h.Chunked:
		b.chunked = true
		b.remain = -1
	case h.ContentLength >= 0:
		b.remain = h.ContentLength
		b.done = h.ContentLength == 0
	case untilEOF:
		b.untilEOF = true
	default:
		b.done = true
	}
}

// Done reports whether the whole body was read without error.
func (b *Body) Done() bool { return b.done && b.err == nil }

// Empty reports whether the message has no body at all.
func (b *Body) Empty() bool { return b.done && !b.chunked && b.err == nil }

// Ready reports whether Read would return without waiting for the
// connection: the body ended or failed, or body bytes are buffered. At a
// chunk boundary it is true only when the next chunk's size line and some
// of its data are buffered; otherwise (a last chunk, trailers, a line not
// yet complete) it says false, which costs a caller at most an early
// flush.
func (b *Body) Ready() bool {
	if b.err != nil || b.done {
		return true
	}
	n := b.br.Buffered()
	if n == 0 {
		return false
	}
	if !b.chunked || b.remain > 0 {
		return true
	}
	buf, _ := b.br.Peek(n)
	i := bytes.IndexByte(buf, '\n')
	if i < 1 || i+1 == len(buf) || buf[i-1] != '\r' {
		return false
	}
	size, _, err := chunkSize(string(buf[:i-1]))
	return err == nil && size > 0
}

// TakeBuffered consumes the rest of a body of known length when the reader
// already holds all of it and it is at most max bytes: ok is false (and
// nothing is consumed) otherwise, for chunked bodies and bodies read until
// EOF. The slice is a view of the reader's buffer, valid only until the
// reader's next read: the caller writes it out, or copies what it keeps,
// before the connection reads again.
func (b *Body) TakeBuffered(max int) (data []byte, ok bool) {
	if b.err != nil || b.done || b.chunked || b.untilEOF || b.remain > int64(max) || int64(b.br.Buffered()) < b.remain {
		return nil, false
	}
	n := int(b.remain)
	data, _ = b.br.Peek(n) // buffered: no read, no error
	b.br.Discard(n)
	b.remain, b.done = 0, true
	return data, true
}

func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if b.untilEOF {
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.done = true
		} else if err != nil {
			b.err = err
		}
		return n, err
	}
	if b.chunked && b.remain <= 0 {
		if err := b.nextChunk(); err != nil {
			b.err = err
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.br.Read(p)
	b.remain -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
		return n, err
	}
	if b.remain == 0 {
		if b.chunked {
			if err := b.crlf(); err != nil {
				b.err = err
				return n, err
			}
		} else {
			b.done = true
		}
	}
	return n, nil
}

func (b *Body) crlf() error {
	c1, err := b.br.ReadByte()
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	c2, err := b.br.ReadByte()
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	if c1 != '\r' || c2 != '\n' {
		return bad("chunk data not followed by CRLF")
	}
	return nil
}

// nextChunk reads a chunk-size line; for the last chunk it reads trailers.
func (b *Body) nextChunk() error {
	line, err := b.line(4096)
	if err != nil {
		return err
	}
	n, ext, err := chunkSize(line)
	if err != nil {
		return err
	}
	if !validValue(ext) {
		return bad("invalid chunk extension")
	}
	if n > 0 {
		b.remain = int64(n)
		return nil
	}
	total := 0
	for {
		l, err := b.line(b.maxTrail)
		if err != nil {
			return err
		}
		if l == "" {
			b.done = true
			return nil
		}
		total += len(l)
		if total > b.maxTrail || len(b.Trailers) >= 100 {
			return bad("trailers too large")
		}
		name, v, ok := strings.Cut(l, ":")
		if !ok || name == "" || l[0] == ' ' || l[0] == '\t' {
			return bad("malformed trailer")
		}
		for i := 0; i < len(name); i++ {
			if !isToken(name[i]) {
				return bad("malformed trailer")
			}
		}
		// A bare CR (the line ends at LF), NUL or other control character
		// would be written into the next hop's framing.
		if v = trimOWS(v); !validValue(v) {
			return bad("invalid trailer value")
		}
		b.Trailers = append(b.Trailers, headers.Field{Name: headers.Lower(name), Value: v})
	}
}

// chunkSize parses a chunk-size line without its CRLF: the size in hex
// (at most 15 digits, whitespace before any extension allowed) and the
// extensions after ';'.
func chunkSize(line string) (uint64, string, error) {
	size, ext, _ := strings.Cut(line, ";")
	size = strings.TrimRight(size, " \t")
	if size == "" || len(size) > 15 {
		return 0, "", bad("invalid chunk size")
	}
	n, err := strconv.ParseUint(size, 16, 64)
	if err != nil {
		return 0, "", bad("invalid chunk size")
	}
	return n, ext, nil
}

// line reads a CRLF-terminated line of at most max bytes, without the CRLF.
func (b *Body) line(max int) (string, error) {
	var acc []byte
	for {
		s, err := b.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			acc = append(acc, s...)
			if len(acc) > max {
				return "", bad("line too long")
			}
			continue
		}
		if err != nil {
			return "", io.ErrUnexpectedEOF
		}
		acc = append(acc, s...)
		if len(acc) > max {
			return "", bad("line too long")
		}
		if len(acc) < 2 || acc[len(acc)-2] != '\r' {
			return "", bad("line not terminated by CRLF")
		}
		return string(acc[:len(acc)-2]), nil
	}
}

// ReadAllLimit appends the body to buf while it fits in limit bytes. It
// reports complete=false when the body is longer; the caller then streams
// the returned prefix followed by the rest of b.
func ReadAllLimit(b *Body, limit int, buf []byte) (data []byte, complete bool, err error) {
	var tmp [4096]byte
	for len(buf) < limit {
		n, err := b.Read(tmp[:min(len(tmp), limit-len(buf))])
		buf = append(buf, tmp[:n]...)
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	// Exactly at the limit: a zero-length read finishes a body that ends here.
	if _, err := b.Read(tmp[:0]); err == io.EOF {
		return buf, true, nil
	} else if err != nil {
		return buf, false, err
	}
	return buf, b.Done(), nil
}
