// Package cli is the bookinfo command line, shared by the bookinfo binary
// and `mast up`.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/details"
	"github.com/mast-mesh/mast/samples/bookinfo/app/productpage"
	"github.com/mast-mesh/mast/samples/bookinfo/app/ratings"
	"github.com/mast-mesh/mast/samples/bookinfo/app/reviews"
)

// Main runs the bookinfo command line with args (without the program name)
// and returns the process exit code. The bookinfo binary and `mast up` both call it.
func Main(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bookinfo:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).
		With("service", cfg.Service, "version", cfg.Version, "instance", cfg.Instance)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("exiting", "err", err)
		return 1
	}
	return 0
}

// run serves cfg's service until ctx ends, then shuts down gracefully.
func run(ctx context.Context, cfg runConfig, log *slog.Logger) error {
	h := handler(cfg, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// handler builds the service's handler; calls leave through a client whose
// transport honours HTTP_PROXY (in the local mesh, the app's sidecar).
func handler(cfg runConfig, log *slog.Logger) http.Handler {
	switch cfg.Service {
	case "productpage":
		p := cfg.ProductPage
		p.Client, p.Logger = newClient(), log
		return productpage.New(p)
	case "reviews":
		r := cfg.Reviews
		r.Client, r.Logger = newClient(), log
		return reviews.New(r)
	case "ratings":
		return ratings.New(ratings.Config{Logger: log})
	default:
		return details.New(details.Config{Logger: log})
	}
}

func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}
