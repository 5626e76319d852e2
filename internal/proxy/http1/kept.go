package http1

import "github.com/mast-mesh/mast/internal/proxy/headers"

// lastHead holds the strings of the last head a Reader parsed. On a
// keep-alive connection most fields repeat byte for byte from one message
// to the next (host, user-agent, content-type, a sidecar's peer metadata,
// server...): a field equal to the last head's at the same index takes its
// strings, without validating or copying it again. Strings are immutable,
// so whoever still holds the last head's strings is unaffected.
type lastHead struct {
	// line is a request's method and target, a response's reason.
	line   [2]string
	fields []headers.Field
}

// maxKeptFields is the most fields a Reader keeps of its last head.
const maxKeptFields = maxKeptLines

// span is buf[a:b]; a < 0: absent.
type span struct{ a, b int }

// strings makes h's strings: the first line's pieces (line, as spans of
// r.buf) and the fields parseFields recorded in r.spans, appended to
// h.Headers. Each piece equal to the last head's takes its string; the
// others are moved to the front of r.buf, in order, and copied into one
// string they share (none when nothing changed). The head becomes r's last.
func (r *Reader) strings(h *Head, line [2]span) (out [2]string) {
	buf := r.buf
	w := 0 // the pieces to copy are buf[:w] so far
	// move moves buf[a:b] to buf[w:] (never right of a: the pieces are in
	// order and do not overlap) and returns its new start.
	move := func(a, b int) int {
		copy(buf[w:], buf[a:b])
		w += b - a
		return w - (b - a)
	}
	var same [2]bool
	for j, p := range line {
		switch {
		case p.a < 0:
			same[j] = true // out[j] stays ""
		case string(buf[p.a:p.b]) == r.last.line[j]:
			same[j], out[j] = true, r.last.line[j]
		default:
			line[j].a = move(p.a, p.b)
			line[j].b = line[j].a + p.b - p.a
		}
	}
	for k := range r.spans {
		sp := &r.spans[k]
		if !sp.sameName {
			n := sp.colon - sp.name
			sp.name = move(sp.name, sp.colon)
			sp.colon = sp.name + n
		}
		if !sp.sameValue {
			n := sp.end - sp.value
			sp.value = move(sp.value, sp.end)
			sp.end = sp.value + n
		}
	}
	var s string
	if w > 0 {
		s = string(buf[:w])
	}
	for j, p := range line {
		if !same[j] {
			out[j] = s[p.a:p.b]
		}
	}
	// The last head's fields become this head's: only the changed
	// strings are set.
	fields := r.last.fields
	if n := len(r.spans); n <= cap(fields) {
		fields = fields[:n]
	} else {
		fields = append(fields, make([]headers.Field, n-len(fields))...)
	}
	for k, sp := range r.spans {
		if !sp.sameName {
			fields[k].Name = s[sp.name:sp.colon]
		}
		if !sp.sameValue {
			fields[k].Value = s[sp.value:sp.end]
		}
	}
	h.Headers = append(h.Headers, fields...)
	r.last.line = out
	r.last.fields = fields
	if len(fields) > maxKeptFields {
		r.last.fields = nil
	}
	return out
}
