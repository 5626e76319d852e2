package http1

import "bytes"

// maxPatched is the most lines a head read as the last head patched
// (patch) may have replaced.
const maxPatched = 8

// patch reads the head at the start of b, the buffered bytes, when it is
// the last head (r.head, which passed its framing checks) with up to
// maxPatched of its lines replaced by other non-empty lines: a keep-alive
// connection's requests that differ in a request ID, a trace context or a
// path, responses that differ in a date. Such a head has as many lines as
// the last head, and the others are byte for byte the last head's at the
// same index. They are found by comparing runs of lines at once, halving a
// run that differs, instead of line by line. On true the head is
// consumed, its bytes are in r.head, the offsets of its lines' LFs in
// r.headEOLs, and r.patched lists the replaced lines (r.np); on false
// nothing changed and the head is read line by line.
func (r *Reader) patch(b []byte) bool {
	old, eols := r.head, r.headEOLs
	end := len(eols) - 1 // the empty line
	start := func(k int) int {
		if k == 0 {
			return 0
		}
		return eols[k-1] + 1
	}
	var lfs [maxPatched]int // the replaced lines' LFs in b
	np, shift := 0, 0       // b's lines from the next one on are the last head's moved by shift
	for k := 0; ; {
		a := start(k)
		if n := len(old) + shift; n <= len(b) && string(b[a+shift:n]) == string(old[a:]) {
			if n > r.lim.MaxHeaderBytes {
				return false
			}
			r.patchedHead(b[:n], lfs[:np], np)
			return true
		}
		// Lines k to x-1 are the last head's; one of lines x to y-1 is not.
		x, y := k, end+1
		for y-x > 1 {
			m := (x + y) / 2
			p, q := start(x), start(m)
			if q+shift <= len(b) && string(b[p+shift:q+shift]) == string(old[p:q]) {
				x = m
			} else {
				y = m
			}
		}
		if x == end || np == maxPatched {
			return false // a line more or fewer, or too many replaced
		}
		s := start(x) + shift
		e := bytes.IndexByte(b[s:], '\n')
		if e < 2 || b[s+e-1] != '\r' {
			return false // not buffered whole, empty, or not ended by CRLF
		}
		r.patched[np], lfs[np] = x, s+e
		np++
		shift = s + e - eols[x]
		k = x + 1
	}
}

// patchedHead makes head, found by patch, the Reader's head: its bytes
// consumed and copied to r.head (only the replaced lines when no line
// moved), the lines' ends moved (lfs are the replaced lines' LFs in head).
func (r *Reader) patchedHead(head []byte, lfs []int, np int) {
	eols := r.headEOLs
	from, d, moved := 0, 0, false
	for j, k := range r.patched[:np] {
		if d != 0 {
			for m := from; m < k; m++ {
				eols[m] += d
			}
		}
		a := 0
		if k > 0 {
			a = eols[k-1] + 1
		}
		d = lfs[j] - eols[k]
		eols[k], from = lfs[j], k+1
		if moved = moved || d != 0; !moved {
			copy(r.head[a:lfs[j]], head[a:lfs[j]])
		}
	}
	if d != 0 {
		for m := from; m < len(eols); m++ {
			eols[m] += d
		}
	}
	if moved {
		r.head = append(r.head[:0], head...)
	}
	r.np = np
	r.br.Discard(len(head))
}

// readPatched makes h of the last head and the lines patch found replaced,
// parsed as ReadRequest (request) or ReadResponse and parseFields parse
// them. The framing checks run again only when the first line changed or a
// field that takes part in them (framingField) did; otherwise h has the
// last head's framing.
func (r *Reader) readPatched(h *Head, request bool) error {
	prev := r.last.head
	*h = Head{Headers: h.Headers[:0], ContentLength: -1, Minor: prev.Minor, Status: prev.Status}
	r.buf, r.spans, r.w, r.nf = r.buf[:0], r.spans[:0], 0, len(r.last.fields)
	sameFirst, n, first, check := true, 0, [2]span{}, false
	for _, k := range r.patched[:r.np] {
		e := r.headEOLs[k] - 1 // the line ends before its CRLF
		if k == 0 {
			h.Minor, h.Status = 0, 0
			r.buf = append(r.buf, r.head[:e]...)
			var err error
			if request {
				first, err = requestLine(h, r.buf, false)
			} else {
				first, err = statusLine(h, r.buf)
			}
			if err != nil {
				return err
			}
			sameFirst, n, check, r.w = false, e, true, e
			continue
		}
		i, ns := len(r.buf), len(r.spans)
		r.buf = append(r.buf, r.head[r.headEOLs[k-1]+1:e]...)
		r.w = i
		if err := r.field(i, len(r.buf), k-1); err != nil {
			return err
		}
		if len(r.spans) > ns { // not the same field but for its name's case
			sp := r.spans[ns]
			check = check || framingField(r.last.fields[k-1].Name) || framingField(r.buf[sp.name:sp.colon])
		}
		r.buf = r.buf[:r.w]
	}
	line0 := r.strings(h, sameFirst, n, first)
	if request {
		h.Method, h.Target = line0[0], line0[1]
	} else {
		h.Reason = line0[0]
	}
	switch {
	case !check:
		h.ContentLength, h.Chunked, h.Close, h.Expect100, h.Upgrade, h.HopByHop = prev.ContentLength, prev.Chunked, prev.Close, prev.Expect100, prev.Upgrade, prev.HopByHop
		return r.framed(h, nil)
	case request:
		return r.framed(h, requestFraming(h))
	}
	return r.framed(h, responseFraming(h))
}

// framingField reports whether a field called name (lower-case) takes part
// in the framing checks (framing.check, requestFraming) or is hop-by-hop
// (Head.HopByHop).
func framingField[S ~string | ~[]byte](name S) bool {
	switch string(name) {
	case "host", "expect", "transfer-encoding", "content-length", "connection",
		"keep-alive", "proxy-connection", "te", "upgrade", "proxy-authenticate", "proxy-authorization":
		return true
	}
	return false
}
