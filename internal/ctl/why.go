package ctl

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/localmesh"
	"github.com/mast-mesh/mast/internal/pilot/ads"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// headerList is a repeatable -H 'Name: value' flag.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// finding is what `mast why` concludes at one hop.
type finding struct {
	Hop      string `json:"hop"`
	Flag     string `json:"flag,omitempty"`    // Envoy's response flag: NR, NC, UH, ...
	Details  string `json:"details,omitempty"` // Envoy's response code details, from the access log
	Cause    string `json:"cause"`
	Resource string `json:"resource,omitempty"` // Kind namespace/name
	Field    string `json:"field,omitempty"`
	// RequestID is the x-request-id of the access log entry behind the
	// finding; Count how many requests of a time window had it.
	RequestID string `json:"requestID,omitempty"`
	Count     int    `json:"count,omitempty"`
}

// Why runs `mast why URL`, `mast why --request-id ID` and `mast why --since D`.
func Why(args []string, stdout, stderr io.Writer) int {
	c := newCommand("why", "URL [-H 'Name: value']... [--from PROXY] [flags] | --request-id ID | --since DURATION",
		"Sends the request, then follows it hop by hop through the local mesh: every proxy's access log entry\n"+
			"for it (response code, flags, response code details, upstream), and the configuration as each proxy\n"+
			"holds it (config dumps, mastd's syncz, the Istio resources). It names the hop that fails, the cause and\n"+
			"the resource and field at fault: authorization denied (the AuthorizationPolicy rule), a refused JWT\n"+
			"(the RequestAuthentication), a timeout (UT: the VirtualService timeout), a circuit breaker (UO: the\n"+
			"DestinationRule connectionPool limits), a rate limit (RL: the RateLimit), fault injection (FI/DI),\n"+
			"connection failures and exhausted retries (UF/URX: the endpoint and why), no route (NR), a subset no\n"+
			"DestinationRule defines or whose labels select no workload, no endpoints (UH), an unknown host, a\n"+
			"configuration the proxy rejected (NACK), and an mTLS mismatch between a PeerAuthentication and a\n"+
			"DestinationRule. The URL enters at the ingress gateway, or, with --from, at that workload's sidecar.\n"+
			"Instead of a URL, --request-id explains a request that already happened (its x-request-id, as the\n"+
			"access logs show it) and --since every failed request of the last DURATION.\n\n"+
			"On Kubernetes (--kubeconfig or --context), it reads the sidecars' access logs as kubectl logs does\n"+
			"(container istio-proxy, through the API server; MeshConfig accessLogFile /dev/stdout) and the Istio\n"+
			"resources from the API server: give --request-id or --since (send the request yourself with an\n"+
			"x-request-id header, or find one in the logs).",
		"mast why http://127.0.0.1:8080/productpage",
		"mast why http://reviews:9080/reviews/0 --from productpage-v1 -H 'end-user: jason'",
		"mast why -o json http://127.0.0.1:8080/api/v1/products/0",
		"mast why --request-id 0c6e1f0a-2d5b-4c1e-9f7a-1b2c3d4e5f60",
		"mast why --since 5m",
		"mast why --kubeconfig ~/.kube/config -n bookinfo --request-id 0c6e1f0a-2d5b-4c1e-9f7a-1b2c3d4e5f60")
	var m meshFlags
	m.register(c, false)
	kf := &m.kube
	namespace := c.String("n", "", "on Kubernetes: read only this namespace's sidecars (default: every namespace)")
	var hdrs headerList
	c.Var(&hdrs, "H", "a request header 'Name: value' (repeatable)")
	method := c.String("X", "GET", "the request method")
	from := c.String("from", "", "send the request from this workload's sidecar (its outbound listener) instead of the gateway")
	output := c.String("o", "text", "output format: text or json")
	noSend := c.Bool("no-send", false, "do not send the request; only follow the configuration")
	requestID := c.String("request-id", "", "explain the request with this x-request-id from the proxies' access logs (no URL)")
	since := c.Duration("since", 0, "explain every request that failed in this last duration, from the access logs (no URL)")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	fromLogs := *requestID != "" || *since > 0
	switch {
	case fromLogs && len(c.args) != 0:
		return c.usageError(stderr, "give a URL, or --request-id / --since, not both")
	case !fromLogs && len(c.args) != 1:
		return c.usageError(stderr, "want one URL (or --request-id ID, or --since DURATION)")
	case kf.named() && !fromLogs:
		return c.usageError(stderr, "on Kubernetes, send the request with an x-request-id header and give --request-id ID (or use --since DURATION)")
	}
	if kf.named() {
		defer m.step("Reading the sidecars' access logs through the API server")()
		w, err := kubeWhy(context.Background(), *kf, *namespace, *since)
		if err != nil {
			fmt.Fprintf(stderr, "mast why: %v\n", err)
			return ExitFailure
		}
		return w.fromLogs(*requestID, *since, *output, stdout)
	}
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "mast why: %v\n", err)
		return ExitFailure
	}
	header := http.Header{}
	for _, h := range hdrs {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return c.usageError(stderr, "-H %q: want 'Name: value'", h)
		}
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	w := &whyRun{m: m, st: st, method: *method, header: header,
		logs:  func(keep func(*accesslog.Entry) bool) []hopEntry { return readAccessLogs(st, keep) },
		where: "since mast up started"}
	rs, _ := config.LoadPaths(st.ConfigDir)
	w.snap = config.NewSnapshot(rs)
	w.vs = mergeVS(w.snap)
	if fromLogs {
		return w.fromLogs(*requestID, *since, *output, stdout)
	}
	u, err := url.Parse(c.args[0])
	if err != nil || u.Host == "" {
		return c.usageError(stderr, "%q is not an absolute URL", c.args[0])
	}
	w.u = u
	if b, err := httpGet("http://" + st.MonitoringAddr + "/debug/syncz"); err == nil {
		json.Unmarshal(b, &w.syncz)
	}
	var entry proxy
	if *from != "" {
		if entry, err = m.findProxy(*from); err != nil {
			fmt.Fprintf(stderr, "mast why: %v\n", err)
			return ExitFailure
		}
	} else if entry, err = m.findProxy("istio-ingressgateway"); err != nil {
		fmt.Fprintf(stderr, "mast why: %v\n", err)
		return ExitFailure
	}
	var result string
	var entries []hopEntry
	id := header.Get("x-request-id")
	if !*noSend {
		if id == "" {
			id = newRequestID()
			header.Set("x-request-id", id)
		}
		agent := "mast-why/" + id
		header.Set("User-Agent", agent)
		done := m.step("Sending %s %s", *method, c.args[0])
		result = w.send(entry, *from != "")
		done()
		done = m.step("Reading the proxies' access logs for request %s", id)
		entries = awaitEntries(st, id, agent, 4*time.Second)
		done()
	}
	findings := w.follow(entry, *from != "")
	findings = w.withLogFindings(findings, entries)
	if *output == "json" {
		return writeStructured(stdout, stderr, "json", map[string]any{"request": c.args[0], "requestID": id, "result": result,
			"hops": entries, "findings": findings})
	}
	fmt.Fprintf(stdout, "%s %s", *method, c.args[0])
	if *from != "" {
		fmt.Fprintf(stdout, " from %s", *from)
	}
	fmt.Fprintln(stdout)
	if result != "" {
		fmt.Fprintf(stdout, "  answered: %s\n", result)
	}
	if id != "" {
		fmt.Fprintf(stdout, "  request id: %s\n", id)
		if len(entries) > 0 && entries[0].RequestID != id {
			// A gateway replaces an outside request's x-request-id.
			fmt.Fprintf(stdout, "  request id in the mesh: %s (the gateway's)\n", entries[0].RequestID)
		}
	}
	for _, e := range entries {
		fmt.Fprintf(stdout, "  logged by %s\n", describeEntry(&e))
	}
	for _, f := range w.trace {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	if len(findings) == 0 {
		fmt.Fprintln(stdout, "No cause found: no proxy logged a failure, and every hop routes the request to a cluster with endpoints.")
		return ExitOK
	}
	printFindings(stdout, findings)
	return ExitOK
}

