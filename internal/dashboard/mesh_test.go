package dashboard

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/pilot/ads"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// synthetic is a mesh of n services, each with one workload and its
// proxy, calling the next service in a ring, built without processes.
type synthetic struct {
	n       int
	dir     string
	snap    *config.Snapshot
	status  store.Status
	pc      *model.PushContext
	proxies []*model.Proxy
	sync    []ads.ProxyStatus
}

func svcName(i int) string { return fmt.Sprintf("svc%04d", i) }
func svcNS(i int) string   { return fmt.Sprintf("ns%d", i%10) }
func svcHost(i int) string { return svcName(i) + "." + svcNS(i) + ".svc.cluster.local" }
func svcIP(i int) string   { return fmt.Sprintf("10.%d.%d.%d", 1+i/62500, (i/250)%250, 1+i%250) }

// newSynthetic writes the mesh's configuration (one file per service, and
// a VirtualService routing to a subset no DestinationRule defines) and
// builds its push context.
func newSynthetic(tb testing.TB, n int) *synthetic {
	tb.Helper()
	m := &synthetic{n: n, dir: tb.TempDir(), status: store.Status{Rejected: []store.Rejection{}}}
	var all []config.Resource
	add := func(name, data string) {
		p := filepath.Join(m.dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
		rs, problems := config.Load(p, []byte(data))
		if problems.HasErrors() {
			tb.Fatalf("%s: %v", name, problems.Errors())
		}
		all = append(all, rs...)
		m.status.Files = append(m.status.Files, store.FileStatus{Path: p})
	}
	for i := range n {
		add(svcName(i)+".yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  hosts: [%[3]s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: %[1]s}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %[1]s-v1, namespace: %[2]s}
spec:
  address: %[4]s
  labels: {app: %[1]s, version: v1}
  serviceAccount: %[1]s
`, svcName(i), svcNS(i), svcHost(i), svcIP(i)))
	}
	add("route.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  hosts: [%[1]s]
  http:
  - route:
    - destination: {host: %[1]s, subset: v9}
`, svcName(0), svcNS(0)))
	m.snap = config.NewSnapshot(all)
	m.status.Resources = m.snap.Len()
	mesh := model.DefaultMeshConfig()
	m.pc = model.NewPushContext("2026-01-01T00:00:00Z/00000001", mesh, m.snap,
		serviceentry.Build(m.snap, serviceentry.Options{TrustDomain: mesh.TrustDomain, DomainSuffix: mesh.DomainSuffix}))
	for i := range n {
		id := fmt.Sprintf("sidecar~%s~%s-v1.%s~%s.svc.cluster.local", svcIP(i), svcName(i), svcNS(i), svcNS(i))
		p, err := model.ParseNode(nodeFor(id, svcName(i), svcNS(i)))
		if err != nil {
			tb.Fatal(err)
		}
		m.proxies = append(m.proxies, p)
		var types []ads.TypeStatus
		for _, t := range []string{"Cluster", "Listener", "ClusterLoadAssignment", "RouteConfiguration"} {
			types = append(types, ads.TypeStatus{TypeURL: "type.googleapis.com/envoy.config.x.v3." + t, State: ads.StateSynced,
				VersionSent: m.pc.Version, VersionAcked: m.pc.Version, Resources: 3})
		}
		m.sync = append(m.sync, ads.ProxyStatus{ID: id, ConnectionID: fmt.Sprint(i), Namespace: svcNS(i), Stream: "sotw", Types: types})
	}
	return m
}

// config returns a dashboard Config over the synthetic mesh.
func (m *synthetic) config() Config {
	return Config{
		Proxies:     func() []*model.Proxy { return m.proxies },
		Status:      func() []ads.ProxyStatus { return m.sync },
		PushContext: func() *model.PushContext { return m.pc },
		Store:       func() (*config.Snapshot, store.Status) { return m.snap, m.status },
		TrustDomain: "cluster.local",
		Certificates: func() []Certificate {
			return []Certificate{{Identity: "spiffe://cluster.local/ns/ns0/sa/svc0000", Serial: "1", NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour)}}
		},
		ScrapeInterval: time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// traffic returns the cumulative series each proxy reports after count
// requests on each edge: the services form a binary tree (workload i calls
// services 2i+1 and 2i+2, source reporter), every workload receives over
// mTLS (destination reporter), and service 0 is called from outside the mesh.
func (m *synthetic) traffic(count float64) map[string]map[seriesKey]*series {
	hist := func() *series {
		s := &series{requests: count, hcount: count, hasHist: true}
		for b := range s.buckets {
			s.buckets[b] = count * min(1, float64(b+1)/8)
		}
		return s
	}
	out := map[string]map[seriesKey]*series{}
	for i, p := range m.proxies {
		src, srcNS := svcName((i-1)/2)+"-v1", svcNS((i-1)/2)
		if i == 0 {
			src, srcNS = "unknown", "unknown"
		}
		out[p.ID] = map[seriesKey]*series{
			{reporter: "destination", srcNS: srcNS, srcWL: src, dstService: svcHost(i), dstSvcName: svcName(i), dstSvcNS: svcNS(i),
				dstNS: svcNS(i), dstWL: svcName(i) + "-v1", code: "200", security: "mutual_tls"}: hist(),
		}
		for _, j := range []int{2*i + 1, 2*i + 2} {
			if j < m.n {
				out[p.ID][seriesKey{reporter: "source", srcNS: svcNS(i), srcWL: svcName(i) + "-v1", dstService: svcHost(j), dstSvcName: svcName(j),
					dstSvcNS: svcNS(j), dstNS: svcNS(j), dstWL: svcName(j) + "-v1", code: "200", security: "unknown"}] = hist()
			}
		}
	}
	return out
}

// inject runs one scrape round with the given results, as the scraper
// would after scraping, and refreshes the state.
func (d *Dashboard) inject(scraped map[string]map[seriesKey]*series) {
	live := map[string]bool{}
	for id := range scraped {
		live[id] = true
	}
	// Rounds a nominal interval apart, whenever the test runs them.
	tr := d.scraper.traffic
	at := time.Unix(1e9, 0).Add(time.Duration(tr.tick+1) * d.cfg.ScrapeInterval)
	tr.round(at, scraped, live)
	var wls []Workload
	for _, p := range d.cfg.Proxies() {
		wls = append(wls, WorkloadOf(p))
	}
	d.scraper.publish(d.scraper.traffic.graph(time.Now(), wls), nil)
	d.refresh()
}

func TestSyntheticMeshState(t *testing.T) {
	m := newSynthetic(t, 20)
	d := New(m.config())
	d.inject(m.traffic(100))
	d.inject(m.traffic(150))
	g, _ := d.scraper.latest()
	if len(g.Nodes) != 41 || len(g.Edges) != 40 {
		t.Fatalf("graph: %d nodes, %d edges, want 41 and 40", len(g.Nodes), len(g.Edges))
	}
	for _, e := range g.Edges {
		share := 1.0
		var i int
		if _, err := fmt.Sscanf(e.Source, "workload:ns%d/svc%04d-v1", new(int), &i); err == nil && 2*i+2 < 20 {
			share = 0.5 // workload i calls services 2i+1 and 2i+2
		}
		security := "mutual_tls" // as every destination reported
		if e.Rate != 50 || e.Security != security || e.Share != share {
			t.Errorf("edge %s -> %s: rate %v share %v security %s, want 50/s, %v, %s", e.Source, e.Target, e.Rate, e.Share, e.Security, share, security)
		}
	}
	st := d.state(nil)
	var vs *Resource
	for i, r := range st.Config.Resources {
		if r.Kind == "VirtualService" {
			vs = &st.Config.Resources[i]
		}
	}
	if vs == nil || len(vs.Messages) == 0 || vs.Messages[0].Code != "IST0101" || !strings.Contains(vs.Messages[0].Message, "v9") {
		t.Fatalf("VirtualService with an undefined subset: %+v, want IST0101 naming v9", vs)
	}
	if vs.ProxyCount != 20 {
		t.Errorf("the mesh VirtualService shapes %d proxies, want all 20", vs.ProxyCount)
	}
	if ids := d.affected.m.ids(vs.Key, -1); len(ids) != 20 {
		t.Errorf("/ui/api/affected lists %d proxies for %s, want all 20", len(ids), vs.Key)
	}
	for _, r := range st.Config.Resources {
		if r.Kind == "WorkloadEntry" && r.ProxyCount == 0 {
			t.Errorf("%s shapes no proxy", r.Key)
		}
	}
	if len(st.Proxies) != 20 || st.Proxies[0].Certificate == nil || st.Proxies[0].Identity != "spiffe://cluster.local/ns/ns0/sa/svc0000" {
		t.Errorf("proxies: %d, first %+v", len(st.Proxies), st.Proxies[0])
	}
	if len(st.Policies) != 20 || st.Policies[0].MTLSMode != "PERMISSIVE" {
		t.Errorf("policies: %+v", st.Policies)
	}
}

func nodeFor(id, app, ns string) *corev3.Node {
	return newNode(id, map[string]string{"NAMESPACE": ns, "SERVICE_ACCOUNT": app, model.MetaWorkloadCert: "true"},
		map[string]string{"app": app, "version": "v1"})
}

func newNode(id string, meta, labels map[string]string) *corev3.Node {
	f := map[string]*structpb.Value{}
	for k, v := range meta {
		f[k] = structpb.NewStringValue(v)
	}
	lf := map[string]*structpb.Value{}
	for k, v := range labels {
		lf[k] = structpb.NewStringValue(v)
	}
	f["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: lf})
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: f}}
}

// BenchmarkFirstState is the server side of the first page load over 1,000
// services (2,001 resources, 1,000 proxies): the analysis, the proxies each
// resource shapes, and the state's JSON, without a browser.
func BenchmarkFirstState(b *testing.B) {
	m := newSynthetic(b, 1000)
	traffic := m.traffic(100)
	for b.Loop() {
		New(m.config()).inject(traffic)
	}
}
