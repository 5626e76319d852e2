package ads

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestConfigDumpHandler: /debug/config_dump?proxyID= shows what the proxy's
// subscriptions would get now, in the sections Envoy's config_dump uses,
// and names what it cannot serve.
func TestConfigDumpHandler(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	c.request(ClusterType)
	c.ack(c.expect(ClusterType, "v1", clA, clB, clC))
	c.request(EndpointType, clA)
	c.ack(c.expect(EndpointType, "v1", clA), clA)
	c.barrier()

	get := func(target, method string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		e.ads.ConfigDumpHandler().ServeHTTP(rec, httptest.NewRequest(method, target, nil))
		return rec
	}
	rec := get("/debug/config_dump?proxyID="+c.id, "GET")
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("config_dump: %d %s", rec.Code, body)
	}
	for _, want := range []string{`"type.googleapis.com/envoy.admin.v3.ClustersConfigDump"`, `"dynamic_active_clusters"`,
		`"name": "` + clA + `"`, `"name": "` + clC + `"`, `"type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"`, `"clusterName": "` + clA + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("config_dump lacks %s:\n%s", want, body)
		}
	}
	// Types the stream does not watch are not in the dump.
	if strings.Contains(body, "ListenersConfigDump") {
		t.Errorf("config_dump shows listeners the proxy never asked for:\n%s", body)
	}
	if rec := get("/debug/config_dump?proxyID=nobody", "GET"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `no proxy "nobody" is connected`) {
		t.Errorf("unknown proxy: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/debug/config_dump", "GET"); rec.Code != http.StatusBadRequest {
		t.Errorf("no proxyID: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/debug/config_dump?proxyID="+c.id, "POST"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}
