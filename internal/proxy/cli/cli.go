// Package cli is mast-proxy's command line, shared by the mast-proxy binary
// and `mast up`, which runs proxies as children of the mast binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/buildinfo"
	"github.com/mast-mesh/mast/internal/proxy/capture"
	"github.com/mast-mesh/mast/internal/proxy/dataplane"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
)

// xdsTarget decides where and how the proxy fetches its configuration.
// With the agent, xDS goes over mTLS (the workload certificate, which mastd
// binds to the node's namespace and service account) to --ca-addr unless
// --xds-addr says otherwise; plaintext then needs an explicit
// --xds-tls=false. Plaintext xDS is unauthenticated, so it is accepted only
// to a loopback address unless asked for explicitly.
func xdsTarget(fs *flag.FlagSet, addr string, tlsOn bool, af agentFlags) (string, bool, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["xds-tls"] {
		tlsOn = af.enabled()
	}
	if tlsOn && !af.enabled() {
		return "", false, errors.New("--xds-tls needs the agent (--ca-addr) for a client certificate")
	}
	if addr == "" {
		if tlsOn {
			return af.caAddr, true, nil
		}
		return "127.0.0.1:15010", false, nil
	}
	if !tlsOn && !set["xds-tls"] {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return "", false, fmt.Errorf("--xds-addr %q: %w", addr, err)
		}
		if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
			return "", false, fmt.Errorf("--xds-addr %q: plaintext xDS to a non-loopback address is unauthenticated; use the agent (--ca-addr) for mTLS, or ask for plaintext with --xds-tls=false", addr)
		}
	}
	return addr, tlsOn, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Main runs mast-proxy's command line with args (without the program name)
