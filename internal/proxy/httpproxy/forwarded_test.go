package httpproxy

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

func TestMutateForwarded(t *testing.T) {
	gatewayAddr := &net.TCPAddr{IP: net.ParseIP("10.0.0.9"), Port: 8080}
	tests := []struct {
		name   string
		hcm    xdsparse.HTTPManager
		remote string
		local  net.Addr
		scheme string
		in     headers.List
		want   map[string]string // "" means absent
		edge   bool
	}{
		{
			name:   "edge: peer appended, client address is the peer, spoofed headers replaced",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true},
			remote: "203.0.113.7", local: gatewayAddr, scheme: "http",
			in: headers.List{{Name: "x-forwarded-for", Value: "198.51.100.1"}, {Name: "x-forwarded-proto", Value: "https"},
				{Name: "x-envoy-external-address", Value: "6.6.6.6"}, {Name: "x-envoy-internal", Value: "true"},
				{Name: "x-envoy-retry-on", Value: "5xx"}, {Name: "x-envoy-downstream-service-node", Value: "n"}, {Name: "x-envoy-peer-metadata-id", Value: "keep"}},
			want: map[string]string{"x-forwarded-for": "198.51.100.1,203.0.113.7", "x-forwarded-proto": "http",
				"x-envoy-external-address": "203.0.113.7", "x-envoy-internal": "", "x-envoy-retry-on": "",
				"x-envoy-downstream-service-node": "", "x-envoy-peer-metadata-id": "keep"},
			edge: true,
		},
		{
			name:   "edge: a loopback peer appends the proxy's own address",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true},
			remote: "127.0.0.1", local: gatewayAddr, scheme: "https",
			want: map[string]string{"x-forwarded-for": "10.0.0.9", "x-forwarded-proto": "https", "x-envoy-external-address": "127.0.0.1"},
			edge: true,
		},
		{
			name:   "edge with one trusted hop: the client is the last XFF entry, proto kept",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true, XffTrustedHops: 1},
			remote: "203.0.113.7", local: gatewayAddr, scheme: "http",
			in:   headers.List{{Name: "x-forwarded-for", Value: "1.1.1.1, 192.0.2.4"}, {Name: "x-forwarded-proto", Value: "https"}},
			want: map[string]string{"x-forwarded-for": "1.1.1.1, 192.0.2.4,203.0.113.7", "x-forwarded-proto": "https", "x-envoy-external-address": "192.0.2.4"},
			edge: true,
		},
		{
			name:   "edge with trusted hops but a bad XFF: the peer",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true, XffTrustedHops: 1},
			remote: "203.0.113.7", local: gatewayAddr, scheme: "http",
			in:   headers.List{{Name: "x-forwarded-for", Value: "not-an-ip"}},
			want: map[string]string{"x-forwarded-for": "not-an-ip,203.0.113.7", "x-envoy-external-address": "203.0.113.7"},
			edge: true,
		},
		{
			name:   "skip_xff_append",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true, SkipXffAppend: true},
			remote: "203.0.113.7", local: gatewayAddr, scheme: "http",
			want: map[string]string{"x-forwarded-for": "", "x-envoy-external-address": "203.0.113.7"},
			edge: true,
		},
		{
			name:   "several XFF fields are one list",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true},
			remote: "203.0.113.7", local: gatewayAddr, scheme: "http",
			in:   headers.List{{Name: "x-forwarded-for", Value: "1.1.1.1"}, {Name: "x-forwarded-for", Value: "2.2.2.2"}},
			want: map[string]string{"x-forwarded-for": "1.1.1.1,2.2.2.2,203.0.113.7"},
			edge: true,
		},
		{
			name:   "inside (sidecar inbound): XFF and external address pass, proto kept, internal-only headers go",
			hcm:    xdsparse.HTTPManager{},
			remote: "10.1.0.1", local: gatewayAddr, scheme: "http",
			in: headers.List{{Name: "x-forwarded-for", Value: "198.51.100.1,10.0.0.9"}, {Name: "x-forwarded-proto", Value: "https"},
				{Name: "x-envoy-external-address", Value: "198.51.100.1"}, {Name: "x-envoy-max-retries", Value: "9"}, {Name: "x-envoy-decorator-operation", Value: "op"}},
			want: map[string]string{"x-forwarded-for": "198.51.100.1,10.0.0.9", "x-forwarded-proto": "https",
				"x-envoy-external-address": "198.51.100.1", "x-envoy-max-retries": "", "x-envoy-decorator-operation": "op"},
		},
		{
			name:   "inside without XFF: none added, proto set",
			hcm:    xdsparse.HTTPManager{},
			remote: "10.1.0.1", local: gatewayAddr, scheme: "http",
			want: map[string]string{"x-forwarded-for": "", "x-forwarded-proto": "http", "x-envoy-external-address": ""},
		},
		{
			name:   "internal peer by internal_address_config: marked internal, nothing stripped",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true, InternalCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			remote: "10.1.0.1", local: gatewayAddr, scheme: "http",
			in:   headers.List{{Name: "x-envoy-retry-on", Value: "5xx"}},
			want: map[string]string{"x-forwarded-for": "10.1.0.1", "x-envoy-internal": "true", "x-envoy-retry-on": "5xx", "x-envoy-external-address": ""},
		},
		{
			name:   "internal range but XFF had an entry already: external",
			hcm:    xdsparse.HTTPManager{UseRemoteAddress: true, InternalCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			remote: "10.1.0.1", local: gatewayAddr, scheme: "http",
			in:   headers.List{{Name: "x-forwarded-for", Value: "10.2.2.2"}},
			want: map[string]string{"x-forwarded-for": "10.2.2.2,10.1.0.1", "x-envoy-internal": "", "x-envoy-external-address": "10.1.0.1"},
			edge: true,
		},
		{
			name:   "not using the remote address: internal by the single XFF entry",
			hcm:    xdsparse.HTTPManager{InternalCIDRs: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}},
			remote: "10.1.0.1", local: gatewayAddr, scheme: "http",
			in:   headers.List{{Name: "x-forwarded-for", Value: "192.168.3.3"}},
			want: map[string]string{"x-envoy-internal": "true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone(0)
			hcm := tt.hcm
			if edge := mutateForwarded(&h, &hcm, tt.remote, tt.local, tt.scheme); edge != tt.edge {
				t.Errorf("edge = %v, want %v", edge, tt.edge)
			}
			for name, want := range tt.want {
				got, ok := h.Get(name)
				if want == "" && ok {
					t.Errorf("%s = %q, want absent", name, got)
				}
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
				if n := h.Count(name); n > 1 {
					t.Errorf("%s appears %d times", name, n)
				}
			}
		})
	}
}

