package http1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestKeptFieldsReused: on one Reader, a field line equal to the last
// head's at the same index gets that head's strings (no copy: an identical head
// allocates nothing); a changed one gets a new string; the strings handed
// out before are unaffected by the reads after them.
func TestKeptFieldsReused(t *testing.T) {
	a := "POST /echo HTTP/1.1\r\nHost: server\r\nX-Request-Id: aaaa\r\nX-Peer: " + strings.Repeat("m", 300) + "\r\nContent-Length: 0\r\n\r\n"
	b := strings.Replace(a, "aaaa", "bbbb", 1)
	src := strings.NewReader(a + a + b + a)
	r := NewReader(bufio.NewReaderSize(src, 64), Limits{})
	var heads [4]Head
	for i := range heads {
		if err := r.ReadRequest(&heads[i]); err != nil {
			t.Fatal(err)
		}
	}
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	h0, h1, h2, h3 := heads[0].Headers, heads[1].Headers, heads[2].Headers, heads[3].Headers
	for k := range h0 {
		if !same(h0[k].Name, h1[k].Name) || !same(h0[k].Value, h1[k].Value) {
			t.Errorf("field %d of an identical head not reused: %q", k, h1[k].Name)
		}
	}
	if !same(heads[0].Method, heads[1].Method) || !same(heads[0].Target, heads[1].Target) {
		t.Error("request line of an identical head not reused")
	}
	if h2[1].Value != "bbbb" || same(h2[1].Value, h1[1].Value) || !same(h2[2].Value, h1[2].Value) {
		t.Errorf("changed value: got %q, want a new string for it alone", h2[1].Value)
	}
	if h3[1].Value != "aaaa" || same(h3[1].Value, h0[1].Value) {
		t.Errorf("value changed back: got %q, want a new string", h3[1].Value)
	}
	want := fmt.Sprint(heads[0].Headers)
	for i := range heads {
		if i != 2 && fmt.Sprint(heads[i].Headers) != want {
			t.Errorf("head %d: %v, want %v", i, heads[i].Headers, want)
		}
	}

	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(a)
		r.Buffered().Reset(src)
		if err := r.ReadRequest(&heads[0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("identical head: %v allocations, want 0", allocs)
	}
}

// TestKeptStringsSurviveReads: the strings of a head, kept or new, are not
// the read buffer's bytes: reading further heads (which overwrites the
// bufio buffer and the reader's head buffer) leaves them as they were.
func TestKeptStringsSurviveReads(t *testing.T) {
	a := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: Mon, 07 Dec 2026 01:57:00 GMT\r\nServer: envoy\r\n\r\n"
	b := strings.Replace(a, ":00 GMT", ":01 GMT", 1)
	var in strings.Builder
	for i := 0; i < 50; i++ {
		in.WriteString(a)
		in.WriteString(b)
		in.WriteString(strings.Replace(a, "OK", "Fine", 1))
	}
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in.String()), 16), Limits{})
	type held struct{ s, copy string }
	var all []held
	hold := func(s string) { all = append(all, held{s, strings.Clone(s)}) }
	var h Head
	for {
		if err := r.ReadResponse(&h); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		hold(h.Reason)
		for _, f := range h.Headers {
			hold(f.Name)
			hold(f.Value)
		}
		h.Headers[0].Value = "scribbled" // a caller's edit of its list
	}
	for _, x := range all {
		if x.s != x.copy {
			t.Fatalf("a head's string changed after later reads: %q, was %q", x.s, x.copy)
		}
	}
}

// TestKeptStringsBounded: kept lines each from a different head would hold
// each head's whole allocation; the Reader drops its last head once the
// strings made since it last did pass two heads' limit.
func TestKeptStringsBounded(t *testing.T) {
	const limit = 4096
	var in strings.Builder
	for i := 0; i < 200; i++ {
		// Line i%20 changes only now; the big line changes every time.
		in.WriteString("HTTP/1.1 200 OK\r\nbig: " + strings.Repeat(string(rune('a'+i%2)), 3000) + "\r\n")
		for k := 0; k < 20; k++ {
			fmt.Fprintf(&in, "f%d: %d\r\n", k, (i+20-k)/20)
		}
		in.WriteString("content-length: 0\r\n\r\n")
	}
	r := NewReader(bufio.NewReader(strings.NewReader(in.String())), Limits{MaxHeaderBytes: limit})
	var h Head
	dropped := 0
	for i := 0; i < 200; i++ {
		if err := r.ReadResponse(&h); err != nil {
			t.Fatal(err)
		}
		if r.last.made > 2*limit {
			t.Fatalf("head %d: %d bytes made since the last drop, want at most %d", i, r.last.made, 2*limit)
		}
		if r.last.made == 0 {
			dropped++
		}
	}
	if dropped == 0 {
		t.Error("the last head was never dropped")
	}
}

