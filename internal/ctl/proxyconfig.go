package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/localmesh"
)

// configDump is the part of Envoy's /config_dump that proxy-config reads.
type configDump struct {
	Clusters  []dumpCluster
	Listeners []dumpListener
	Routes    []dumpRoute
	Endpoints []dumpEndpoints
	Secrets   []dumpSecret
	Bootstrap *dumpBootstrap
	raw       map[string]json.RawMessage // section type -> section, for -o json|yaml
}

type dumpCluster struct {
	Name string `json:"name"`
	Type string `json:"type"`
	EDS  *struct {
		ServiceName string `json:"serviceName"`
	} `json:"edsClusterConfig"`
}

type socketAddress struct {
	SocketAddress struct {
		Address   string `json:"address"`
		PortValue int    `json:"portValue"`
	} `json:"socketAddress"`
}

type dumpListener struct {
	Name             string        `json:"name"`
	Address          socketAddress `json:"address"`
	TrafficDirection string        `json:"trafficDirection"`
	FilterChains     []struct {
		Match *struct {
			DestinationPort      int      `json:"destinationPort"`
			ServerNames          []string `json:"serverNames"`
			TransportProtocol    string   `json:"transportProtocol"`
			ApplicationProtocols []string `json:"applicationProtocols"`
			PrefixRanges         []struct {
				AddressPrefix string `json:"addressPrefix"`
			} `json:"prefixRanges"`
		} `json:"filterChainMatch"`
		Filters []struct {
			Name        string `json:"name"`
			TypedConfig struct {
				RDS *struct {
					RouteConfigName string `json:"routeConfigName"`
				} `json:"rds"`
				RouteConfig *struct {
					Name string `json:"name"`
				} `json:"routeConfig"`
				Cluster string `json:"cluster"`
			} `json:"typedConfig"`
		} `json:"filters"`
	} `json:"filterChains"`
}

type dumpRoute struct {
	Name         string `json:"name"`
	VirtualHosts []struct {
		Name    string   `json:"name"`
		Domains []string `json:"domains"`
		Routes  []struct {
			Name  string `json:"name"`
			Match struct {
				Prefix    string `json:"prefix"`
				Path      string `json:"path"`
				SafeRegex *struct {
					Regex string `json:"regex"`
				} `json:"safeRegex"`
				Headers []headerMatcher `json:"headers"`
			} `json:"match"`
			Route *struct {
				Cluster          string `json:"cluster"`
				WeightedClusters *struct {
					Clusters []struct {
						Name   string `json:"name"`
						Weight int    `json:"weight"`
					} `json:"clusters"`
				} `json:"weightedClusters"`
			} `json:"route"`
			DirectResponse *struct {
				Status int `json:"status"`
			} `json:"directResponse"`
		} `json:"routes"`
	} `json:"virtualHosts"`
}

// headerMatcher is Envoy's route HeaderMatcher, as far as `mast why` evaluates it.
type headerMatcher struct {
	Name        string `json:"name"`
	StringMatch *struct {
		Exact     string `json:"exact"`
		Prefix    string `json:"prefix"`
		Suffix    string `json:"suffix"`
		SafeRegex *struct {
			Regex string `json:"regex"`
		} `json:"safeRegex"`
	} `json:"stringMatch"`
	PresentMatch bool `json:"presentMatch"`
	InvertMatch  bool `json:"invertMatch"`
}

type dumpEndpoints struct {
	ClusterName string `json:"clusterName"`
	Endpoints   []struct {
		LBEndpoints []struct {
			Endpoint struct {
				Address socketAddress `json:"address"`
			} `json:"endpoint"`
			HealthStatus string `json:"healthStatus"`
		} `json:"lbEndpoints"`
	} `json:"endpoints"`
}

