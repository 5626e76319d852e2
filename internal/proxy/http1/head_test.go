package http1

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

func parse(s string) (*Head, error) {
	r := NewReader(bufio.NewReaderSize(strings.NewReader(s), 4096), Limits{})
	h := &Head{}
	return h, r.ReadRequest(h)
}

func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		status  int // 0: valid
		method  string
		target  string
		cl      int64
		chunked bool
		close   bool
	}{
		{name: "simple", in: "GET /a?b HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n", method: "GET", target: "/a?b", cl: -1},
		{name: "leading CRLF ignored", in: "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", method: "GET", target: "/", cl: -1},
		{name: "content-length", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", method: "POST", target: "/", cl: 10},
		{name: "same CL twice", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", method: "POST", target: "/", cl: 3},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", method: "POST", target: "/", cl: -1, chunked: true},
		{name: "http/1.0 closes", in: "GET / HTTP/1.0\r\n\r\n", method: "GET", target: "/", cl: -1, close: true},
		{name: "connection close", in: "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", method: "GET", target: "/", cl: -1, close: true},
		{name: "absolute form without host", in: "GET http://a:1/b HTTP/1.1\r\n\r\n", method: "GET", target: "http://a:1/b", cl: -1},
		{name: "CL+TE", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "empty CL", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", status: 400},
		{name: "CL too long", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n", status: 400},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: x\r\n\tfold\r\n\r\n", status: 400},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost x\r\n\r\n", status: 400},
		{name: "empty name", in: "GET / HTTP/1.1\r\n: x\r\n\r\n", status: 400},
		{name: "DEL in value", in: "GET / HTTP/1.1\r\nHost: x\x7f\r\n\r\n", status: 400},
		{name: "two spaces in request line", in: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "version 1.2", in: "GET / HTTP/1.2\r\nHost: x\r\n\r\n", status: 505},
		{name: "too many headers", in: "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("a: b\r\n", 100) + "\r\n", status: 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parse(tc.in)
			if tc.status != 0 {
				if err == nil || StatusOf(err) != tc.status {
					t.Fatalf("err %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Method != tc.method || h.Target != tc.target || h.ContentLength != tc.cl || h.Chunked != tc.chunked || h.Close != tc.close {
				t.Errorf("got %+v", h)
			}
			for _, f := range h.Headers {
				if f.Name != headers.Lower(f.Name) {
					t.Errorf("header name %q not lower-cased", f.Name)
				}
			}
		})
	}
}

func TestPipelinedRequestsAndBodies(t *testing.T) {
	in := "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	r := NewReader(br, Limits{})
	var got []string
	for {
		var h Head
		err := r.ReadRequest(&h)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b := NewBody(br, &h, false)
		data, err := io.ReadAll(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Target+"="+string(data))
		if h.Target == "/2" && b.Trailers.Value("t") != "v" {
			t.Errorf("trailers %v", b.Trailers)
		}
	}
	if strings.Join(got, ",") != "/1=hello,/2=abcde,/3=" {
		t.Errorf("got %v", got)
	}
}

func TestReadAllLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		chunked  bool
		limit    int
		complete bool
	}{
		{"CL below", "hello", false, 10, true},
		{"CL exact", "hello", false, 5, true},
		{"CL above", "hello world", false, 5, false},
		{"chunked exact", "5\r\nhello\r\n0\r\n\r\n", true, 5, true},
		{"chunked above", "5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n", true, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Head{ContentLength: int64(len(tc.body)), Chunked: tc.chunked}
			if tc.chunked {
				h.ContentLength = -1
			}
			b := NewBody(bufio.NewReader(strings.NewReader(tc.body)), h, false)
			data, complete, err := ReadAllLimit(b, tc.limit, nil)
			if err != nil || complete != tc.complete || len(data) > tc.limit {
				t.Fatalf("data %q complete %v err %v", data, complete, err)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(AppendResponseHead(nil, 1, 200, headers.List{{Name: "x-a", Value: "1"}}, -1, true, false))
	cw := &ChunkedWriter{W: &buf}
	cw.Write([]byte("hello "))
	cw.Write([]byte("world"))
	cw.Close(headers.List{{Name: "grpc-status", Value: "0"}})
	br := bufio.NewReader(&buf)
	r := NewReader(br, Limits{})
	var h Head
	if err := r.ReadResponse(&h); err != nil {
		t.Fatal(err)
	}
	b := NewBody(br, &h, true)
	data, err := io.ReadAll(b)
	if err != nil || string(data) != "hello world" || h.Status != 200 || h.Headers.Value("x-a") != "1" || b.Trailers.Value("grpc-status") != "0" {
		t.Fatalf("status %d data %q trailers %v err %v", h.Status, data, b.Trailers, err)
	}
}

func TestStripHopByHop(t *testing.T) {
	l := headers.List{{Name: "connection", Value: "close, x-private"}, {Name: "x-private", Value: "1"}, {Name: "keep-alive", Value: "5"},
		{Name: "te", Value: "trailers"}, {Name: "upgrade", Value: "h2c"}, {Name: "x-keep", Value: "y"}}
	StripHopByHop(&l)
	if len(l) != 2 || l.Value("x-keep") != "y" || l.Value("te") != "trailers" {
		t.Errorf("after strip: %v", l)
	}
	for _, name := range []string{"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"} {
		l := headers.List{{Name: "a", Value: "1"}, {Name: name, Value: "x"}, {Name: "b", Value: "2"}}
		StripHopByHop(&l)
		if len(l) != 2 || l[0].Name != "a" || l[1].Name != "b" {
			t.Errorf("%s: after strip: %v", name, l)
		}
	}
	plain := headers.List{{Name: "a", Value: "1"}, {Name: "tea", Value: "2"}, {Name: "upgrades", Value: "3"}}
	l2 := slices.Clone(plain)
	StripHopByHop(&l2)
	if !slices.Equal(l2, plain) {
		t.Errorf("no hop-by-hop field: %v, want it unchanged", l2)
	}
}

// checkHopByHop fails t unless h.HopByHop says whether StripHopByHop would
// change h's fields.
func checkHopByHop(t *testing.T, h *Head) {
	t.Helper()
	l := slices.Clone(h.Headers)
	StripHopByHop(&l)
	if changed := !slices.Equal(l, h.Headers); h.HopByHop != changed || h.HopByHop != slices.ContainsFunc(h.Headers, func(f headers.Field) bool { return IsHopByHop(f.Name) }) {
		t.Fatalf("HopByHop %v, fields %q (stripped: %q)", h.HopByHop, h.Headers, l)
	}
}

// TestHeadHopByHop: Head.HopByHop follows each head of a connection,
// whether it is parsed, the last head again or the last head with lines
// changed (where the framing checks may not run again).
func TestHeadHopByHop(t *testing.T) {
	for _, c := range []struct {
		response bool
		heads    []string
		want     []bool
	}{
		{false, []string{
			"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nTE: 1\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nTE: 1\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nA: 2\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nkeep-alive: 2\r\n\r\n",
			"GET /b HTTP/1.1\r\nHost: x\r\nkeep-alive: 2\r\n\r\n",
			"GET /b HTTP/1.1\r\nHost: x\r\nProxy-Authorization: 2\r\n\r\n",
			"GET /b HTTP/1.1\r\nHost: x\r\nConnection: x-a\r\n\r\n",
			"GET /b HTTP/1.1\r\nHost: x\r\nx-a: 1\r\n\r\n",
			"GET /b HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nx-a: 1\r\n\r\n",
			"GET /b HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nx-a: 2\r\n\r\n", // only a field without a part in framing changed
		}, []bool{false, false, true, true, false, true, true, true, true, false, true, true}},
		{true, []string{
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx: 1\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nupgrade: 1\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nupgrade: 1\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nProxy-Connection: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nproxy-authenticate: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx: 2\r\n\r\n0\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: x\r\nx: 2\r\n\r\n",
			"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: x\r\nx: 3\r\n\r\n",
		}, []bool{false, true, true, false, true, true, false, true, false, true, true}},
	} {
		// One head at a time, as a connection's heads arrive: each
		// following head is compared with the last one's bytes.
		pr, pw := io.Pipe()
		go func() {
			for _, s := range c.heads {
				pw.Write([]byte(s))
			}
			pw.Close()
		}()
		br := bufio.NewReader(pr)
		r := NewReader(br, Limits{})
		var h Head
		for i, want := range c.want {
			var err error
			if c.response {
				err = r.ReadResponse(&h)
			} else {
				err = r.ReadRequest(&h)
			}
			if err != nil {
				t.Fatalf("head %d: %v", i, err)
			}
			if h.HopByHop != want {
				t.Errorf("head %d %q: HopByHop %v, want %v", i, c.heads[i], h.HopByHop, want)
			}
			checkHopByHop(t, &h)
			if _, err := io.Copy(io.Discard, NewBody(br, &h, c.response)); err != nil {
				t.Fatalf("head %d: body: %v", i, err)
			}
		}
	}
}

// FuzzReadRequest feeds arbitrary bytes to the request-head parser and the
// body reader; accepted heads must have unambiguous framing.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://a/b HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n a\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\nHost: x\n\n",
		// Heads on one connection that repeat the last one's fields, or
		// change one byte of them (the reader reuses equal fields' strings).
		"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\naGET / HTTP/1.1\r\nHost: x\r\ncontent-length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		// A body the read buffer holds, the next request right behind it.
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Bodies taken from the read buffer where possible are the
		// bodies read, and the connection goes on at the same place.
		if read, took := requestBodies(in, false), requestBodies(in, true); !slices.Equal(read, took) {
			t.Fatalf("read %q, taken %q", read, took)
		}
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		r := NewReader(br, Limits{MaxHeaderBytes: 4096, MaxHeaders: 20})
		for i := 0; i < 4; i++ {
			var h Head
			if err := r.ReadRequest(&h); err != nil {
				return
			}
			if h.Chunked && h.ContentLength >= 0 {
				t.Fatal("accepted both chunked and content-length")
			}
			if h.Chunked && h.Minor == 0 {
				t.Fatal("accepted chunked HTTP/1.0")
			}
			if len(h.Headers) > 20 {
				t.Fatal("header count limit exceeded")
			}
			if h.Headers.Count("host") > 1 {
				t.Fatal("accepted two Host headers")
			}
			checkHopByHop(t, &h)
			for _, fl := range h.Headers {
				if strings.ContainsAny(fl.Value, "\r\n\x00") || fl.Name != headers.Lower(fl.Name) {
					t.Fatalf("bad field %q: %q", fl.Name, fl.Value)
				}
			}
			b := NewBody(br, &h, false)
			if _, err := io.Copy(io.Discard, b); err != nil {
				return
			}
		}
	})
}