func TestLastXFFAddress(t *testing.T) {
	tests := []struct {
		xff    string
		skip   uint32
		want   string
		single bool
	}{
		{"", 0, "", false},
		{"1.2.3.4", 0, "1.2.3.4", true},
		{" 1.2.3.4 ", 0, "1.2.3.4", true},
		{"1.2.3.4,5.6.7.8", 0, "5.6.7.8", false},
		{"1.2.3.4, 5.6.7.8", 1, "1.2.3.4", false},
		{"1.2.3.4", 1, "", false},
		{"1.2.3.4,", 0, "", false},
		{"2001:db8::1", 0, "2001:db8::1", true},
		{"fe80::1%eth0", 0, "", false},
		{"unknown, 1.2.3.4", 1, "", false},
		{"1.2.3.4:80", 0, "", false},
	}
	for _, tt := range tests {
		got, single := lastXFFAddress(tt.xff, tt.skip)
		if got != tt.want || single != tt.single {
			t.Errorf("lastXFFAddress(%q, %d) = %q, %v; want %q, %v", tt.xff, tt.skip, got, single, tt.want, tt.single)
		}
	}
}

// FuzzLastXFFAddress: any x-forwarded-for a client sends parses without
// panicking, and what comes out is an IP address from the list.
func FuzzLastXFFAddress(f *testing.F) {
	for _, s := range []string{"", "1.2.3.4", "1.2.3.4, 5.6.7.8", ",,,", "::1", " 2001:db8::1 ,10.0.0.1", "a,b,c", "1.2.3.4%x"} {
		f.Add(s, uint32(0))
		f.Add(s, uint32(1))
	}
	f.Fuzz(func(t *testing.T, xff string, skip uint32) {
		skip %= 8
		got, single := lastXFFAddress(xff, skip)
		if got == "" {
			if single {
				t.Fatalf("single without an address for %q", xff)
			}
			return
		}
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("%q: returned %q, not an address", xff, got)
		}
		if single && strings.Contains(xff, ",") {
			t.Fatalf("%q: single with a comma", xff)
		}
	})
}

