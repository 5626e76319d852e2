package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/websocket"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// startWSBackend serves a WebSocket echo on /ws... paths; each message comes
// back prefixed with "echo:". It also counts plain requests.
func startWSBackend(t *testing.T) *backend {
	t.Helper()
	ws := websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg []byte
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(c, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	})
	return startBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			ws.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "plain %s upgrade=%q", r.URL.Path, r.Header.Get("Upgrade"))
	})
}

// upgradeWorld is a proxy with two listeners: one whose connection manager
// allows websocket and CONNECT upgrades, one that allows none.
type upgradeWorld struct {
	xds           *xdstest.Server
	proxy         *proc
	addr, noUpAdr string
	ws            *backend
	tcpEcho       string
}

func newUpgradeWorld(t *testing.T) *upgradeWorld {
	w := &upgradeWorld{ws: startWSBackend(t), tcpEcho: startTCPEcho(t), addr: freeAddr(t), noUpAdr: freeAddr(t)}
	hcm := xdstest.HCM("up")
	hcm.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}, {UpgradeType: "CONNECT"}}
	noUp := xdstest.HCM("up")
	connect := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "echo"},
			UpgradeConfigs: []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "CONNECT", ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{}}}}}}
	noWS := route("/nows", "ws", func(r *routev3.Route) {
		r.GetRoute().UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "websocket", Enabled: wrapperspb.Bool(false)}}
	})
	// A short route timeout: an upgraded stream must outlive it.
	ws := route("/ws", "ws", func(r *routev3.Route) { r.GetRoute().Timeout = durationpb.New(300 * time.Millisecond) })
	w.xds = xdstest.Start(t, "127.0.0.1:0", nil)
	w.xds.Set(t, gwNode, "1", xdstest.Resources(
		xdstest.ListenerWith("up", w.addr, hcm),
		xdstest.ListenerWith("noup", w.noUpAdr, noUp),
		xdstest.RouteConfig("up", []string{"*"}, connect, noWS, ws, route("/", "ws")),
		xdstest.StaticCluster("ws", w.ws.addr),
		xdstest.StaticCluster("echo", w.tcpEcho),
	))
	w.proxy = startProxy(t, w.xds.Addr, gwNode)
	w.proxy.waitReady(t)
	waitListening(t, w.addr)
	waitListening(t, w.noUpAdr)
	return w
}

func wsDial(addr, path string) (*websocket.Conn, error) {
	cfg, err := websocket.NewConfig("ws://"+addr+path, "http://"+addr)
	if err != nil {
		return nil, err
	}
	return websocket.DialConfig(cfg)
}

// rawUpgrade sends a hand-written upgrade request and returns the status line.
func rawUpgrade(t *testing.T, addr, path, proto string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://x\r\n\r\n", path, proto)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Status
}

func TestWebSocketThroughProxy(t *testing.T) {
	w := newUpgradeWorld(t)
	t.Run("echo", func(t *testing.T) {
		c, err := wsDial(w.addr, "/ws/chat")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		big := bytes.Repeat([]byte("0123456789abcdef"), 64*1024) // 1 MiB in one frame
		for i, msg := range [][]byte{[]byte("hello"), []byte("world"), big, []byte("after the big one")} {
			if err := websocket.Message.Send(c, msg); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			var got []byte
			if err := websocket.Message.Receive(c, &got); err != nil {
				t.Fatalf("receive %d: %v", i, err)
			}
			if !bytes.Equal(got, append([]byte("echo:"), msg...)) {
				t.Fatalf("message %d: got %d bytes %.40q, want echo of %d bytes", i, len(got), got, len(msg))
			}
		}
		if r := w.ws.last(); r.Header.Get("Upgrade") != "websocket" || r.Header.Get("x-request-id") == "" {
			t.Errorf("backend saw %v", r.Header)
		}
	})
	t.Run("outlives the route timeout", func(t *testing.T) {
		c, err := wsDial(w.addr, "/ws/slow")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The route timeout (300ms) bounds the handshake, not the stream:
		// let it pass (a wait, not a timed assertion).
		time.Sleep(time.Second)
		websocket.Message.Send(c, "still there")
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil || got != "echo:still there" {
			t.Fatalf("after the route timeout: %q %v", got, err)
		}
	})
	for _, tc := range []struct {
		name, addr, path, proto, want string
	}{
		{"route disables websocket", w.addr, "/nows", "websocket", "403 Forbidden"},
		{"connection manager without upgrade_configs", w.noUpAdr, "/ws", "websocket", "403 Forbidden"},
		{"unlisted upgrade type", w.addr, "/ws", "foo/1", "403 Forbidden"},
		{"websocket handshake status", w.addr, "/ws", "websocket", "101 Switching Protocols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawUpgrade(t, tc.addr, tc.path, tc.proto); got != tc.want {
				t.Fatalf("status %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("h2c upgrade is served as HTTP/1.1", func(t *testing.T) {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != `plain /plain upgrade=""` {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	})
	t.Run("CONNECT tunnel", func(t *testing.T) {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT echo.example:7 HTTP/1.1\r\nHost: echo.example:7\r\n\r\n")
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("CONNECT status %q %v", line, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "\r\n" {
				break
			}
		}
		io.WriteString(c, "bytes through the tunnel")
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(br)
		if err != nil || string(b) != "bytes through the tunnel" {
			t.Fatalf("tunnel echo %q %v", b, err)
		}
	})
	t.Run("CONNECT not allowed without upgrade_configs", func(t *testing.T) {
		c, err := net.Dial("tcp", w.noUpAdr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT echo.example:7 HTTP/1.1\r\nHost: echo.example:7\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 403 {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("stats", func(t *testing.T) {
		_, stats := w.proxy.adminGet(t, "/stats")
		if !strings.Contains(stats, "http.downstream_cx_upgrades_total: ") || strings.Contains(stats, "http.downstream_cx_upgrades_total: 0\n") {
			t.Errorf("upgrades not counted: %.600s", stats)
		}
	})
}
