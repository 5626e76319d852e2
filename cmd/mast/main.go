// Command mast is Mast's command-line tool (Istio's istioctl): it validates
// configuration, runs a local mesh, and inspects a running one.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mast-mesh/mast/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
