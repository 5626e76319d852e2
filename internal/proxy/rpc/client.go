package rpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/h2client"
)

// Options configure a client connection (Dial).
type Options struct {
	// TLS secures the connection; nil is plaintext HTTP/2 (prior
	// knowledge). Its callbacks (GetClientCertificate, VerifyConnection)
	// run at each handshake, so a certificate that rotates is followed by
	// every reconnect. NextProtos is set to h2; an empty ServerName is the
	// authority's host.
	TLS *tls.Config
	// Authority is the :authority sent (default: the target's host:port,
	// "localhost" for a Unix socket).
	Authority string
	// KeepaliveTime, when set, sends a PING after this long without a
	// frame from the server, and closes the connection when its ACK takes
	// longer than KeepaliveTimeout (default 20 s). 0: no PING (grpc-go's
	// default; servers refuse PINGs more frequent than their policy).
	KeepaliveTime, KeepaliveTimeout time.Duration
	// MaxRecvMsgSize bounds one received message (default 4 MiB, as
	// grpc-go); a larger one fails the call with ResourceExhausted.
	MaxRecvMsgSize int
	// DialTimeout bounds one connection attempt, TLS included (default
	// 20 s, grpc-go's minimum connect timeout).
	DialTimeout time.Duration
	// UserAgent is sent as user-agent (default "mast-proxy-grpc").
	UserAgent string
	// BackoffBase and BackoffMax bound the delay between failed connection
	// attempts (defaults 1 s and 120 s with factor 1.6 and 20% jitter, as
	// grpc-go). Calls made while the connection backs off fail at once
	// with Unavailable and the last attempt's error.
	BackoffBase, BackoffMax time.Duration
	// Dial opens the transport connection (default net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial returns a Conn to target; it connects on the first call and again
// after the connection drops. target is host:port, dns:///host:port,
// dns://nameserver:port/host:port, passthrough:///host:port (a host
// without port gets 443), or unix:///path, unix:path. Host names resolve at each connection attempt
// and their addresses are tried in order (grpc-go's pick_first over its
// DNS resolver); there is no other resolver, balancer or service config.
func Dial(target string, opts Options) (Conn, error) {
	network, addr, nameserver, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if opts.Authority == "" {
		opts.Authority = addr
		if network == "unix" {
			opts.Authority = "localhost"
		}
	}
	if opts.KeepaliveTimeout <= 0 {
		opts.KeepaliveTimeout = 20 * time.Second
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = 4 << 20
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 20 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "mast-proxy-grpc"
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 120 * time.Second
	}
	if opts.Dial == nil {
		d := &net.Dialer{}
		if nameserver != "" {
			// dns://nameserver/host:port asks that server (Go's resolver,
			// address records only).
			d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var nd net.Dialer
				return nd.DialContext(ctx, network, nameserver)
			}}
		}
		opts.Dial = d.DialContext
	}
	if opts.TLS != nil {
		conf := opts.TLS.Clone()
		conf.NextProtos = []string{"h2"}
		if conf.ServerName == "" {
			conf.ServerName = opts.Authority
			if host, _, err := net.SplitHostPort(opts.Authority); err == nil {
				conf.ServerName = host
			}
		}
		opts.TLS = conf
	}
	return &client{network: network, addr: addr, opts: opts}, nil
}

// parseTarget returns the network and address of a target, and the DNS
// server a dns:// target names.
func parseTarget(target string) (network, addr, nameserver string, err error) {
	switch {
	case strings.HasPrefix(target, "unix://"):
		addr = strings.TrimPrefix(target, "unix://")
		if !strings.HasPrefix(addr, "/") {
			return "", "", "", fmt.Errorf("rpc: target %q: unix:// takes an absolute path (unix:///path)", target)
		}
		return "unix", addr, "", nil
	case strings.HasPrefix(target, "unix:"):
		return "unix", strings.TrimPrefix(target, "unix:"), "", nil
	case strings.HasPrefix(target, "dns://"):
		nameserver, addr, _ = strings.Cut(strings.TrimPrefix(target, "dns://"), "/")
		if nameserver != "" {
			if _, _, err := net.SplitHostPort(nameserver); err != nil {
				nameserver = net.JoinHostPort(nameserver, "53")
			}
		}
	case strings.HasPrefix(target, "passthrough:///"):
		addr = strings.TrimPrefix(target, "passthrough:///")
	case strings.Contains(target, "://"):
		return "", "", "", fmt.Errorf("rpc: target %q: only dns:, passthrough:/// and unix: targets are supported", target)
	default:
		addr = target
	}
	if addr == "" {
		return "", "", "", fmt.Errorf("rpc: target %q: no address", target)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "443")
	}
	return "tcp", addr, nameserver, nil
}

