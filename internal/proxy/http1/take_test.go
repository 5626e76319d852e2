package http1

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestBodyTakeBuffered: a body of known length that is all in the reader's
// buffer is handed over as a view and consumed, leaving the next message
// in place; anything else is refused without consuming a byte (the caller
// then reads the body as before).
func TestBodyTakeBuffered(t *testing.T) {
	const next = "POST /2 HTTP/1.1\r\n"
	for _, tc := range []struct {
		name     string
		head     Head
		untilEOF bool
		wire     string // the body and what follows it on the connection
		buffered int    // bytes the connection delivered so far
		max      int
		want     string // "" with ok false
	}{
		{"all buffered, next request behind", Head{ContentLength: 5}, false, "hello" + next, 5 + len(next), 64, "hello"},
		{"exactly buffered", Head{ContentLength: 5}, false, "hello", 5, 64, "hello"},
		{"at the limit", Head{ContentLength: 5}, false, "hello", 5, 5, "hello"},
		{"over the limit", Head{ContentLength: 5}, false, "hello", 5, 4, ""},
		{"partly buffered", Head{ContentLength: 5}, false, "hello", 3, 64, ""},
		{"nothing buffered", Head{ContentLength: 5}, false, "hello", 0, 64, ""},
		{"chunked", Head{ContentLength: -1, Chunked: true}, false, "5\r\nhello\r\n0\r\n\r\n", 15, 64, ""},
		{"until EOF", Head{ContentLength: -1}, true, "hello", 5, 64, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.wire)), 64)
			for br.Buffered() < tc.buffered {
				if _, err := br.Peek(br.Buffered() + 1); err != nil {
					t.Fatal(err)
				}
			}
			b := NewBody(br, &tc.head, tc.untilEOF)
			data, ok := b.TakeBuffered(tc.max)
			if ok != (tc.want != "") || string(data) != tc.want {
				t.Fatalf("TakeBuffered(%d) = %q, %v; want %q", tc.max, data, ok, tc.want)
			}
			if !ok {
				// Nothing consumed: the body reads whole as before.
				got, err := io.ReadAll(b)
				if err != nil || string(got) != "hello" {
					t.Fatalf("body after a refused take: %q, %v", got, err)
				}
				return
			}
			if !b.Done() {
				t.Error("body not done after a take")
			}
			if n, err := b.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Errorf("Read after a take = %d, %v; want 0, EOF", n, err)
			}
			rest, _ := io.ReadAll(br)
			if want := tc.wire[len(tc.want):]; string(rest) != want {
				t.Errorf("the connection goes on with %q, want %q", rest, want)
			}
		})
	}
}
