package http1

import (
	"bufio"
	"io"
	"testing"
)

// TestBodyReady: Ready is true exactly when a Read would not wait for the
// connection, erring towards false at chunk boundaries it cannot be sure
// of (a false costs the caller an early flush; a wrong true would hold a
// response head back until more data came).
func TestBodyReady(t *testing.T) {
	for _, tc := range []struct {
		name     string
		head     Head
		untilEOF bool
		data     string // what the connection has delivered so far
		read     int    // bytes of body to Read first
		want     bool
	}{
		{"length, nothing buffered", Head{ContentLength: 4}, false, "", 0, false},
		{"length, data buffered", Head{ContentLength: 4}, false, "bo", 0, true},
		{"length, all read", Head{ContentLength: 2}, false, "bo", 2, true},
		{"empty body", Head{ContentLength: 0}, false, "", 0, true},
		{"until EOF, nothing", Head{ContentLength: -1}, true, "", 0, false},
		{"until EOF, data", Head{ContentLength: -1}, true, "x", 0, true},
		{"chunked, nothing", Head{ContentLength: -1, Chunked: true}, false, "", 0, false},
		{"chunked, size line incomplete", Head{ContentLength: -1, Chunked: true}, false, "4\r", 0, false},
		{"chunked, size line only", Head{ContentLength: -1, Chunked: true}, false, "4\r\n", 0, false},
		{"chunked, size and data", Head{ContentLength: -1, Chunked: true}, false, "4\r\nbo", 0, true},
		{"chunked, extension", Head{ContentLength: -1, Chunked: true}, false, "4;a=b\r\nbody", 0, true},
		{"chunked, last chunk", Head{ContentLength: -1, Chunked: true}, false, "0\r\n\r\n", 0, false},
		{"chunked, bad size", Head{ContentLength: -1, Chunked: true}, false, "zz\r\nbody", 0, false},
		{"chunked, inside a chunk", Head{ContentLength: -1, Chunked: true}, false, "4\r\nbody", 2, true},
		{"chunked, chunk read, next not come", Head{ContentLength: -1, Chunked: true}, false, "2\r\nbo\r\n", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() { io.WriteString(pw, tc.data) }()
			br := bufio.NewReaderSize(pr, 64)
			if tc.data != "" {
				br.Peek(len(tc.data)) // what the connection delivered is buffered
			}
			b := NewBody(br, &tc.head, tc.untilEOF)
			if tc.read > 0 {
				p := make([]byte, tc.read)
				if _, err := io.ReadFull(b, p); err != nil {
					t.Fatal(err)
				}
			}
			if got := b.Ready(); got != tc.want {
				t.Errorf("Ready() = %v, want %v (%d bytes buffered)", got, tc.want, br.Buffered())
			}
			pw.Close()
		})
	}
}