// parseConfigDump reads Envoy's config_dump JSON (as mast-proxy and Envoy serve it).
func parseConfigDump(b []byte) (*configDump, error) {
	var top struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("config_dump: %w", err)
	}
	d := &configDump{raw: map[string]json.RawMessage{}}
	for _, raw := range top.Configs {
		var sec struct {
			Type     string `json:"@type"`
			Clusters []struct {
				Cluster dumpCluster `json:"cluster"`
			} `json:"dynamic_active_clusters"`
			Listeners []struct {
				ActiveState struct{ Listener dumpListener } `json:"active_state"`
			} `json:"dynamic_listeners"`
			Routes []struct {
				RouteConfig dumpRoute `json:"route_config"`
			} `json:"dynamic_route_configs"`
			Endpoints []struct {
				EndpointConfig dumpEndpoints `json:"endpoint_config"`
			} `json:"dynamic_endpoint_configs"`
		}
		if err := json.Unmarshal(raw, &sec); err != nil {
			return nil, fmt.Errorf("config_dump: %w", err)
		}
		d.raw[sec.Type] = raw
		switch sec.Type {
		case secretsDumpType:
			if err := d.parseSecretsSection(raw); err != nil {
				return nil, err
			}
		case bootstrapDumpType:
			if err := d.parseBootstrapSection(raw); err != nil {
				return nil, err
			}
		}
		for _, c := range sec.Clusters {
			d.Clusters = append(d.Clusters, c.Cluster)
		}
		for _, l := range sec.Listeners {
			d.Listeners = append(d.Listeners, l.ActiveState.Listener)
		}
		for _, r := range sec.Routes {
			d.Routes = append(d.Routes, r.RouteConfig)
		}
		for _, e := range sec.Endpoints {
			d.Endpoints = append(d.Endpoints, e.EndpointConfig)
		}
	}
	return d, nil
}

// istioCluster splits Istio's cluster name direction|port|subset|fqdn.
func istioCluster(name string) (direction, port, subset, fqdn string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return "", "", "", "", false
	}
	return parts[0], parts[1], parts[2], parts[3], true
}

// meshConfig is the configuration the proxy's mesh runs, when known (local
// mesh, or the Kubernetes cluster's custom resources): it names the DestinationRules and VirtualServices behind clusters and routes.
type meshConfig struct{ snap *config.Snapshot }

func (m meshConfig) destinationRule(fqdnHost string) string {
	if m.snap == nil {
		return "-"
	}
	for _, r := range m.snap.List(config.DestinationRule) {
		h := r.Spec.(*networking.DestinationRule).GetHost()
		if h == fqdnHost || fqdnOf(r.Namespace, h) == fqdnHost {
			return r.Name + "." + r.Namespace
		}
	}
	return "-"
}

func (m meshConfig) virtualService(fqdnHost string) string {
	if m.snap == nil || fqdnHost == "" {
		return "-"
	}
	for _, r := range m.snap.List(config.VirtualService) {
		for _, h := range r.Spec.(*networking.VirtualService).GetHosts() {
			if h == fqdnHost || fqdnOf(r.Namespace, h) == fqdnHost {
				return r.Name + "." + r.Namespace
			}
		}
	}
	return "-"
}

func fqdnOf(ns, host string) string {
	if strings.Contains(host, ".") || strings.HasPrefix(host, "*") {
		return host
	}
	return host + "." + ns + ".svc.cluster.local"
}

// proxyConfigFilter holds --fqdn, --port, --subset, --direction and --name.
type proxyConfigFilter struct {
	fqdn, subset, direction, name string
	port                          int
}

func (f proxyConfigFilter) cluster(name string) bool {
	dir, port, subset, fqdn, ok := istioCluster(name)
	if !ok {
		dir, port, subset, fqdn = "", "", "", name
	}
	return (f.fqdn == "" || strings.HasPrefix(fqdn, f.fqdn)) && (f.port == 0 || port == strconv.Itoa(f.port)) &&
		(f.subset == "" || subset == f.subset) && (f.direction == "" || strings.EqualFold(dir, f.direction))
}

func (f proxyConfigFilter) listener(l dumpListener) bool {
	return (f.port == 0 || l.Address.SocketAddress.PortValue == f.port) &&
		(f.direction == "" || strings.EqualFold(l.TrafficDirection, f.direction))
}

