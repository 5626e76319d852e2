// Package upstream is mast-proxy's side toward upstream hosts: clusters with
// their endpoints, load balancers, circuit breakers, and connection pools for
// HTTP/1.1 (keep-alive, own wire code) and HTTP/2 (multiplexed, prior
// knowledge).
package upstream

import (
	"errors"
	"io"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Request is one request sent upstream. The router fills it once per
// downstream request; retries reuse it, so Body must be replayable
// (BodyStream is set instead for bodies too large to buffer, and such
// requests are not retried).
type Request struct {
	Method    string
	Scheme    string
	Authority string
	Path      string // origin-form target
	Header    headers.List
	// Body holds a buffered body (nil for none); BodyStream an unbuffered one.
	// Body is not kept past the exchange: once the response's Body is
	// closed (or RoundTrip failed) the caller may reuse its array.
	Body       []byte
	BodyStream io.Reader
	// ContentLength is the body length, -1 when unknown (stream it chunked).
	ContentLength int64
	// Trailers, if any, sent after a streamed body (HTTP/2 and chunked only).
	Trailers headers.List
	// Upgrade is the protocol asked for in the Upgrade header ("websocket"),
	// "" for none. Upgrades always go over HTTP/1.1 on a connection of their
	// own; a 101 answer hands that connection to the caller (Response.Upgraded).
	Upgrade string
	// DownstreamHTTP2 says the client spoke HTTP/2; clusters configured to use
	// the downstream protocol then use HTTP/2 upstream too.
	DownstreamHTTP2 bool
	// Deadline bounds the exchange, response body included (the route
	// and per-try timeouts); zero for none. On HTTP/1.1 it is the
	// connection's I/O deadline: no timer, no derived context. Passing it
	// fails the exchange with ErrTimeout.
	Deadline time.Time
}

// Aborter is a context that unblocks an exchange's I/O when it ends,
// through one slot instead of context.AfterFunc (which allocates): the
// proxy's stream context implements it. SetAbort runs f at once when the
// context already ended; ClearAbort reports false when f ran.
type Aborter interface {
	SetAbort(f func())
	ClearAbort() bool
}

// Replayable reports whether the request can be sent again.
func (r *Request) Replayable() bool { return r.BodyStream == nil }

// Response is an upstream response. The caller must Close Body, and must not
// use the Response (its Header and Trailers included) after that: an HTTP/1.1
// connection reuses it for its next exchange.
type Response struct {
	Status        int
	Header        headers.List
	Body          io.ReadCloser
	ContentLength int64 // -1 unknown
	// Trailers returns trailers once Body hit EOF (may be nil).
	Trailers func() headers.List
	// Host is the upstream host that answered.
	Host *Host
	// Upgraded is the upstream connection after a 101 Switching Protocols
	// answer to an Upgrade request; Body is empty then. Closing it closes
	// the connection.
	Upgraded Conn
}

// Conn is a byte stream that can be half-closed (an upgraded or tunnelled
// connection).
type Conn interface {
	io.ReadWriteCloser
	// CloseWrite shuts down the sending side.
	CloseWrite() error
	// SetReadDeadline bounds the next reads.
	SetReadDeadline(t time.Time) error
}

// Failure kinds, used by the router for retries, status codes and flags.
var (
	// ErrConnect: the connection could not be established (Envoy flag UF).
	ErrConnect = errors.New("upstream connect error")
	// ErrReset: the connection or stream was reset before a response (UC/UR).
	ErrReset = errors.New("upstream reset before response")
	// ErrRefused: the HTTP/2 stream was refused (REFUSED_STREAM).
	ErrRefused = errors.New("upstream refused stream")
	// ErrTimeout: no response in time (UT).
	ErrTimeout = errors.New("upstream request timeout")
	// ErrOverflow: a circuit breaker is open (UO).
	ErrOverflow = errors.New("upstream overflow")
	// ErrNoHealthy: no host to send to (UH).
	ErrNoHealthy = errors.New("no healthy upstream")
	// ErrProtocol: the upstream spoke invalid HTTP (UPE).
	ErrProtocol = errors.New("upstream protocol error")
)
