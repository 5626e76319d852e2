package httpproxy

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// TestHeaderCommandOperators: request and response header values with
// Envoy's command operators are computed per request; an operator without
// a value adds no header.
func TestHeaderCommandOperators(t *testing.T) {
	backend, seen := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("x-version", "v7") })
	p := startTestProxy(t, backend, proxyOpts{routes: func(rc *routev3.RouteConfiguration) {
		vh := rc.VirtualHosts[0]
		add := func(k, v string) *corev3.HeaderValueOption {
			return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
		}
		vh.RequestHeadersToAdd = []*corev3.HeaderValueOption{add("x-client", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
			add("x-user", "user-%REQ(x-name)%"), add("x-proto", "%PROTOCOL%"), add("x-absent", "%REQ(x-nothing)%"), add("x-pct", "100%%")}
		vh.ResponseHeadersToAdd = []*corev3.HeaderValueOption{add("x-upstream", "%UPSTREAM_REMOTE_ADDRESS%"),
			add("x-seen-version", "%RESP(x-version)%/%RESPONSE_CODE%")}
	}})
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/", nil)
	req.Header.Set("x-name", "jason")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("x-upstream"); got != backend {
		t.Errorf("x-upstream = %q, want %q", got, backend)
	}
	if got := resp.Header.Get("x-seen-version"); got != "v7/200" {
		t.Errorf("x-seen-version = %q, want v7/200", got)
	}
	r := <-seen
	for k, want := range map[string]string{"x-client": "127.0.0.1", "x-user": "user-jason", "x-proto": "HTTP/1.1", "x-pct": "100%"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("request %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := r.header["X-Absent"]; ok {
		t.Errorf("x-absent added although its operator has no value")
	}
}

// TestHeaderOpsEachLevel: each level's operations apply when it is the
// only one with any, whatever kind they are (weighted cluster: request
// add; route: request remove; virtual host: response add; route
// configuration: response remove), and only there.
func TestHeaderOpsEachLevel(t *testing.T) {
	backend, seen := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("x-backend", "b") })
	p := startTestProxy(t, backend, proxyOpts{routes: func(rc *routev3.RouteConfiguration) {
		add := func(k, v string) []*corev3.HeaderValueOption {
			return []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
		}
		ops := xdstest.RouteTo("/ops", "c")
		ops.Action = &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "c", Weight: wrapperspb.UInt32(1), RequestHeadersToAdd: add("x-wc", "w")}}}}}}
		ops.RequestHeadersToRemove = []string{"x-secret"}
		plain := xdstest.RouteTo("/plain", "c")
		vh := &routev3.VirtualHost{Name: "ops", Domains: []string{"ops.example"}, Routes: []*routev3.Route{ops, plain},
			ResponseHeadersToAdd: add("x-vh", "v")}
		rc.VirtualHosts = append([]*routev3.VirtualHost{vh}, rc.VirtualHosts...)
		rc.ResponseHeadersToRemove = []string{"x-backend"}
	}})
	do := func(host, path string) (*http.Response, seenRequest) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
		req.Host = host
		req.Header.Set("x-secret", "s")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp, <-seen
	}
	resp, r := do("ops.example", "/ops")
	if r.header.Get("x-wc") != "w" || r.header.Get("x-secret") != "" {
		t.Errorf("upstream request x-wc %q x-secret %q, want w and none", r.header.Get("x-wc"), r.header.Get("x-secret"))
	}
	if resp.Header.Get("x-vh") != "v" || resp.Header.Get("x-backend") != "" {
		t.Errorf("response x-vh %q x-backend %q, want v and none", resp.Header.Get("x-vh"), resp.Header.Get("x-backend"))
	}
	// Another virtual host: only the route configuration's removal applies.
	resp, r = do("other.example", "/")
	if r.header.Get("x-secret") != "s" || resp.Header.Get("x-vh") != "" || resp.Header.Get("x-backend") != "" {
		t.Errorf("plain route: x-secret %q x-vh %q x-backend %q, want s, none, none", r.header.Get("x-secret"), resp.Header.Get("x-vh"), resp.Header.Get("x-backend"))
	}
}
