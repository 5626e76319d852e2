package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/controlplane"
	"github.com/mast-mesh/mast/internal/localmesh"
	proxycli "github.com/mast-mesh/mast/internal/proxy/cli"
	bookinfo "github.com/mast-mesh/mast/samples/bookinfo/app/cli"
)

// DefaultStateDir is where `mast up` keeps its lock, logs and configuration:
// $MAST_STATE_DIR, else $XDG_STATE_HOME/mast, else ~/.local/state/mast.
func DefaultStateDir() string {
	if d := os.Getenv("MAST_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mast")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "mast")
	}
	return filepath.Join(os.TempDir(), "mast")
}

// Up runs `mast up`: a whole local mesh, Bookinfo included unless --config names the user's own.
func Up(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := localmesh.Config{Stdout: stdout}
	c := newCommand("up", "[flags]",
		"Runs a whole local mesh on this machine: mastd, a sidecar beside every service, an ingress gateway and\n"+
			"Bookinfo, with no root and no Kubernetes. Each run starts from Bookinfo's default configuration unless\n"+
			"--keep-config is given. It stops (and stops every process it started) on Ctrl-C, SIGTERM, or when the\n"+
			"process that started it exits. Exit codes: 0 stopped cleanly, 1 failed, 2 usage, 3 a mesh is already\n"+
			"running with this state directory.",
		"mast up",
		"mast up --keep-config             # keep what the last run applied",
		"mast up --config ./my-config      # your own configuration instead of Bookinfo's",
		"mast up --mtls=false",
		"mast up --addons prometheus       # and a real Prometheus scraping every proxy and mastd")
	c.StringVar(&cfg.StateDir, "state-dir", DefaultStateDir(), "directory for the lock, logs and the default configuration")
	c.StringVar(&cfg.ConfigDir, "config", "", "run this configuration directory instead of Bookinfo's")
	c.BoolVar(&cfg.KeepConfig, "keep-config", false, "keep the configuration the last run left (default: start from Bookinfo's; the old one is moved to STATE/config.previous)")
	c.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:15010", "mastd's xDS address")
	c.StringVar(&cfg.MonitoringAddr, "monitoring-addr", "127.0.0.1:15014", "mastd's metrics and debug address")
	c.StringVar(&cfg.GatewayIP, "gateway-ip", "127.0.0.1", "address of the ingress gateway (its listeners come from Gateway resources)")
	c.BoolVar(&cfg.MTLS, "mtls", true, "run mastd's CA and give every proxy a workload certificate: mutual TLS between sidecars")
	c.StringVar(&cfg.SecureXDSAddr, "secure-xds-addr", "127.0.0.1:15012", "mastd's CA address (with --mtls)")
	c.StringVar(&cfg.BrokerAddr, "broker-addr", "127.0.0.1:15080", "address of mastd's Open Service Broker (\"\" to run none)")
	c.StringVar(&cfg.MixerAddr, "mixer-addr", "127.0.0.1:9091", "address of mastd's Mixer (Istio's Check/Report, with --mtls; \"\" to run none)")
	c.BoolVar(&cfg.PolicyCheckFailOpen, "policy-check-fail-open", false, "MeshConfig policyCheckFailOpen: requests pass when the Mixer cannot be reached")
	c.StringVar(&cfg.MixerCheckServer, "mixer-check-server", "", "MeshConfig mixerCheckServer: the Mixer the proxies check with (default: mastd's --mixer-addr)")
	c.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 2*time.Minute, "how long to wait for every proxy to acknowledge its configuration")
	addons := c.String("addons", "", "start telemetry addons beside the mesh: prometheus (Debian's package), jaeger")
	platform := c.String("platform", "files", "where Bookinfo's workloads are registered: files (WorkloadEntries), consul (a Consul dev agent; mastd --registry consul) or eureka (Mast's Eureka test server; mastd --registry eureka)")
	c.StringVar(&cfg.ConsulAddr, "consul-addr", "127.0.0.1:8500", "HTTP address of the Consul dev agent (with --platform consul)")
	consulBin := c.String("consul-bin", "", "Consul binary (default: $MAST_CONSUL, ~/.cache/mast/consul-v1.22.7 as scripts/build-consul.sh leaves it, or consul on PATH)")
	c.StringVar(&cfg.EurekaAddr, "eureka-addr", "127.0.0.1:8761", "address of the Eureka server (with --platform eureka)")
	c.DurationVar(&cfg.EurekaInterval, "eureka-interval", time.Second, "how often mastd fetches the Eureka registry (with --platform eureka; Eureka clients fetch every 30s)")
	eurekaBin := c.String("eureka-bin", "", "Eureka server binary (default: $MAST_EUREKA_SERVER, or ~/.cache/mast/eureka-server as scripts/build-eureka-server.sh leaves it)")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) > 0 {
		return c.usageError(stderr, "unexpected argument %q", c.args[0])
	}
	var err error
	list, aerr := localmesh.ParseAddons(*addons)
	if aerr != nil {
		return c.usageError(stderr, "%v", aerr)
	}
	cfg.Addons = list
	if cfg.Platform, err = localmesh.ParsePlatform(*platform); err != nil {
		return c.usageError(stderr, "%v", err)
	}
	cfg.Bookinfo = cfg.ConfigDir == ""
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "mast up: %v\n", err)
		return ExitFailure
	}
	var consulPath string
	if cfg.Platform == localmesh.PlatformConsul {
		if consulPath, err = findConsul(*consulBin); err != nil {
			fmt.Fprintf(stderr, "mast up: %v\n", err)
			return ExitFailure
		}
	}
	var eurekaPath string
	if cfg.Platform == localmesh.PlatformEureka {
		if eurekaPath, err = findEurekaServer(*eurekaBin); err != nil {
			fmt.Fprintf(stderr, "mast up: %v\n", err)
			return ExitFailure
		}
	}
	// With the terminal gone, report write errors rather than die of SIGPIPE
	// before the mesh's processes are stopped.
	signal.Ignore(syscall.SIGPIPE)
	cfg.Executable = exe
	cfg.Programs = siblingPrograms(exe)
	if consulPath != "" {
		cfg.Programs["consul"] = consulPath
	}
	if eurekaPath != "" {
		cfg.Programs["eureka-server"] = eurekaPath
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	if err := localmesh.Up(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "mast up: %v\n", err)
		if errors.Is(err, localmesh.ErrRunning) {
			return ExitRunning
		}
		return ExitFailure
	}
	return ExitOK
}

