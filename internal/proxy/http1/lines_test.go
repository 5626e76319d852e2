package http1

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// TestHeadLinesEitherPath: readHead finds the lines of a head in the
// buffered bytes (scanBuffered) or line by line past them (ReadSlice), and
// the parser works from the line ends either path recorded: the same
// heads and the same errors whether a head arrives whole or a byte at a
// time into a small buffer.
func TestHeadLinesEitherPath(t *testing.T) {
	heads := []string{
		"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 40) + "\r\n\r\n",
		"\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost a\r\n\r\n",
		"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
		"GET / HTTP/1.1\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nA:\t b \r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
	}
	read := func(s string, whole bool) (Head, error) {
		var br *bufio.Reader
		if whole {
			br = bufio.NewReaderSize(strings.NewReader(s), 4096)
		} else {
			br = bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(s)), 16)
		}
		r := NewReader(br, Limits{})
		var h Head
		var err error
		if strings.HasPrefix(s, "HTTP/") {
			err = r.ReadResponse(&h)
		} else {
			err = r.ReadRequest(&h)
		}
		return h, err
	}
	for _, s := range heads {
		hw, ew := read(s, true)
		hb, eb := read(s, false)
		if (ew == nil) != (eb == nil) || ew != nil && ew.Error() != eb.Error() {
			t.Errorf("%q: error %v whole, %v a byte at a time", s, ew, eb)
			continue
		}
		if !reflect.DeepEqual(hw, hb) {
			t.Errorf("%q: head %+v whole, %+v a byte at a time", s, hw, hb)
		}
	}
	if h, err := read(heads[0], true); err != nil || len(h.Headers) != 2 || h.Headers[1].Name != "x-long" {
		t.Errorf("first head: %+v, %v", h, err)
	}
}
