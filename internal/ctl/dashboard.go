package ctl

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// jaegerUIAddr is where Jaeger's all-in-one serves its UI (its default port).
const jaegerUIAddr = "127.0.0.1:16686"

// Dashboard runs `mast dashboard`: it prints the URL of the built-in
// dashboard (or of Prometheus, Jaeger, or a proxy's admin page) after
// checking that it answers, and opens it in a browser when one is at hand.
func Dashboard(args []string, stdout, stderr io.Writer) int {
	c := newCommand("dashboard", "[mast|prometheus|jaeger|envoy PROXY] [flags]",
		"Opens a web UI of the running mesh, as istioctl dashboard does; with --browser=false, or when no\n"+
			"graphical browser is available, it prints the URL instead.\n"+
			"  mast        mastd's built-in dashboard (/ui/ on its monitoring port): service graph, golden signals,\n"+
			"              configuration and its analysis, proxies, policy (the default)\n"+
			"  prometheus  the Prometheus addon (mast up --addons prometheus)\n"+
			"  jaeger      Jaeger's UI (mast up --addons jaeger)\n"+
			"  envoy PROXY a proxy's admin page (loopback only; on Kubernetes a pod's, port-forwarded until Ctrl-C)\n"+
			"--search opens the mast dashboard on a service, workload or resource (a deep link).",
		"mast dashboard",
		"mast dashboard --browser=false",
		"mast dashboard --search reviews",
		"mast dashboard prometheus",
		"mast dashboard envoy productpage-v1")
	var m meshFlags
	m.register(c, true)
	browser := c.Bool("browser", true, "open the URL in a browser (xdg-open) when a display is available")
	search := c.String("search", "", "open the dashboard on the first service, workload or resource matching this")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	what := "mast"
	if len(c.args) > 0 {
		what = c.args[0]
	}
	var url, check string
	switch what {
	case "mast", "kiali", "grafana":
		base, err := m.debugURL()
		if err != nil {
			fmt.Fprintf(stderr, "mast dashboard: %v\n", err)
			return ExitFailure
		}
		defer m.close()
		url, check = base+"/ui/", base+"/ui/api/graph"
		if *search != "" {
			url += "#/search/" + pathEscape(*search)
		}
	case "prometheus":
		url, check = "http://"+localmesh.PrometheusAddr+"/", "http://"+localmesh.PrometheusAddr+"/-/ready"
	case "jaeger":
		url, check = "http://"+jaegerUIAddr+"/", "http://"+jaegerUIAddr+"/"
	case "envoy", "proxy":
		if len(c.args) < 2 && m.adminAddress == "" {
			return c.usageError(stderr, "envoy: name a proxy (e.g. productpage-v1) or give --admin-address")
		}
		name := ""
		if len(c.args) >= 2 {
			name = c.args[1]
		}
		p, err := m.findProxy(name)
		if err != nil {
			fmt.Fprintf(stderr, "mast dashboard: %v\n", err)
			return ExitFailure
		}
		defer m.close()
		url, check = "http://"+p.Admin+"/", "http://"+p.Admin+"/ready"
	default:
		return c.usageError(stderr, "%q is not a dashboard (mast, prometheus, jaeger, envoy PROXY)", what)
	}
	if err := answers(check); err != nil {
		hint := ""
		switch what {
		case "prometheus", "jaeger":
			hint = fmt.Sprintf(" (start the mesh with `mast up --addons %s`)", what)
		case "mast", "kiali", "grafana":
			hint = " (is mastd running with --dashboard=true?)"
		}
		fmt.Fprintf(stderr, "mast dashboard: %s does not answer: %v%s\n", url, err, hint)
		return ExitFailure
	}
	fmt.Fprintln(stdout, url)
	if *browser && hasDisplay() {
		opened := false
		if opener, err := exec.LookPath("xdg-open"); err == nil {
			cmd := exec.Command(opener, url)
			if err := cmd.Start(); err == nil {
				go cmd.Wait()
				opened = true
			}
		}
		if !opened {
			fmt.Fprintln(stderr, "mast dashboard: no browser opener (xdg-open) found; open the URL above")
		}
	}
	if len(m.stops) > 0 {
		// A Kubernetes proxy's admin is a port-forward that lives as long
		// as this command, as with istioctl dashboard envoy.
		fmt.Fprintln(stderr, "mast dashboard: forwarding to the pod's admin port; Ctrl-C to stop")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		<-ctx.Done()
	}
	return ExitOK
}

// answers checks that url responds with a status below 500.
func answers(url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

func hasDisplay() bool { return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "" }

// pathEscape escapes a search term for the page's hash route.
func pathEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-._~", r):
			b.WriteRune(r)
		default:
			for _, c := range []byte(string(r)) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	return b.String()
}
