// Package rpc is mast-proxy's gRPC client API with pre-encoded messages:
// callers encode requests and decode responses themselves (with protowire),
// so neither grpc-go nor a generated protobuf package needs to be linked
// into the sidecar. A Conn carries unary calls and streams to one target.
//
// Method names are full gRPC paths, "/package.Service/Method" (the :path of
// the HTTP/2 request).
package rpc

import (
	"context"
	"errors"
)

// Header is one metadata entry of a call: a lower-case name and its value.
// For a name ending in "-bin" the value is the raw bytes; the transport
// base64-encodes it on the wire (as grpc-go's metadata does).
type Header struct{ Name, Value string }

// Conn is a client connection to one gRPC server. It is safe for
// concurrent use; after Close every call fails with Canceled.
type Conn interface {
	// Invoke sends req to method and returns the response message. A call
	// that ends without status OK returns a *Status (see CodeOf).
	Invoke(ctx context.Context, method string, req []byte, md ...Header) ([]byte, error)
	// NewStream opens a bidirectional stream to method. Cancelling ctx
	// ends the stream (the server sees RST_STREAM CANCEL).
	NewStream(ctx context.Context, method string, md ...Header) (Stream, error)
	// Close closes the connection; calls in flight fail.
	Close() error
}

// Stream is one open call. Send and Recv may be called from two different
// goroutines, but neither concurrently with itself.
type Stream interface {
	// Send sends one message. It returns io.EOF when the stream has
	// already ended (the server closed it or failed); Recv then returns
	// the status.
	Send(msg []byte) error
	// Recv returns the next message, io.EOF when the server ended the
	// stream with status OK, or the call's error (a *Status, see CodeOf).
	Recv() ([]byte, error)
	// CloseSend half-closes the stream: the server sees the end of the
	// client's messages.
	CloseSend() error
	// Header waits for the server's response headers and returns them
	// (nil for a Trailers-Only response).
	Header() ([]Header, error)
	// Trailer returns the server's trailers; only complete once Recv has
	// returned an error (io.EOF included).
	Trailer() []Header
}

// Lookup returns the value of the first entry named name (lower-case).
func Lookup(md []Header, name string) (string, bool) {
	for _, h := range md {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

// FromContext returns nil or the *Status for a context error (Canceled or
// DeadlineExceeded), as grpc-go reports a call ended by its context.
func FromContext(err error) *Status {
	switch {
	case errors.Is(err, context.Canceled):
		return &Status{Code: Canceled, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &Status{Code: DeadlineExceeded, Message: err.Error()}
	}
	return nil
}