func printFindings(stdout io.Writer, findings []finding) {
	for _, f := range findings {
		fmt.Fprintf(stdout, "\nHop:      %s\n", f.Hop)
		if f.Flag != "" {
			fmt.Fprintf(stdout, "Flag:     %s\n", f.Flag)
		}
		if f.Details != "" {
			fmt.Fprintf(stdout, "Details:  %s\n", f.Details)
		}
		fmt.Fprintf(stdout, "Cause:    %s\n", f.Cause)
		if f.Resource != "" {
			fmt.Fprintf(stdout, "Resource: %s\n", f.Resource)
		}
		if f.Field != "" {
			fmt.Fprintf(stdout, "Field:    %s\n", f.Field)
		}
		if f.Count > 1 {
			fmt.Fprintf(stdout, "Requests: %d (e.g. %s)\n", f.Count, f.RequestID)
		} else if f.RequestID != "" {
			fmt.Fprintf(stdout, "Request:  %s\n", f.RequestID)
		}
	}
}

// withLogFindings adds a finding for every hop that logged a failure of its
// own, unless the configuration walk already explained that flag.
func (w *whyRun) withLogFindings(findings []finding, entries []hopEntry) []finding {
	for i := range entries {
		e := &entries[i]
		if !failed(e) {
			continue
		}
		lf := w.diagnose(e)
		dup := false
		for _, f := range findings {
			dup = dup || f.Flag != "" && strings.Contains(","+lf.Flag+",", ","+f.Flag+",")
		}
		if !dup {
			findings = append(findings, lf)
		}
	}
	return findings
}