// Reset runs `mast reset`: the running (or last) Bookinfo mesh's
// configuration back to Bookinfo's defaults.
func Reset(args []string, stdout, stderr io.Writer) int {
	c := newCommand("reset", "[flags]",
		"Returns the local mesh's configuration directory to Bookinfo's defaults: everything applied since is\n"+
			"removed. A running mesh picks the change up at once.",
		"mast reset")
	stateDir := c.String("state-dir", DefaultStateDir(), "state directory of the local mesh")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	dir := filepath.Join(*stateDir, "config")
	if st, err := localmesh.ReadRunState(*stateDir); err == nil {
		if st.GatewayURL == "" {
			fmt.Fprintf(stderr, "mast reset: the running mesh runs your own configuration (%s), not Bookinfo's; nothing to reset\n", st.ConfigDir)
			return ExitFailure
		}
		dir = st.ConfigDir
	}
	platform := localmesh.PlatformFiles
	if st, err := localmesh.ReadRunState(*stateDir); err == nil {
		platform = st.Platform
	}
	changes, err := localmesh.ResetPlatform(dir, platform)
	for _, ch := range changes {
		fmt.Fprintln(stdout, ch)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mast reset: %v\n", err)
		return ExitFailure
	}
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "%s already holds Bookinfo's defaults\n", dir)
	}
	return ExitOK
}

// RunProgram runs one of the mesh's programs in this process: `mast __run
// mastd|mast-proxy|bookinfo ARGS...`. `mast up` starts its children this way,
// so one binary (even one from `go run`) carries the whole local mesh.
func RunProgram(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "mast __run: want mastd, mast-proxy or bookinfo")
		return 2
	}
	switch args[0] {
	case "mastd":
		return controlplane.Main(args[1:], stderr)
	case "mast-proxy":
		return proxycli.Main(args[1:], os.Stdout, stderr)
	case "bookinfo":
		return bookinfo.Main(args[1:], os.Getenv, stderr)
	}
	fmt.Fprintf(stderr, "mast __run: unknown program %q\n", args[0])
	return 2
}

// siblingPrograms finds mastd, mast-proxy and bookinfo binaries beside the
// mast binary (as `make build` leaves them in bin/); `mast up` runs those
// rather than copies of itself, so each process carries only its own code.
func siblingPrograms(exe string) map[string]string {
	out := map[string]string{}
	for _, name := range []string{"mastd", "mast-proxy", "bookinfo"} {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			out[name] = p
		}
	}
	return out
}

// findConsul locates the Consul binary for --platform consul.
func findConsul(flagValue string) (string, error) {
	return findProgram("--consul-bin", flagValue, "MAST_CONSUL", "consul-v1.22.7", "consul",
		"no Consul binary: build it with scripts/build-consul.sh (into ~/.cache/mast), or name one with --consul-bin")
}

// findEurekaServer locates Mast's Eureka test server for --platform eureka.
// It is not part of the mast binary: a test double for a registry that
// cannot be obtained here, not a Eureka server to run services on.
func findEurekaServer(flagValue string) (string, error) {
	return findProgram("--eureka-bin", flagValue, "MAST_EUREKA_SERVER", "eureka-server", "",
		"no Eureka server: build Mast's test server with scripts/build-eureka-server.sh (into ~/.cache/mast), or name one with --eureka-bin")
}

// findProgram looks for a helper program: the flag's value (an error when
// it names nothing), the environment variable, the build cache
// (~/.cache/mast/cached), then PATH (when onPath is set); missing is the
// error when none has it.
func findProgram(flag, flagValue, env, cached, onPath, missing string) (string, error) {
	candidates := []string{flagValue, os.Getenv(env)}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "mast", cached))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
		if c == flagValue {
			return "", fmt.Errorf("%s %s: not found", flag, c)
		}
	}
	if onPath != "" {
		if p, err := exec.LookPath(onPath); err == nil {
			return p, nil
		}
	}
	return "", errors.New(missing)
}
