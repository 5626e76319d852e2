package httpproxy

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
