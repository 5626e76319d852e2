package serviceentry

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

func decode(t testing.TB, yaml string) *config.Snapshot {
	t.Helper()
	rs, err := config.Decode("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return config.NewSnapshot(rs)
}

// render prints a snapshot one line per service and endpoint, in snapshot order.
func render(s *registry.Snapshot) []string {
	var out []string
	res := map[registry.Resolution]string{registry.ResolutionStatic: "STATIC", registry.ResolutionDNS: "DNS", registry.ResolutionDNSRoundRobin: "DNS_ROUND_ROBIN", registry.ResolutionNone: "NONE"}
	for _, svc := range s.Services {
		var ports []string
		for _, p := range svc.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d/%s>%d", p.Name, p.Number, p.Protocol, p.TargetPort))
		}
		loc := "internal"
		if svc.MeshExternal {
			loc = "external"
		}
		line := fmt.Sprintf("svc %s ns=%s %s %s ports=%s", svc.Hostname, svc.Namespace, res[svc.Resolution], loc, strings.Join(ports, ","))
		if len(svc.Addresses) > 0 {
			line += " addrs=" + strings.Join(svc.Addresses, ",")
		}
		if len(svc.ExportTo) > 0 {
			line += " export=" + strings.Join(svc.ExportTo, ",")
		}
		if len(svc.ServiceAccounts) > 0 {
			line += " sans=" + strings.Join(svc.ServiceAccounts, ",")
		}
		if len(svc.Labels) > 0 {
			line += " labels=" + labels(svc.Labels)
		}
		if svc.Registry != Name {
			line += " registry=" + svc.Registry
		}
		out = append(out, line)
		if s.Service(svc.Hostname) != svc {
			continue // endpoints are listed once, under the first namespace
		}
		for _, e := range s.Endpoints[svc.Hostname] {
			line := fmt.Sprintf("  ep %s:%d -> %s:%d", e.Hostname, e.ServicePort, e.Address, e.Port)
			if e.Weight != 0 {
				line += fmt.Sprintf(" w=%d", e.Weight)
			}
			if e.Locality != "" {
				line += " loc=" + e.Locality
			}
			if e.Network != "" {
				line += " net=" + e.Network
			}
			if e.ServiceAccount != "" {
				line += " sa=" + e.ServiceAccount
			}
			if len(e.Labels) > 0 {
				line += " labels=" + labels(e.Labels)
			}
			out = append(out, line)
		}
	}
	return out
}

func labels(m map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, ",")
}

var buildTests = []struct {
	name string
	yaml string
	want []string
}{
	{
		name: "ports and protocols",
		yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ports, namespace: shop}
spec:
  hosts: [ports.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http}
  - {number: 81, name: http-web}
  - {number: 82, name: grpc-api}
  - {number: 83, name: grpc-web-ui}
  - {number: 84, name: http2}
  - {number: 85, name: tcp-db}
  - {number: 86, name: mongo-x}
  - {number: 87, name: redis}
  - {number: 88, name: mysql-main}
  - {number: 89, name: https-admin}
  - {number: 90, name: tls-x}
  - {number: 91, name: metrics}
  - {number: 92, name: web, protocol: http2}
  - {number: 93, name: http-x, protocol: TCP}
  - {number: 94, name: g, protocol: GRPC}
  - {number: 95, name: x, protocol: UDP}
  - {number: 96, name: HTTP-upper}
`,
		want: []string{
			"svc ports.example.com ns=shop STATIC internal ports=http:80/HTTP>0,http-web:81/HTTP>0,grpc-api:82/GRPC>0,grpc-web-ui:83/HTTP>0," +
				"http2:84/HTTP2>0,tcp-db:85/TCP>0,mongo-x:86/MONGO>0,redis:87/REDIS>0,mysql-main:88/MYSQL>0,https-admin:89/HTTPS>0," +
				"tls-x:90/TLS>0,metrics:91/>0,web:92/HTTP2>0,http-x:93/TCP>0,g:94/GRPC>0,x:95/>0,HTTP-upper:96/HTTP>0",
		},
	},
	{
		name: "DNS without endpoints resolves the hosts; wildcard hosts get none",
		yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com, "*.wild.example.com"]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  resolution: DNS
  exportTo: ["."]
`,
		want: []string{
			"svc *.wild.example.com ns=default DNS external ports=https:443/HTTPS>0,http:80/HTTP>8080 export=.",
			"svc api.example.com ns=default DNS external ports=https:443/HTTPS>0,http:80/HTTP>8080 export=.",
			"  ep api.example.com:443 -> api.example.com:443",
			"  ep api.example.com:80 -> api.example.com:8080",
		},
	},
	{
		name: "DNS with endpoints uses them; NONE and DNS_ROUND_ROBIN and DYNAMIC_DNS",
		yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a-dns}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
  endpoints:
  - address: db-1.example.net
  - address: db-0.example.net
    ports: {tcp: 6432}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b-none}