// client is a Conn: one HTTP/2 connection at a time, made on demand.
type client struct {
	network, addr string
	opts          Options

	mu      sync.Mutex
	hc      *h2client.Conn
	dialing chan struct{} // closed when the attempt under way ends
	freed   chan struct{} // closed (and replaced) when a stream slot frees
	waiters int           // calls waiting on freed
	lastErr error         // the last failed attempt's
	retryAt time.Time     // no attempt before (backoff)
	fails   int           // consecutive failed attempts
	closed  bool
}

var _ Conn = (*client)(nil)

var errConnClosing = &Status{Code: Canceled, Message: "grpc: the client connection is closing"}

// reserve returns the connection with a stream slot taken for one call,
// connecting when there is none.
func (c *client) reserve(ctx context.Context) (*h2client.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed {
			return nil, errConnClosing
		}
		if err := ctx.Err(); err != nil {
			return nil, FromContext(err)
		}
		if c.hc != nil && !c.hc.Usable() {
			c.hc = nil // closed or draining: it finishes its streams alone
		}
		var wait chan struct{}
		dialWait := true
		switch {
		case c.hc != nil:
			if c.hc.Reserve() {
				return c.hc, nil
			}
			// At the server's stream limit: wait for a slot.
			if c.freed == nil {
				c.freed = make(chan struct{})
			}
			wait, dialWait = c.freed, false
			c.waiters++
		case c.dialing != nil:
			wait = c.dialing
		case time.Now().Before(c.retryAt):
			return nil, unavailable(c.lastErr)
		default:
			c.dialing = make(chan struct{})
			wait = c.dialing
			go c.connect(c.dialing)
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if !dialWait {
			c.waiters--
		} else if c.hc == nil && c.dialing == nil && c.lastErr != nil {
			// The attempt this call waited for failed (grpc-go fails
			// calls that are not wait-for-ready the same way).
			return nil, unavailable(c.lastErr)
		}
	}
}

// connect makes one connection attempt and wakes the calls waiting for it.
func (c *client) connect(done chan struct{}) {
	hc, err := c.dialOnce()
	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(done)
	c.dialing = nil
	if err != nil {
		c.lastErr = err
		c.retryAt = time.Now().Add(c.backoff(c.fails))
		c.fails++
		return
	}
	if c.closed {
		hc.Close()
		return
	}
	c.hc, c.fails, c.lastErr, c.retryAt = hc, 0, nil, time.Time{}
}

// backoff is grpc-go's connection backoff for the n-th failed attempt in a
// row: base × 1.6^n, at most max, ±20%.
func (c *client) backoff(n int) time.Duration {
	d := float64(c.opts.BackoffBase)
	for i := 0; i < n && d < float64(c.opts.BackoffMax); i++ {
		d *= 1.6
	}
	d = min(d, float64(c.opts.BackoffMax))
	d *= 1 + 0.2*(rand.Float64()*2-1)
	return time.Duration(d)
}

// dialOnce opens the transport, runs TLS with ALPN h2 when configured and
// starts HTTP/2.
func (c *client) dialOnce() (*h2client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	defer cancel()
	nc, err := c.opts.Dial(ctx, c.network, c.addr)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if c.opts.TLS != nil {
		scheme = "https"
		tc := tls.Client(nc, c.opts.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("authentication handshake failed: %w", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			tc.Close()
			return nil, fmt.Errorf("credentials: cannot check peer: missing selected ALPN property (got %q)", p)
		}
		nc = tc
	}
	cfg := h2client.Config{Scheme: scheme, ReadIdle: -1, OnStreamDone: c.slotFreed,
		StreamWindow: 4 << 20, ConnWindow: 16 << 20}
	if c.opts.KeepaliveTime > 0 {
		cfg.ReadIdle, cfg.PingTimeout = c.opts.KeepaliveTime, c.opts.KeepaliveTimeout
	}
	hc, err := h2client.New(nc, cfg)
	if err != nil {
		return nil, err
	}
	return hc, nil
}

// slotFreed wakes the calls waiting for a stream slot.
func (c *client) slotFreed() {
	c.mu.Lock()
	if c.waiters > 0 && c.freed != nil {
		close(c.freed)
		c.freed = nil
	}
	c.mu.Unlock()
}

// Close closes the connection; calls in flight fail.
func (c *client) Close() error {
	c.mu.Lock()
	c.closed = true
	hc := c.hc
	c.hc = nil
	if c.freed != nil {
		close(c.freed)
		c.freed = nil
	}
	c.mu.Unlock()
	if hc != nil {
		hc.Close()
	}
	return nil
}

// unavailable is the status of a call the connection failed.
func unavailable(err error) *Status {
	return &Status{Code: Unavailable, Message: fmt.Sprintf("connection error: %v", err)}
}
