package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2client"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
)

// h2dial is a connection being dialed; requests that found no free
// stream wait for it instead of dialing too.
type h2dial struct {
	done chan struct{}
	err  error
}

// maxUnprocessedRetries bounds how often a request the server did not
// process (GOAWAY above it) is sent again on another connection.
const maxUnprocessedRetries = 3

// roundTripH2 sends req on one of the pool's HTTP/2 connections: the
// first with a free stream (below the peer's and the cluster's
// max_concurrent_streams), else a new one; with max_connections open and
// every stream taken, the request waits as a pending one.
func (p *pool) roundTripH2(ctx context.Context, req *Request) (*Response, error) {
	// The exchange's request, response and body wrapper in one object,
	// reused once the response body is closed.
	ex, _ := p.exchanges.Get().(*h2exchange)
	if ex == nil {
		ex = &h2exchange{}
		ex.body.ex = ex
		ex.trailersF = ex.trailers
	}
	ex.req = h2client.Request{Method: req.Method, Authority: req.Authority, Path: req.Path, Header: req.Header,
		Body: req.Body, BodyStream: req.BodyStream, ContentLength: req.ContentLength, Trailers: req.Trailers,
		Deadline: req.Deadline}
	r := &ex.req
	for attempt := 0; ; attempt++ {
		c, err := p.h2conn(ctx, req.Deadline)
		if err != nil {
			p.putExchange(ex)
			return nil, err
		}
		st, err := c.RoundTrip(ctx, r)
		if err != nil {
			if errors.Is(err, h2client.ErrUnprocessed) && req.Replayable() && attempt < maxUnprocessedRetries && ctx.Err() == nil {
				continue
			}
			p.putExchange(ex)
			return nil, classifyH2(ctx, err)
		}
		ex.p, ex.body.st, ex.body.ctx = p, st, ctx
		ex.resp = Response{Status: st.Status, Header: st.Header, ContentLength: st.ContentLength, Body: &ex.body, Trailers: ex.trailersF}
		return &ex.resp, nil
	}
}

// putExchange keeps a finished exchange for the next one.
func (p *pool) putExchange(ex *h2exchange) {
	ex.req, ex.resp, ex.body.st, ex.body.ctx, ex.p = h2client.Request{}, Response{}, nil, nil, nil
	p.exchanges.Put(ex)
}