// FuzzKeptFields is a differential fuzz of ReadRequest and ReadResponse
// against the parser before heads kept the last head's strings
// (ref_test.go), on sequences of heads on one connection: each head an edit
// of the one before (a byte changed, a name's case, lines swapped, dropped,
// repeated or added, a long value), under small limits and buffers. Heads,
// errors and bodies must be the same values; every string handed out must
// stay as it was through the reads after it.
func FuzzKeptFields(f *testing.F) {
	f.Add(sidecarHeads["request"], []byte{6, 0, 0, 0, 40, 'z', 4, 30, 0, 1, 3, 5}, false, uint8(0), uint8(200), uint8(0))
	f.Add(sidecarHeads["response"], []byte{6, 0, 0, 0, 80, '2', 2, 2, 0, 7, 1, 1, 5, 3, 40}, true, uint8(255), uint8(0), uint8(5))
	f.Add("GET / HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\n", []byte{3, 1, 0, 3, 2, 0, 3, 3, 0, 0, 20, '\x01'}, false, uint8(3), uint8(1), uint8(2))
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX:  v \r\n\r\nok", []byte{0, 9, ' ', 0, 12, 'x', 6, 0, 0}, true, uint8(7), uint8(9), uint8(1))
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", []byte{4, 20, 0, 6, 0, 0, 0, 30, '\t'}, false, uint8(16), uint8(3), uint8(3))
	f.Fuzz(func(t *testing.T, head string, edits []byte, resp bool, size, maxBytes, maxFields uint8) {
		if len(head) > 4096 || len(edits) > 60 {
			return
		}
		in := []byte(head)
		cur := head
		for i := 0; i+2 < len(edits); i += 3 {
			cur = editHead(cur, edits[i], int(edits[i+1]), edits[i+2])
			in = append(in, cur...)
		}
		lim := Limits{MaxHeaderBytes: 64 + int(maxBytes)*8, MaxHeaders: 1 + int(maxFields)%32}
		bsize := 16 + int(size)
		rn := NewReader(bufio.NewReaderSize(bytes.NewReader(in), bsize), lim)
		rr := NewReader(bufio.NewReaderSize(bytes.NewReader(in), bsize), lim)
		var hn, hr Head
		type held struct{ s, copy string }
		var all []held
		for i := 0; i < 1+len(edits)/3+1; i++ {
			var en, er error
			if resp {
				en, er = rn.ReadResponse(&hn), refReadResponse(rr, &hr)
			} else {
				en, er = rn.ReadRequest(&hn), refReadRequest(rr, &hr)
			}
			if fmt.Sprint(en) != fmt.Sprint(er) || StatusOf(en) != StatusOf(er) {
				t.Fatalf("head %d: error %v, reference %v", i, en, er)
			}
			if !reflect.DeepEqual(hn, hr) {
				t.Fatalf("head %d:\n%#v\nreference\n%#v", i, hn, hr)
			}
			if en != nil {
				break
			}
			for _, s := range []string{hn.Method, hn.Target, hn.Reason} {
				all = append(all, held{s, strings.Clone(s)})
			}
			for _, fl := range hn.Headers {
				all = append(all, held{fl.Name, strings.Clone(fl.Name)}, held{fl.Value, strings.Clone(fl.Value)})
			}
			bn, errBn := io.ReadAll(NewBody(rn.Buffered(), &hn, resp))
			br, errBr := io.ReadAll(NewBody(rr.Buffered(), &hr, resp))
			if !bytes.Equal(bn, br) || fmt.Sprint(errBn) != fmt.Sprint(errBr) {
				t.Fatalf("body %d: %q %v, reference %q %v", i, bn, errBn, br, errBr)
			}
			if errBn != nil {
				break
			}
			for k := range hn.Headers { // a caller's edits of its list
				hn.Headers[k].Value, hr.Headers[k].Value = "edited", "edited"
			}
		}
		for _, x := range all {
			if x.s != x.copy {
				t.Fatalf("a head's string changed after later reads: %q, was %q", x.s, x.copy)
			}
		}
	})
}