func writeClusters(w io.Writer, d *configDump, f proxyConfigFilter, mc meshConfig) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tDESTINATION RULE")
	cs := append([]dumpCluster(nil), d.Clusters...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	for _, c := range cs {
		if !f.cluster(c.Name) {
			continue
		}
		typ := c.Type
		if typ == "" && c.EDS != nil {
			typ = "EDS"
		}
		if typ == "" {
			typ = "STATIC"
		}
		dir, port, subset, fqdn, ok := istioCluster(c.Name)
		if !ok {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t-\n", c.Name, typ)
			continue
		}
		if subset == "" {
			subset = "-"
		}
		if fqdn == "" {
			fqdn = "inbound"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", fqdn, port, subset, dir, typ, mc.destinationRule(fqdn))
	}
	tw.Flush()
}

func writeListeners(w io.Writer, d *configDump, f proxyConfigFilter) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "ADDRESSES\tPORT\tMATCH\tDESTINATION")
	ls := append([]dumpListener(nil), d.Listeners...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	for _, l := range ls {
		if !f.listener(l) {
			continue
		}
		port := l.Address.SocketAddress.PortValue
		for _, fc := range l.FilterChains {
			match := "ALL"
			if m := fc.Match; m != nil {
				var parts []string
				if m.DestinationPort != 0 {
					parts = append(parts, fmt.Sprintf("Port: %d", m.DestinationPort))
				}
				if len(m.ServerNames) > 0 {
					parts = append(parts, "SNI: "+strings.Join(m.ServerNames, ","))
				}
				if m.TransportProtocol != "" {
					parts = append(parts, "Trans: "+m.TransportProtocol)
				}
				if len(m.ApplicationProtocols) > 0 {
					parts = append(parts, "App: "+strings.Join(m.ApplicationProtocols, ","))
				}
				if len(parts) > 0 {
					match = strings.Join(parts, "; ")
				}
			}
			dest := "-"
			for _, flt := range fc.Filters {
				switch {
				case flt.TypedConfig.RDS != nil:
					dest = "Route: " + flt.TypedConfig.RDS.RouteConfigName
				case flt.TypedConfig.RouteConfig != nil:
					dest = "Inline Route: " + flt.TypedConfig.RouteConfig.Name
				case flt.TypedConfig.Cluster != "":
					dest = "Cluster: " + flt.TypedConfig.Cluster
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", l.Address.SocketAddress.Address, port, match, dest)
		}
	}
	tw.Flush()
}

func writeRoutes(w io.Writer, d *configDump, f proxyConfigFilter, mc meshConfig) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVHOST NAME\tDOMAINS\tMATCH\tVIRTUAL SERVICE")
	rs := append([]dumpRoute(nil), d.Routes...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	for _, r := range rs {
		if f.name != "" && r.Name != f.name {
			continue
		}
		for _, vh := range r.VirtualHosts {
			host, _, _ := strings.Cut(vh.Name, ":")
			domains := "*"
			if len(vh.Domains) > 0 {
				domains = vh.Domains[len(vh.Domains)-1]
				if len(vh.Domains) > 1 {
					domains = strings.Split(vh.Domains[0], ":")[0]
					if len(vh.Domains) > 2 {
						domains += fmt.Sprintf(" + %d more...", len(vh.Domains)-1)
					}
				}
			}
			for _, rt := range vh.Routes {
				match := rt.Match.Prefix + "*"
				switch {
				case rt.Match.Path != "":
					match = rt.Match.Path
				case rt.Match.SafeRegex != nil:
					match = rt.Match.SafeRegex.Regex
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, vh.Name, domains, match, mc.virtualService(host))
			}
		}
	}
	tw.Flush()
}

func writeEndpoints(w io.Writer, d *configDump, f proxyConfigFilter) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER")
	es := append([]dumpEndpoints(nil), d.Endpoints...)
	sort.Slice(es, func(i, j int) bool { return es[i].ClusterName < es[j].ClusterName })
	for _, e := range es {
		if !f.cluster(e.ClusterName) {
			continue
		}
		for _, loc := range e.Endpoints {
			for _, lb := range loc.LBEndpoints {
				a := lb.Endpoint.Address.SocketAddress
				status := lb.HealthStatus
				if status == "" || status == "UNKNOWN" {
					status = "HEALTHY"
				}
				fmt.Fprintf(tw, "%s:%d\t%s\tOK\t%s\n", a.Address, a.PortValue, status, e.ClusterName)
			}
		}
	}
	tw.Flush()
}

// writeStructured prints v as JSON or YAML.
func writeStructured(stdout, stderr io.Writer, format string, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitFailure
	}
	switch format {
	case "json":
		fmt.Fprintln(stdout, string(b))
	case "yaml":
		var generic any
		json.Unmarshal(b, &generic)
		y, _ := yaml.Marshal(generic)
		stdout.Write(y)
	default:
		fmt.Fprintf(stderr, "unknown output format %q (want table, json or yaml)\n", format)
		return ExitUsage
	}
	return ExitOK
}

var proxyConfigKinds = []string{"cluster", "listener", "route", "endpoint", "secret", "bootstrap", "log", "all"}