// fromLogs explains requests from the access logs alone: one request by id,
// or every failed request of a time window, grouped by cause.
func (w *whyRun) fromLogs(id string, since time.Duration, output string, stdout io.Writer) int {
	var entries []hopEntry
	if id != "" {
		entries = w.logs(func(e *accesslog.Entry) bool { return e.RequestID == id })
	} else {
		after := time.Now().Add(-since)
		entries = w.logs(func(e *accesslog.Entry) bool { return e.Start.After(after) })
	}
	var findings []finding
	index := map[string]int{}
	failedRequests := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		if !failed(e) {
			continue
		}
		failedRequests[e.RequestID] = true
		f := w.diagnose(e)
		key := f.Hop + "|" + f.Flag + "|" + f.Details + "|" + f.Resource + "|" + f.Field
		if j, ok := index[key]; ok {
			findings[j].Count++
			continue
		}
		f.Count = 1
		index[key] = len(findings)
		findings = append(findings, f)
	}
	if output == "json" {
		return writeStructured(stdout, io.Discard, "json", map[string]any{"requestID": id, "since": since.String(), "hops": entries, "findings": findings, "notes": w.notes})
	}
	for _, n := range w.notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if id != "" {
		fmt.Fprintf(stdout, "request id %s\n", id)
		if len(entries) == 0 {
			fmt.Fprintf(stdout, "No proxy's access log has this request id (the logs read hold what the proxies wrote %s).\n", w.where)
			return ExitFailure
		}
		for _, e := range entries {
			fmt.Fprintf(stdout, "  logged by %s\n", describeEntry(&e))
		}
	} else {
		fmt.Fprintf(stdout, "%d requests logged in the last %s, %d of them failed\n", countRequests(entries), since, len(failedRequests))
	}
	if len(findings) == 0 {
		fmt.Fprintln(stdout, "No proxy logged a failure.")
		return ExitOK
	}
	printFindings(stdout, findings)
	return ExitOK
}

func countRequests(entries []hopEntry) int {
	ids := map[string]bool{}
	n := 0
	for _, e := range entries {
		if e.RequestID == "" {
			n++
		} else if !ids[e.RequestID] {
			ids[e.RequestID] = true
			n++
		}
	}
	return n
}

// newRequestID is a random UUID (version 4), as proxies generate them.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

type whyRun struct {
	m  meshFlags
	st *localmesh.RunState
	// logs reads the proxies' access logs: the entries keep accepts,
	// oldest first.
	logs   func(keep func(*accesslog.Entry) bool) []hopEntry
	where  string   // which part of the logs logs reads, for messages
	notes  []string // what could not be read
	u      *url.URL
	method string
	header http.Header
	snap   *config.Snapshot
	vs     mergedVS // the VirtualServices with delegation merged
	syncz  []ads.ProxyStatus
	trace  []string
}

// send makes the request, through the entry sidecar's outbound HTTP proxy
// when it comes from a workload, and describes the answer.
func (w *whyRun) send(entry proxy, fromSidecar bool) string {
	tr := &http.Transport{}
	if fromSidecar {
		host, _, _ := strings.Cut(entry.Admin, ":")
		pu, _ := url.Parse("http://" + host + ":15001")
		tr.Proxy = http.ProxyURL(pu)
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(w.method, w.u.String(), nil)
	if err != nil {
		return err.Error()
	}
	req.Header = w.header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	out := resp.Status
	if f := resp.Header.Get("x-mast-response-flags"); f != "" {
		out += " (response flag " + f + ")"
	}
	if resp.StatusCode >= 400 && len(body) > 0 {
		out += ": " + strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[0])
	}
	return out
}

