package configdiff

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func dumpOf(clusters ...string) []byte {
	return []byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[` +
		strings.Join(clusters, ",") + `]},{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[` +
		`{"name":"l1","active_state":{"listener":{"@type":"type.googleapis.com/envoy.config.listener.v3.Listener","name":"l1"}}}]}]}`)
}

func clusterJSON(name, timeout string) string {
	return `{"cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"` + name + `","connectTimeout":"` + timeout + `"}}`
}

func TestDiffConfigDumps(t *testing.T) {
	mastd := dumpOf(clusterJSON("a", "10s"), clusterJSON("b", "10s"), clusterJSON("c", "1s"))
	// The proxy's rendering differs in key order and whitespace only for
	// a, holds b as bytes (a binary that cannot render the type), has c
	// with another timeout, d, which mastd would not send, and e with a
	// nested Any as bytes.
	raw, err := proto.Marshal(&clusterv3.Cluster{Name: "b", ConnectTimeout: durationpb.New(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	// e's transport socket config is shown as bytes inside a rendered
	// cluster (a nested Any of a type the proxy does not link).
	tlsRaw, err := proto.Marshal(&tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._.e"})
	if err != nil {
		t.Fatal(err)
	}
	const tlsType = `"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"`
	mastd = dumpOf(clusterJSON("a", "10s"), clusterJSON("b", "10s"), clusterJSON("c", "1s"),
		`{"cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"e","transportSocket":{"name":"tls","typedConfig":{`+tlsType+`,"sni":"outbound_.9080_._.e"}}}}`)
	proxy := dumpOf(`{"cluster": {"connectTimeout": "10s", "name": "a", "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster"}}`,
		`{"cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","value_base64":"`+base64.StdEncoding.EncodeToString(raw)+`"}}`,
		clusterJSON("c", "2s"), clusterJSON("d", "1s"),
		`{"cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"e","transportSocket":{"name":"tls","typedConfig":{`+tlsType+`,"value_base64":"`+base64.StdEncoding.EncodeToString(tlsRaw)+`"}}}}`)
	diffs, err := Diff(mastd, proxy)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	Write(&out, diffs)
	got := out.String()
	for _, want := range []string{"Clusters Don't Match", "+ d: the proxy has it; mastd would not send it", "~ c differs:",
		`-   "connectTimeout": "1s",`, `+   "connectTimeout": "2s",`, "Listeners Match", "Endpoints Match", "Routes Match"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"~ a differs", "~ b differs", "- b:", "~ e differs"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("diff has %q (a equal resource reported):\n%s", unwanted, got)
		}
	}
	if _, err := Diff([]byte("{"), proxy); err == nil || !strings.Contains(err.Error(), "mastd's config dump") {
		t.Errorf("a malformed dump: %v, want it named", err)
	}
}

// FuzzDiffConfigDumps: config dumps come from a proxy's admin and mastd;
// whatever they hold, the comparison returns an error or a verdict, never
// panics.
func FuzzDiffConfigDumps(f *testing.F) {
	f.Add(dumpOf(clusterJSON("a", "1s")), dumpOf(clusterJSON("a", "2s")))
	f.Add(dumpOf(), []byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[{"cluster":{"@type":"x","value_base64":"AAA="}}]}]}`))
	f.Add([]byte(`{"configs":[{"@type":1}]}`), []byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[{"active_state":3}]}]}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if diffs, err := Diff(a, b); err == nil {
			var out strings.Builder
			Write(&out, diffs)
		}
	})
}