// ProxyConfig runs `mast proxy-config KIND PROXY`.
func ProxyConfig(args []string, stdout, stderr io.Writer) int {
	c := newCommand("proxy-config", "cluster|listener|route|endpoint|secret|bootstrap|log|all PROXY [flags]",
		"Shows the configuration a proxy has accepted (from its admin /config_dump), as istioctl proxy-config\n"+
			"does: tables with Istio's columns, or the raw sections with -o json|yaml. `secret` lists the SDS secrets\n"+
			"the proxy holds (workload certificate, trust bundle, gateway credentials; private keys are redacted),\n"+
			"`bootstrap` its start-up configuration (node, xDS server, admin). PROXY is a proxy of the local\n"+
			"mesh (productpage-v1, istio-ingressgateway, or its node ID), or any name with --admin-address.\n"+
			"On Kubernetes (--kubeconfig or --context, or a kubeconfig when no local mesh runs) PROXY is a pod,\n"+
			"POD or POD.NAMESPACE (or -n): the CLI reaches its loopback-only admin port through the API server's\n"+
			"port-forward, as kubectl port-forward does, and needs the same rights (get pods, create pods/portforward).\n"+
			"`log` shows the proxy's log level, or sets it with --level.",
		"mast proxy-config cluster productpage-v1",
		"mast proxy-config cluster productpage-v1 --fqdn reviews.default.svc.cluster.local --subset v2",
		"mast proxy-config listener istio-ingressgateway --port 8080",
		"mast proxy-config route istio-ingressgateway -o json",
		"mast proxy-config endpoint reviews-v1 --port 9080",
		"mast proxy-config secret istio-ingressgateway",
		"mast proxy-config bootstrap productpage-v1 -o yaml",
		"mast proxy-config log productpage-v1 --level debug",
		"mast proxy-config all productpage-v1 -o yaml",
		"mast proxy-config cluster productpage-v1-6b746f74dc-9stvs.bookinfo --kubeconfig ~/.kube/config")
	var m meshFlags
	m.register(c, true)
	var f proxyConfigFilter
	c.StringVar(&f.fqdn, "fqdn", "", "only clusters and endpoints of this service FQDN")
	c.IntVar(&f.port, "port", 0, "only this port")
	c.StringVar(&f.subset, "subset", "", "only clusters and endpoints of this subset")
	c.StringVar(&f.direction, "direction", "", "only inbound or outbound")
	c.StringVar(&f.name, "name", "", "only the route configuration or secret of this name")
	output := c.String("o", "table", "output format: table, json or yaml")
	level := c.String("level", "", "with `log`: set the proxy's log level (debug, info, warning, error)")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) != 2 {
		return c.usageError(stderr, "want a kind (%s) and a proxy", strings.Join(proxyConfigKinds, ", "))
	}
	kind, name := c.args[0], c.args[1]
	known := false
	for _, k := range proxyConfigKinds {
		known = known || k == kind || k+"s" == kind
	}
	if !known {
		return c.usageError(stderr, "unknown kind %q (want %s)", kind, strings.Join(proxyConfigKinds, ", "))
	}
	kind = strings.TrimSuffix(kind, "s")
	p, err := m.findProxy(name)
	defer m.close()
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-config: %v\n", err)
		return ExitFailure
	}
	switch kind {
	case "log":
		return proxyLog(p, *level, stdout, stderr)
	}
	b, err := httpGet("http://" + p.Admin + "/config_dump")
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-config: %s's admin: %v\n", p.Name, err)
		return ExitFailure
	}
	d, err := parseConfigDump(b)
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-config: %s: %v\n", p.Name, err)
		return ExitFailure
	}
	var mc meshConfig
	switch {
	case m.kubeRC != nil:
		// The cluster's Istio resources, read as mastd reads them.
		if cc, err := readConfig(context.Background(), m.kubeRC); err == nil {
			mc.snap = cc.snap
		}
	case m.adminAddress == "":
		if st, err := localmesh.ReadRunState(m.stateDir); err == nil {
			rs, _ := config.LoadPaths(st.ConfigDir)
			mc.snap = config.NewSnapshot(rs)
		}
	}
	if *output != "table" {
		v, err := sectionsFor(d, kind, f)
		if err != nil {
			fmt.Fprintf(stderr, "mast proxy-config: %s: %v\n", p.Name, err)
			return ExitFailure
		}
		return writeStructured(stdout, stderr, *output, v)
	}
	if (kind == "secret" && d.raw[secretsDumpType] == nil) || (kind == "bootstrap" && d.raw[bootstrapDumpType] == nil) {
		fmt.Fprintf(stderr, "mast proxy-config %s: %s's /config_dump has no %s section (a mast-proxy older than this mast?)\n", kind, p.Name, kind)
		return ExitFailure
	}
	writeProxyConfig(stdout, d, kind, f, mc, time.Now())
	return ExitOK
}

