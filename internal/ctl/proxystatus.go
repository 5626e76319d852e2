package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mast-mesh/mast/internal/configdiff"
	"github.com/mast-mesh/mast/internal/pilot/ads"
)

// xdsColumns are proxy-status's per-type columns, in istioctl's order.
var xdsColumns = []struct{ name, typeURL string }{
	{"CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
	{"LDS", "type.googleapis.com/envoy.config.listener.v3.Listener"},
	{"EDS", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"},
	{"RDS", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"},
	{"ECDS", "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"},
}

// ProxyStatus runs `mast proxy-status [PROXY]`.
func ProxyStatus(args []string, stdout, stderr io.Writer) int {
	c := newCommand("proxy-status", "[PROXY] [flags]",
		"Shows, for every proxy connected to mastd, whether each xDS type it was sent is SYNCED (acknowledged),\n"+
			"STALE (sent, not yet acknowledged), NACKED (rejected; the proxy keeps its last good configuration) or\n"+
			"NOT SENT. With a proxy name, shows that proxy alone with its versions and every NACK message in full,\n"+
			"then compares what mastd would send it now (/debug/config_dump?proxyID=) with what it holds (its admin\n"+
			"/config_dump), as istioctl does: \"Clusters Match\", or what differs, for clusters, endpoints, listeners\n"+
			"and routes. The proxy's admin is found as for proxy-config (local mesh, --admin-address, or its pod).",
		"mast proxy-status",
		"mast proxy-status reviews-v1",
		"mast proxy-status --debug-address 10.0.0.5:15014 -o json")
	var m meshFlags
	m.register(c, true)
	output := c.String("o", "table", "output format: table, json or yaml")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	base, err := m.debugURL()
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: %v\n", err)
		return ExitFailure
	}
	defer m.close()
	b, err := httpGet(base + "/debug/syncz")
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: mastd's /debug/syncz: %v\n", err)
		return ExitFailure
	}
	var status []ads.ProxyStatus
	if err := json.Unmarshal(b, &status); err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: mastd's /debug/syncz: %v\n", err)
		return ExitFailure
	}
	if len(c.args) > 0 {
		want := c.args[0]
		var only []ads.ProxyStatus
		for _, p := range status {
			if p.ID == want || proxyShortName(p.ID) == want || strings.TrimSuffix(proxyShortName(p.ID), "."+p.Namespace) == want {
				only = append(only, p)
			}
		}
		if len(only) == 0 {
			fmt.Fprintf(stderr, "mast proxy-status: no proxy %q is connected to mastd (run `mast proxy-status` to list them)\n", want)
			return ExitFailure
		}
		status = only
	}
	if *output != "table" {
		return writeStructured(stdout, stderr, *output, status)
	}
	writeProxyStatus(stdout, status, len(c.args) > 0)
	if len(status) == 1 {
		compareConfig(stdout, stderr, &m, base, status[0].ID)
	}
	return ExitOK
}

// compareConfig prints, for one proxy, how what mastd would send it now
// differs from what the proxy holds, as istioctl proxy-status PROXY does.
// Not reaching either side is said, not a failure: the sync states above
// stand on their own.
func compareConfig(stdout, stderr io.Writer, m *meshFlags, base, id string) {
	want, err := httpGet(base + "/debug/config_dump?proxyID=" + url.QueryEscape(id))
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: not comparing configurations: mastd: %v\n", err)
		return
	}
	p, err := m.findProxy(proxyShortName(id))
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: not comparing configurations: %v\n", err)
		return
	}
	have, err := httpGet("http://" + p.Admin + "/config_dump")
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: not comparing configurations: %s's admin: %v\n", p.Name, err)
		return
	}
	diffs, err := configdiff.Diff(want, have)
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-status: not comparing configurations: %v\n", err)
		return
	}
	fmt.Fprintln(stdout)
	configdiff.Write(stdout, diffs)
}

// proxyShortName is the pod-like part of a node ID: "reviews-v1.default".
func proxyShortName(id string) string {
	if parts := strings.Split(id, "~"); len(parts) == 4 {
		return parts[2]
	}
	return id
}

func writeProxyStatus(w io.Writer, status []ads.ProxyStatus, detail bool) {
	sort.Slice(status, func(i, j int) bool { return proxyShortName(status[i].ID) < proxyShortName(status[j].ID) })
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLUSTER\tCDS\tLDS\tEDS\tRDS\tECDS\tISTIOD\tVERSION")
	var nacks []string
	for _, p := range status {
		row := []string{proxyShortName(p.ID), "Kubernetes"}
		version := "-"
		for _, col := range xdsColumns {
			state := "IGNORED"
			for _, t := range p.Types {
				if t.TypeURL != col.typeURL {
					continue
				}
				state = t.State
				if t.VersionAcked != "" {
					version = t.VersionAcked
				}
				if t.State == ads.StateNACKed && t.LastNACK != "" {
					nacks = append(nacks, fmt.Sprintf("%s %s NACK: %s", proxyShortName(p.ID), col.name, t.LastNACK))
				}
			}
			row = append(row, state)
		}
		row = append(row, "mastd", version)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	if detail {
		for _, p := range status {
			fmt.Fprintf(w, "\n%s (%s stream, connected since %s)\n", p.ID, p.Stream, p.ConnectedSince.Format("15:04:05"))
			for _, t := range p.Types {
				fmt.Fprintf(w, "  %-60s %-8s sent %s acked %s, %d resources\n", t.TypeURL, t.State, t.VersionSent, t.VersionAcked, t.Resources)
			}
		}
	}
	for _, n := range nacks {
		fmt.Fprintln(w, n)
	}
}
