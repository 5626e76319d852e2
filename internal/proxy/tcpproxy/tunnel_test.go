package tcpproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// tunnelPeer runs serve on the far end of a pipe and returns the near end.
func tunnelPeer(t *testing.T, serve func(net.Conn)) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() { defer b.Close(); serve(b) }()
	t.Cleanup(func() { a.Close() })
	return a
}

func TestTunnelConnect(t *testing.T) {
	up := tunnelPeer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != "CONNECT" || req.Host != "db.example:5432" || req.RequestURI != "db.example:5432" {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
			return
		}
		// the first stream bytes come with the answer's head
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nhello ")
		line, _ := br.ReadString('\n')
		io.WriteString(c, "echo "+line)
	})
	c, err := openTunnel(up, &xdsparse.Tunnel{Hostname: "db.example:5432"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "ping\n")
	got, _ := bufio.NewReader(c).ReadString('\n')
	if got != "hello echo ping\n" {
		t.Fatalf("through the tunnel: %q", got)
	}
}

func TestTunnelPost(t *testing.T) {
	up := tunnelPeer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != "POST" || req.URL.Path != "/tun" || req.Host != "db.example:5432" {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		body, _ := io.ReadAll(req.Body) // the chunked body ends at CloseWrite
		io.WriteString(c, "9\r\necho "+string(body[:4])+"\r\n0\r\n\r\n")
	})
	c, err := openTunnel(up, &xdsparse.Tunnel{Hostname: "db.example:5432", Post: true, PostPath: "/tun"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "pi")
	io.WriteString(c, "ng")
	c.(*tunnelConn).CloseWrite()
	got, err := io.ReadAll(c)
	if string(got) != "echo ping" || err != nil {
		t.Fatalf("through the POST tunnel: %q, %v", got, err)
	}
}

func TestTunnelRefused(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
		"garbage\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxTunnelResponseHeader) + "\r\n\r\n",
		"",
	} {
		up := tunnelPeer(t, func(c net.Conn) {
			http.ReadRequest(bufio.NewReader(c))
			io.WriteString(c, answer)
		})
		if _, err := openTunnel(up, &xdsparse.Tunnel{Hostname: "db.example:5432"}, 5*time.Second); err == nil {
			t.Errorf("answer %.40q opened the tunnel", answer)
		}
	}
}

// FuzzTunnelResponse feeds arbitrary upstream answers to the tunnel's
// response reader: it must never panic, and only a 2xx head opens a tunnel.
func FuzzTunnelResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 Connection established\r\n\r\n",
		"HTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\ndata",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.1 999 x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, post bool) {
		method := http.MethodConnect
		if post {
			method = http.MethodPost
		}
		resp, err := readTunnelResponse(bufio.NewReader(strings.NewReader(string(b))), method)
		if err != nil {
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			t.Fatalf("status %d opened the tunnel", resp.StatusCode)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	})
}
