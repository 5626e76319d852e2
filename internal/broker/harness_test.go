package broker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config"
)

// meshYAML is a small mesh: reviews is exported (with the default plans),
// ratings is exported with one plan and a fixed id, details is not
// exported, and legacy is marked but has no workloadSelector.
const meshYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
  annotations: {broker.mast.dev/export: "true"}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 127.0.1.5
  serviceAccount: bookinfo-reviews
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ratings
  namespace: default
  labels: {broker.mast.dev/export: "true"}
  annotations: {broker.mast.dev/service-id: ratings-id, broker.mast.dev/plans: async}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: default}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: legacy
  namespace: default
  annotations: {broker.mast.dev/export: "true"}
spec:
  hosts: [legacy.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
`

// testPlans: the default plans, a plan with a schema of its own and an
// asynchronous-only plan.
func testPlans() []PlanConfig {
	plans := DefaultPlans()
	plans[1].PlanUpdateable = false
	plans = append(plans,
		PlanConfig{Name: "async", Description: "asynchronous only", AsyncRequired: true, CertificateTTL: Duration(time.Hour)},
		PlanConfig{Name: "schema", Description: "with a schema", Schemas: &PlanSchemas{ServiceInstance: &InstanceSchemas{Create: &InputSchema{Parameters: map[string]any{
			"type": "object", "required": []any{"tier"},
			"properties": map[string]any{"tier": map[string]any{"type": "string", "enum": []any{"gold", "silver"}}},
		}}}}},
	)
	return plans
}

// fakeMesh stands in for mastd's file store: the fixed mesh plus the
// files the broker writes, loaded as the store loads them. frozen keeps
// the last view (a store that has not caught up yet).
type fakeMesh struct {
	t    testing.TB
	base []config.Resource
	dir  string

	mu     sync.Mutex
	frozen bool
	last   *config.Snapshot
}

func (m *fakeMesh) Snapshot() *config.Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.frozen && m.last != nil {
		return m.last
	}
	rs := append([]config.Resource(nil), m.base...)
	files, _ := filepath.Glob(filepath.Join(m.dir, "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		got, problems := config.Load(f, data)
		if problems.HasErrors() {
			m.t.Errorf("the broker wrote a file the store rejects: %s: %v", f, problems.Errors())
			continue
		}
		rs = append(rs, got...)
	}
	m.last = config.NewSnapshot(rs)
	return m.last
}

func (m *fakeMesh) freeze(v bool) {
	m.mu.Lock()
	m.frozen = v
	m.mu.Unlock()
}

type harness struct {
	t        *testing.T
	b        *Broker
	srv      *httptest.Server
	mesh     *fakeMesh
	ca       *ca.CA
	stateDir string
	cfgDir   string
	auth     Auth
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	root := t.TempDir()
	h := &harness{t: t, stateDir: filepath.Join(root, "state"), cfgDir: filepath.Join(root, "config"), auth: Auth{Username: "platform", Password: "s3cret"}}
	os.MkdirAll(h.stateDir, 0o700)
	base, problems := config.Load("mesh.yaml", []byte(meshYAML))
	if problems.HasErrors() {
		t.Fatal(problems.Errors())
	}
	h.mesh = &fakeMesh{t: t, base: base, dir: filepath.Join(h.cfgDir, ResourceDir)}
	var err error
	if h.ca, err = ca.New(ca.Config{Dir: filepath.Join(root, "ca"), TrustDomain: "cluster.local"}); err != nil {
		t.Fatal(err)
	}
	h.start()
	return h
}

func (h *harness) start() {
	h.t.Helper()
	b, err := New(Config{Plans: testPlans(), StateDir: h.stateDir, ConfigDir: h.cfgDir, Mesh: h.mesh, Issuer: h.ca, ApplyTimeout: 2 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	h.b = b
	h.srv = httptest.NewServer(b.Handler(h.auth))
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.srv != nil {
		h.srv.Close()
		h.b.Close()
		h.srv = nil
	}
}

// restart stops the broker and starts a new one on the same state.
func (h *harness) restart() {
	h.stop()
	h.start()
	h.b.Resume()
}

type reply struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends a request with the platform's credentials and API version.
func (h *harness) do(method, path, body string, mods ...func(*http.Request)) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(h.auth.Username, h.auth.Password)
	req.Header.Set("X-Broker-API-Version", "2.17")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, m := range mods {
		m(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), header: resp.Header}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		h.t.Fatalf("%s %s: the response is not a JSON object: %q", method, path, raw)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		h.t.Errorf("%s %s: Content-Type %q", method, path, resp.Header.Get("Content-Type"))
	}
	// Every error carries the specification's error body.
	if r.status >= 400 && (r.str("error") == "" || r.str("description") == "") {
		h.t.Errorf("%s %s: %d without error and description: %s", method, path, r.status, raw)
	}
	return r
}

// ids returns the service and plan ids of the catalog's offering name.
func (h *harness) ids(service, planName string) (string, string) {
	h.t.Helper()
	r := h.do("GET", "/v2/catalog", "")
	var cat catalogJSON
	if err := json.Unmarshal([]byte(r.raw), &cat); err != nil {
		h.t.Fatal(err)
	}
	for _, s := range cat.Services {
		if s.Name != service {
			continue
		}
		for _, p := range s.Plans {
			if p.Name == planName {
				return s.ID, p.ID
			}
		}
	}
	h.t.Fatalf("catalog has no %s/%s: %s", service, planName, r.raw)
	return "", ""
}

func provisionBody(service, plan string, extra ...string) string {
	var buf bytes.Buffer
	buf.WriteString(`{"service_id":"` + service + `","plan_id":"` + plan + `","organization_guid":"org","space_guid":"space"`)
	for _, e := range extra {
		buf.WriteString("," + e)
	}
	buf.WriteString("}")
	return buf.String()
}

// policy returns the instance's policy as the store sees it.
func (h *harness) policy(iid string) (config.Resource, bool) {
	return h.mesh.Snapshot().Get(config.Key{Kind: config.AuthorizationPolicy, Namespace: "default", Name: policyName(iid)})
}

// files lists what the broker wrote into the config directory.
func (h *harness) files() []string {
	got, _ := filepath.Glob(filepath.Join(h.cfgDir, ResourceDir, "*"))
	return got
}

// poll polls last_operation until the operation ends.
func (h *harness) poll(path, op string) reply {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.do("GET", path+"/last_operation?operation="+op, "")
		if r.status != http.StatusOK || r.str("state") != stateInProgress || time.Now().After(deadline) {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
}
