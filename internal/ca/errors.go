package ca

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error kinds returned by the CA. Test with errors.Is; the gRPC service maps
// them to status codes once, in grpcStatus.
var (
	// ErrUnauthenticated: the caller proved no identity (missing, malformed,
	// expired or revoked token; no valid client certificate).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the caller proved an identity but asked for another.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrInvalidArgument: the request itself is unacceptable (bad CSR, bad TTL).
	ErrInvalidArgument = errors.New("invalid argument")
)

func refuse(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}

func grpcStatus(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, ErrPermissionDenied):
		code = codes.PermissionDenied
	case errors.Is(err, ErrInvalidArgument):
		code = codes.InvalidArgument
	}
	return status.Error(code, err.Error())
}
