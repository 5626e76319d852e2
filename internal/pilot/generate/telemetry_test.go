package generate

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// The MeshConfig access log reaches every HTTP connection manager with
// Istio's default format, leaves the shared original untouched, and
// mast-proxy's parser accepts it and renders Istio's line.
func TestMeshAccessLogInListeners(t *testing.T) {
	orig := &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm("p", "r", nil, false)}}}}
	before := proto.Clone(orig)
	for _, enc := range []string{"TEXT", "JSON"} {
		g := &gen{pc: &model.PushContext{Mesh: model.MeshConfig{AccessLogFile: "/dev/stdout", AccessLogEncoding: enc}}}
		out := g.withTelemetry([]model.XDSResource{{Name: "l", Resource: orig}})
		if !proto.Equal(orig, before) {
			t.Fatal("the shared listener was modified")
		}
		var h hcmv3.HttpConnectionManager
		if err := out[0].Resource.(*listenerv3.Listener).FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
			t.Fatal(err)
		}
		if len(h.AccessLog) != 1 {
			t.Fatalf("%s: %d access logs", enc, len(h.AccessLog))
		}
		m, err := xdsparsetest.ParseHTTPManager(&h)
		if err != nil {
			t.Fatalf("%s: mast-proxy rejects the access log: %v", enc, err)
		}
		if len(m.AccessLogs) != 1 || m.AccessLogs[0].Path != "/dev/stdout" {
			t.Fatalf("%s: parsed %+v", enc, m.AccessLogs)
		}
		rec := &telemetry.Record{Method: "GET", Path: "/x", Protocol: "HTTP/1.1", ResponseCode: 200}
		got := string(m.AccessLogs[0].Format.Append(nil, rec))
		want, _ := accesslog.ParseText(accesslog.IstioTextFormat)
		if enc == "TEXT" && got != string(want.Append(nil, rec)) {
			t.Errorf("TEXT line %q is not Istio's default", got)
		}
		if enc == "JSON" && got[0] != '{' {
			t.Errorf("JSON line %q", got)
		}
	}
	// Off by default.
	g := &gen{pc: &model.PushContext{Mesh: model.DefaultMeshConfig()}}
	if out := g.withTelemetry([]model.XDSResource{{Name: "l", Resource: orig}}); out[0].Resource != orig {
		t.Error("listener copied with access logs off")
	}
}
