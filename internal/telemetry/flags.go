// Package telemetry holds what mast-proxy's metrics, access logs and traces
// share: Envoy's response flags and the record of one finished request or
// TCP connection. The subpackages consume a Record: metrics (Istio's
// standard metrics), accesslog (Envoy's command operators, Istio's default
// format), peer (Istio's metadata exchange) and tracing.
package telemetry

import "strings"

// Flags is a set of Envoy response flags.
type Flags uint32

// Envoy's response flags, in the order Envoy prints them.
const (
	FailedLocalHealthCheck           Flags = 1 << iota // LH
	NoHealthyUpstream                                  // UH
	UpstreamRequestTimeout                             // UT
	LocalReset                                         // LR
	UpstreamRemoteReset                                // UR
	UpstreamConnectionFailure                          // UF
	UpstreamConnectionTermination                      // UC
	UpstreamOverflow                                   // UO
	NoRouteFound                                       // NR
	DelayInjected                                      // DI
	FaultInjected                                      // FI
	RateLimited                                        // RL
	UnauthorizedExternalService                        // UAEX
	RateLimitServiceError                              // RLSE
	DownstreamConnectionTermination                    // DC
	UpstreamRetryLimitExceeded                         // URX
	StreamIdleTimeout                                  // SI
	InvalidEnvoyRequestHeaders                         // IH
	DownstreamProtocolError                            // DPE
	UpstreamMaxStreamDurationReached                   // UMSDR
	ResponseFromCacheFilter                            // RFCF
	NoFilterConfigFound                                // NFCF
	DurationTimeout                                    // DT
	UpstreamProtocolError                              // UPE
	NoClusterFound                                     // NC
	OverloadManager                                    // OM
	DNSResolutionFailed                                // DF
	DropOverload                                       // DO
	DownstreamRemoteReset                              // DR
	numFlags                         = iota
)

var flagCodes = [numFlags]string{"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR"}

// String renders the flags as Envoy's %RESPONSE_FLAGS% does: short codes
// joined by commas, "-" for none. Single flags do not allocate.
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	if f&(f-1) == 0 {
		for i := range numFlags {
			if f == 1<<i {
				return flagCodes[i]
			}
		}
	}
	var b strings.Builder
	for i := range numFlags {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(flagCodes[i])
		}
	}
	return b.String()
}

// ParseFlag returns the flag for one of Envoy's short codes.
func ParseFlag(code string) (Flags, bool) {
	for i, c := range flagCodes {
		if c == code {
			return 1 << i, true
		}
	}
	return 0, false
}
