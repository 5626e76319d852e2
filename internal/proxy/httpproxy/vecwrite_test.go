package httpproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestVectoredResponsesSameBytes: responses served through rawsock (the
// listener's connections: a known-length body goes out with its head in
// one WriteVec, without the write buffer) reach the client as the same
// bytes as through the write buffer, for pipelined requests, retried and
// mirrored ones, 100-continue, HEAD, an empty body and local replies.
func TestVectoredResponsesSameBytes(t *testing.T) {
	post := func(path, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: shop:9080\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	}
	big := strings.Repeat("v", 3000)
	// Each write is one or more whole requests, answered before the next.
	writes := [][]string{
		{post("/1", "first")},
		{post("/2", "second"), post("/3", big), post("/4", "fourth")},
		{"HEAD /5 HTTP/1.1\r\nHost: shop\r\n\r\n", post("/6", ""), "GET /nocluster HTTP/1.1\r\nHost: shop\r\n\r\n"},
		{"POST /7 HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", "seven"},
		{post("/8", big)},
	}
	for _, mode := range []string{"plain", "retried", "mirrored"} {
		t.Run(mode, func(t *testing.T) {
			var wire [2]string
			for i, raw := range []bool{false, true} {
				wire[i] = responsesOnWire(t, mode, raw, writes)
			}
			if wire[0] != wire[1] {
				t.Fatalf("through rawsock the client got\n%.600q\nthrough the write buffer\n%.600q", wire[1], wire[0])
			}
			for _, want := range []string{"\r\n\r\nfirst", "\r\n\r\nsecond", "content-length: 3000\r\n\r\n" + big, "HTTP/1.1 100 Continue\r\n\r\n", "\r\n\r\nseven"} {
				if !strings.Contains(wire[0], want) {
					t.Fatalf("%.20q... missing from the responses %.600q", want, wire[0])
				}
			}
		})
	}
}

// varying are the response header lines that differ from run to run.
var varying = regexp.MustCompile(`(?im)^(date|x-envoy-upstream-service-time): [^\r]*\r\n`)

// responsesOnWire sends writes to a proxy for bodyBackend (mode as in
// TestBodyFromReadBuffer; raw: through rawsock) and returns the bytes it
// answered, without the lines that vary.
func responsesOnWire(t *testing.T, mode string, raw bool, writes [][]string) string {
	t.Helper()
	bb := &bodyBackend{failFirst: mode == "retried"}
	p := startBodyProxy(t, bb, proxyOpts{raw: raw, routes: bodyRouteMode(mode)})
	nc := dialBodyProxy(t, p)
	var got bytes.Buffer
	br := bufio.NewReader(io.TeeReader(nc, &got))
	for _, w := range writes {
		if _, err := io.WriteString(nc, strings.Join(w, "")); err != nil {
			t.Fatal(err)
		}
		for _, req := range w {
			if !strings.Contains(req, " HTTP/1.1\r\n") {
				continue // a body sent after 100 Continue
			}
			if strings.Contains(req, "100-continue") {
				if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
					t.Fatalf("before the body: %q, %v", line, err)
				}
				br.ReadString('\n')
			}
			method := req[:strings.IndexByte(req, ' ')]
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("%.30q: %v", req, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after the last response", br.Buffered())
	}
	return varying.ReplaceAllString(got.String(), "")
}
