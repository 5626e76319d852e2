package tcpproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// maxTunnelResponseHeader bounds the tunnel's response head: an upstream
// that never ends its headers cannot make the proxy buffer without limit.
const maxTunnelResponseHeader = 64 << 10

// openTunnel carries the stream through an HTTP/1.1 tunnel on up, as
// Envoy's tcp_proxy does with tunneling_config on a cluster without HTTP/2
// options: a CONNECT request for t.Hostname (or, with use_post, a POST to
// t.PostPath whose chunked body carries the stream up and whose response
// body carries it down). Any 2xx answer opens the tunnel; any other answer,
// or none within timeout, fails the connection attempt and closes up.
func openTunnel(up net.Conn, t *xdsparse.Tunnel, timeout time.Duration) (net.Conn, error) {
	c, err := startTunnel(up, t, timeout)
	if err != nil {
		up.Close()
		return nil, fmt.Errorf("tunnel to %s: %w", t.Hostname, err)
	}
	return c, nil
}

func startTunnel(up net.Conn, t *xdsparse.Tunnel, timeout time.Duration) (net.Conn, error) {
	req := "CONNECT " + t.Hostname + " HTTP/1.1\r\nHost: " + t.Hostname + "\r\n\r\n"
	method := http.MethodConnect
	if t.Post {
		req = "POST " + t.PostPath + " HTTP/1.1\r\nHost: " + t.Hostname + "\r\nTransfer-Encoding: chunked\r\n\r\n"
		method = http.MethodPost
	}
	if timeout > 0 {
		up.SetDeadline(time.Now().Add(timeout))
	}
	if _, err := io.WriteString(up, req); err != nil {
		return nil, err
	}
	lr := &io.LimitedReader{R: up, N: maxTunnelResponseHeader}
	br := bufio.NewReader(lr)
	resp, err := readTunnelResponse(br, method)
	if err != nil {
		return nil, err
	}
	up.SetDeadline(time.Time{})
	lr.N = math.MaxInt64 // the head is read: the stream is not limited
	if !t.Post {
		return &tunnelConn{Conn: up, r: br}, nil
	}
	return &tunnelConn{Conn: up, r: resp.Body, chunked: true}, nil
}

// readTunnelResponse reads the tunnel request's response head from br and
// checks that it opens the tunnel (2xx).
func readTunnelResponse(br *bufio.Reader, method string) (*http.Response, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("connection closed before the response (or its head exceeds 64 KiB)")
		}
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		return nil, fmt.Errorf("%s answered %s", method, resp.Status)
	}
	return resp, nil
}

// tunnelConn is the upstream connection seen through the tunnel: reads
// come from r (the bytes after a CONNECT answer's head, or a POST answer's
// decoded body); when chunked (POST), writes go out as body chunks and
// CloseWrite ends the body.
type tunnelConn struct {
	net.Conn
	r       io.Reader
	chunked bool
}

func (c *tunnelConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *tunnelConn) Write(b []byte) (int, error) {
	if !c.chunked || len(b) == 0 {
		return c.Conn.Write(b)
	}
	chunk := make([]byte, 0, len(b)+12)
	chunk = strconv.AppendUint(chunk, uint64(len(b)), 16)
	chunk = append(chunk, "\r\n"...)
	chunk = append(append(chunk, b...), "\r\n"...)
	if _, err := c.Conn.Write(chunk); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CloseWrite ends the stream upward: the last chunk for POST (the
// connection stays open for the answer), a TCP half-close for CONNECT.
func (c *tunnelConn) CloseWrite() error {
	if c.chunked {
		_, err := io.WriteString(c.Conn, "0\r\n\r\n")
		return err
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