spec:
  hosts: [passthrough.example.com]
  addresses: [10.1.0.0/16]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c-rr}
spec:
  hosts: [rr.example.com]
  ports: [{number: 80, name: http}]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: d-dyn}
spec:
  hosts: ["*.dyn.example.com"]
  ports: [{number: 80, name: http}]
  resolution: DYNAMIC_DNS
`,
		want: []string{
			"svc *.dyn.example.com ns=default NONE external ports=http:80/HTTP>0",
			"svc db.example.com ns=default DNS external ports=tcp:5432/TCP>0",
			"  ep db.example.com:5432 -> db-0.example.net:6432",
			"  ep db.example.com:5432 -> db-1.example.net:5432",
			"svc passthrough.example.com ns=default NONE external ports=tcp:9000/TCP>0 addrs=10.1.0.0/16",
			"svc rr.example.com ns=default DNS_ROUND_ROBIN external ports=http:80/HTTP>0",
			"  ep rr.example.com:80 -> rr.example.com:80",
		},
	},
	{
		name: "STATIC inline endpoints: port choice, weights, locality, network, identity, labels",
		yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: vm
  namespace: vms
  labels: {team: payments}
spec:
  hosts: [vm.vms.svc.cluster.local]
  addresses: [240.0.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  subjectAltNames: ["spiffe://cluster.local/ns/vms/sa/vm"]
  exportTo: ["*"]
  ports:
  - {number: 80, name: http, targetPort: 8080}
  - {number: 9090, name: grpc-admin}
  endpoints:
  - address: 10.0.0.2
    ports: {http: 8888}
    labels: {version: v2}
    weight: 3
    locality: us-east1/us-east1-b
    network: net-b
    serviceAccount: vm-sa
  - address: 10.0.0.1
  - address: unix:///var/run/vm.sock
`,
		want: []string{
			"svc vm.vms.svc.cluster.local ns=vms STATIC internal ports=http:80/HTTP>8080,grpc-admin:9090/GRPC>0 addrs=240.0.0.1 export=* sans=spiffe://cluster.local/ns/vms/sa/vm labels=team=payments",
			"  ep vm.vms.svc.cluster.local:80 -> 10.0.0.1:8080",
			"  ep vm.vms.svc.cluster.local:9090 -> 10.0.0.1:9090",
			"  ep vm.vms.svc.cluster.local:80 -> 10.0.0.2:8888 w=3 loc=us-east1/us-east1-b net=net-b sa=spiffe://example.org/ns/vms/sa/vm-sa labels=version=v2",
			"  ep vm.vms.svc.cluster.local:9090 -> 10.0.0.2:9090 w=3 loc=us-east1/us-east1-b net=net-b sa=spiffe://example.org/ns/vms/sa/vm-sa labels=version=v2",
			"  ep vm.vms.svc.cluster.local:80 -> unix:///var/run/vm.sock:0",
			"  ep vm.vms.svc.cluster.local:9090 -> unix:///var/run/vm.sock:0",
		},
	},
	{
		name: "workload selector picks WorkloadEntries of the same namespace",
		yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: bookinfo}
spec:
  hosts: [details.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, targetPort: 9081}]
  workloadSelector:
    labels: {app: details}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-v1, namespace: bookinfo}
spec:
  address: 127.0.1.2
  labels: {app: details, version: v1}
  serviceAccount: bookinfo-details
  locality: region1/zone1
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-v2
  namespace: bookinfo
  labels: {app: details, version: v2-meta}