// mutateForwardedScan is mutateForwarded as it was before its one-scan
// shortcut for requests without x-forwarded-for or x-envoy-* fields.
func mutateForwardedScan(h *headers.List, hcm *xdsparse.HTTPManager, remote string, local net.Addr, scheme string) (edge bool) {
	envoyHeaders := false
	for i := range *h {
		if strings.HasPrefix((*h)[i].Name, "x-envoy-") {
			envoyHeaders = true
			break
		}
	}
	if envoyHeaders {
		h.Del(hdrInternal)
	}
	var final string
	var single bool
	hops := hcm.XffTrustedHops
	if hcm.UseRemoteAddress {
		xff := joinedXFF(*h)
		single = xff == ""
		if hops > 0 {
			final, _ = lastXFFAddress(xff, hops-1)
		}
		if final == "" {
			final = remote
		}
		if !hcm.SkipXffAppend && remote != "" {
			appendXFF(h, xff, xffEntry(remote, local))
		}
		if hops == 0 || !h.Has(hdrXFP) {
			h.Set(hdrXFP, scheme)
		}
	} else {
		final, single = lastXFFAddress(joinedXFF(*h), hops)
	}
	if !h.Has(hdrXFP) {
		h.Set(hdrXFP, scheme)
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

// TestMutateForwardedShortcut: mutateForwarded leaves every combination of
// connection manager settings and forwarding fields as the full rules do.
func TestMutateForwardedShortcut(t *testing.T) {
	internal := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}
	hcms := []xdsparse.HTTPManager{{}, {XffTrustedHops: 1}, {InternalCIDRs: internal}, {InternalCIDRs: internal, XffTrustedHops: 1},
		{UseRemoteAddress: true}, {UseRemoteAddress: true, InternalCIDRs: internal}, {UseRemoteAddress: true, XffTrustedHops: 1},
		{UseRemoteAddress: true, SkipXffAppend: true}}
	fields := []headers.Field{{Name: "x-forwarded-for", Value: "10.1.2.3"}, {Name: "x-forwarded-for", Value: "198.51.100.1, 10.0.0.5"},
		{Name: "x-forwarded-proto", Value: "https"}, {Name: "x-envoy-internal", Value: "true"}, {Name: "x-envoy-retry-on", Value: "5xx"},
		{Name: "x-envoy-decorator-operation", Value: "op"}, {Name: "x-envoy-external-address", Value: "6.6.6.6"}}
	local := &net.TCPAddr{IP: net.ParseIP("10.0.0.9"), Port: 15001}
	n := 0
	for _, hcm := range hcms {
		for mask := range 1 << len(fields) {
			for _, remote := range []string{"10.0.0.7", "203.0.113.7", "127.0.0.1", ""} {
				in := headers.List{{Name: "host", Value: "a"}, {Name: "x-request-id", Value: "r"}}
				for i, f := range fields {
					if mask&(1<<i) != 0 {
						in = append(in, f)
					}
				}
				got, want := append(headers.List(nil), in...), append(headers.List(nil), in...)
				ge := mutateForwarded(&got, &hcm, remote, local, "http")
				we := mutateForwardedScan(&want, &hcm, remote, local, "http")
				if ge != we || !slices.Equal(got, want) {
					t.Fatalf("hcm %+v remote %q in %v: got %v edge %v, want %v edge %v", hcm, remote, in, got, ge, want, we)
				}
				n++
			}
		}
	}
	t.Logf("%d cases", n)
}
