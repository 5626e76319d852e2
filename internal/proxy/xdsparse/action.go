package xdsparse

import (
	"fmt"
	"strings"
)

// convertSubst turns RE2 \1 references into Go's ${1}.
func convertSubst(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteByte('}')
			i++
			continue
		}
		if c == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// parseRetryOn adds retry_on's conditions to r.
func parseRetryOn(r *RetryPolicy, retryOn string) error {
	for _, on := range strings.Split(retryOn, ",") {
		switch strings.TrimSpace(on) {
		case "":
		case "5xx":
			r.On |= Retry5xx
		case "gateway-error":
			r.On |= RetryGatewayError
		case "connect-failure":
			r.On |= RetryConnectFailure
		case "refused-stream":
			r.On |= RetryRefusedStream
		case "reset", "reset-before-request":
			r.On |= RetryReset
		case "retriable-status-codes":
			r.On |= RetryRetriableStatusCodes
		case "retriable-4xx":
			r.On |= RetryRetriable4xx
		case "envoy-ratelimited":
			r.On |= RetryEnvoyRateLimited
		case "cancelled":
			r.On |= RetryGRPCCancelled
		case "deadline-exceeded":
			r.On |= RetryGRPCDeadlineExceeded
		case "internal":
			r.On |= RetryGRPCInternal
		case "resource-exhausted":
			r.On |= RetryGRPCResourceExhausted
		case "unavailable":
			r.On |= RetryGRPCUnavailable
		case "retriable-headers", "http3-post-connect-failure":
			// retriable-headers matches retriable_headers, which the rules refuse;
			// there is no HTTP/3 upstream: both are, as in Envoy, never triggered here.
		default:
			return fmt.Errorf("retry_on %q: unknown condition", on)
		}
	}
	return nil
}

// cookieText reports whether s can stand in a Set-Cookie attribute: no
// separator, control character or non-ASCII byte.
func cookieText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == ';' {
			return false
		}
	}
	return true
}
