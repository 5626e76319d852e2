package upstream

// The HTTP/2 upstream path through x/net's http2.Transport, kept behind
// mast-proxy --legacy-http2-client (Manager.LegacyH2) while the proxy's own
// client (h2client, h2pool.go) proves itself.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
)

func (p *pool) transport() *http2.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h2legacy == nil {
		p.h2legacy = &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				nc, err := p.connect(tlsconfig.ALPNH2)
				if err != nil {
					return nil, err
				}
				p.stats.CxActive.Add(1)
				p.h2legacyConns.Add(1)
				return &countedConn{Conn: nc, stats: p.stats, pool: p}, nil
			},
			// Forward requests as they came: no accept-encoding added, so
			// no transparent decompression of the response either.
			DisableCompression: true,
			ReadIdleTimeout:    30 * time.Second,
			PingTimeout:        10 * time.Second,
			IdleConnTimeout:    p.cfg.idleTimeout,
			MaxHeaderListSize:  96 * 1024,
		}
		if p.draining {
			// A request of a retired host: its connection closes soon
			// after (drain's ticker started before this transport).
			p.h2legacy.IdleConnTimeout = time.Second
		}
	}
	return p.h2legacy
}

type countedConn struct {
	net.Conn
	stats *Stats
	pool  *pool
	once  sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.stats.CxActive.Add(-1); c.pool.h2legacyConns.Add(-1) })
	return c.Conn.Close()
}

func (p *pool) roundTripH2Legacy(ctx context.Context, req *Request) (*Response, error) {
	hreq := &http.Request{Method: req.Method, Host: req.Authority, Header: make(http.Header, len(req.Header)),
		Proto: "HTTP/2.0", ProtoMajor: 2, ContentLength: req.ContentLength}
	u, err := parseURL(p.addr, req.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: path %q: %v", ErrProtocol, req.Path, err)
	}
	hreq.URL = u
	for _, f := range req.Header {
		if f.Name == "" || f.Name[0] == ':' {
			continue
		}
		hreq.Header[f.Name] = append(hreq.Header[f.Name], f.Value)
	}
	if _, ok := hreq.Header["user-agent"]; !ok {
		hreq.Header["user-agent"] = nil // present but empty: the transport adds no Go-http-client
	}
	switch {
	case req.Body != nil:
		// x/net's transport may still send it after the exchange: a copy.
		body := bytes.Clone(req.Body)
		hreq.Body = io.NopCloser(bytes.NewReader(body))
		hreq.ContentLength = int64(len(body))
		hreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	case req.BodyStream != nil:
		hreq.Body = io.NopCloser(req.BodyStream)
	default:
		hreq.Body = http.NoBody
		if hreq.ContentLength < 0 {
			hreq.ContentLength = 0
		}
	}
	if len(req.Trailers) > 0 {
		hreq.Trailer = http.Header{}
		for _, f := range req.Trailers {
			hreq.Trailer[f.Name] = append(hreq.Trailer[f.Name], f.Value)
		}
	}
	cancel := context.CancelFunc(func() {})
	if !req.Deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
	}
	hreq = hreq.WithContext(ctx)
	hresp, err := p.transport().RoundTripOpt(hreq, http2.RoundTripOpt{})
	if err != nil {
		defer cancel()
		var se http2.StreamError
		switch {
		case errors.Is(err, ErrConnect):
			return nil, err
		case errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream:
			return nil, fmt.Errorf("%w: %v", ErrRefused, err)
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w: %v", ErrConnect, err)
		}
		return nil, classify(ctx, time.Time{}, err)
	}
	resp := &Response{Status: hresp.StatusCode, ContentLength: hresp.ContentLength, Body: &h2legacyBody{rc: hresp.Body, ctx: ctx, cancel: cancel}}
	resp.Header = make(headers.List, 0, len(hresp.Header)+4)
	for k, vs := range hresp.Header {
		n := headers.Lower(k)
		for _, v := range vs {
			resp.Header = append(resp.Header, headers.Field{Name: n, Value: v})
		}
	}
	resp.Trailers = func() headers.List {
		var t headers.List
		for k, vs := range hresp.Trailer {
			for _, v := range vs {
				t = append(t, headers.Field{Name: strings.ToLower(k), Value: v})
			}
		}
		return t
	}
	return resp, nil
}

type h2legacyBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc // the deadline's context
}

func (b *h2legacyBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = classify(b.ctx, time.Time{}, err)
	}
	return n, err
}

func (b *h2legacyBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// parseURL builds the URL for an HTTP/2 request so that the origin-form
// target is sent byte for byte as :path (no re-escaping).
func parseURL(addr, target string) (*url.URL, error) {
	p, q, _ := strings.Cut(target, "?")
	return &url.URL{Scheme: "http", Host: addr, Opaque: p, RawQuery: q}, nil
}

// drainLegacy closes the legacy transport's connections once idle
// (checked every second until none is left: streams may be long).
func (p *pool) drainLegacy(h2 *http2.Transport) {
	h2.CloseIdleConnections()
	if p.h2legacyConns.Load() == 0 {
		return
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for range t.C {
			h2.CloseIdleConnections()
			if p.h2legacyConns.Load() == 0 {
				return
			}
		}
	}()
}
