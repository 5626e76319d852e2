package rpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Code is a gRPC status code.
type Code uint32

// The gRPC status codes (google.golang.org/grpc/codes; the values are the
// wire's grpc-status numbers).
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{
	OK:                 "OK",
	Canceled:           "Canceled",
	Unknown:            "Unknown",
	InvalidArgument:    "InvalidArgument",
	DeadlineExceeded:   "DeadlineExceeded",
	NotFound:           "NotFound",
	AlreadyExists:      "AlreadyExists",
	PermissionDenied:   "PermissionDenied",
	ResourceExhausted:  "ResourceExhausted",
	FailedPrecondition: "FailedPrecondition",
	Aborted:            "Aborted",
	OutOfRange:         "OutOfRange",
	Unimplemented:      "Unimplemented",
	Internal:           "Internal",
	Unavailable:        "Unavailable",
	DataLoss:           "DataLoss",
	Unauthenticated:    "Unauthenticated",
}

// String is the code's name as grpc-go's codes.Code prints it.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// Status is the outcome of a call that did not end with OK: a code and the
// server's (or the transport's) message.
type Status struct {
	Code    Code
	Message string
}

var _ error = (*Status)(nil)

// Error reads as grpc-go's status errors do.
func (s *Status) Error() string {
	return fmt.Sprintf("rpc error: code = %s desc = %s", s.Code, s.Message)
}

// Errorf returns a *Status with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Status {
	return &Status{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns err's code: OK for nil, the code of a *Status in err's
// chain, Canceled or DeadlineExceeded for the context errors, and Unknown
// for any other error (grpc-go's status.Code; the transport reports
// connection failures as Unavailable *Status itself).
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var s *Status
	if errors.As(err, &s) {
		return s.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	}
	return Unknown
}

// MessageOf returns the message of a *Status in err's chain, or err's
// text ("" for nil).
func MessageOf(err error) string {
	if err == nil {
		return ""
	}
	var s *Status
	if errors.As(err, &s) {
		return s.Message
	}
	return err.Error()
}
