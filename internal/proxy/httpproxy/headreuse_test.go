package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeadValuesSurviveNextRequestH2Upstream guards the request head's
// strings against reuse of the connection's read buffer (issue 19's head
// copies): an HTTP/2 upstream's HPACK encoder keeps the header fields it
// indexes in its dynamic table, past the request. Were a head's strings
// to alias a buffer that the next request on the same downstream
// connection overwrites, the table would hold the next request's bytes:
// the encoder would then send an index for a value the backend's table
// holds differently, and the backend would see the first request's value
// (or the reverse). Same-length values at the same offsets of three heads
// on one connection, each checked where the backend received it. (A
// copy of the head aliasing the buffer fails this test: tried.)
func TestHeadValuesSurviveNextRequestH2Upstream(t *testing.T) {
	backend, seen := recordingBackend(t, true, nil)
	// The connection must not park between requests: a parked connection
	// drops its read buffer, and the next head gets a new one.
	p := startTestProxy(t, backend, proxyOpts{h2Upstream: true, parkIdle: time.Hour})
	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	values := []string{"AAAAAAAAAAAA", "BBBBBBBBBBBB", "AAAAAAAAAAAA", "CCCCCCCCCCCC", "BBBBBBBBBBBB"}
	for i, v := range values {
		path := "/p" + strings.ToLower(v[:1])
		fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: h%c\r\nUser-Agent: ua-%s\r\nX-V: %s\r\n\r\n", path, v[0], v, v)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := <-seen // recorded before the backend answered
		if got.header.Get("X-V") != v || got.header.Get("User-Agent") != "ua-"+v || got.uri != path {
			t.Errorf("request %d sent x-v %s, user-agent ua-%s, path %s; the backend saw %q, %q, %q", i, v, v, path,
				got.header.Get("X-V"), got.header.Get("User-Agent"), got.uri)
		}
	}
}
