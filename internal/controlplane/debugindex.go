package controlplane

import (
	"fmt"
	"html"
	"net/http"
	"strings"
)

// debugPage is one entry of mastd's /debug/ index.
type debugPage struct {
	Path, What string
}

// debugPages lists what mastd's monitoring listener serves, for the index.
func debugPages(withCA, withDashboard bool) []debugPage {
	var pages []debugPage
	if withDashboard {
		pages = append(pages, debugPage{"/ui/", "the dashboard: service graph, golden signals, configuration and its analysis, proxies, policy"})
	}
	pages = append(pages, []debugPage{
		{"/debug/syncz", "every connected proxy: each xDS type sent, acknowledged or NACKed (with the NACK message), as JSON"},
		{"/debug/config_dump?proxyID=ID", "what mastd would send one proxy now (clusters, endpoints, listeners, routes), as Envoy's config_dump JSON"},
		{"/debug/configz", "the configuration in force, and the files the store rejected and why, as JSON"},
		{"/debug/registryz", "every service registry (ServiceEntry, Consul, Eureka, ...): synced or stale with its last error, and hostnames several registries have with the one that owns each, as JSON"},
		{"/debug/workloadhealthz", "the Healthy condition of every WorkloadEntry whose proxy reports its readiness probe (an unhealthy entry gives no endpoint), as JSON"},
		{"/metrics", "Prometheus metrics"},
		{"/ready", "readiness"},
	}...)
	if withCA {
		pages = append(pages, debugPage{"/debug/ca/rotate-root", "POST: start a root CA rotation (?propagation=, ?overlap=)"})
	}
	return pages
}

// debugIndexHandler serves /debug/: the list of debug pages, as HTML for a
// browser and as plain text for curl (Accept without text/html).
func debugIndexHandler(pages []debugPage) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for _, p := range pages {
				fmt.Fprintf(w, "%-24s %s\n", p.Path, p.What)
			}
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>mastd debug</title><h1>mastd debug</h1><ul>\n")
		for _, p := range pages {
			fmt.Fprintf(w, "<li><a href=\"%s\">%s</a> &mdash; %s</li>\n", html.EscapeString(p.Path), html.EscapeString(p.Path), html.EscapeString(p.What))
		}
		fmt.Fprint(w, "</ul>\n")
	})
}
