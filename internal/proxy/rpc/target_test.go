package rpc_test

import (
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ target, network, addr, ns string }{
		{"mastd.istio-system.svc:15012", "tcp", "mastd.istio-system.svc:15012", ""},
		{"dns:///mastd:15010", "tcp", "mastd:15010", ""},
		{"dns://10.0.0.10/mastd:15010", "tcp", "mastd:15010", "10.0.0.10:53"},
		{"dns://127.0.0.1:5353/mastd:15010", "tcp", "mastd:15010", "127.0.0.1:5353"},
		{"passthrough:///127.0.0.1:9000", "tcp", "127.0.0.1:9000", ""},
		{"example.com", "tcp", "example.com:443", ""},
		{"[::1]:80", "tcp", "[::1]:80", ""},
		{"unix:///var/run/sds.sock", "unix", "/var/run/sds.sock", ""},
		{"unix:rel/sds.sock", "unix", "rel/sds.sock", ""},
	} {
		network, addr, ns, err := rpc.ParseTarget(tc.target)
		if err != nil || network != tc.network || addr != tc.addr || ns != tc.ns {
			t.Errorf("parseTarget(%q) = %q %q %q %v, want %q %q %q", tc.target, network, addr, ns, err, tc.network, tc.addr, tc.ns)
		}
	}
	for _, bad := range []string{"xds:///svc", "unix://rel", "dns:///", ""} {
		if _, _, _, err := rpc.ParseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q): no error", bad)
		}
	}
}
