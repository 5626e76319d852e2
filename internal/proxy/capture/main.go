package capture

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Options are the `mast-proxy iptables` switches that are not capture
// configuration.
type Options struct {
	DryRun  bool   // print, do not run
	Cleanup bool   // remove instead of install
	Backend string // "", "legacy" or "nft"
}

// ParseArgs parses the `mast-proxy iptables` command line: istio-iptables'
// flags (short and long names) plus --dry-run, --cleanup and --backend.
// Flags not given keep DefaultConfig's values. Errors name the flag.
func ParseArgs(args []string, stderr io.Writer) (Config, Options, error) {
	fs := flag.NewFlagSet("mast-proxy iptables", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts                                                   Options
		outPort, inPort, tunnelPort, uids, gids, mode          string
		inPorts, inExclude, outCIDRs, outExclude, outPortsExcl string
		outPortsIncl, ifaces                                   string
		ipv6                                                   bool
	)
	str := func(p *string, short, long, def, usage string) {
		if short != "" {
			fs.StringVar(p, short, def, usage+" (same as --"+long+")")
		}
		fs.StringVar(p, long, def, usage)
	}
	str(&outPort, "p", "envoy-port", strconv.Itoa(DefaultOutboundPort), "port that receives redirected outbound TCP")
	str(&inPort, "z", "inbound-capture-port", strconv.Itoa(DefaultInboundPort), "port that receives redirected inbound TCP")
	str(&tunnelPort, "", "inbound-tunnel-port", strconv.Itoa(DefaultInboundTunnelPort), "inbound port never captured (0: none)")
	str(&uids, "u", "proxy-uid", strconv.Itoa(DefaultProxyID), "comma-separated UIDs whose traffic is never captured (the proxy's)")
	str(&gids, "g", "proxy-gid", strconv.Itoa(DefaultProxyID), "comma-separated GIDs whose traffic is never captured (the proxy's)")
	str(&mode, "m", "istio-inbound-interception-mode", "REDIRECT", "inbound interception mode; only REDIRECT is supported")
	str(&inPorts, "b", "istio-inbound-ports", "*", `inbound ports to capture, comma-separated, or "*" for all`)
	str(&inExclude, "d", "istio-local-exclude-ports", "", `inbound ports not to capture with -b "*" (15090,15021,15020,15000 are never captured)`)
	str(&outCIDRs, "i", "istio-service-cidr", "*", `outbound CIDRs to capture, comma-separated, or "*" for all`)
	str(&outExclude, "x", "istio-service-exclude-cidr", "", "outbound CIDRs never to capture")
	str(&outPortsExcl, "o", "istio-local-outbound-ports-exclude", "", "outbound ports never to capture")
	str(&outPortsIncl, "q", "istio-outbound-ports", "", "outbound ports to capture whatever the destination")
	str(&ifaces, "c", "exclude-interfaces", "", "interfaces whose traffic is never captured")
	fs.BoolVar(&ipv6, "ipv6", false, "also install IPv6 rules with ip6tables")
	fs.BoolVar(&opts.DryRun, "n", false, "print the commands instead of running them (same as --dry-run)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "print the commands instead of running them")
	fs.BoolVar(&opts.Cleanup, "cleanup", false, "remove Mast's (ISTIO_*) chains and the jumps to them, then exit")
	fs.StringVar(&opts.Backend, "backend", "", `iptables variant: "legacy", "nft", or empty for the system's iptables`)
	if err := fs.Parse(args); err != nil {
		return Config{}, Options{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := DefaultConfig()
	var err error
	port := func(flag, s string, zeroOK bool) uint16 {
		n, perr := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err == nil && (perr != nil || (n == 0 && !zeroOK)) {
			err = fmt.Errorf("%s: %q is not a port (want 1-65535)", flag, s)
		}
		return uint16(n)
	}
	cfg.OutboundPort = port("--envoy-port", outPort, false)
	cfg.InboundPort = port("--inbound-capture-port", inPort, false)
	cfg.InboundTunnelPort = port("--inbound-tunnel-port", tunnelPort, true)
	if err != nil {
		return Config{}, Options{}, err
	}
	if !strings.EqualFold(mode, "REDIRECT") {
		return Config{}, Options{}, fmt.Errorf("--istio-inbound-interception-mode: %q is not supported (only REDIRECT)", mode)
	}
	steps := []func() error{
		func() (e error) { cfg.ProxyUIDs, e = ParseIDs("--proxy-uid", uids); return },
		func() (e error) { cfg.ProxyGIDs, e = ParseIDs("--proxy-gid", gids); return },
		func() (e error) {
			cfg.AllInboundPorts, cfg.IncludeInboundPorts, e = ParsePorts("--istio-inbound-ports", inPorts, true)
			return
		},
		func() (e error) {
			_, cfg.ExcludeInboundPorts, e = ParsePorts("--istio-local-exclude-ports", inExclude, false)
			return
		},
		func() (e error) {
			cfg.AllOutboundCIDRs, cfg.IncludeOutboundCIDRs, e = ParseCIDRs("--istio-service-cidr", outCIDRs, true)
			return
		},
		func() (e error) {
			_, cfg.ExcludeOutboundCIDRs, e = ParseCIDRs("--istio-service-exclude-cidr", outExclude, false)
			return
		},
		func() (e error) {
			_, cfg.ExcludeOutboundPorts, e = ParsePorts("--istio-local-outbound-ports-exclude", outPortsExcl, false)
			return
		},
		func() (e error) {
			_, cfg.IncludeOutboundPorts, e = ParsePorts("--istio-outbound-ports", outPortsIncl, false)
			return
		},
		func() (e error) { cfg.ExcludeInterfaces, e = ParseInterfaces("--exclude-interfaces", ifaces); return },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return Config{}, Options{}, err
		}
	}
	cfg.IPv6 = ipv6
	if err := cfg.Validate(); err != nil {
		return Config{}, Options{}, err
	}
	return cfg, opts, nil
}

// Main is `mast-proxy iptables ARGS...`: it installs the capture rules in the
// current network namespace (or removes them with --cleanup), or prints what
// it would run with --dry-run. It returns the exit code: 0 on success, 2 for
// bad usage, 1 when iptables fails.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), args, stdout, stderr, Exec)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, exec Runner) int {
	cfg, opts, err := ParseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mast-proxy iptables:", err)
		return 2
	}
	runner, err := WithBackend(exec, opts.Backend)
	if err != nil {
		fmt.Fprintln(stderr, "mast-proxy iptables:", err)
		return 2
	}
	switch {
	case opts.Cleanup && opts.DryRun:
		for _, f := range []Family{IPv4, IPv6} {
			save, err := runner(ctx, nil, f.Command()+"-save")
			if err != nil {
				fmt.Fprintln(stderr, "mast-proxy iptables:", err)
				return 1
			}
			if in := CleanupInput(save); in != nil {
				fmt.Fprintf(stdout, "# %s-restore %s <<EOF\n%sEOF\n", f.Command(), strings.Join(restoreArgs, " "), in)
			}
		}
	case opts.Cleanup:
		err = Uninstall(ctx, runner)
	case opts.DryRun:
		rules, rerr := Rules(cfg)
		if rerr != nil {
			fmt.Fprintln(stderr, "mast-proxy iptables:", rerr)
			return 2
		}
		for _, r := range rules {
			fmt.Fprintln(stdout, r.String())
		}
	default:
		err = Install(ctx, cfg, runner)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mast-proxy iptables:", err)
		return 1
	}
	return 0
}
