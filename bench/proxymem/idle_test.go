package proxymem

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// idleConns is how many connections BenchmarkIdleConnections holds open
// (MAST_PROXYMEM_IDLE_CONNS, default 10,000; the benchmark process holds
// the client side, so its open-files limit must allow that many).
func idleConns(tb testing.TB) int {
	n := 10000
	if s := os.Getenv("MAST_PROXYMEM_IDLE_CONNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			tb.Fatalf("MAST_PROXYMEM_IDLE_CONNS=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

// BenchmarkIdleConnections opens many downstream keep-alive connections to
// a Bookinfo sidecar's inbound listener, sends one request on each (so each
// is past its first request, waiting for the next), and reports what the
// proxy holds per idle connection: resident memory, Go heap and goroutines.
// The proxy must then still serve a new request. b.N is ignored (one pass):
//
//	go test ./bench/proxymem -run '^$' -bench IdleConnections -benchtime 1x
func BenchmarkIdleConnections(b *testing.B) {
	for _, proto := range []string{"http1", "http2"} {
		b.Run(proto, func(b *testing.B) {
			s, err := Bookinfo()
			if err != nil {
				b.Fatal(err)
			}
			r := start(b, s)
			time.Sleep(3 * time.Second) // past the post-update memory release
			n := idleConns(b)
			open := func() (func(), error) { return openH1(s.Inbound, s.InboundHost) }
			if proto == "http2" {
				open = func() (func(), error) { return openH2(s.Inbound, s.InboundHost) }
			}
			// One connection first, so that one-off costs (the upstream
			// connection, lazily built state) are not counted per connection.
			closeFirst, err := open()
			if err != nil {
				b.Fatal(err)
			}
			defer closeFirst()
			time.Sleep(time.Second)
			before := r.mem()
			_, heap0, g0 := r.heap(b)
			b.ResetTimer()
			for i := 0; i < n; i++ {
				c, err := open()
				if err != nil {
					b.Fatalf("connection %d: %v", i, err)
				}
				defer c()
			}
			b.StopTimer()
			// Past idleRelease, then a configuration push (the same
			// resources, a new version): the proxy collects garbage and
			// returns free memory a second after an update, so what is
			// measured is what the connections hold, not garbage.
			time.Sleep(1500 * time.Millisecond)
			r.srv.Set(b, s.NodeID, "2", s.Resources)
			time.Sleep(3 * time.Second)
			after := r.mem()
			_, heap1, g1 := r.heap(b)
			if body := r.client().get(b, "", s.InboundHost); body == "" {
				b.Fatal("no answer with the idle connections open")
			}
			b.ReportMetric(float64(n), "conns")
			b.ReportMetric(float64(after.VmRSS-before.VmRSS)*1024/float64(n), "rss-B/conn")
			b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(n), "heap-B/conn")
			b.ReportMetric(float64(int64(g1)-int64(g0))/float64(n), "goroutines/conn")
			b.ReportMetric(MB(after.VmRSS), "rss-MB")
			b.Logf("%s, %d idle connections: before %+v KiB, after %+v KiB; goroutines %d -> %d", proto, n, before, after, g0, g1)
		})
	}
}

// openH1 sends one HTTP/1.1 request on a new connection and leaves it open.
func openH1(addr, host string) (func(), error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(nc, "GET /inbound HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		nc.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(nc, 512), nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		nc.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	nc.SetDeadline(time.Time{})
	return func() { nc.Close() }, nil
}

// openH2 sends one HTTP/2 (prior knowledge) request on a new connection
// and leaves it open.
func openH2(addr, host string) (func(), error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return nil, fmt.Errorf("no new connections")
	}}
	cc, err := tr.NewClientConn(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	req, _ := http.NewRequest("GET", "http://"+host+"/inbound", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cc.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cc.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		cc.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return func() { cc.Close() }, nil
}
