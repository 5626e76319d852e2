package dataplane

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

const nodeID = "sidecar~127.0.0.1~bench.default~default.svc.cluster.local"

var okResponse = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

// rawBackend answers every request with a fixed 200 without allocating
// per request, so a benchmark measures the proxy.
func rawBackend(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := c.Write(okResponse); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(tb testing.TB, backend string) (*Proxy, string) {
	srv := xdstest.Start(tb, "127.0.0.1:0", nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	srv.Set(tb, nodeID, "1", xdstest.Resources(
		xdstest.HTTPListener("in", addr, "r"),
		xdstest.RouteConfig("r", []string{"*"}, xdstest.RouteTo("/", "c")),
		xdstest.EDSCluster("c"), xdstest.CLA("c", backend),
	))
	node, err := xdsclient.BuildNode(xdsclient.NodeConfig{ID: nodeID})
	if err != nil {
		tb.Fatal(err)
	}
	p := New(Config{XDSAddress: srv.Addr, Node: node, AdminAddr: "127.0.0.1:0", DrainPeriod: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("listener never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p, addr
}

func TestReadyAfterFirstListenersAndClusters(t *testing.T) {
	p, addr := startProxy(t, rawBackend(t))
	if !p.Ready() {
		t.Fatal("not ready although the listener is bound")
	}
	resp, err := http.Get("http://" + p.AdminAddr() + "/ready")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/ready: %v %v", resp, err)
	}
	resp, err = http.Get("http://" + addr + "/x")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("through proxy: %v %v", resp, err)
	}
}

// BenchmarkLoopbackHop measures one HTTP/1.1 keep-alive request through the
// proxy to a loopback backend (client and backend are allocation-free).
func BenchmarkLoopbackHop(b *testing.B) {
	_, addr := startProxy(b, rawBackend(b))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: b\r\nX-Request-Id: 8a3c4c3e-1d0b-4c4e-9c1f-1f9a1b7d2e11\r\n\r\n")
	body := make([]byte, 2)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
		}
		if _, err := io.ReadFull(br, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