// follow walks the request through the proxies' configuration.
func (w *whyRun) follow(p proxy, fromSidecar bool) []finding {
	var out []finding
	host := w.u.Host
	port := w.u.Port()
	if port == "" {
		port = "80"
	}
	for hop := 0; hop < 4; hop++ {
		out = append(out, w.nacks(p)...)
		b, err := httpGet("http://" + p.Admin + "/config_dump")
		if err != nil {
			return append(out, finding{Hop: p.Name, Cause: "its admin interface does not answer: " + err.Error()})
		}
		d, err := parseConfigDump(b)
		if err != nil {
			return append(out, finding{Hop: p.Name, Cause: err.Error()})
		}
		routeName := ""
		if fromSidecar {
			routeName = "http_proxy"
		} else {
			for _, l := range d.Listeners {
				if strconv.Itoa(l.Address.SocketAddress.PortValue) != port {
					continue
				}
				for _, fc := range l.FilterChains {
					for _, f := range fc.Filters {
						if f.TypedConfig.RDS != nil {
							routeName = f.TypedConfig.RDS.RouteConfigName
						}
					}
				}
			}
			if routeName == "" {
				return append(out, finding{Hop: p.Name, Cause: fmt.Sprintf("no listener on port %s: no Gateway server listens there", port),
					Resource: w.gatewayFor(port), Field: "spec.servers[].port.number"})
			}
		}
		w.trace = append(w.trace, fmt.Sprintf("%s: route configuration %q", p.Name, routeName))
		cluster, f := w.route(p, d, routeName, host, port)
		if f != nil {
			return append(out, *f)
		}
		w.trace = append(w.trace, fmt.Sprintf("%s: routes to cluster %s", p.Name, cluster))
		f = w.cluster(p, d, cluster)
		if f != nil {
			return append(out, *f)
		}
		// The next hop: the sidecar of the first endpoint's workload.
		next, ok := w.endpointProxy(d, cluster)
		if !ok {
			return out
		}
		if f := w.mtls(p, next, cluster); f != nil {
			return append(out, *f)
		}
		w.trace = append(w.trace, fmt.Sprintf("%s: delivers to %s's sidecar, which passes it to the application", p.Name, next.Name))
		out = append(out, w.nacks(next)...)
		return out
	}
	return out
}

// nacks reports the configuration types whose latest response the proxy
// rejected. An older NACK stays on record (LastNACK) after a later version
// was accepted, and a version in flight is only STALE: neither is a cause.
func (w *whyRun) nacks(p proxy) []finding {
	var out []finding
	for _, s := range w.syncz {
		if s.ID != p.ID {
			continue
		}
		for _, t := range s.Types {
			if t.State == ads.StateNACKed {
				out = append(out, finding{Hop: p.Name, Flag: "NACK",
					Cause:    fmt.Sprintf("the proxy rejected its %s configuration and runs its last good one: %s", shortType(t.TypeURL), t.LastNACK),
					Resource: nackResource(t.LastNACK, w.vs)})
			}
		}
	}
	return out
}

func shortType(u string) string {
	for _, c := range xdsColumns {
		if c.typeURL == u {
			return c.name
		}
	}
	return u
}

var quotedRE = regexp.MustCompile(`"([^"]+)"`)

// nackFields maps an Envoy field a proxy refuses to the VirtualService field
// that produces it.
var nackFields = []struct {
	envoy, istio string
	has          func(*networking.HTTPRoute) bool
}{
	{"command operator", "headers", func(h *networking.HTTPRoute) bool { return h.GetHeaders() != nil }},
	{"cors", "corsPolicy", func(h *networking.HTTPRoute) bool { return h.GetCorsPolicy() != nil }},
	{"retry_policy", "retries", func(h *networking.HTTPRoute) bool { return h.GetRetries() != nil }},
}

// nackResource names the Istio resource (and field) a NACK message points
// at: a VirtualService using the refused feature, or one it quotes by name.
func nackResource(msg string, vs mergedVS) string {
	for _, nf := range nackFields {
		if !strings.Contains(msg, nf.envoy) {
			continue
		}
		for _, r := range vs.list {
			for i, h := range r.Spec.(*networking.VirtualService).GetHttp() {
				if nf.has(h) {
					res, field := vs.at(r, i, nf.istio)
					return res + ", field " + field
				}
			}
		}
	}
	for _, m := range quotedRE.FindAllStringSubmatch(msg, -1) {
		for _, r := range vs.snap.All() {
			if strings.Contains(m[1], r.Name) && (r.Kind == config.VirtualService || r.Kind == config.DestinationRule || r.Kind == config.Gateway) {
				return r.Kind.Kind + " " + r.Namespace + "/" + r.Name
			}
		}
	}
	return ""
}

