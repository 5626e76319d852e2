package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

const greeting = "220 greeter ready\r\n"

// startGreeter is a server-first TCP service (as SMTP or MySQL are): it
// greets, then echoes until the client half-closes.
func startGreeter(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// detectListener serves HTTP (application protocols http/1.1, h2c found by
// the HTTP inspector) and TCP to the greeter on one port, as Istio's
// inbound listener does for a port of unknown protocol.
func detectListener(name, addr string, timeout time.Duration, continueOnTimeout bool) *listenerv3.Listener {
	l := xdstest.HTTPListener(name, addr, "detect")
	l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"http/1.1", "h2c"}}
	tp := &tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "greeter"}}
	l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{Name: "tcp", Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(tp)}}}})
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.http_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: xdstest.Any(&httpinspectorv3.HttpInspector{})}}}
	l.ListenerFiltersTimeout = durationpb.New(timeout)
	l.ContinueOnListenerFiltersTimeout = continueOnTimeout
	return l
}

// TestProtocolDetection: one port, HTTP and TCP told apart by the first
// bytes (Envoy's http_inspector); a client that says nothing goes to TCP
// once the listener filters' timeout passes (server-first protocols), or is
// closed when the listener does not continue on timeout.
func TestProtocolDetection(t *testing.T) {
	v1 := startBackend(t, "v1", nil)
	greeter := startGreeter(t)
	addr, strict := freeAddr(t), freeAddr(t)
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	xds.Set(t, gwNode, "1", xdstest.Resources(
		detectListener("detect", addr, 200*time.Millisecond, true),
		detectListener("strict", strict, 200*time.Millisecond, false),
		xdstest.RouteConfig("detect", []string{"*"}, xdstest.RouteTo("/", "v1")),
		xdstest.StaticCluster("v1", v1.addr),
		xdstest.StaticCluster("greeter", greeter),
	))
	p := startProxy(t, xds.Addr, gwNode)
	p.waitReady(t)
	waitListening(t, addr)
	waitListening(t, strict)

	t.Run("http/1.1", func(t *testing.T) {
		resp, body := get(t, http.DefaultClient, "http://"+addr+"/h1")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "v1 GET") || resp.Header.Get("x-envoy-upstream-service-time") == "" {
			t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("h2c prior knowledge", func(t *testing.T) {
		c := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(n, a) }}}
		resp, body := get(t, c, "http://"+addr+"/h2")
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(body, "v1 GET") {
			t.Fatalf("got %s %d %q", resp.Proto, resp.StatusCode, body)
		}
	})
	tcpExchange := func(t *testing.T, addr, send string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if send != "" {
			io.WriteString(c, send)
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			return string(b)
		}
		// Say nothing and wait for the server to speak first.
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	t.Run("client-first TCP", func(t *testing.T) {
		if got := tcpExchange(t, addr, "EHLO not http\r\n"); got != greeting+"EHLO not http\r\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("TLS bytes are not HTTP", func(t *testing.T) {
		hello := "\x16\x03\x01\x00\x05hello"
		if got := tcpExchange(t, addr, hello); got != greeting+hello {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("server-first TCP after the timeout", func(t *testing.T) {
		if got := tcpExchange(t, addr, ""); got != greeting {
			t.Fatalf("got %q, want the greeting", got)
		}
	})
	t.Run("closed on timeout without continue_on_listener_filters_timeout", func(t *testing.T) {
		if got := tcpExchange(t, strict, ""); got != "" {
			t.Fatalf("got %q, want the connection closed", got)
		}
	})
	t.Run("HTTP still detected on the strict listener", func(t *testing.T) {
		resp, _ := get(t, http.DefaultClient, "http://"+strict+"/h1")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
}