spec:
  address: 127.0.1.3
  labels: {version: v2}
  ports: {http: 19080}
  weight: 2
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: bookinfo}
spec:
  address: 127.0.1.4
  labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-elsewhere, namespace: other}
spec:
  address: 127.0.1.5
  labels: {app: details}
`,
		want: []string{
			"svc details.bookinfo.svc.cluster.local ns=bookinfo STATIC internal ports=http:9080/HTTP>9081",
			"  ep details.bookinfo.svc.cluster.local:9080 -> 127.0.1.2:9081 loc=region1/zone1 sa=spiffe://example.org/ns/bookinfo/sa/bookinfo-details labels=app=details,version=v1",
			"  ep details.bookinfo.svc.cluster.local:9080 -> 127.0.1.3:19080 w=2 labels=app=details,version=v2-meta",
		},
	},
	{
		name: "same host: merged within a namespace, one service per namespace",
		yaml: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: ns1}
spec:
  hosts: [shared.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 1.1.1.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: ns1}
spec:
  hosts: [shared.example.com]
  resolution: DNS
  ports: [{number: 80, name: http-other}, {number: 443, name: https}]
  endpoints: [{address: 1.1.1.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: ns2}
spec:
  hosts: [shared.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 2.2.2.2}]
`,
		want: []string{
			"svc shared.example.com ns=ns1 STATIC external ports=http:80/HTTP>0,https:443/HTTPS>0",
			"  ep shared.example.com:80 -> 1.1.1.1:80",
			"  ep shared.example.com:80 -> 1.1.1.2:80",
			"  ep shared.example.com:443 -> 1.1.1.2:443",
			"svc shared.example.com ns=ns2 STATIC external ports=http:80/HTTP>0",
		},
	},
	{
		name: "other kinds and no ServiceEntries give an empty registry",
		yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [x]
  http: [{route: [{destination: {host: x}}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: lonely}
spec: {address: 1.2.3.4}
`,
		want: nil,
	},
}

func TestBuild(t *testing.T) {
	for _, tc := range buildTests {
		t.Run(tc.name, func(t *testing.T) {
			got := render(Build(decode(t, tc.yaml), Options{TrustDomain: "example.org", DomainSuffix: "cluster.local"}))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestBuildDefaultTrustDomain(t *testing.T) {
	s := Build(decode(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: apps}
spec:
  hosts: [a.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 1.1.1.1, serviceAccount: sa}]
`), Options{})
	if got := s.Endpoints["a.example.com"][0].ServiceAccount; got != "spiffe://cluster.local/ns/apps/sa/sa" {
		t.Errorf("service account = %q", got)
	}
}

// The label index used for namespaces with many WorkloadEntries must select
// exactly what a linear scan does, in name order.
func TestBuildSelectorIndexMatchesLinearScan(t *testing.T) {
	var b strings.Builder
	const n = 60
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we-%02d, namespace: big}
spec:
  address: 10.0.%d.%d
  labels: {app: app%d, tier: t%d, zone: z%d}
`, i, i/10, i%10, i%4, i%3, i%2)
	}
	selectors := []map[string]string{
		{"app": "app1"},
		{"app": "app1", "tier": "t2"},
		{"tier": "t0", "zone": "z1"},
		{"app": "app1", "zone": "z0"}, // app1 implies odd i, so z1: none
		{"app": "nope"},
		{"missing": "x"},
		{},
	}
	for i, sel := range selectors {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(sel)) {
			kv = append(kv, fmt.Sprintf("%s: %s", k, sel[k]))
		}
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se-%d, namespace: big}
spec:
  hosts: [s%d.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  workloadSelector: {labels: {%s}}
`, i, i, strings.Join(kv, ", "))
	}
	s := Build(decode(t, b.String()), Options{})
	for i, sel := range selectors {
		var want []string
		for j := range n {
			labels := map[string]string{"app": fmt.Sprintf("app%d", j%4), "tier": fmt.Sprintf("t%d", j%3), "zone": fmt.Sprintf("z%d", j%2)}
			if matches(labels, sel) {
				want = append(want, fmt.Sprintf("10.0.%d.%d", j/10, j%10))
			}
		}
		var got []string
		for _, e := range s.Endpoints[fmt.Sprintf("s%d.example.com", i)] {
			got = append(got, e.Address)
		}
		slices.Sort(want) // the snapshot orders endpoints by address
		if !slices.Equal(got, want) {
			t.Errorf("selector %v: got %v, want %v", sel, got, want)
		}
		if i == 0 && len(got) != 15 {
			t.Errorf("selector %v selected %d, want 15", sel, len(got))
		}
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	var all strings.Builder
	for _, tc := range buildTests {
		all.WriteString(tc.yaml + "\n---\n")
	}
	cfg := decode(t, all.String())
	first := render(Build(cfg, Options{}))
	for range 20 {
		if got := render(Build(cfg, Options{})); !slices.Equal(got, first) {
			t.Fatalf("Build is not deterministic:\n%s\nvs\n%s", strings.Join(got, "\n"), strings.Join(first, "\n"))
		}
	}
}

