package controlplane

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"os"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/pilot/ads"
	"github.com/mast-mesh/mast/internal/pilot/jwks"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Main is mastd's command line: it parses args into a Config and runs until
// SIGINT or SIGTERM. It returns the process exit code. `mast up` runs the
// same function in a child process, so the flags are one contract.
func Main(args []string, stderr io.Writer) int {
	mesh := model.DefaultMeshConfig()
	cfg := Config{Mesh: mesh}
	var logLevel, components string
	fs := flag.NewFlagSet("mastd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.ConfigDir, "config", "", "directory tree of Istio configuration (YAML/JSON), watched for changes (required)")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:15010", "address of the plaintext xDS (ADS) gRPC server")
	fs.StringVar(&cfg.MonitoringAddr, "monitoring-addr", "127.0.0.1:15014", "address of the metrics and /debug server")
	fs.StringVar(&cfg.Mesh.TrustDomain, "trust-domain", mesh.TrustDomain, "SPIFFE trust domain of the mesh")
	fs.StringVar(&cfg.Mesh.RootNamespace, "root-namespace", mesh.RootNamespace, "namespace whose policies apply mesh-wide")
	fs.StringVar(&cfg.Mesh.DomainSuffix, "domain-suffix", mesh.DomainSuffix, "DNS suffix of service hostnames")
	fs.DurationVar(&cfg.DebounceQuiet, "debounce-after", DefaultDebounceQuiet, "quiet period before a push (Istio's PILOT_DEBOUNCE_AFTER)")
	fs.DurationVar(&cfg.DebounceMax, "debounce-max", 10*time.Second, "longest delay of a push under constant change (PILOT_DEBOUNCE_MAX)")
	fs.StringVar(&cfg.CADir, "ca-dir", "", "run the CA with its root and token key kept in this directory, serving xDS and certificates over TLS on --secure-xds-addr")
	fs.StringVar(&cfg.PluginCADir, "plugin-ca-dir", "", "Istio's cacerts directory (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem): when it holds them, that CA signs")
	fs.StringVar(&cfg.Webhook.Addr, "webhook-addr", "", "serve the validation and sidecar-injection admission webhooks over TLS here (Istio's :15017; needs --ca-dir)")
	fs.Func("webhook-validating-configs", "ValidatingWebhookConfigurations (comma-separated) whose caBundle mastd keeps patched on Kubernetes (default mast-validator-NAMESPACE)", func(v string) error {
		cfg.Webhook.ValidatingConfigs = splitNames(v)
		return nil
	})
	fs.Func("webhook-injector-configs", "MutatingWebhookConfigurations (comma-separated) whose caBundle mastd keeps patched on Kubernetes (default mast-sidecar-injector-NAMESPACE)", func(v string) error {
		cfg.Webhook.InjectorConfigs = splitNames(v)
		return nil
	})
	fs.StringVar(&cfg.Webhook.InjectValues, "inject-values", "", "sidecar injection values (YAML, the istio-sidecar-injector ConfigMap's values.yaml)")
	fs.StringVar(&cfg.SecureXDSAddr, "secure-xds-addr", "127.0.0.1:15012", "address of xDS and the certificate service over TLS (with --ca-dir)")
	fs.DurationVar(&cfg.MaxCertTTL, "max-cert-ttl", 24*time.Hour, "longest workload certificate lifetime the CA issues (Istio's 24h default)")
	fs.IntVar(&cfg.PushThrottle, "push-throttle", 100, "proxies generated and sent to at once during a push (Istio's PILOT_PUSH_THROTTLE)")
	fs.BoolVar(&cfg.DisableXDSCache, "disable-xds-cache", false, "generate every resource for every proxy on every push (Istio's PILOT_ENABLE_XDS_CACHE=false)")
	fs.IntVar(&cfg.XDSCacheSelfCheck, "xds-cache-self-check", 0, "debug: regenerate one in N xDS cache hits without the cache and log an ERROR when they differ (0: off)")
	var maxStreams uint
	fs.UintVar(&maxStreams, "max-streams-per-conn", 100, "concurrent gRPC streams allowed on one xDS connection")
	fs.DurationVar(&cfg.XDSSendTimeout, "xds-send-timeout", 30*time.Second, "close an xDS stream whose proxy takes longer than this to take one response (Istio's PILOT_XDS_SEND_TIMEOUT; 0: never)")
	fs.IntVar(&cfg.MaxConnsPerNode, "max-conns-per-node", 8, "ADS streams open at once for one node ID")
	gcPercent := fs.Int("gc-percent", DefaultGCPercent, "Go GC target percentage, as GOGC: the heap may grow this much beyond the live heap before a collection (default: GOGC when set, else this)")
	fs.IntVar(&cfg.XDSMaxSendSize, "xds-max-send-size", 64<<20, "largest xDS response sent, in bytes (proxies' --xds-max-recv-size must be at least this)")
	fs.IntVar(&cfg.XDSWriteBuffer, "xds-write-buffer", ads.DefaultWriteBuffer, "bytes of an xDS connection's responses gathered per write system call (a buffer from a pool shared by the connections, held while one writes)")
	fs.StringVar(&cfg.DebugTokenFile, "debug-token-file", "", "bearer token required by /debug endpoints that change state (default: CA directory's debug-token, created mode 0600)")
	fs.Func("debug-admin-identities", "comma-separated SPIFFE IDs whose client certificate, presented over TLS on --monitoring-addr, authenticates the state-changing /debug endpoints instead of the token (repeatable; needs --ca-dir)", func(v string) error {
		for _, id := range strings.Split(v, ",") {
			id = strings.TrimSpace(id)
			if _, err := spiffeid.FromString(id); err != nil {
				return fmt.Errorf("%q is not a SPIFFE ID (spiffe://TRUST-DOMAIN/ns/NS/sa/SA): %w", id, err)
			}
			cfg.DebugAdminIdentities = append(cfg.DebugAdminIdentities, id)
		}
		return nil
	})
	fs.Func("debug-host", "a name accepted in the Host header of /debug/* besides IP addresses and localhost (repeatable)", func(v string) error {
		cfg.DebugHosts = append(cfg.DebugHosts, v)
		return nil
	})
	var meshFile string
	fs.StringVar(&meshFile, "mesh-config", "", "Istio MeshConfig file (YAML; the istio ConfigMap's mesh key): rootNamespace, trustDomain, pathNormalization, extensionProviders, accessLogFile, accessLogEncoding, accessLogFormat; and meshNetworks (the ConfigMap's meshNetworks key: networks with gateways and fromCidr endpoints)")
	fs.DurationVar(&cfg.JWKS.Refresh, "jwks-refresh", jwks.DefaultRefresh, "period between fetches of each RequestAuthentication jwksUri (Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&components, "components", "pilot,galley,ratelimit", "components to run: pilot, galley, ratelimit (the rate-limit service of RateLimit resources) and broker (the Open Service Broker); the CA runs when --ca-dir is given")
	fs.StringVar(&cfg.Mixer.Addr, "mixer-addr", "127.0.0.1:9091", "address of the Mixer's gRPC server (istio.mixer.v1.Mixer over mTLS; with --components mixer)")
	fs.BoolVar(&cfg.Mixer.QuotaPrefetch, "mixer-quota-prefetch", false, "let the proxies' Mixer filters prefetch quota as Istio 1.4's did (fewer Checks; a quota is then no longer exact across proxies)")
	cfg.Broker.flags(fs)
	var regs registryFlags
	regs.flags(fs)
	cfg.Dashboard.flags(fs)
	cfg.RateLimit.flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.MaxStreamsPerConn = uint32(min(maxStreams, 1<<31))
	if err := applyGCPercent(fs, *gcPercent); err != nil {
		fmt.Fprintf(stderr, "mastd: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "mastd: --log-level %q: %v\n", logLevel, err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if meshFile != "" {
		m, warnings, err := model.LoadMeshConfigFile(meshFile, cfg.Mesh)
		if err != nil {
			fmt.Fprintf(stderr, "mastd: --mesh-config: %v\n", err)
			return 2
		}
		cfg.Mesh = m
		for _, w := range warnings {
			cfg.Logger.Warn(w)
		}
	}
	for _, c := range strings.Split(components, ",") {
		switch c {
		case "pilot", "galley":
		case "broker":
			cfg.Broker.Enabled = true
		case "ratelimit":
			cfg.RateLimit.Enabled = true
		case "mixer":
			cfg.Mixer.Enabled = true
		default:
			fmt.Fprintf(stderr, "mastd: --components: %q is not available yet (pilot, galley, ratelimit, mixer, broker)\n", c)
			return 2
		}
	}
	var err error
	if cfg.Registries, err = regs.build(cfg.Mesh.TrustDomain, cfg.Mesh.DomainSuffix, cfg.Logger); err != nil {
		fmt.Fprintf(stderr, "mastd: %v\n", err)
		return 2
	}
	cfg.Kube = regs.kubeConfig
	if cfg.ConfigDir == "" && cfg.Kube == nil {
		fmt.Fprintln(stderr, "mastd: --config DIR is required (optional with --registry kubernetes, whose custom resources are configuration)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg); err != nil {
		cfg.Logger.Error("mastd stopped", "err", err)
		return 1
	}
	return 0
}

// splitNames splits a comma-separated list of object names; "" is an empty,
// non-nil list (patch nothing).
func splitNames(v string) []string {
	names := []string{}
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// DefaultGCPercent is mastd's GC target percentage (--gc-percent) unless
// GOGC is set. See docs in applyGCPercent.
const DefaultGCPercent = 100

// applyGCPercent sets the runtime's GC percentage from --gc-percent: the
// flag when given, else GOGC when set (the runtime read it), else
// DefaultGCPercent.
func applyGCPercent(fs *flag.FlagSet, percent int) error {
	if percent <= 0 {
		return fmt.Errorf("--gc-percent %d: must be positive (GOGC=off is not a policy for a server)", percent)
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "gc-percent" })
	if _, env := os.LookupEnv("GOGC"); env && !given {
		return nil
	}
	debug.SetGCPercent(percent)
	return nil
}
