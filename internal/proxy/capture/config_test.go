package capture

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // error substring; empty: valid
	}{
		{"default", func(*Config) {}, ""},
		{"no owners", func(c *Config) { c.ProxyUIDs, c.ProxyGIDs = nil, nil }, "ProxyUIDs and ProxyGIDs are both empty"},
		{"uid only", func(c *Config) { c.ProxyGIDs = nil }, ""},
		{"outbound port 0", func(c *Config) { c.OutboundPort = 0 }, "OutboundPort: port 0"},
		{"inbound port 0", func(c *Config) { c.InboundPort = 0 }, "InboundPort: port 0"},
		{"same ports", func(c *Config) { c.InboundPort = c.OutboundPort }, "OutboundPort and InboundPort are both 15001"},
		{"all and include inbound", func(c *Config) { c.IncludeInboundPorts = []uint16{80} }, "IncludeInboundPorts [80] given with AllInboundPorts"},
		{"all and include cidrs", func(c *Config) { c.IncludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, "IncludeOutboundCIDRs [10.0.0.0/8] given with AllOutboundCIDRs"},
		{"port 0 in list", func(c *Config) { c.ExcludeOutboundPorts = []uint16{22, 0} }, "ExcludeOutboundPorts: port 0"},
		{"zero prefix", func(c *Config) { c.ExcludeOutboundCIDRs = []netip.Prefix{{}} }, "ExcludeOutboundCIDRs[0]: not a valid CIDR"},
		{"reserved include", func(c *Config) { c.AllInboundPorts, c.IncludeInboundPorts = false, []uint16{80, 15021} }, "IncludeInboundPorts: 15021 is one of the proxy's own ports"},
		{"bad interface", func(c *Config) { c.ExcludeInterfaces = []string{"eth 0"} }, `ExcludeInterfaces: "eth 0" is not an interface name`},
		{"long interface", func(c *Config) { c.ExcludeInterfaces = []string{"abcdefghijklmnop"} }, "is not an interface name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			_, err := Rules(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Rules: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Rules error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-b", "80,abc"}, `--istio-inbound-ports: "abc" is not a port (want 1-65535)`},
		{[]string{"--istio-inbound-ports", "70000"}, `--istio-inbound-ports: "70000" is not a port`},
		{[]string{"-b", "0"}, `"0" is not a port`},
		{[]string{"-b", "-80"}, `"-80" is not a port`},
		{[]string{"-b", "*,80"}, `"*" means every port and cannot be combined`},
		{[]string{"-d", "*"}, `--istio-local-exclude-ports: "*": "*" is not allowed here`},
		{[]string{"-o", "22;33"}, `--istio-local-outbound-ports-exclude: "22;33" is not a port`},
		{[]string{"-q", "x"}, `--istio-outbound-ports: "x" is not a port`},
		{[]string{"-x", "10.0.0.1"}, `--istio-service-exclude-cidr: "10.0.0.1" is not a CIDR (an address needs a prefix length, e.g. /32 or /128)`},
		{[]string{"-x", "10.0.0.0/33"}, `"10.0.0.0/33" is not a CIDR`},
		{[]string{"-x", "*"}, `--istio-service-exclude-cidr: "*": "*" is not allowed here`},
		{[]string{"-i", "10.0.0.0/8,foo"}, `--istio-service-cidr: "foo" is not a CIDR`},
		{[]string{"-i", "*,10.0.0.0/8"}, `"*" means every address`},
		{[]string{"-u", "-1"}, `--proxy-uid: "-1" is not a numeric user or group ID`},
		{[]string{"-g", "istio"}, `--proxy-gid: "istio" is not a numeric user or group ID`},
		{[]string{"-u", "4294967295"}, `"4294967295" is not a numeric`},
		{[]string{"-u", "", "-g", ""}, "ProxyUIDs and ProxyGIDs are both empty"},
		{[]string{"-p", "15006"}, "OutboundPort and InboundPort are both 15006"},
		{[]string{"-p", "0"}, `--envoy-port: "0" is not a port`},
		{[]string{"-z", "http"}, `--inbound-capture-port: "http" is not a port`},
		{[]string{"--inbound-tunnel-port", "65536"}, `--inbound-tunnel-port: "65536" is not a port`},
		{[]string{"-m", "TPROXY"}, `"TPROXY" is not supported (only REDIRECT)`},
		{[]string{"-c", "eth0/1"}, `--exclude-interfaces: "eth0/1" is not an interface name`},
		{[]string{"-b", "15020"}, "15020 is one of the proxy's own ports"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := ParseArgs(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseArgs(%q) error = %v, want it to contain %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseArgsValues(t *testing.T) {
	cfg, opts, err := ParseArgs([]string{
		"--envoy-port", "16001", "-z", "16006", "-u", " 1, 2 ,", "-g", "3", "-b", "9080,9090",
		"-i", "10.1.2.3/8, fd00::1/8", "-x", "10.9.0.0/16", "-o", "22", "-q", "443", "-c", "eth1",
		"--ipv6", "--dry-run", "--cleanup", "--backend", "legacy", "-m", "redirect",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ProxyUIDs: []uint32{1, 2}, ProxyGIDs: []uint32{3},
		OutboundPort: 16001, InboundPort: 16006, InboundTunnelPort: 15008,
		IncludeInboundPorts:  []uint16{9080, 9090},
		IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
		ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		IncludeOutboundPorts: []uint16{443}, ExcludeOutboundPorts: []uint16{22},
		ExcludeInterfaces: []string{"eth1"}, IPv6: true,
	}
	if got, w := fmtConfig(cfg), fmtConfig(want); got != w {
		t.Errorf("config:\n got %s\nwant %s", got, w)
	}
	if opts != (Options{DryRun: true, Cleanup: true, Backend: "legacy"}) {
		t.Errorf("options = %+v", opts)
	}
}

func fmtConfig(c Config) string {
	var b strings.Builder
	for _, s := range []any{c.ProxyUIDs, c.ProxyGIDs, c.OutboundPort, c.InboundPort, c.InboundTunnelPort,
		c.AllInboundPorts, c.IncludeInboundPorts, c.ExcludeInboundPorts, c.AllOutboundCIDRs,
		c.IncludeOutboundCIDRs, c.ExcludeOutboundCIDRs, c.IncludeOutboundPorts, c.ExcludeOutboundPorts,
		c.ExcludeInterfaces, c.IPv6} {
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmtAny(s), "\n", " ")) + "|")
	}
	return b.String()
}

func fmtAny(v any) string { return fmt.Sprint(v) }