func TestRegistryUpdateReusesSnapshot(t *testing.T) {
	r := New(Options{})
	if r.Name() != "serviceentry" || len(r.Snapshot().Services) != 0 {
		t.Fatalf("new registry: %q, %d services", r.Name(), len(r.Snapshot().Services))
	}
	se := decode(t, buildTests[1].yaml).List(config.ServiceEntry)
	vs := decode(t, buildTests[len(buildTests)-1].yaml).List(config.VirtualService)
	first := r.Update(config.NewSnapshot(se))
	if len(first.Services) != 2 || r.Snapshot() != first {
		t.Fatalf("first update: %d services", len(first.Services))
	}
	// Another kind changed: same ServiceEntries, same snapshot.
	if got := r.Update(config.NewSnapshot(append(slices.Clone(se), vs...))); got != first {
		t.Error("unrelated change rebuilt the registry snapshot")
	}
	// An equal but newly decoded ServiceEntry is a new resource: rebuilt.
	se2 := decode(t, buildTests[1].yaml).List(config.ServiceEntry)
	if got := r.Update(config.NewSnapshot(se2)); got == first {
		t.Error("new ServiceEntry resource did not rebuild")
	}
	if got := r.Update(config.NewSnapshot(nil)); len(got.Services) != 0 {
		t.Errorf("after removing everything: %d services", len(got.Services))
	}
}

// Istio's own egress example, unmodified, from the compatibility corpus.
func TestBuildIstioEgressSample(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "shared", "compat", "istio", "bookinfo", "networking", "egress-rule-google-apis.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("Istio compatibility corpus not found at %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := render(Build(decode(t, string(data)), Options{}))
	want := []string{
		"svc www.googleapis.com ns=default DNS external ports=http:80/HTTP>0,https:443/HTTPS>0",
		"  ep www.googleapis.com:80 -> www.googleapis.com:80",
		"  ep www.googleapis.com:443 -> www.googleapis.com:443",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A workloadSelector selects other registries' instances as it selects
// WorkloadEntries: in the entry's namespace, by labels, with their ports by
// service port name.
func TestBuildSelectsRegistryWorkloads(t *testing.T) {
	cfg := decode(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
`)
	snap := Build(cfg, Options{Workloads: []Workload{
		{Namespace: "default", Address: "127.0.1.5", Ports: map[string]uint32{"http": 9081}, Labels: map[string]string{"app": "reviews", "version": "v2"}, ServiceAccount: "spiffe://cluster.local/ns/default/sa/r", Locality: "dc1"},
		{Namespace: "default", Address: "127.0.1.6", Labels: map[string]string{"app": "ratings"}},
		{Namespace: "other", Address: "127.0.1.7", Labels: map[string]string{"app": "reviews"}},
	}})
	eps := snap.EndpointsFor("reviews.default.svc.cluster.local", 9080)
	if len(eps) != 1 || eps[0].Address != "127.0.1.5" || eps[0].Port != 9081 || eps[0].Labels["version"] != "v2" ||
		eps[0].ServiceAccount != "spiffe://cluster.local/ns/default/sa/r" || eps[0].Locality != "dc1" {
		t.Fatalf("endpoints %s", render(snap))
	}
}