// requestBodies is what FuzzReadRequest's reader makes of in: up to four
// requests' methods, targets and bodies (and the error that ended them), their
// bodies read or, with take, taken from the read buffer when it holds them.
func requestBodies(in []byte, take bool) []string {
	br := bufio.NewReaderSize(bytes.NewReader(in), 16)
	r := NewReader(br, Limits{MaxHeaderBytes: 4096, MaxHeaders: 20})
	var out []string
	for i := 0; i < 4; i++ {
		var h Head
		if err := r.ReadRequest(&h); err != nil {
			return append(out, err.Error())
		}
		b := NewBody(br, &h, false)
		if take {
			if data, ok := b.TakeBuffered(64); ok {
				out = append(out, h.Method, h.Target, string(data))
				continue
			}
		}
		data, err := io.ReadAll(b)
		out = append(out, h.Method, h.Target, string(data))
		if err != nil {
			return append(out, err.Error())
		}
	}
	return out
}

// TestTrailerValuesRefused: a chunked body's trailers are forwarded into
// the next hop's framing, so a value with a bare CR, a NUL or another
// control character is refused rather than passed on.
func TestTrailerValuesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, trailer string
		ok            bool
	}{
		{"plain", "grpc-status: 0", true},
		{"tab inside", "x-a: a\tb", true},
		{"bare CR", "x-a: a\rGET /admin HTTP/1.1", false},
		{"NUL", "x-a: a\x00b", false},
		{"DEL", "x-a: a\x7fb", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "1\r\na\r\n0\r\n" + tc.trailer + "\r\n\r\n"
			b := NewBody(bufio.NewReader(strings.NewReader(body)), &Head{ContentLength: -1, Chunked: true}, false)
			_, err := io.ReadAll(b)
			if (err == nil) != tc.ok {
				t.Fatalf("trailer %q: err %v, want ok=%v", tc.trailer, err, tc.ok)
			}
		})
	}
}

