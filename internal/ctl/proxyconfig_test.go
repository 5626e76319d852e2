package ctl

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
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
		writeProxyConfig(&out, d, "all", proxyConfigFilter{}, mc, time.Now())
		golden(t, name+"-proxy-config-all", out.Bytes())
	}
	// Filters: one service's v2 subset.
	b, _ := os.ReadFile("testdata/productpage-config_dump.json")
	d, _ := parseConfigDump(b)
	var out bytes.Buffer
	writeProxyConfig(&out, d, "cluster", proxyConfigFilter{fqdn: "reviews.default.svc.cluster.local", subset: "v2", direction: "outbound", port: 9080}, mc, time.Now())
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
