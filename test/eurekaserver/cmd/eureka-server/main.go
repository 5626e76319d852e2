// Command eureka-server serves test/eurekaserver's Eureka REST API v2 on an
// address, for `mast up --platform eureka` and benchmarks. It is a test
// double, not a registry to run services on (no replication between peers,
// no persistence, no self-preservation, no authentication), so it is built
// apart from Mast's programs: scripts/build-eureka-server.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/test/eurekaserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8761", "address to serve /eureka/v2/ on")
	retention := flag.Duration("delta-retention", 3*time.Minute, "how long a change stays in /apps/delta")
	eviction := flag.Duration("eviction-interval", time.Minute, "how often expired leases are evicted")
	flag.Parse()
	if err := run(*addr, eurekaserver.Config{DeltaRetention: *retention, EvictionInterval: *eviction}); err != nil {
		fmt.Fprintln(os.Stderr, "eureka-server:", err)
		os.Exit(1)
	}
}

func run(addr string, cfg eurekaserver.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := eurekaserver.New(cfg)
	defer s.Close()
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "eureka-server: serving http://%s/eureka/v2/\n", l.Addr())
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
