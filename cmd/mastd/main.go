// Command mastd is Mast's control plane: Pilot and Galley today; the CA,
// Mixer and the service broker join it as they land (see --components).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/controlplane"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

func main() {
	mesh := model.DefaultMeshConfig()
	cfg := controlplane.Config{Mesh: mesh}
	var logLevel string
	fs := flag.NewFlagSet("mastd", flag.ExitOnError)
	fs.StringVar(&cfg.ConfigDir, "config", "", "directory tree of Istio configuration (YAML/JSON), watched for changes (required)")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:15010", "address of the plaintext xDS (ADS) gRPC server")
	fs.StringVar(&cfg.MonitoringAddr, "monitoring-addr", "127.0.0.1:15014", "address of the metrics and /debug server")
	fs.StringVar(&cfg.Mesh.TrustDomain, "trust-domain", mesh.TrustDomain, "SPIFFE trust domain of the mesh")
	fs.StringVar(&cfg.Mesh.RootNamespace, "root-namespace", mesh.RootNamespace, "namespace whose policies apply mesh-wide")
	fs.StringVar(&cfg.Mesh.DomainSuffix, "domain-suffix", mesh.DomainSuffix, "DNS suffix of service hostnames")
	fs.DurationVar(&cfg.DebounceQuiet, "debounce-after", 100*time.Millisecond, "quiet period before a push (Istio's PILOT_DEBOUNCE_AFTER)")
	fs.DurationVar(&cfg.DebounceMax, "debounce-max", 10*time.Second, "longest delay of a push under constant change (PILOT_DEBOUNCE_MAX)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	components := fs.String("components", "pilot,galley", "components to run; today pilot and galley (both required)")
	fs.Parse(os.Args[1:])

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "mastd: --log-level %q: %v\n", logLevel, err)
		os.Exit(2)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.ConfigDir == "" {
		fmt.Fprintln(os.Stderr, "mastd: --config DIR is required")
		os.Exit(2)
	}
	for _, c := range strings.Split(*components, ",") {
		if c != "pilot" && c != "galley" {
			fmt.Fprintf(os.Stderr, "mastd: --components: %q is not available yet (pilot, galley)\n", c)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := controlplane.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("mastd stopped", "err", err)
		os.Exit(1)
	}
}
