package http1

import "github.com/mast-mesh/mast/internal/proxy/headers"

// lastHead holds the strings of the last head a Reader parsed. On a
// keep-alive connection most field lines repeat byte for byte from one
// message to the next (host, user-agent, content-type, a sidecar's peer
// metadata, server...): a line equal to the last head's at the same index
// takes its strings, without parsing, validating or copying it again.
// Strings are immutable, so whoever still holds the last head's strings is
// unaffected.
type lastHead struct {
	// first is the first line; line the strings cut from it: a request's
	// method and target, a response's reason.
	first string
	line  [2]string
	// lines are the field lines as parsed (names lower-cased, no CRLF),
	// fields the fields cut from them; raw the lines as they arrived (the
	// same string as lines' when the name was lower-case already): a line
	// equal to raw's parses to lines'.
	lines  []string
	raw    []string
	fields []headers.Field
	// head is the last head as read, framing checked, without its
	// fields; whole: the Reader's head holds the bytes it was made of
	// and it passed its framing checks, so the same bytes again make the
	// same head (lastAgain).
	head  Head
	whole bool
	// made counts the bytes of the strings made since the Reader last
	// dropped its last head: at most what the kept strings hold in memory
	// (one kept line holds its whole allocation).
	made int
}

// maxKeptFields is the most fields a Reader keeps of its last head.
const maxKeptFields = maxKeptLines

// span is buf[a:b]; a < 0: absent.
type span struct{ a, b int }

// keepFirst starts a head's moves with its first line, buf[:n]: kept
// (true) when it equals the last head's, else to be copied (it stays where
// it is, at the front).
func (r *Reader) keepFirst(n int) (same bool) {
	same = r.seen&1 != 0 || string(r.buf[:n]) == r.last.first
	r.w = 0
	if !same {
		r.w = n
	}
	return same
}

// lastAgain makes h the last head again: readHead found its bytes again.
func (r *Reader) lastAgain(h *Head) {
	fields := h.Headers[:0]
	*h = r.last.head
	h.Headers = append(fields, r.last.fields...)
}

// framed ends the reading of h, whose framing check returned err: only a
// head that passed it is made again from its bytes (lastAgain).
func (r *Reader) framed(h *Head, err error) error {
	if err != nil {
		r.last.whole = false
		return err
	}
	r.last.head = *h
	r.last.head.Headers = nil
	return nil
}

// strings makes h's strings: the first line's pieces (line, spans of its n
// bytes; sameFirst: keepFirst kept it) and the fields, appended to
// h.Headers. What keepFirst and parseFields moved to the front of r.buf is
// copied into one string they share (none when nothing changed); the rest
// are the last head's strings. The head becomes r's last.
func (r *Reader) strings(h *Head, sameFirst bool, n int, line [2]span) [2]string {
	var s string
	if r.w > 0 {
		// The raw lines follow the moved ones in the same string (what
		// r.buf held past r.w is parsed already).
		r.buf = append(r.buf[:r.w], r.raw...)
		s = string(r.buf)
	}
	if !sameFirst {
		r.last.first = s[:n]
		for j, p := range line {
			r.last.line[j] = ""
			if p.a >= 0 {
				r.last.line[j] = s[p.a:p.b]
			}
		}
	}
	// The last head's fields become this head's: only the changed
	// strings are set.
	lines, raw, fields := r.last.lines, r.last.raw, r.last.fields
	if r.nf <= cap(fields) && r.nf <= cap(lines) && r.nf <= cap(raw) {
		lines, raw, fields = lines[:r.nf], raw[:r.nf], fields[:r.nf]
	} else {
		lines = append(lines, make([]string, r.nf-len(lines))...)
		raw = append(raw, make([]string, r.nf-len(raw))...)
		fields = append(fields, make([]headers.Field, r.nf-len(fields))...)
	}
	for _, sp := range r.spans {
		lines[sp.k] = s[sp.name:sp.eol]
		raw[sp.k] = lines[sp.k]
		if sp.raw >= 0 {
			a := r.w + sp.raw
			raw[sp.k] = s[a : a+sp.eol-sp.name]
		}
		fields[sp.k] = headers.Field{Name: s[sp.name:sp.colon], Value: s[sp.value:sp.end]}
	}
	h.Headers = append(h.Headers, fields...)
	r.last.lines, r.last.raw, r.last.fields = lines, raw, fields
	r.last.whole = r.whole
	line0 := r.last.line
	r.last.made += len(s)
	// A head with many fields, or kept lines holding more than two heads'
	// limit (each line kept from a different head): the next head starts
	// afresh.
	if r.nf > maxKeptFields || r.last.made > 2*r.lim.MaxHeaderBytes {
		r.last = lastHead{}
	}
	return line0
}