// writeProxyConfig prints kind's table; now judges certificates' validity.
func writeProxyConfig(w io.Writer, d *configDump, kind string, f proxyConfigFilter, mc meshConfig, now time.Time) {
	switch kind {
	case "cluster":
		writeClusters(w, d, f, mc)
	case "listener":
		writeListeners(w, d, f)
	case "route":
		writeRoutes(w, d, f, mc)
	case "endpoint":
		writeEndpoints(w, d, f)
	case "secret":
		writeSecrets(w, d, f, now)
	case "bootstrap":
		writeBootstrap(w, d)
	case "all":
		writeBootstrap(w, d)
		fmt.Fprintln(w)
		writeClusters(w, d, f, mc)
		fmt.Fprintln(w)
		writeListeners(w, d, f)
		fmt.Fprintln(w)
		writeRoutes(w, d, f, mc)
		fmt.Fprintln(w)
		writeEndpoints(w, d, f)
		fmt.Fprintln(w)
		writeSecrets(w, d, f, now)
	}
}

// sectionsFor returns the config_dump sections of a kind, for -o json|yaml,
// holding only the entries the filters select (istioctl filters its JSON
// and YAML output as it filters its tables).
func sectionsFor(d *configDump, kind string, f proxyConfigFilter) (any, error) {
	types := map[string]string{
		"cluster":   "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
		"listener":  "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
		"route":     "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
		"endpoint":  "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
		"secret":    secretsDumpType,
		"bootstrap": bootstrapDumpType,
	}
	if kind != "all" {
		return filterSection(d.raw[types[kind]], kind, f)
	}
	var out []json.RawMessage
	for _, k := range []string{"bootstrap", "cluster", "listener", "route", "endpoint", "secret"} {
		if r, ok := d.raw[types[k]]; ok {
			fr, err := filterSection(r, k, f)
			if err != nil {
				return nil, err
			}
			out = append(out, fr)
		}
	}
	return map[string]any{"configs": out}, nil
}

// filterSection keeps the entries of a config_dump section that f selects;
// without filters the section is returned as the proxy wrote it.
func filterSection(raw json.RawMessage, kind string, f proxyConfigFilter) (json.RawMessage, error) {
	if raw == nil || f == (proxyConfigFilter{}) {
		return raw, nil
	}
	var sec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &sec); err != nil {
		return nil, fmt.Errorf("config_dump: %w", err)
	}
	for key, list := range sec {
		if key == "@type" || !strings.HasPrefix(key, "dynamic_") && !strings.HasPrefix(key, "static_") {
			continue
		}
		var entries []json.RawMessage
		if json.Unmarshal(list, &entries) != nil {
			continue // not a list (a version)
		}
		kept := []json.RawMessage{}
		for _, e := range entries {
			if keepEntry(e, kind, f) {
				kept = append(kept, e)
			}
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return nil, err
		}
		sec[key] = b
	}
	return json.Marshal(sec)
}

// keepEntry applies the filters of kind to one entry of a section list, as
// the table of that kind applies them.
func keepEntry(e json.RawMessage, kind string, f proxyConfigFilter) bool {
	var v struct {
		Cluster     struct{ Name string }            `json:"cluster"`
		ActiveState struct{ Listener *dumpListener } `json:"active_state"`
		Listener    *dumpListener                    `json:"listener"`
		RouteConfig struct{ Name string }            `json:"route_config"`
		Endpoints   struct {
			ClusterName  string `json:"clusterName"`
			ClusterName2 string `json:"cluster_name"`
		} `json:"endpoint_config"`
		Name string `json:"name"`
	}
	if json.Unmarshal(e, &v) != nil {
		return true
	}
	switch kind {
	case "cluster":
		return f.cluster(v.Cluster.Name)
	case "listener":
		l := v.ActiveState.Listener
		if l == nil {
			l = v.Listener
		}
		return l == nil || f.listener(*l)
	case "route":
		return f.name == "" || v.RouteConfig.Name == f.name
	case "endpoint":
		return f.cluster(v.Endpoints.ClusterName + v.Endpoints.ClusterName2)
	case "secret":
		return f.name == "" || v.Name == f.name
	}
	return true
}

func proxyLog(p proxy, level string, stdout, stderr io.Writer) int {
	url := "http://" + p.Admin + "/logging"
	var b []byte
	var err error
	if level != "" {
		b, err = httpPost(url + "?level=" + level)
	} else {
		b, err = httpGet(url)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mast proxy-config log: %s: %v\n", p.Name, err)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "%s:\n%s", p.Name, b)
	return ExitOK
}
