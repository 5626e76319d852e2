package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/proxy/h2client"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// TestCodesMatchGRPC compares every code's value, name and error text with
// grpc-go's.
func TestCodesMatchGRPC(t *testing.T) {
	for c := range rpc.Code(20) {
		if got, want := c.String(), codes.Code(c).String(); got != want {
			t.Errorf("Code(%d).String() = %q, grpc-go %q", c, got, want)
		}
		if c == rpc.OK {
			continue
		}
		got := (&rpc.Status{Code: c, Message: "m é"}).Error()
		if want := status.Error(codes.Code(c), "m é").Error(); got != want {
			t.Errorf("Status.Error() = %q, grpc-go %q", got, want)
		}
	}
	if rpc.Unauthenticated != rpc.Code(codes.Unauthenticated) || rpc.Unavailable != rpc.Code(codes.Unavailable) {
		t.Error("code values differ from grpc-go's")
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want rpc.Code
	}{
		{nil, rpc.OK},
		{rpc.Errorf(rpc.NotFound, "x"), rpc.NotFound},
		{fmt.Errorf("wrapped: %w", rpc.Errorf(rpc.Aborted, "y")), rpc.Aborted},
		{context.Canceled, rpc.Canceled},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), rpc.DeadlineExceeded},
		{io.EOF, rpc.Unknown},
		{errors.New("other"), rpc.Unknown},
	} {
		if got := rpc.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if tc.err != nil && tc.want != rpc.Unknown {
			if got := status.Code(grpcErr(tc.err)); rpc.Code(got) != tc.want {
				t.Errorf("grpc-go's code for %v is %v, ours %v", tc.err, got, tc.want)
			}
		}
	}
	if got := rpc.MessageOf(fmt.Errorf("w: %w", rpc.Errorf(rpc.Internal, "inner"))); got != "inner" {
		t.Errorf("MessageOf = %q", got)
	}
}

// grpcErr is err as grpc-go would report it.
func grpcErr(err error) error {
	var s *rpc.Status
	if errors.As(err, &s) {
		return status.Error(codes.Code(s.Code), s.Message)
	}
	return status.FromContextError(err).Err()
}

// lateTimer is a context whose deadline has passed but whose timer has not
// fired yet, as a loaded machine leaves one.
type lateTimer struct{ context.Context }

func (lateTimer) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestResetCancelPastDeadline: a RST_STREAM(CANCEL) that arrives after the
// call's deadline passed (grpc-go's server resets on its own timer) is
// DeadlineExceeded, as grpc-go's client reports it, even before the
// context's own timer fires; before the deadline it stays Canceled.
func TestResetCancelPastDeadline(t *testing.T) {
	reset := &h2client.StreamError{Code: http2.ErrCodeCancel}
	if got := rpc.CodeOf(rpc.StatusOf(lateTimer{context.Background()}, reset)); got != rpc.DeadlineExceeded {
		t.Errorf("CANCEL after the deadline: %v, want DeadlineExceeded", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if got := rpc.CodeOf(rpc.StatusOf(ctx, reset)); got != rpc.Canceled {
		t.Errorf("CANCEL before the deadline: %v, want Canceled", got)
	}
	refused := &h2client.StreamError{Code: http2.ErrCodeRefusedStream}
	if got := rpc.CodeOf(rpc.StatusOf(lateTimer{context.Background()}, refused)); got != rpc.Unavailable {
		t.Errorf("REFUSED_STREAM after the deadline: %v, want Unavailable", got)
	}
}
