package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// wait runs `mast-proxy wait`: it returns once the proxy's readiness
// endpoint answers 200, or fails after --timeout. The injector runs it as
// the sidecar's postStart hook when holdApplicationUntilProxyStarts is set,
// so the kubelet starts the application only after the proxy is ready
// (Istio's `pilot-agent wait`).
func wait(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mast-proxy wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := os.Getenv("INSTANCE_IP")
	if host == "" {
		host = "127.0.0.1"
	}
	url := fs.String("url", "http://"+net.JoinHostPort(host, "15020")+"/healthz/ready", "readiness URL (default: INSTANCE_IP:15020, where the sidecar serves it)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	period := fs.Duration("period", 500*time.Millisecond, "time between attempts")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	client := &http.Client{Timeout: *period + time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			fmt.Fprintln(stderr, "mast-proxy wait:", err)
			return 2
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintln(stdout, "mast-proxy is ready")
				return 0
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "mast-proxy wait: not ready after %s: %v\n", *timeout, last)
			return 1
		case <-time.After(*period):
		}
	}
}