func (w *whyRun) gatewayFor(port string) string {
	for _, r := range w.snap.List(config.Gateway) {
		return "Gateway " + r.Namespace + "/" + r.Name
	}
	return ""
}

// vsFor returns the VirtualService whose hosts include host (a gateway
// VirtualService with "*" too), or nil.
func (w *whyRun) vsFor(host string, gateway bool) *config.Resource {
	short, _, _ := strings.Cut(host, ".")
	for _, r := range w.vs.list {
		vs := r.Spec.(*networking.VirtualService)
		bound := len(vs.GetGateways()) > 0 && !(len(vs.GetGateways()) == 1 && vs.GetGateways()[0] == "mesh")
		if bound != gateway {
			continue
		}
		for _, h := range vs.GetHosts() {
			if h == host || h == short || h == "*" || fqdnOf(r.Namespace, h) == host {
				r := r
				return &r
			}
		}
	}
	return nil
}

// cluster checks that the proxy has the cluster and endpoints for it.
func (w *whyRun) cluster(p proxy, d *configDump, name string) *finding {
	_, _, subset, fqdn, _ := istioCluster(name)
	found := false
	for _, c := range d.Clusters {
		found = found || c.Name == name
	}
	if !found {
		f := &finding{Hop: p.Name, Flag: "NC", Cause: fmt.Sprintf("the route points at cluster %s, which the proxy does not have", name)}
		if subset != "" {
			f.Cause = fmt.Sprintf("the route sends to subset %q of %s, which no DestinationRule defines", subset, fqdn)
			if vs := w.vsFor(fqdn, strings.HasPrefix(p.ID, "router~")); vs != nil {
				f.Resource, f.Field = "VirtualService "+vs.Namespace+"/"+vs.Name, "spec.http[].route[].destination.subset"
				for i, h := range vs.Spec.(*networking.VirtualService).GetHttp() {
					for j, d := range h.GetRoute() {
						if d.GetDestination().GetSubset() == subset && fqdnOf(vs.Namespace, d.GetDestination().GetHost()) == fqdn {
							f.Resource, f.Field = w.vs.at(*vs, i, fmt.Sprintf("route[%d].destination.subset", j))
						}
					}
				}
			}
		}
		return f
	}
	for _, e := range d.Endpoints {
		if e.ClusterName != name {
			continue
		}
		for _, loc := range e.Endpoints {
			if len(loc.LBEndpoints) > 0 {
				return nil
			}
		}
	}
	f := &finding{Hop: p.Name, Flag: "UH", Cause: fmt.Sprintf("cluster %s has no endpoints: no healthy upstream", name)}
	if subset != "" {
		for _, r := range w.snap.List(config.DestinationRule) {
			dr := r.Spec.(*networking.DestinationRule)
			if fqdnOf(r.Namespace, dr.GetHost()) != fqdn {
				continue
			}
			for i, ss := range dr.GetSubsets() {
				if ss.GetName() == subset {
					f.Cause = fmt.Sprintf("subset %q of %s selects no workload (labels %v match no WorkloadEntry): no healthy upstream", subset, fqdn, ss.GetLabels())
					f.Resource, f.Field = "DestinationRule "+r.Namespace+"/"+r.Name, fmt.Sprintf("spec.subsets[%d].labels", i)
				}
			}
		}
	} else {
		w.noWorkloads(f, fqdn)
	}
	return f
}

