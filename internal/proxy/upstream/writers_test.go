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

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/rawsock"
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

// plainConn hides a connection's WriteVec: sends through it take the
// pooled write buffer.
type plainConn struct{ net.Conn }

// TestSendVectoredSameBytes: a plaintext connection (rawsock, WriteVec)
// sends each request, head and buffered body in one write, with the same
// bytes as the write buffer's path, for bodies that are empty, absent,
// buffered, larger than the buffer, streamed with a length and chunked.
func TestSendVectoredSameBytes(t *testing.T) {
	big := strings.Repeat("0123456789", 1000)
	reqs := []func() (*Request, int64, bool){
		func() (*Request, int64, bool) {
			return &Request{Method: "GET", Authority: "a", Path: "/get"}, -1, false
		},
		func() (*Request, int64, bool) {
			return &Request{Method: "POST", Authority: "a", Path: "/empty", Body: []byte{}}, 0, false
		},
		func() (*Request, int64, bool) {
			return &Request{Method: "POST", Authority: "a", Path: "/small", Body: []byte("hello")}, 5, false
		},
		func() (*Request, int64, bool) {
			return &Request{Method: "PUT", Authority: "a", Path: "/big", Body: []byte(big)}, int64(len(big)), false
		},
		func() (*Request, int64, bool) {
			return &Request{Method: "POST", Authority: "a", Path: "/stream", BodyStream: strings.NewReader(big), ContentLength: int64(len(big))}, int64(len(big)), false
		},
		func() (*Request, int64, bool) {
			return &Request{Method: "POST", Authority: "a", Path: "/chunked", BodyStream: strings.NewReader("chunk")}, -1, true
		},
	}
	wire := func(vectored bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- err.Error()
				return
			}
			b, _ := io.ReadAll(c)
			c.Close()
			got <- string(b)
		}()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw, ok := rawsock.Wrap(nc).(*rawsock.Conn)
		if !ok {
			t.Fatal("rawsock.Wrap did not wrap a TCP connection")
		}
		defer raw.Close()
		c := &h1conn{p: &pool{}, nc: raw}
		if !vectored {
			c.nc = plainConn{raw}
		}
		for _, r := range reqs {
			req, cl, chunked := r()
			req.Header = headers.List{{Name: "x-req", Value: req.Path}}
			if err := c.send(req, cl, chunked); err != nil {
				t.Fatalf("%s: %v", req.Path, err)
			}
		}
		raw.CloseWrite()
		return <-got
	}
	vec, plain := wire(true), wire(false)
	if vec != plain {
		t.Fatalf("vectored sends wrote\n%.300q\nthe write buffer's path\n%.300q", vec, plain)
	}
	if !strings.Contains(plain, "\r\n\r\nhello") || !strings.Contains(plain, "5\r\nchunk\r\n0\r\n\r\n") {
		t.Fatalf("unexpected requests on the wire: %.300q", plain)
	}
}
