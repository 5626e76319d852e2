// Command bookinfo runs one service of the Bookinfo sample application
// (productpage, details, reviews v1/v2/v3 or ratings), behaving as Istio's
// sample does so Istio's documentation tasks work against it:
//
//	bookinfo --service productpage --addr 127.0.0.1:9080
//	bookinfo --service reviews --version v2 --instance reviews-v2-1 --ratings-url http://127.0.0.1:9083
//
// Outgoing calls honour HTTP_PROXY/NO_PROXY (loopback destinations are never
// proxied, as in Go's http.ProxyFromEnvironment). It logs
// `msg=listening addr=HOST:PORT` once it accepts connections and stops
// gracefully on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/details"
	"github.com/mast-mesh/mast/samples/bookinfo/app/productpage"
	"github.com/mast-mesh/mast/samples/bookinfo/app/ratings"
	"github.com/mast-mesh/mast/samples/bookinfo/app/reviews"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookinfo:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).
		With("service", cfg.Service, "version", cfg.Version, "instance", cfg.Instance)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
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
