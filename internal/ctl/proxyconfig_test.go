package ctl

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/ads"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name + ".golden"
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// dumpTime is when the testdata's certificates are judged: the dumps were
// taken from `mast up` at 01:26 UTC on 2026-12-06.
var dumpTime = time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)

// TestProxyConfigTables renders config dumps taken from Bookinfo's
// productpage sidecar and ingress gateway in `mast up` as istioctl's tables,
// with the DestinationRules and VirtualServices of Bookinfo's configuration.
func TestProxyConfigTables(t *testing.T) {
	rs, probs := config.LoadPaths("../../samples/bookinfo/config")
	if probs.HasErrors() {
		t.Fatal(probs)
	}
	mc := meshConfig{snap: config.NewSnapshot(rs)}
	for _, name := range []string{"productpage", "gateway"} {
		b, err := os.ReadFile("testdata/" + name + "-config_dump.json")
		if err != nil {
			t.Fatal(err)
		}
		d, err := parseConfigDump(b)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		writeProxyConfig(&out, d, "all", proxyConfigFilter{}, mc, dumpTime)
		golden(t, name+"-proxy-config-all", out.Bytes())
	}
	// The secrets and bootstrap alone: the gateway holds a credential from
	// mast up's credential directory and names a missing one (WARMING).
	for _, c := range []struct{ name, kind string }{{"gateway", "secret"}, {"productpage", "secret"}, {"productpage", "bootstrap"}} {
		b, _ := os.ReadFile("testdata/" + c.name + "-config_dump.json")
		d, err := parseConfigDump(b)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		writeProxyConfig(&out, d, c.kind, proxyConfigFilter{}, mc, dumpTime)
		golden(t, c.name+"-proxy-config-"+c.kind, out.Bytes())
	}
	// Filters: one service's v2 subset.
	b, _ := os.ReadFile("testdata/productpage-config_dump.json")
	d, _ := parseConfigDump(b)
	var out bytes.Buffer
	writeProxyConfig(&out, d, "cluster", proxyConfigFilter{fqdn: "reviews.default.svc.cluster.local", subset: "v2", direction: "outbound", port: 9080}, mc, dumpTime)
	golden(t, "productpage-proxy-config-cluster-filtered", out.Bytes())
}

// TestProxyStatusTable renders /debug/syncz taken from `mast up`, then the
// same with a NACK on one proxy's listeners.
func TestProxyStatusTable(t *testing.T) {
	b, err := os.ReadFile("testdata/syncz.json")
	if err != nil {
		t.Fatal(err)
	}
	var status []ads.ProxyStatus
	if err := json.Unmarshal(b, &status); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeProxyStatus(&out, status, false)
	golden(t, "proxy-status", out.Bytes())
	for i := range status[0].Types {
		if status[0].Types[i].TypeURL == xdsColumns[1].typeURL {
			status[0].Types[i].State = ads.StateNACKed
			status[0].Types[i].LastNACK = `listener "http.8080": filter "envoy.filters.http.lua" is not supported`
		}
	}
	out.Reset()
	writeProxyStatus(&out, status[:1], false)
	golden(t, "proxy-status-nack", out.Bytes())
}

