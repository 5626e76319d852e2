package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestResponseHeadNotHeldForBody: a response head goes downstream as soon
// as it arrives, whatever the upstream protocol and the body's framing, as
// Envoy's does: a client may wait for the head before it sends what the
// body answers (a long poll, a server-sent event stream, a gRPC client's
// Header()). The backend sends the head and holds the body until the
// client has read the head.
func TestResponseHeadNotHeldForBody(t *testing.T) {
	for _, h2up := range []bool{false, true} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("h2 upstream %v, chunked %v", h2up, chunked), func(t *testing.T) {
				release := make(chan struct{})
				backend, _ := recordingBackend(t, h2up, func(w http.ResponseWriter, r *http.Request) {
					if !chunked {
						w.Header().Set("content-length", "4")
					}
					w.WriteHeader(200)
					w.(http.Flusher).Flush()
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
					io.WriteString(w, "body")
				})
				p := startTestProxy(t, backend, proxyOpts{h2Upstream: h2up})
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second)) // a guard, not an assertion
				br := bufio.NewReader(c)
				io.WriteString(c, "GET /held HTTP/1.1\r\nhost: a\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				close(release)
				if err != nil {
					t.Fatalf("the head was held until the body came: %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil || string(b) != "body" || resp.StatusCode != 200 {
					t.Fatalf("status %d, body %q, %v", resp.StatusCode, b, err)
				}
			})
		}
	}
}
