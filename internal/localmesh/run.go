package localmesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/config"
)

// Config is what `mast up` passes down.
type Config struct {
	StateDir  string // holds the lock, run.json, logs and the default config directory
	ConfigDir string // the user's configuration; "" runs Bookinfo from StateDir/config
	// KeepConfig keeps StateDir/config as the last run left it; otherwise it
	// is reset to Bookinfo's defaults (the old one moved to config.previous).
	KeepConfig bool
	Options
	// Executable runs the mesh's programs as `Executable __run PROGRAM ARGS...`,
	// unless Programs names a binary of the program's own.
	Executable string
	// Programs maps a program ("mastd", "mast-proxy", "bookinfo") to its own
	// binary, run as `BINARY ARGS...` (smaller processes than the mast binary).
	Programs map[string]string
	Stdout   io.Writer
	Logger   *slog.Logger
	// ReadyTimeout bounds the wait for every proxy to acknowledge its configuration.
	ReadyTimeout time.Duration
	// Addons are started beside the mesh (telemetry.go): "prometheus", "jaeger".
	Addons []string
	// Platform is where Bookinfo's workloads are registered (platform.go):
	// PlatformFiles (WorkloadEntries), PlatformConsul, whose dev agent
	// (Programs["consul"]) serves ConsulAddr, or PlatformEureka, whose
	// server (Programs["eureka-server"]) serves EurekaAddr.
	Platform   string
	ConsulAddr string
	EurekaAddr string
	// EurekaInterval is mastd's --eureka-interval on PlatformEureka.
	EurekaInterval time.Duration
}

// RunState is what a running `mast up` records in StateDir/run.json, for
// `mast apply`, `mast delete` and a second `mast up`.
type RunState struct {
	PID       int    `json:"pid"`
	ConfigDir string `json:"configDir"`
	// CredentialsDir holds the gateway's credentials (credentialName).
	CredentialsDir string `json:"credentialsDir,omitempty"`
	XDSAddr        string `json:"xdsAddr"`
	SecureXDSAddr  string `json:"secureXDSAddr,omitempty"`
	MonitoringAddr string `json:"monitoringAddr"`
	GatewayURL     string `json:"gatewayURL"`
	Platform       string `json:"platform,omitempty"`
	ConsulAddr     string `json:"consulAddr,omitempty"`
	EurekaURL      string `json:"eurekaURL,omitempty"`
	BrokerURL      string `json:"brokerURL,omitempty"`
	// BrokerCredentials is the file holding the broker's username:password;
	// BrokerClientConfig the file for OSB clients (docs/broker.md).
	BrokerCredentials  string        `json:"brokerCredentials,omitempty"`
	BrokerClientConfig string        `json:"brokerClientConfig,omitempty"`
	Procs              []ProcState   `json:"procs"`
	Started            time.Time     `json:"started"`
	ReadyAfter         time.Duration `json:"readyAfter"`
}

// ProcState is one started process.
type ProcState struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Admin   string `json:"admin,omitempty"`
	ProxyID string `json:"proxyID,omitempty"`
	Log     string `json:"log"`
}

// ErrRunning is returned when another `mast up` holds the state directory.
var ErrRunning = errors.New("a local mesh is already running")

// ReadRunState returns the state of the running local mesh in stateDir.
func ReadRunState(stateDir string) (*RunState, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "run.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no local mesh is running (no %s); start one with `mast up`", filepath.Join(stateDir, "run.json"))
		}
		return nil, err
	}
	var st RunState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(stateDir, "run.json"), err)
	}
	if syscall.Kill(st.PID, 0) != nil {
		return nil, fmt.Errorf("no local mesh is running (the one recorded in %s, pid %d, has stopped); start one with `mast up`", filepath.Join(stateDir, "run.json"), st.PID)
	}
	return &st, nil
}

