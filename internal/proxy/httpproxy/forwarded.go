package httpproxy

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// internalOnly reports whether name is one of the x-envoy-* request
// headers Envoy removes from every request that is not internal: a client
// may not steer retries, timeouts, tracing or stats through them.
func internalOnly(name string) bool {
	switch name {
	case "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names", "x-envoy-retry-on",
		"x-envoy-retry-grpc-on", "x-envoy-max-retries", "x-envoy-upstream-alt-stat-name",
		"x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms",
		"x-envoy-upstream-rq-timeout-alt-response", "x-envoy-expected-rq-timeout-ms",
		"x-envoy-force-trace", "x-envoy-ip-tags", "x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout":
		return true
	}
	return false
}

// edgeOnly reports whether name is removed as well from requests entering
// at an edge.
func edgeOnly(name string) bool {
	switch name {
	case "x-envoy-decorator-operation", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node":
		return true
	}
	return false
}

// dropEnvoyHeaders removes the internal-only headers, and at an edge the
// edge-only ones, in one pass over h.
func dropEnvoyHeaders(h *headers.List, edge bool) {
	h.DelFunc(func(n string) bool {
		return strings.HasPrefix(n, "x-envoy-") && (internalOnly(n) || edge && edgeOnly(n))
	})
}

const (
	hdrXFF             = "x-forwarded-for"
	hdrXFP             = "x-forwarded-proto"
	hdrInternal        = "x-envoy-internal"
	hdrExternalAddress = "x-envoy-external-address"
)

// mutateForwarded applies Envoy's connection manager rules for
// x-forwarded-for, x-forwarded-proto, x-envoy-internal,
// x-envoy-external-address and the internal-only x-envoy-* headers
// (conn_manager_utility.cc, mutateRequestHeaders):
//
//   - use_remote_address: the trusted client address is the peer of the
//     connection, or with xff_num_trusted_hops N > 0 the Nth address from
//     the right of the incoming x-forwarded-for; the peer is appended to
//     x-forwarded-for (the proxy's own address when the peer is loopback)
//     unless skip_xff_append; x-forwarded-proto is overwritten unless N > 0
//     and the trusted hop set it.
//   - otherwise x-forwarded-for is left alone; the trusted client address
//     is its address N+1 from the right.
//   - A request is internal when x-forwarded-for ends up with one address
//     (none came in, with use_remote_address) and that address is in
//     internal_address_config; Envoy considers no address internal by
//     default. Internal requests get x-envoy-internal: true. Others lose the
//     internal-only headers; at an edge (use_remote_address) also the
//     edge-only ones, x-envoy-external-address is set to the trusted client
//     address and x-request-id is replaced (preserve_external_request_id
//     keeps it).
//
// It reports whether the request is an edge request.
func mutateForwarded(h *headers.List, hcm *xdsparse.HTTPManager, remote string, local net.Addr, scheme string) (edge bool) {
	// Most requests carry no x-envoy-* header, and inside a mesh none
	// has x-forwarded-for: one scan spares the removals and, without
	// use_remote_address, all but x-forwarded-proto (there is no address
	// to trust, so no internal or edge request).
	envoyHeaders, xff, xfp := false, false, false
	for i := range *h {
		switch n := (*h)[i].Name; {
		case n == hdrXFF:
			xff = true
		case n == hdrXFP:
			xfp = true
		case strings.HasPrefix(n, "x-envoy-"):
			envoyHeaders = true
		}
	}
	if !hcm.UseRemoteAddress && !xff && !envoyHeaders {
		if !xfp {
			h.Add(hdrXFP, scheme)
		}
		return false
	}
	if envoyHeaders {
		h.Del(hdrInternal)
	}
	var (
		final  string // the trusted client address
		single bool   // x-forwarded-for ends up with one address
	)
	// The scan's findings stay true below: only x-forwarded-proto's
	// presence changes, where it is set.
	joined := ""
	if xff {
		joined = joinedXFF(*h)
	}
	hops := hcm.XffTrustedHops
	if hcm.UseRemoteAddress {
		single = joined == ""
		if hops > 0 {
			final, _ = lastXFFAddress(joined, hops-1)
		}
		if final == "" {
			final = remote
		}
		if !hcm.SkipXffAppend && remote != "" {
			appendXFF(h, joined, xffEntry(remote, local))
		}
		if hops == 0 || !xfp {
			h.Set(hdrXFP, scheme)
			xfp = true
		}
	} else {
		final, single = lastXFFAddress(joined, hops)
	}
	if !xfp {
		h.Add(hdrXFP, scheme)
	}
	if single && final != "" && hcm.IsInternalAddress(final) {
		h.Set(hdrInternal, "true")
		return false
	}
	edge = hcm.UseRemoteAddress
	if envoyHeaders {
		dropEnvoyHeaders(h, edge)
	}
	if edge && final != "" {
		h.Set(hdrExternalAddress, final)
	}
	return edge
}

// joinedXFF returns x-forwarded-for as one comma-separated list (several
// header fields are one list, RFC 9110 5.3).
func joinedXFF(h headers.List) string {
	if h.Count(hdrXFF) <= 1 {
		return h.Value(hdrXFF)
	}
	var b strings.Builder
	for _, f := range h {
		if f.Name != hdrXFF {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(",")
		}
		b.WriteString(f.Value)
	}
	return b.String()
}

func appendXFF(h *headers.List, xff, addr string) {
	if xff == "" {
		h.Set(hdrXFF, addr)
		return
	}
	h.Set(hdrXFF, xff+","+addr)
}

// xffEntry is what the proxy appends for a peer: its address, or for a
// loopback peer (a process on this machine) the proxy's own address on the
// connection, as Envoy appends its local address.
func xffEntry(remote string, local net.Addr) string {
	ip, err := netip.ParseAddr(remote)
	if err != nil || !ip.IsLoopback() {
		return remote
	}
	if a, ok := local.(*net.TCPAddr); ok && a.IP != nil && !a.IP.IsUnspecified() {
		return a.IP.String()
	}
	return remote
}

// lastXFFAddress returns the address skip entries from the right of an
// x-forwarded-for list, or "" when there are not enough entries or it is
// not an IP address; single reports that the list has exactly that one
// entry (Envoy's getLastAddressFromXFF).
func lastXFFAddress(xff string, skip uint32) (addr string, single bool) {
	if xff == "" {
		return "", false
	}
	s := xff
	for range skip {
		i := strings.LastIndexByte(s, ',')
		if i < 0 {
			return "", false
		}
		s = s[:i]
	}
	i := strings.LastIndexByte(s, ',')
	entry := strings.TrimSpace(s[i+1:])
	ip, err := netip.ParseAddr(entry)
	if err != nil || ip.Zone() != "" {
		return "", false
	}
	return ip.String(), i < 0 && skip == 0
}

// connScheme is "https" for a connection whose TLS the proxy terminated.
func connScheme(nc net.Conn) string {
	if _, ok := nc.(*tls.Conn); ok {
		return "https"
	}
	return "http"
}