// FuzzReadResponse runs the upstream response parser (head, body framing,
// chunked trailers) on arbitrary bytes, up to three responses on one
// reader: it must never panic, and what it accepts must carry no control
// characters in field values.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n",
		"HTTP/1.0 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;ext=1\r\na\r\n0\r\nx: \r\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), 4096)
		r := NewReader(br, Limits{})
		var h Head
		for i := 0; i < 3; i++ { // interim and keep-alive responses on one reader
			if err := r.ReadResponse(&h); err != nil {
				return
			}
			for _, fl := range h.Headers {
				if !headers.ValidName(fl.Name) || strings.ContainsAny(fl.Value, "\r\n\x00") {
					t.Fatalf("accepted field %q: %q", fl.Name, fl.Value)
				}
			}
			checkHopByHop(t, &h)
			b := NewBody(br, &h, true)
			if _, err := io.Copy(io.Discard, b); err != nil {
				return
			}
			for _, fl := range b.Trailers {
				if strings.ContainsAny(fl.Value, "\r\n\x00") {
					t.Fatalf("accepted trailer %q: %q", fl.Name, fl.Value)
				}
			}
		}
	})
}

// TestTokenAndOWS: the tchar table is RFC 9110's set, and trimOWS strips
// exactly spaces and tabs at both ends.
func TestTokenAndOWS(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		want := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
		if isToken(b) != want {
			t.Errorf("isToken(%q) = %v, want %v", b, !want, want)
		}
	}
	for in, want := range map[string]string{"": "", " \t ": "", " a b\t": "a b", "\ta": "a", "a \r": "a \r", "\va ": "\va"} {
		if got := trimOWS(in); got != want {
			t.Errorf("trimOWS(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestValidValue: the word-at-a-time check agrees with the byte loop for
// every byte value at every position of values around a word's length.
func TestValidValue(t *testing.T) {
	slow := func(v string) bool {
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
				return false
			}
		}
		return true
	}
	for n := 1; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := range 256 {
				b := []byte(strings.Repeat("a\x80~ ", 5)[:n])
				b[pos] = byte(c)
				if v := string(b); validValue(v) != slow(v) {
					t.Fatalf("validValue(%q) = %v, want %v", v, !slow(v), slow(v))
				}
			}
		}
	}
}

func FuzzValidValue(f *testing.F) {
	f.Add("ChgKDkFQUF9DT05UQUlORVJTEgYaBGVjaG8K")
	f.Add("a\tb\x7fc")
	f.Fuzz(func(t *testing.T, v string) {
		want := true
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
				want = false
			}
		}
		if validValue(v) != want {
			t.Fatalf("validValue(%q) = %v, want %v", v, !want, want)
		}
	})
}

// TestValidValueEveryPosition puts every byte value at every position of
// values of 0-40 bytes (the word loops and the byte loop, each boundary)
// and compares validValue with the byte-by-byte rule.
func TestValidValueEveryPosition(t *testing.T) {
	for n := 1; n <= 40; n++ {
		v := []byte(strings.Repeat("a", n))
		for pos := range n {
			for c := range 256 {
				v[pos] = byte(c)
				want := (c >= ' ' || c == '\t') && c != 0x7f
				if validValue(v) != want || validValue(string(v)) != want {
					t.Fatalf("validValue(%q) = %v, want %v", v, !want, want)
				}
			}
			v[pos] = 'a'
		}
	}
	if !validValue("") || !validValue([]byte{}) {
		t.Fatal("the empty value is valid")
	}
}