// classifyH2 maps an HTTP/2 exchange's error to a failure kind.
func classifyH2(ctx context.Context, err error) error {
	var se *h2client.StreamError
	var pe *h2client.ProtocolError
	switch {
	case errors.Is(err, h2client.ErrUnprocessed):
		return fmt.Errorf("%w: %v", ErrRefused, err)
	case errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream:
		return fmt.Errorf("%w: %v", ErrRefused, err)
	case ctx.Err() != nil:
		return classify(ctx, time.Time{}, err)
	case errors.Is(err, h2client.ErrDeadline):
		return ErrTimeout
	case errors.As(err, &pe):
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return fmt.Errorf("%w: %v", ErrReset, err)
}

// h2conn returns a connection with a stream slot reserved for the caller.
func (p *pool) h2conn(ctx context.Context, deadline time.Time) (*h2client.Conn, error) {
	for {
		p.mu.Lock()
		for i := 0; i < len(p.h2); i++ {
			c := p.h2[i]
			if c.Reserve() {
				p.mu.Unlock()
				return c, nil
			}
			if c.Closed() {
				p.h2 = slices.Delete(p.h2, i, i+1)
				i--
			}
		}
		if d := p.h2dial; d != nil {
			p.mu.Unlock()
			<-d.done // bounded by the connect timeout
			if d.err != nil {
				return nil, d.err
			}
			continue
		}
		if p.cfg.maxConns > 0 && uint32(len(p.h2)) >= p.cfg.maxConns {
			if uint32(len(p.waiters)) >= p.cfg.maxPending {
				p.mu.Unlock()
				p.stats.RqPendingOverflow.Add(1)
				return nil, ErrOverflow
			}
			ch := make(chan struct{}, 1)
			p.waiters = append(p.waiters, ch)
			p.nwaiters.Store(int32(len(p.waiters)))
			p.mu.Unlock()
			if err := p.wait(ctx, deadline, ch); err != nil {
				return nil, err
			}
			continue
		}
		d := &h2dial{done: make(chan struct{})}
		p.h2dial = d
		p.mu.Unlock()
		c, err := p.dialH2()
		p.mu.Lock()
		p.h2dial = nil
		draining := p.draining
		if err == nil {
			p.h2 = append(p.h2, c)
		}
		p.mu.Unlock()
		d.err = err
		close(d.done)
		if err != nil {
			return nil, err
		}
		if c.Reserve() {
			if draining {
				// A request of a retired host: its connection closes
				// when the request ends.
				c.Drain()
			}
			return c, nil
		}
	}
}

func (p *pool) dialH2() (*h2client.Conn, error) {
	nc, err := p.connect(tlsconfig.ALPNH2)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if p.tls != nil {
		scheme = "https"
	}
	c, err := h2client.New(nc, h2client.Config{
		MaxConcurrentStreams: p.cfg.h2.MaxConcurrentStreams,
		MaxRequests:          p.cfg.maxReqPerConn,
		PingInterval:         p.cfg.h2.KeepaliveInterval,
		PingTimeout:          p.cfg.h2.KeepaliveTimeout,
		IdleTimeout:          p.cfg.idleTimeout,
		MaxAge:               p.cfg.maxConnAge,
		Scheme:               scheme,
		OnStreamDone:         p.h2StreamDone,
		OnClose:              p.h2Closed,
	})
	if err != nil {
		p.stats.CxConnectFail.Add(1)
		return nil, &connectError{fmt.Errorf("%w: %s: %v", ErrConnect, p.addr, err)}
	}
	p.stats.CxActive.Add(1)
	return c, nil
}

// h2StreamDone hands a freed stream slot to a pending request.
func (p *pool) h2StreamDone() {
	if p.nwaiters.Load() == 0 {
		return
	}
	p.mu.Lock()
	p.wakeOne()
	p.mu.Unlock()
}

func (p *pool) h2Closed(c *h2client.Conn) {
	p.stats.CxActive.Add(-1)
	p.mu.Lock()
	if i := slices.Index(p.h2, c); i >= 0 {
		p.h2 = slices.Delete(p.h2, i, i+1)
	}
	p.wakeOne()
	p.mu.Unlock()
}

// h2exchange is one HTTP/2 exchange's request, response and body wrapper,
// kept by the pool from one exchange to the next: the Response is the
// caller's until it closes the body, as with HTTP/1.1.
type h2exchange struct {
	p         *pool
	req       h2client.Request
	resp      Response
	body      h2body
	trailersF func() headers.List // trailers, bound once
}

func (ex *h2exchange) trailers() headers.List {
	if ex.body.st == nil {
		return nil
	}
	return ex.body.st.Trailers()
}

// errBodyClosed: a read after Close.
var errBodyClosed = errors.New("upstream: response body closed")

// h2body is an HTTP/2 response body: errors are classified.
type h2body struct {
	ex  *h2exchange
	st  *h2client.Stream
	ctx context.Context
}

func (b *h2body) Read(p []byte) (int, error) {
	if b.st == nil {
		return 0, errBodyClosed
	}
	n, err := b.st.Read(p)
	if err != nil && err != io.EOF {
		err = classifyH2(b.ctx, err)
	}
	return n, err
}

// Ready reports whether Read would return without waiting (a closed
// body's does).
func (b *h2body) Ready() bool { return b.st == nil || b.st.Ready() }

// Close ends the exchange; the exchange goes back to its pool.
func (b *h2body) Close() error {
	st := b.st
	if st == nil {
		return nil
	}
	err := st.Close()
	b.ex.p.putExchange(b.ex)
	return err
}
