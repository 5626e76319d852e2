package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mast-mesh/mast/internal/ca"
)

// tcpExchangeConfig: service db (TCP 5432) behind a sidecar at %[1]s whose
// inbound port forwards to the application at 127.0.0.1:%[3]d, reached over
// Istio mTLS by a client sidecar at %[2]s through its egress port 5432.
const tcpExchangeConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: default}
spec: {address: %[1]s, labels: {app: db, version: v7}, serviceAccount: db}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-1, namespace: default}
spec: {address: %[2]s, labels: {app: client, version: v1}, serviceAccount: client}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: db, namespace: default}
spec:
  workloadSelector: {labels: {app: db}}
  ingress:
  - port: {number: 5432, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:%[3]d
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: %[2]s
    hosts: ["./db.default.svc.cluster.local"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
`

// TestTCPMetadataExchangeMTLS: real mastd (with its CA) and two real
// sidecars; a TCP connection from the client's egress port to db over Istio
// mTLS negotiates istio-peer-exchange, and both proxies' istio_tcp_* series
// (read from their 15090 with Prometheus's own parser) carry the other
// side's workload labels: before the exchange the server knew only the
// client's namespace (from its certificate) and the client nothing of db.
func TestTCPMetadataExchangeMTLS(t *testing.T) {
	app := tcpEcho(t)
	dbIP, clientIP := uniqueLoopback(), uniqueLoopback()
	startExchangeMesh(t, fmt.Sprintf(tcpExchangeConfig, dbIP, clientIP, app), dbIP, clientIP)
	addr := clientIP + ":5432"
	eventually(t, 30*time.Second, "a TCP connection through both sidecars", func() error { return echoFrom(clientIP, addr) })
	for i := 0; i < 3; i++ {
		if err := echoFrom(clientIP, addr); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[string]string{
		dbIP: {"reporter": "destination", "source_workload": "client-1", "source_app": "client", "source_version": "v1",
			"source_principal": "spiffe://cluster.local/ns/default/sa/client", "destination_workload": "db-1",
			"destination_service": "db.default.svc.cluster.local", "connection_security_policy": "mutual_tls"},
		clientIP: {"reporter": "source", "source_workload": "client-1", "destination_workload": "db-1", "destination_app": "db",
			"destination_version": "v7", "destination_workload_namespace": "default",
			"destination_principal": "spiffe://cluster.local/ns/default/sa/db", "destination_service": "db.default.svc.cluster.local"},
	}
	for ip, labels := range want {
		eventually(t, 20*time.Second, ip+"'s TCP metrics with the peer's labels", func() error {
			fams, err := scrapeStats(ip + ":15090")
			if err != nil {
				return err
			}
			for _, name := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total", "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total"} {
				var found []string
				for _, m := range fams[name].GetMetric() {
					got := map[string]string{}
					for _, l := range m.GetLabel() {
						got[l.GetName()] = l.GetValue()
					}
					ok := m.GetCounter().GetValue() > 0
					for k, v := range labels {
						ok = ok && got[k] == v
					}
					if ok {
						break
					}
					found = append(found, fmt.Sprint(got))
				}
				if len(found) == len(fams[name].GetMetric()) {
					return fmt.Errorf("%s: no series with %v and a value > 0 among %s", name, labels, strings.Join(found, "; "))
				}
			}
			return nil
		})
	}
}

// startExchangeMesh runs mastd with its CA on config (which names the
// workloads db-1 at dbIP and client-1 at clientIP) and the two sidecars,
// each with its workload certificate.
func startExchangeMesh(t *testing.T, config, dbIP, clientIP string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", config)
	caDir := t.TempDir()
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, sa := range []string{"db", "client"} {
		id, _ := c.WorkloadID("default", sa)
		tok, err := c.IssueToken(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), sa+".jwt")
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens[sa] = p
	}
	secure := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", freeAddr(t), "--monitoring-addr", freeAddr(t), "--ca-dir", caDir,
		"--secure-xds-addr", secure, "--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	for _, s := range []struct{ name, ip, wl, app, version string }{{"db", dbIP, "db-1", "db", "v7"}, {"client", clientIP, "client-1", "client", "v1"}} {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", s.ip, s.wl),
			"--xds-addr", secure, "--admin-addr", "127.0.0.1:0", "--drain-period", "1s",
			"--labels", "app="+s.app+",version="+s.version, "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT="+s.name,
			"--meta", "WORKLOAD_NAME="+s.wl, "--ca-addr", secure, "--ca-root-file", filepath.Join(caDir, "root-cert.pem"), "--token-file", tokens[s.name])
	}
}

// scrapeStats reads a proxy's /stats/prometheus with Prometheus's parser.
func scrapeStats(addr string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats/prometheus", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}