// Up starts the local mesh, prints where to look, and runs until ctx is done
// or a process of the mesh fails; then it stops every process it started.
func Up(ctx context.Context, cfg Config) error {
	started := time.Now()
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return err
	}
	unlock, err := lock(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	configDir := cfg.ConfigDir
	if configDir == "" {
		configDir = filepath.Join(cfg.StateDir, "config")
		if cfg.KeepConfig {
			if err := seedBookinfo(configDir, cfg.Platform); err != nil {
				return fmt.Errorf("writing Bookinfo's configuration to %s: %w", configDir, err)
			}
		} else {
			moved, err := resetConfigDir(configDir, cfg.Platform)
			if err != nil {
				return fmt.Errorf("resetting %s to Bookinfo's configuration: %w", configDir, err)
			}
			if moved != "" {
				fmt.Fprintf(cfg.Stdout, "Starting from Bookinfo's default configuration; the last run's is in %s (`mast up --keep-config` keeps it).\n", moved)
			}
		}
	}
	configDir, _ = filepath.Abs(configDir)
	if slices.Contains(cfg.Addons, AddonJaeger) {
		if _, err := jaegerBinary(); err != nil {
			return err
		}
		if _, err := writeJaegerServiceEntry(configDir); err != nil {
			return err
		}
	}
	resources, problems := config.LoadPaths(configDir)
	if problems.HasErrors() {
		return fmt.Errorf("configuration in %s has errors (fix them or run `mast validate -f %s`):\n%s", configDir, configDir, problems.Errors())
	}
	if cfg.MTLS {
		cfg.CADir = filepath.Join(cfg.StateDir, "ca")
		cfg.TokenDir = filepath.Join(cfg.StateDir, "tokens")
	}
	// The gateway's credentials (credentialName): STATE/credentials/NAME/{tls.crt,tls.key,ca.crt}.
	cfg.CredentialsDir = filepath.Join(cfg.StateDir, "credentials")
	if err := os.MkdirAll(cfg.CredentialsDir, 0o700); err != nil {
		return err
	}
	var regs []registration
	if cfg.Platform != PlatformFiles {
		// The workloads to run and register are Bookinfo's, not configuration.
		wls, err := bookinfoWorkloads()
		if err != nil {
			return err
		}
		resources = append(resources, wls...)
		regs = registrations(config.NewSnapshot(resources))
	}
	plan, err := Plan(config.NewSnapshot(resources), cfg.Options)
	if err != nil {
		return err
	}
	gatewayAddr := net.JoinHostPort(cfg.GatewayIP, "8080")
	addrs := []string{cfg.XDSAddr, cfg.MonitoringAddr, gatewayAddr}
	if cfg.MTLS {
		addrs = append(addrs, cfg.SecureXDSAddr)
	}
	if cfg.BrokerAddr != "" {
		addrs = append(addrs, cfg.BrokerAddr)
	}
	switch cfg.Platform {
	case PlatformConsul:
		addrs = append(addrs, cfg.ConsulAddr)
	case PlatformEureka:
		addrs = append(addrs, cfg.EurekaAddr)
	}
	if err := IssueTokens(cfg.Options, "cluster.local", plan); err != nil {
		return err
	}
	for _, addr := range addrs {
		if err := portFree(addr); err != nil {
			return err
		}
	}
	logDir := filepath.Join(cfg.StateDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go WatchParent(ctx, func() {
		fmt.Fprintln(cfg.Stdout, "The process that started mast up has exited; stopping the local mesh.")
		cancel()
	})
	var g group
	defer g.stopAll()
	failed := make(chan error, 1)
	launch := func(p Proc) (*child, error) {
		c, err := g.start(command(cfg, p), p, logDir)
		if err != nil {
			return nil, err
		}
		go func() {
			<-c.done
			if ctx.Err() == nil {
				select {
				case failed <- fmt.Errorf("%s exited unexpectedly (%v); its log %s ends with:\n%s", p.Name, c.err, c.log, tail(c.log, 15)):
				default:
				}
				cancel()
			}
		}()
		return c, nil
	}
	mastd := Proc{Name: "mastd", Program: "mastd", Args: []string{"--config", configDir, "--xds-addr", cfg.XDSAddr, "--monitoring-addr", cfg.MonitoringAddr}}
	if cfg.MTLS {
		mastd.Args = append(mastd.Args, "--ca-dir", cfg.CADir, "--secure-xds-addr", cfg.SecureXDSAddr)
	}
	var brokerCreds string
	if cfg.BrokerAddr != "" {
		args, creds, err := prepareBroker(cfg.StateDir, cfg.BrokerAddr)
		if err != nil {
			return fmt.Errorf("preparing the broker: %w", err)
		}
		mastd.Args, brokerCreds = append(mastd.Args, args...), creds
	}
	if cfg.MTLS && cfg.MixerAddr != "" {
		mastd.Args = withComponent(mastd.Args, "mixer")
		mastd.Args = append(mastd.Args, "--mixer-addr", cfg.MixerAddr)
	}
	meshCfg, err := writeMeshConfig(cfg.StateDir, cfg.Addons, cfg.mixerMesh())
	if err != nil {
		return err
	}
	mastd.Args = append(mastd.Args, "--mesh-config", meshCfg)
	state := &RunState{PID: os.Getpid(), ConfigDir: configDir, CredentialsDir: cfg.CredentialsDir, XDSAddr: cfg.XDSAddr, MonitoringAddr: cfg.MonitoringAddr, Started: started, Platform: cfg.Platform}
	if cfg.Platform == PlatformConsul {
		agent, err := consulAgent(cfg.ConsulAddr)
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.Stdout, "Starting Consul (dev agent, %s)...\n", cfg.ConsulAddr)
		c, err := launch(agent)
		if err != nil {
			return err
		}
		state.Procs, state.ConsulAddr = append(state.Procs, c.state()), cfg.ConsulAddr
		mastd.Args = append(mastd.Args, "--registry", "consul", "--consul-addr", cfg.ConsulAddr)
	}
	var registrator *eurekaRegistrator
	if cfg.Platform == PlatformEureka {
		fmt.Fprintf(cfg.Stdout, "Starting a Eureka server (Mast's test server, %s)...\n", cfg.EurekaAddr)
		c, err := launch(eurekaServer(cfg.EurekaAddr))
		if err != nil {
			return err
		}
		state.Procs, state.EurekaURL = append(state.Procs, c.state()), "http://"+cfg.EurekaAddr+"/eureka/v2"
		mastd.Args = append(mastd.Args, "--registry", "eureka", "--eureka-url", state.EurekaURL)
		if cfg.EurekaInterval > 0 {
			mastd.Args = append(mastd.Args, "--eureka-interval", cfg.EurekaInterval.String())
		}
		registrator = newEurekaRegistrator(state.EurekaURL, regs, cfg.Logger)
	}
	fmt.Fprintf(cfg.Stdout, "Starting mastd and %d processes (logs in %s)...\n", len(plan), logDir)
	mastdChild, err := launch(mastd)
	if err != nil {
		return err
	}
	if cfg.MTLS {
		state.SecureXDSAddr = cfg.SecureXDSAddr
	}
	if cfg.Bookinfo {
		state.GatewayURL = "http://" + gatewayAddr + "/productpage"
	}
	state.Procs = append(state.Procs, mastdChild.state())
	var proxyIDs []string
	for _, p := range plan {
		c, err := launch(p)
		if err != nil {
			return err
		}
		state.Procs = append(state.Procs, c.state())
		if p.ProxyID != "" {
			proxyIDs = append(proxyIDs, p.ProxyID)
		}
	}
	if cfg.Platform == PlatformConsul {
		regCtx, regDone := context.WithTimeout(ctx, cfg.ReadyTimeout)
		err := registerConsul(regCtx, cfg.ConsulAddr, regs)
		regDone()
		if err != nil {
			return fmt.Errorf("registering Bookinfo in Consul: %w (logs in %s)", err, logDir)
		}
	}
	if registrator != nil {
		regCtx, regDone := context.WithTimeout(ctx, cfg.ReadyTimeout)
		err := registrator.registerAll(regCtx)
		regDone()
		if err != nil {
			return fmt.Errorf("registering Bookinfo in Eureka: %w (logs in %s)", err, logDir)
		}
		go registrator.run(ctx)
	}
	var addonOut strings.Builder
	if err := startAddons(&cfg, plan, func(p Proc) error {
		c, err := launch(p)
		if err == nil {
			state.Procs = append(state.Procs, c.state())
		}
		return err
	}, &addonOut); err != nil {
		return err
	}
	waitCtx, waitDone := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer waitDone()
	progress := func(synced int) {
		fmt.Fprintf(cfg.Stdout, "  %d of %d proxies have acknowledged their configuration\n", synced, len(proxyIDs))
	}
	if err := waitReady(waitCtx, "http://"+cfg.MonitoringAddr, proxyIDs, state.GatewayURL, progress); err != nil {
		select {
		case ferr := <-failed:
			return ferr
		default:
		}
		return fmt.Errorf("the local mesh did not become ready: %w (logs in %s)", err, logDir)
	}
	if cfg.BrokerAddr != "" {
		state.BrokerURL, state.BrokerCredentials = "http://"+cfg.BrokerAddr, brokerCreds
		state.BrokerClientConfig = filepath.Join(cfg.StateDir, "broker", "client.json")
		if err := writeClientConfig(waitCtx, state.BrokerURL, brokerCreds, state.BrokerClientConfig); err != nil {
			return fmt.Errorf("the broker did not answer: %w (logs in %s)", err, logDir)
		}
	}
	state.ReadyAfter = time.Since(started).Round(time.Millisecond)
	if err := writeRunState(cfg.StateDir, state); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(cfg.StateDir, "run.json"))
	io.WriteString(cfg.Stdout, addonOut.String())
	printSummary(cfg.Stdout, state, logDir)
	go reportRejections(ctx, cfg.Stdout, "http://"+cfg.MonitoringAddr, time.Second)

	select {
	case <-ctx.Done():
	case err := <-failed:
		return err
	}
	fmt.Fprintln(cfg.Stdout, "Stopping the local mesh...")
	return nil
}