// and returns the exit code: the proxy itself, or `mast-proxy iptables ...`
// to install or remove traffic capture, or `mast-proxy wait` until the
// proxy is ready. The mast-proxy binary and `mast up`
// both call it.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "iptables" {
		return capture.Main(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "wait" {
		return wait(args[1:], stdout, stderr)
	}
	if err := run(args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "mast-proxy:", err)
		return 1
	}
	return 0
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mast-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		xds       = fs.String("xds-addr", "", "control plane ADS address (host:port); default: --ca-addr over mTLS when the agent runs, else 127.0.0.1:15010 in plaintext")
		xdsTLS    = fs.Bool("xds-tls", false, "xDS over mTLS with the agent's certificate (default: on when --ca-addr is set); --xds-tls=false asks for plaintext")
		xdsMaxRcv = fs.Int("xds-max-recv-size", xdsclient.DefaultMaxRecvMsgSize, "largest xDS response accepted, in bytes (mastd's --xds-max-send-size must not exceed it)")
		nodeID    = fs.String("node-id", "", "xDS node id TYPE~IP~NAME.NAMESPACE~DOMAIN (else built from --type/--ip/--name/--namespace)")
		typ       = fs.String("type", "sidecar", "proxy type: sidecar or router")
		ip        = fs.String("ip", "", "proxy IP (first INSTANCE_IPS)")
		name      = fs.String("name", "", "workload (pod) name")
		namespace = fs.String("namespace", "", "namespace")
		domain    = fs.String("dns-domain", "", "DNS domain (default NAMESPACE.svc.cluster.local)")
		labels    = fs.String("labels", "", "workload labels k=v,k2=v2")
		adminAddr = fs.String("admin-addr", "127.0.0.1:15000", "admin listener address (loopback)")
		drain     = fs.Duration("drain-period", 5*time.Second, "how long to let connections finish on shutdown")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		logJSON   = fs.Bool("log-json", false, "log JSON lines")
		delta     = fs.Bool("xds-delta", false, "use incremental (Delta) xDS instead of state of the world")
		legacyH2  = fs.Bool("legacy-http2-server", false, "serve downstream HTTP/2 with x/net's net/http-shaped server instead of the proxy's own (h2server); a fallback for one release")
		legacyH2c = fs.Bool("legacy-http2-client", false, "send upstream HTTP/2 through x/net's http2.Transport instead of the proxy's own client (h2client); a fallback for one release, which honours neither max_concurrent_streams nor connection_keepalive")
		onDemand  = fs.Bool("on-demand-routes", false, "take sidecar route configurations' virtual hosts on demand (VHDS, needs --xds-delta): a request to a host the proxy has no virtual host for waits for mastd's answer")
		credDir   = fs.String("credentials-dir", "", "directory of credentials for credentialName: DIR/NAME/{tls.crt,tls.key,ca.crt,ca.crl} "+
			"(a Kubernetes Secret's keys as files); default: none, servers naming a credential refuse handshakes")
	)
	var meta multiFlag
	fs.Var(&meta, "meta", "node metadata KEY=VALUE (repeatable), e.g. INTERCEPTION_MODE=NONE")
	var af agentFlags
	af.register(fs)
	var mf memoryFlags
	mf.register(fs)
	var of overloadFlags
	of.register(fs, &mf)
	var tf telemetryFlags
	tf.register(fs)
	var pf probeFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := mf.apply(); err != nil {
		return err
	}
	ocfg, err := of.config()
	if err != nil {
		return err
	}
	xdsAddr, useTLS, err := xdsTarget(fs, *xds, *xdsTLS, af)
	if err != nil {
		return err
	}
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if *logJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	lbl, err := xdsclient.ParseKV(*labels)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	md := metaFromEnv(os.Environ())
	for _, kv := range meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--meta %q: want KEY=VALUE", kv)
		}
		md[k] = v
	}
	if md["ISTIO_VERSION"] == "" {
		md["ISTIO_VERSION"] = buildinfo.Version() // what istioctl's proxy-status and version show
	}
	if af.enabled() {
		md[WorkloadCertMeta] = "true" // the control plane may then give this proxy mTLS
	}
	probeHost := *ip
	if parts := strings.Split(*nodeID, "~"); probeHost == "" && len(parts) == 4 {
		probeHost = parts[1]
	}
	checker, err := pf.checker(probeHost, log.With("component", "probe"))
	if err != nil {
		return err
	}
	if checker != nil {
		md[ReadinessProbeMeta] = "true"
	}
	if *onDemand {
		if !*delta {
			return fmt.Errorf("--on-demand-routes: needs --xds-delta (VHDS is carried by the incremental protocol only)")
		}
		md[xdsclient.OnDemandRoutesMeta] = "true"
	}
	node, err := xdsclient.BuildNode(xdsclient.NodeConfig{ID: *nodeID, Type: *typ, IP: *ip, Name: *name, Namespace: *namespace,
		DNSDomain: *domain, Labels: lbl, Meta: md})
	if err != nil {
		return err
	}
	tf.announce(node)
	log.Info("starting", "node", node.ID, "xds", xdsAddr, "xds_mtls", useTLS, "interception", node.MetaString("INTERCEPTION_MODE"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	secrets, stopAgent, err := af.start(ctx, node, log.With("component", "agent"))
	if err != nil {
		return err
	}
	defer stopAgent()
	if ctx.Err() != nil {
		return nil
	}
	dcfg := dataplane.Config{XDSAddress: xdsAddr, Node: node, AdminAddr: *adminAddr, DrainPeriod: *drain, Logger: log, LogLevel: lv,
		XDSDelta: *delta, XDSMaxRecvMsgSize: *xdsMaxRcv, Overload: ocfg, PageOutExecutable: mf.pageOut,
		LegacyHTTP2Server: *legacyH2, LegacyHTTP2Client: *legacyH2c, ReadinessProbe: checker}
	if *credDir != "" {
		dcfg.Credentials = &tlsconfig.DirCredentials{Dir: *credDir}
	}
	if secrets != nil {
		dcfg.Secrets = secrets
		if useTLS {
			dcfg.XDSTLS = secrets.TLSConfig()
		}
	}
	if err := tf.apply(node, af.trustDomain, &dcfg, stdout, log); err != nil {
		return err
	}
	p := dataplane.New(dcfg)
	return p.Run(ctx)
}

// metaFromEnv is node metadata from ISTIO_META_KEY=VALUE environment
// variables, as Istio's pilot-agent reads them (so that ProxyConfig
// environmentVariables reach the node); --meta flags override them.
func metaFromEnv(environ []string) map[string]string {
	md := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if m, ok := strings.CutPrefix(k, "ISTIO_META_"); ok && m != "" && v != "" {
			md[m] = v
		}
	}
	return md
}
