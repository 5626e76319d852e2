package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/rpc/grpchealth"
)

// Prober runs one probe: nil means the application passed. The context
// carries the probe's timeout.
type Prober interface {
	Probe(ctx context.Context) error
}

var (
	_ Prober = (*HTTPProber)(nil)
	_ Prober = (*TCPProber)(nil)
	_ Prober = (*GRPCProber)(nil)
	_ Prober = (*ExecProber)(nil)
)

// ErrExecNotAllowed is returned by New for an exec probe when the proxy's
// operator has not allowed commands (mast-proxy --allow-exec-probe).
var ErrExecNotAllowed = errors.New("exec probes are off: the command would run as the proxy's user; allow them with --allow-exec-probe")

// Options are the proxy-side settings of a prober.
type Options struct {
	// DefaultHost is probed when the probe names no host: the proxy's IP,
	// as istio-agent does, else localhost.
	DefaultHost string
	// AllowExec lets exec probes run; without it New refuses them.
	AllowExec bool
}

// New returns the prober of c's method.
func New(c *Config, o Options) (Prober, error) {
	host := o.DefaultHost
	if host == "" {
		host = "localhost"
	}
	switch {
	case c.HTTPGet != nil:
		h := *c.HTTPGet
		if h.Host == "" {
			h.Host = host
		}
		return &HTTPProber{Config: h}, nil
	case c.TCPSocket != nil:
		t := *c.TCPSocket
		if t.Host == "" {
			t.Host = host
		}
		return &TCPProber{Config: t}, nil
	case c.GRPC != nil:
		return &GRPCProber{Config: *c.GRPC, Host: host}, nil
	case c.Exec != nil:
		if !o.AllowExec {
			return nil, ErrExecNotAllowed
		}
		return &ExecProber{Command: c.Exec.Command}, nil
	}
	return nil, errors.New("readiness probe: no method set")
}

// HTTPProber sends a GET without keep-alive; HTTPS skips verification of
// the application's certificate, as the kubelet and istio-agent do.
type HTTPProber struct {
	Config HTTPGet
}

// Probe implements Prober.
func (p *HTTPProber) Probe(ctx context.Context) error {
	h := p.Config
	scheme := "http"
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if h.Scheme == "HTTPS" {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a probe of the local application, as the kubelet's
	}
	defer tr.CloseIdleConnections()
	path := h.Path
	if path == "" {
		path = "/"
	}
	u, err := url.Parse(path)
	if err != nil {
		u = &url.URL{Path: path} // as istio-agent: pass a path it cannot parse as is
	}
	u.Scheme, u.Host = scheme, net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("httpGet %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "istio-probe/1.0")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		if strings.EqualFold(hd.Name, "User-Agent") {
			req.Header.Del("User-Agent")
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("httpGet %s: %w", u, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("httpGet %s: status %d, want [200, 400)", u, resp.StatusCode)
	}
	return nil
}

// TCPProber opens a connection and closes it.
type TCPProber struct {
	Config TCPSocket
}

// Probe implements Prober.
func (p *TCPProber) Probe(ctx context.Context) error {
	addr := net.JoinHostPort(p.Config.Host, strconv.Itoa(int(p.Config.Port)))
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("tcpSocket %s: %w", addr, err)
	}
	c.Close()
	return nil
}

// GRPCProber asks grpc.health.v1.Health/Check in plaintext.
type GRPCProber struct {
	Config GRPC
	Host   string
}

// Probe implements Prober.
func (p *GRPCProber) Probe(ctx context.Context) error {
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Config.Port)))
	err := grpchealth.Probe(ctx, addr, p.Config.Service, "istio-probe/1.0")
	switch {
	case grpchealth.IsNotServing(err):
		return fmt.Errorf("grpc %s: %w", addr, err)
	case err != nil:
		return fmt.Errorf("grpc %s: health check: %w", addr, err)
	}
	return nil
}

// ExecProber runs a command; exit status 0 passes. The command is killed
// when the probe times out.
type ExecProber struct {
	Command []string
}

// Probe implements Prober.
func (p *ExecProber) Probe(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, p.Command[0], p.Command[1:]...)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("exec %s: %w", p.Command[0], ctx.Err())
		}
		return fmt.Errorf("exec %s: %w", p.Command[0], err)
	}
	return nil
}