// TestProxyConfigHelpNamesEveryKind: `mast proxy-config --help` has an
// example of every kind.
func TestProxyConfigHelpNamesEveryKind(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := ProxyConfig([]string{"--help"}, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, k := range proxyConfigKinds {
		if !strings.Contains(out.String(), "\n  mast proxy-config "+k+" ") {
			t.Errorf("no example of `mast proxy-config %s`:\n%s", k, out.String())
		}
	}
}

// TestSecretsFromEnvoy reads a SecretsConfigDump as Envoy writes it
// (snake_case keys): the table is the same as for mast-proxy's.
func TestSecretsFromEnvoy(t *testing.T) {
	b, _ := os.ReadFile("testdata/gateway-config_dump.json")
	d, err := parseConfigDump(b)
	if err != nil {
		t.Fatal(err)
	}
	var mast bytes.Buffer
	writeSecrets(&mast, d, proxyConfigFilter{}, dumpTime)
	envoy := strings.NewReplacer(`"tlsCertificate"`, `"tls_certificate"`, `"certificateChain"`, `"certificate_chain"`,
		`"inlineBytes"`, `"inline_bytes"`, `"validationContext"`, `"validation_context"`, `"trustedCa"`, `"trusted_ca"`).Replace(string(b))
	d, err = parseConfigDump([]byte(envoy))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	writeSecrets(&got, d, proxyConfigFilter{}, dumpTime)
	if got.String() != mast.String() || !strings.Contains(got.String(), "kubernetes://bookinfo-credential") {
		t.Errorf("from Envoy's snake_case:\n%s\nwant:\n%s", got.String(), mast.String())
	}
}

// TestProxyConfigStructuredFilters: -o json|yaml honours --fqdn, --subset,
// --port, --direction and --name as the tables do (istioctl filters its
// JSON too), keeping each section's shape; without filters the section is
// the proxy's own.
func TestProxyConfigStructuredFilters(t *testing.T) {
	b, err := os.ReadFile("testdata/productpage-config_dump.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseConfigDump(b)
	if err != nil {
		t.Fatal(err)
	}
	render := func(kind string, f proxyConfigFilter) string {
		t.Helper()
		v, err := sectionsFor(d, kind, f)
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := writeStructured(&out, &errOut, "json", v); code != ExitOK {
			t.Fatalf("%s: exit %d %s", kind, code, errOut.String())
		}
		return out.String()
	}
	all := render("cluster", proxyConfigFilter{})
	if !strings.Contains(all, `"outbound|9080|v1|reviews.default.svc.cluster.local"`) || !strings.Contains(all, `"outbound|9080|v2|reviews.default.svc.cluster.local"`) {
		t.Fatalf("unfiltered clusters lack reviews' subsets:\n%.2000s", all)
	}
	got := render("cluster", proxyConfigFilter{fqdn: "reviews.default.svc.cluster.local", subset: "v2"})
	if !strings.Contains(got, `"outbound|9080|v2|reviews.default.svc.cluster.local"`) || strings.Contains(got, "|v1|") ||
		strings.Contains(got, "ratings") || !strings.Contains(got, `"dynamic_active_clusters"`) {
		t.Errorf("clusters --fqdn reviews --subset v2:\n%s", got)
	}
	got = render("endpoint", proxyConfigFilter{fqdn: "details"})
	if !strings.Contains(got, "details.default.svc.cluster.local") || strings.Contains(got, "reviews") {
		t.Errorf("endpoints --fqdn details:\n%s", got)
	}
	if got = render("route", proxyConfigFilter{name: "http_proxy"}); !strings.Contains(got, `"name": "http_proxy"`) {
		t.Errorf("routes --name http_proxy:\n%.3000s", got)
	}
	if got = render("route", proxyConfigFilter{name: "9080"}); !strings.Contains(got, `"dynamic_route_configs": []`) {
		t.Errorf("routes --name 9080 (none):\n%.3000s", got)
	}
	got = render("listener", proxyConfigFilter{direction: "inbound"})
	if strings.Contains(got, `"OUTBOUND"`) || !strings.Contains(got, `"INBOUND"`) {
		t.Errorf("listeners --direction inbound:\n%.3000s", got)
	}
	got = render("all", proxyConfigFilter{fqdn: "reviews.default.svc.cluster.local", subset: "v2"})
	if strings.Contains(got, "|v1|reviews") || !strings.Contains(got, "|v2|reviews") || !strings.Contains(got, "BootstrapConfigDump") {
		t.Errorf("all --fqdn reviews --subset v2:\n%.3000s", got)
	}
}