// editHead returns h changed by one edit: op picks it, at and c say where
// and what.
func editHead(h string, op byte, at int, c byte) string {
	lines := strings.SplitAfter(h, "\r\n")
	n := len(lines)
	switch op % 8 {
	case 0: // one byte
		if len(h) == 0 {
			return h
		}
		b := []byte(h)
		b[at%len(b)] = c
		return string(b)
	case 1: // two lines swapped
		i, j := at%n, int(c)%n
		lines[i], lines[j] = lines[j], lines[i]
	case 2: // a line dropped
		lines = slices.Delete(lines, at%n, at%n+1)
	case 3: // a line repeated
		lines = slices.Insert(lines, at%n, lines[at%n])
	case 4: // a letter's case
		b := []byte(h)
		if len(b) > 0 {
			if l := b[at%len(b)] | 0x20; 'a' <= l && l <= 'z' {
				b[at%len(b)] ^= 0x20
			}
		}
		return string(b)
	case 5: // a long value
		l := "x-long: " + strings.Repeat(string(rune('a'+c%26)), 8*int(c)) + "\r\n"
		lines = slices.Insert(lines, min(1+at%max(n-1, 1), n), l)
	case 6: // the same head again
	case 7: // a short field added
		lines = slices.Insert(lines, min(1+at%max(n-1, 1), n), fmt.Sprintf("x-k: v%d\r\n", c))
	}
	return strings.Join(lines, "")
}

// TestKeptRawLines: a field line whose name has upper-case letters is
// kept as it arrived too: the same line again takes the last head's
// strings without being parsed, and a changed one is parsed anew, whatever
// the case of the names before it. Each head must read as it does on a
// fresh Reader.
func TestKeptRawLines(t *testing.T) {
	heads := []string{
		"GET / HTTP/1.1\r\nHost: a\r\nX-Id: 1\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: b\r\nX-Id: 22\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: b\r\nX-Id: 22\r\nAccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: b\r\nX-ID: 22\r\naccept: */*\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: b\r\nX-Id: 3\r\nAccept: */*\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nx-b: 0\r\nX-A: 0\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nx-b: 1\r\nX-A: 1\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nx-b: 1\r\nx-b: 1\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nx-b: 1\r\nX-A: 1\r\n\r\n",
	}
	r := NewReader(bufio.NewReaderSize(strings.NewReader(strings.Join(heads, "")), 16), Limits{})
	var prev Head
	for i, in := range heads {
		var h, fresh Head
		if err := r.ReadRequest(&h); err != nil {
			t.Fatal(err)
		}
		if err := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{}).ReadRequest(&fresh); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(h, fresh) {
			t.Errorf("head %d: %v, want %v", i, h.Headers, fresh.Headers)
		}
		if i == 2 || i == 3 {
			for k := range h.Headers {
				if unsafe.StringData(h.Headers[k].Value) != unsafe.StringData(prev.Headers[k].Value) {
					t.Errorf("head %d field %d: an unchanged field got a new string", i, k)
				}
			}
		}
		prev = h
	}
}

// TestLastHeadAgain: a head whose bytes are the last head's again is
// read as the last head, without parsing; a head that failed is not the
// last head (nor is one that failed its framing checks), and its bytes
// again fail again.
func TestLastHeadAgain(t *testing.T) {
	good := "GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
	bad := "GET /b HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n"
	for _, seq := range [][]string{
		{good, good, good},
		{good, bad, bad},
		{good, bad, good, good},
		{good, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", good},
		{good, "GET /c HTTP/1.1\r\nX-A: 1\r\n\r\n", "GET /c HTTP/1.1\r\nX-A: 1\r\n\r\n"},
		{"POST /d HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc", "POST /d HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"},
	} {
		r := NewReader(bufio.NewReader(strings.NewReader(strings.Join(seq, ""))), Limits{})
		for i, in := range seq {
			var h, fresh Head
			err := r.ReadRequest(&h)
			errFresh := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{}).ReadRequest(&fresh)
			if fmt.Sprint(err) != fmt.Sprint(errFresh) || !reflect.DeepEqual(h, fresh) {
				t.Fatalf("%q, head %d: %+v, %v; want %+v, %v", seq, i, h, err, fresh, errFresh)
			}
			if err == nil && h.ContentLength > 0 {
				r.Buffered().Discard(int(h.ContentLength))
			}
		}
	}
	resp := "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	r := NewReader(bufio.NewReader(strings.NewReader(resp+resp)), Limits{})
	for i := 0; i < 2; i++ {
		var h Head
		if err := r.ReadResponse(&h); err != nil || h.Status != 404 || h.Reason != "Not Found" || h.Minor != 1 || h.ContentLength != 0 {
			t.Fatalf("response %d: %+v, %v", i, h, err)
		}
	}
}