// noWorkloads explains a service without endpoints by its ServiceEntry:
// the workloads it selects (none registered: stopped, or their
// WorkloadEntries gone) or its empty endpoint list.
func (w *whyRun) noWorkloads(f *finding, fqdn string) {
	f.Cause += "; no WorkloadEntry (or ServiceEntry endpoint) backs this service"
	for _, r := range w.snap.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		if !slices.ContainsFunc(se.GetHosts(), func(h string) bool { return fqdnOf(r.Namespace, h) == fqdn }) {
			continue
		}
		f.Resource = "ServiceEntry " + r.Namespace + "/" + r.Name
		if sel := se.GetWorkloadSelector().GetLabels(); len(sel) > 0 {
			for _, we := range w.snap.List(config.WorkloadEntry) {
				if we.Namespace == r.Namespace && selects(sel, we.Spec.(*networking.WorkloadEntry).GetLabels()) {
					// Registered, yet without a healthy endpoint at the proxy.
					f.Cause = fmt.Sprintf("no healthy upstream: the proxy had no healthy endpoint of %s, though WorkloadEntry %s/%s is registered for it", fqdn, we.Namespace, we.Name)
					return
				}
			}
			f.Cause = fmt.Sprintf("no healthy upstream: %s has no endpoints: no workload with labels %v is registered "+
				"(its WorkloadEntry is gone or it was stopped) in namespace %s", fqdn, sel, r.Namespace)
			f.Field = "spec.workloadSelector.labels"
			return
		}
		f.Cause = fmt.Sprintf("no healthy upstream: %s has no endpoints: its ServiceEntry lists none", fqdn)
		f.Field = "spec.endpoints"
		return
	}
	f.Resource = "ServiceEntry for " + fqdn
}

// endpointProxy finds the local mesh proxy in front of the cluster's first endpoint.
func (w *whyRun) endpointProxy(d *configDump, cluster string) (proxy, bool) {
	for _, e := range d.Endpoints {
		if e.ClusterName != cluster {
			continue
		}
		for _, loc := range e.Endpoints {
			for _, lb := range loc.LBEndpoints {
				ip := lb.Endpoint.Address.SocketAddress.Address
				for _, p := range w.m.localProxies() {
					if strings.HasPrefix(p.ID, "sidecar~") && strings.HasPrefix(p.Admin, ip+":") {
						return p, true
					}
				}
			}
		}
	}
	return proxy{}, false
}

// mtls checks the destination's PeerAuthentication against the client's DestinationRule TLS mode.
func (w *whyRun) mtls(from, to proxy, cluster string) *finding {
	_, _, _, fqdn, _ := istioCluster(cluster)
	ns := "default"
	if parts := strings.Split(to.ID, "~"); len(parts) == 4 {
		if _, n, ok := strings.Cut(parts[2], "."); ok {
			ns = n
		}
	}
	strict := ""
	for _, r := range w.snap.List(config.PeerAuthentication) {
		pa := r.Spec.(*security.PeerAuthentication)
		if (r.Namespace == ns || r.Namespace == "istio-system") && pa.GetMtls().GetMode() == security.PeerAuthentication_MutualTLS_STRICT {
			strict = "PeerAuthentication " + r.Namespace + "/" + r.Name
		}
	}
	if strict == "" {
		return nil
	}
	for _, r := range w.snap.List(config.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		if fqdnOf(r.Namespace, dr.GetHost()) != fqdn {
			continue
		}
		if mode := dr.GetTrafficPolicy().GetTls().GetMode(); mode == networking.ClientTLSSettings_DISABLE || mode == networking.ClientTLSSettings_SIMPLE {
			return &finding{Hop: from.Name + " -> " + to.Name, Flag: "UC",
				Cause: fmt.Sprintf("mTLS mismatch: %s requires mutual TLS at %s, but DestinationRule %s/%s makes %s send %s to %s",
					strict, to.Name, r.Namespace, r.Name, from.Name, mode, fqdn),
				Resource: "DestinationRule " + r.Namespace + "/" + r.Name, Field: "spec.trafficPolicy.tls.mode"}
		}
	}
	return nil
}

// kubeWhy prepares `mast why` on Kubernetes: the sidecars' logs through the
// API server, and the Istio resources from it.
func kubeWhy(ctx context.Context, kf kubeFlags, namespace string, since time.Duration) (*whyRun, error) {
	rc, err := kf.restConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	cfg, err := readConfig(ctx, rc)
	if err != nil {
		return nil, err
	}
	kl := &kubeLogs{client: client, namespace: namespace, since: since}
	w := &whyRun{snap: cfg.snap, vs: mergeVS(cfg.snap), where: fmt.Sprintf("in their newest %d lines", podLogTail)}
	if since > 0 {
		w.where = "in the window"
	}
	w.logs = func(keep func(*accesslog.Entry) bool) []hopEntry {
		entries, failed, err := kl.read(ctx, keep)
		if err != nil {
			w.notes = append(w.notes, err.Error())
		}
		if n := kubeNote(failed); n != "" {
			w.notes = append(w.notes, n)
		}
		return entries
	}
	return w, nil
}
