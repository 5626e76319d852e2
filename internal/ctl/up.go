package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	fs := flag.NewFlagSet("mast up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.StateDir, "state-dir", DefaultStateDir(), "directory for the lock, logs and the default configuration")
	fs.StringVar(&cfg.ConfigDir, "config", "", "run this configuration directory instead of Bookinfo's")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:15010", "mastd's xDS address")
	fs.StringVar(&cfg.MonitoringAddr, "monitoring-addr", "127.0.0.1:15014", "mastd's metrics and debug address")
	fs.StringVar(&cfg.GatewayIP, "gateway-ip", "127.0.0.1", "address of the ingress gateway (its listeners come from Gateway resources)")
	fs.BoolVar(&cfg.MTLS, "mtls", true, "run mastd's CA and give every proxy a workload certificate: mutual TLS between sidecars")
	fs.StringVar(&cfg.SecureXDSAddr, "secure-xds-addr", "127.0.0.1:15012", "mastd's CA address (with --mtls)")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 2*time.Minute, "how long to wait for every proxy to acknowledge its configuration")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Bookinfo = cfg.ConfigDir == ""
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "mast up: %v\n", err)
		return 1
	}
	cfg.Executable = exe
	cfg.Programs = siblingPrograms(exe)
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	if err := localmesh.Up(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "mast up: %v\n", err)
		if errors.Is(err, localmesh.ErrRunning) {
			return 3
		}
		return 1
	}
	return 0
}

// Apply runs `mast apply -f FILE_OR_DIR...` against the running local mesh.
func Apply(args []string, stdout, stderr io.Writer) int {
	return applyOrDelete("apply", args, stdout, stderr)
}

// Delete runs `mast delete -f FILE_OR_DIR...` against the running local mesh.
func Delete(args []string, stdout, stderr io.Writer) int {
	return applyOrDelete("delete", args, stdout, stderr)
}

func applyOrDelete(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mast "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files pathList
	fs.Var(&files, "f", "file or directory of configuration (repeatable, or comma-separated)")
	stateDir := fs.String("state-dir", DefaultStateDir(), "state directory of the running `mast up`")
	configDir := fs.String("config", "", "configuration directory to change (default: the running `mast up`'s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "mast %s: -f FILE_OR_DIR is required\n", verb)
		return 2
	}
	dir := *configDir
	if dir == "" {
		st, err := localmesh.ReadRunState(*stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "mast %s: %v\n", verb, err)
			return 1
		}
		dir = st.ConfigDir
	}
	run := localmesh.Apply
	if verb == "delete" {
		run = localmesh.Delete
	}
	changes, err := run(dir, files)
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mast %s: %v\n", verb, err)
		return 1
	}
	return 0
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
