package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// TestHTTP1ExchangesOwnTheirWriters: HTTP/1.1 connections take a write
// buffer from their pool for each request and give it back; exchanges
// running at once on one pool's connections, buffered or streamed bodies,
// each send their own head and body.
func TestHTTP1ExchangesOwnTheirWriters(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.URL.Path, b)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := cluster(t, xdsparse.RoundRobin, &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
		{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				path := fmt.Sprintf("/g%d/%d", g, i)
				body := strings.Repeat(string(rune('a'+g)), 1000+i)
				req := &Request{Method: "POST", Authority: "x", Path: path, Body: []byte(body), ContentLength: int64(len(body))}
				if i%2 == 1 {
					req.Body, req.BodyStream, req.ContentLength = nil, strings.NewReader(body), -1 // chunked
				}
				resp, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := path + " " + body; string(b) != want {
					errs <- fmt.Errorf("%s: got %.40q..., want %.40q...", path, b, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
