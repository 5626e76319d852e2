package generate

import (
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	internaltel "github.com/mast-mesh/mast/internal/telemetry"
)

// The Telemetry API's accessLogging, as mast-proxy parses the result:
// disabled for one workload, a CEL filter for another (compiled into
// Envoy's status code filter), client side off for a third (its server
// side falls back to MeshConfig's file, as in istiod), MeshConfig's file
// log everywhere else.
func TestTelemetryAccessLogging(t *testing.T) {
	mesh := model.DefaultMeshConfig()
	mesh.AccessLogFile = "/dev/stdout"
	cfg := append(bookinfoConfig(),
		res(config.Telemetry, "default", "pp-errors", &telemetry.Telemetry{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "productpage"}},
			AccessLogging: []*telemetry.AccessLogging{{Providers: []*telemetry.ProviderRef{{Name: "envoy"}},
				Filter: &telemetry.AccessLogging_Filter{Expression: "response.code >= 400"}}}}),
		res(config.Telemetry, "default", "reviews-off", &telemetry.Telemetry{
			Selector:      &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "reviews"}},
			AccessLogging: []*telemetry.AccessLogging{{Disabled: wrapperspb.Bool(true)}}}),
		res(config.Telemetry, "default", "details-client", &telemetry.Telemetry{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "details"}},
			AccessLogging: []*telemetry.AccessLogging{{Match: &telemetry.AccessLogging_LogSelector{Mode: telemetry.WorkloadMode_CLIENT},
				Disabled: wrapperspb.Bool(true)}}}))
	pc := model.NewPushContext("v1", mesh, configSnapshot(cfg), bookinfoRegistry())
	proxy := func(app, ip string) *model.Proxy {
		return &model.Proxy{ID: "sidecar~" + ip + "~" + app + "-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
			IPAddresses: []string{ip}, Name: app + "-v1", Namespace: "default", Labels: map[string]string{"app": app, "version": "v1"}, Metadata: map[string]string{}}
	}
	logs := func(p *model.Proxy) (in, out int, filter func(*internaltel.Record) bool) {
		ls, err := Generate(pc, p, ListenerType, nil)
		if err != nil {
			t.Fatal(err)
		}
		hin, hout := httpManagers(t, ls)
		for _, m := range hin {
			in += len(m.AccessLogs)
			if len(m.AccessLogs) > 0 {
				filter = m.AccessLogs[0].Filter
			}
		}
		for _, m := range hout {
			out += len(m.AccessLogs)
		}
		return in, out, filter
	}
	in, out, f := logs(productpageProxy())
	if in == 0 || out == 0 || f == nil {
		t.Fatalf("productpage: %d inbound, %d outbound logs, filter %v", in, out, f != nil)
	}
	if f(&internaltel.Record{ResponseCode: 200}) || !f(&internaltel.Record{ResponseCode: 503}) {
		t.Error("productpage's filter is not response.code >= 400")
	}
	if in, out, _ := logs(proxy("reviews", "10.1.0.2")); in+out != 0 {
		t.Errorf("reviews: %d+%d access logs with logging disabled", in, out)
	}
	in, out, f = logs(proxy("details", "10.1.0.5"))
	if in == 0 || out != 0 || f != nil {
		t.Errorf("details (client side off): %d inbound, %d outbound, filter %v", in, out, f != nil)
	}
}
