package http1

import (
	"slices"
	"unsafe"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// HeadWriter writes a connection's heads, each from the last one's bytes
// when it has the same first line and as many fields: only the field lines
// whose strings changed are written again, and the framing fields when
// they changed. A proxy forwards a keep-alive connection's heads with the
// strings its Reader kept from the head before and its own, mostly
// constant, ones: most lines of a head are the last head's. What it writes
// is what AppendRequestHead and AppendResponseHead write. The zero value
// is ready to use.
type HeadWriter struct {
	buf []byte // the last head
	ok  bool   // buf holds a head
	// What the last head was made of: a request's method, target and
	// host, a response's minor version and status; its fields (the
	// caller's strings, which are immutable) and framing.
	req                  bool
	method, target, host string
	minor, status        int
	fields               headers.List
	contentLength        int64
	chunked, close       bool
	// Field i's line is buf[start:ends[i]], where start is ends[i-1], or
	// base for field 0 (empty for a field not written).
	ends []int
	base int
}

// Request returns the head AppendRequestHead(nil, ...) appends. It is
// valid until w's next call.
func (w *HeadWriter) Request(method, target, host string, h headers.List, contentLength int64, chunked bool) []byte {
	if !w.ok || !w.req || !same(method, w.method) || !same(target, w.target) || !same(host, w.host) || len(h) != len(w.fields) {
		w.buf = appendRequestLine(w.buf[:0], method, target, host)
		w.req, w.method, w.target, w.host = true, method, target, host
		return w.fresh(h, contentLength, chunked, false)
	}
	return w.again(h, contentLength, chunked, false)
}

// Response returns the head AppendResponseHead(nil, ...) appends. It is
// valid until w's next call.
func (w *HeadWriter) Response(minor, status int, h headers.List, contentLength int64, chunked, close bool) []byte {
	if !w.ok || w.req || minor != w.minor || status != w.status || len(h) != len(w.fields) {
		w.buf = appendStatusLine(w.buf[:0], minor, status)
		w.req, w.method, w.target, w.host, w.minor, w.status = false, "", "", "", minor, status
		return w.fresh(h, contentLength, chunked, close)
	}
	return w.again(h, contentLength, chunked, close)
}

// same reports whether a and b are equal, at once when they are the same
// string.
func same(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// fieldWords views a header list as the words of its strings (each
// field's name's and value's data pointers and lengths): two fields of the
// same strings have the same words, compared without a call.
func fieldWords(h headers.List) [][4]uintptr {
	// (A field is four words: this does not compile otherwise.)
	_ = [1]struct{}{}[unsafe.Sizeof(headers.Field{})-4*unsafe.Sizeof(uintptr(0))]
	return unsafe.Slice((*[4]uintptr)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}

// fresh writes h's fields and the framing after the first line in w.buf.
func (w *HeadWriter) fresh(h headers.List, contentLength int64, chunked, close bool) []byte {
	b, ends := w.buf, w.ends[:0]
	w.base = len(b)
	for _, f := range h {
		if written(f.Name) {
			b = appendField(b, f)
		}
		ends = append(ends, len(b))
	}
	w.buf, w.ends, w.ok = b, ends, true
	w.fields = append(w.fields[:0], h...)
	return w.framing(contentLength, chunked, close)
}

// again makes the last head h's: the field lines whose strings changed
// written in their place, the framing written again when it changed.
func (w *HeadWriter) again(h headers.List, contentLength int64, chunked, close bool) []byte {
	now, last := fieldWords(h), fieldWords(w.fields[:len(h)])
	for i := range now {
		x, y := &now[i], &last[i]
		if (x[0]^y[0])|(x[1]^y[1])|(x[2]^y[2])|(x[3]^y[3]) != 0 && h[i] != w.fields[i] {
			w.replace(i, h[i])
		}
	}
	if contentLength != w.contentLength || chunked != w.chunked || close != w.close {
		return w.framing(contentLength, chunked, close)
	}
	return w.buf
}

// replace writes f in place of field i's line, moving the lines after it
// when its length changed.
func (w *HeadWriter) replace(i int, f headers.Field) {
	start, end := w.base, w.ends[i]
	if i > 0 {
		start = w.ends[i-1]
	}
	n := 0
	if written(f.Name) {
		n = len(f.Name) + len(": ") + len(f.Value) + len("\r\n")
	}
	if d := start + n - end; d != 0 {
		size := len(w.buf)
		if d > 0 {
			w.buf = slices.Grow(w.buf, d)[:size+d]
		}
		copy(w.buf[end+d:], w.buf[end:size])
		w.buf = w.buf[:size+d]
		for k := i; k < len(w.ends); k++ {
			w.ends[k] += d
		}
	}
	if n > 0 {
		b := w.buf[start : start+n]
		p := copy(b, f.Name)
		b[p], b[p+1] = ':', ' '
		p += 2 + copy(b[p+2:], f.Value)
		b[p], b[p+1] = '\r', '\n'
	}
	w.fields[i] = f
}

// framing writes the framing fields and the empty line after the fields.
func (w *HeadWriter) framing(contentLength int64, chunked, close bool) []byte {
	end := w.base
	if len(w.ends) > 0 {
		end = w.ends[len(w.ends)-1]
	}
	w.buf = appendFraming(w.buf[:end], contentLength, chunked, close)
	w.contentLength, w.chunked, w.close = contentLength, chunked, close
	return w.buf
}
