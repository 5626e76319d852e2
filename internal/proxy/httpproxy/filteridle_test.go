package httpproxy

import (
	"io"
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// TestIdleChainSkippedOnlyWhereIdle: a chain of fault and CORS filters is
// skipped on a route that configures neither, and still runs, on the same
// keep-alive connection and in any order, on routes with a fault or a CORS
// policy (the per-state memo of the last chain and route must not carry
// an idle answer over to another route).
func TestIdleChainSkippedOnlyWhereIdle(t *testing.T) {
	backend, _ := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) {})
	p := startTestProxy(t, backend, proxyOpts{
		hcm: func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.cors",
				ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(&corsv3.Cors{})}}}, h.HttpFilters...)
		},
		routes: func(rc *routev3.RouteConfiguration) {
			abort := xdstest.RouteTo("/abort", "c")
			abort.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": xdstest.Any(&httpfaultv3.HTTPFault{
				Abort: &httpfaultv3.FaultAbort{ErrorType: &httpfaultv3.FaultAbort_HttpStatus{HttpStatus: 555},
					Percentage: &typev3.FractionalPercent{Numerator: 100}}})}
			cors := xdstest.RouteTo("/cors", "c")
			cors.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": xdstest.Any(&corsv3.CorsPolicy{
				AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://good.example"}}},
				ExposeHeaders:          "x-backend"})}
			vh := rc.VirtualHosts[0]
			vh.Routes = append([]*routev3.Route{abort, cors}, vh.Routes...)
		},
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
		req.Header.Set("origin", "https://good.example")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i, path := range []string{"/", "/abort", "/", "/cors", "/", "/cors", "/abort", "/abort", "/"} {
		resp := get(path)
		allow := resp.Header.Get("access-control-allow-origin")
		switch path {
		case "/abort":
			if resp.StatusCode != 555 {
				t.Errorf("request %d to %s: status %d, want the fault's 555", i, path, resp.StatusCode)
			}
		case "/cors":
			if resp.StatusCode != 200 || allow != "https://good.example" {
				t.Errorf("request %d to %s: status %d, access-control-allow-origin %q, want 200 and the origin", i, path, resp.StatusCode, allow)
			}
		default:
			if resp.StatusCode != 200 || allow != "" {
				t.Errorf("request %d to %s: status %d, access-control-allow-origin %q, want 200 and none", i, path, resp.StatusCode, allow)
			}
		}
	}
	if n := p.srv.Stats.FaultAbort.Load(); n != 3 {
		t.Errorf("fault aborts counted: %d, want 3", n)
	}
}