func printSummary(w io.Writer, st *RunState, logDir string) {
	fmt.Fprintf(w, "Mast local mesh is up (ready after %v).\n\n", st.ReadyAfter)
	if st.GatewayURL != "" {
		fmt.Fprintf(w, "  Bookinfo         %s\n", st.GatewayURL)
	}
	if st.BrokerURL != "" {
		fmt.Fprintf(w, "  Broker  %s  (credentials: %s)\n", st.BrokerURL, st.BrokerCredentials)
		fmt.Fprintf(w, "  Broker clients   %s  (URL, credentials, service and plan ids; see docs/broker.md)\n", st.BrokerClientConfig)
	}
	fmt.Fprintf(w, "  Dashboard        http://%s/ui/  (or: mast dashboard)\n", st.MonitoringAddr)
	fmt.Fprintf(w, "  Configuration    %s  (edit or add YAML there, or: mast apply -f FILE)\n", st.ConfigDir)
	if st.CredentialsDir != "" {
		fmt.Fprintf(w, "  Credentials      %s  (a Gateway's credentialName NAME: NAME/tls.crt, NAME/tls.key there)\n", st.CredentialsDir)
	}
	if st.ConsulAddr != "" {
		fmt.Fprintf(w, "  Consul           http://%s/v1/catalog/services  (Bookinfo registered there; mastd --registry consul)\n", st.ConsulAddr)
	}
	if st.EurekaURL != "" {
		fmt.Fprintf(w, "  Eureka           %s/apps  (Mast's Eureka test server; Bookinfo registered there; mastd --registry eureka)\n", st.EurekaURL)
	}
	fmt.Fprintf(w, "  mastd xDS        %s\n", st.XDSAddr)
	if st.SecureXDSAddr != "" {
		fmt.Fprintf(w, "  mastd CA         %s  (mTLS between sidecars; PeerAuthentication decides STRICT, PERMISSIVE or DISABLE)\n", st.SecureXDSAddr)
	}
	fmt.Fprintf(w, "  mastd debug      http://%s/debug/syncz  http://%s/debug/configz  http://%s/metrics\n", st.MonitoringAddr, st.MonitoringAddr, st.MonitoringAddr)
	fmt.Fprintf(w, "  Proxy admin\n")
	for _, p := range st.Procs {
		if p.Admin != "" {
			fmt.Fprintf(w, "    %-28s http://%s/config_dump\n", strings.TrimSuffix(p.Name, "-sidecar"), p.Admin)
		}
	}
	fmt.Fprintf(w, "  Logs             %s\n\nPress Ctrl-C to stop.\n", logDir)
}

