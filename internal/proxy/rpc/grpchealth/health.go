// Package grpchealth is the client side of gRPC's standard health check
// (grpc.health.v1.Health/Check) on rpc.Conn: the request and response are
// one field each, encoded with protowire, so the probes link no generated
// code.
package grpchealth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Method is the health check's path.
const Method = "/grpc.health.v1.Health/Check"

// Status is HealthCheckResponse.ServingStatus.
type Status int32

// The serving statuses.
const (
	Unknown        Status = 0
	Serving        Status = 1
	NotServing     Status = 2
	ServiceUnknown Status = 3
)

// String is the enum value's name, or its number for a value the enum
// does not declare (as the generated type prints them).
func (s Status) String() string {
	switch s {
	case Unknown:
		return "UNKNOWN"
	case Serving:
		return "SERVING"
	case NotServing:
		return "NOT_SERVING"
	case ServiceUnknown:
		return "SERVICE_UNKNOWN"
	}
	return strconv.Itoa(int(s))
}

// EncodeRequest returns HealthCheckRequest{service}.
func EncodeRequest(service string) []byte {
	if service == "" {
		return nil
	}
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, service)
}

// DecodeResponse returns HealthCheckResponse's status. Unknown fields
// (and a status field of another wire type, which protobuf keeps as an
// unknown field) are skipped; the last status wins.
func DecodeResponse(b []byte) (Status, error) {
	var st Status
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("HealthCheckResponse: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, fmt.Errorf("HealthCheckResponse: status: %w", protowire.ParseError(n))
			}
			st, b = Status(int32(v)), b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, fmt.Errorf("HealthCheckResponse: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return st, nil
}

// Check asks the server at conn for service's status.
func Check(ctx context.Context, conn rpc.Conn, service string) (Status, error) {
	resp, err := conn.Invoke(ctx, Method, EncodeRequest(service))
	if err != nil {
		return 0, err
	}
	return DecodeResponse(resp)
}

// Probe dials addr in plaintext, checks service and closes: nil when it
// is SERVING. userAgent may be empty.
func Probe(ctx context.Context, addr, service, userAgent string) error {
	opts := rpc.Options{UserAgent: userAgent}
	if d, ok := ctx.Deadline(); ok {
		opts.DialTimeout = time.Until(d)
	}
	conn, err := rpc.Dial("passthrough:///"+addr, opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := Check(ctx, conn, service)
	if err != nil {
		return err
	}
	if st != Serving {
		return &NotServingError{Service: service, Status: st}
	}
	return nil
}

// NotServingError is a health check that answered another status than
// SERVING.
type NotServingError struct {
	Service string
	Status  Status
}

func (e *NotServingError) Error() string {
	return fmt.Sprintf("service %q is %s", e.Service, e.Status)
}

// IsNotServing reports whether err is a NotServingError.
func IsNotServing(err error) bool {
	var ns *NotServingError
	return errors.As(err, &ns)
}