// seedBookinfo writes Bookinfo's configuration for platform into dir,
// keeping files the user already has there.
func seedBookinfo(dir, platform string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files, err := bookinfoFiles(platform)
	if err != nil {
		return err
	}
	for name, b := range files {
		dst := filepath.Join(dir, name)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeRunState(dir string, st *RunState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".run.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "run.json"))
}

// lock takes the state directory's lock, or says who holds it.
func lock(dir string) (func(), error) {
	path := filepath.Join(dir, "up.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if st, rerr := ReadRunState(dir); rerr == nil {
			return nil, fmt.Errorf("%w (pid %d, started %s): %s, configuration in %s; stop it with Ctrl-C in its terminal or `kill %d`",
				ErrRunning, st.PID, st.Started.Format(time.TimeOnly), st.GatewayURL, st.ConfigDir, st.PID)
		}
		return nil, fmt.Errorf("%w (it holds %s and is still starting)", ErrRunning, path)
	}
	return func() { f.Close() }, nil
}

func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("address %s is in use by another program (%v); stop it or choose other addresses with the flags of `mast up`", addr, err)
	}
	return l.Close()
}

// waitReady waits until every proxy is connected to mastd with each type it
// was sent acknowledged, and the gateway URL (if any) answers 200. It calls
// progress when the number of synced proxies changes.
func waitReady(ctx context.Context, debugURL string, proxyIDs []string, gatewayURL string, progress func(synced int)) error {
	var last error
	reported := -1
	for {
		var synced int
		synced, last = checkReady(ctx, debugURL, proxyIDs, gatewayURL)
		if last == nil {
			return nil
		}
		if synced != reported && synced > 0 {
			progress(synced)
			reported = synced
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func checkReady(ctx context.Context, debugURL string, proxyIDs []string, gatewayURL string) (int, error) {
	acked, err := AckedProxies(ctx, debugURL)
	if err != nil {
		return 0, err
	}
	synced := 0
	var missing error
	for _, id := range proxyIDs {
		if acked[id] {
			synced++
		} else if missing == nil {
			missing = fmt.Errorf("proxy %s has not acknowledged its configuration", id)
		}
	}
	if missing != nil {
		return synced, missing
	}
	return synced, checkGateway(ctx, gatewayURL)
}

func checkGateway(ctx context.Context, gatewayURL string) error {
	if gatewayURL == "" {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", gatewayURL, resp.Status)
	}
	return nil
}

// command returns the argv that runs p.
func command(cfg Config, p Proc) []string {
	if bin, ok := cfg.Programs[p.Program]; ok {
		return append([]string{bin}, p.Args...)
	}
	return append([]string{cfg.Executable, "__run", p.Program}, p.Args...)
}
