// Package proxymem measures mast-proxy's memory: it generates a sidecar's
// configuration with the real control plane (Bookinfo as `mast up` runs it,
// or a synthetic mesh of N services), serves it from go-control-plane's
// snapshot cache, runs the real mast-proxy binary against it and reads the
// proxy's VmRSS, RssAnon and RssFile from /proc, idle and after load.
// The benchmarks are in proxymem_test.go.
package proxymem

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/bench/controlplane"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
	bookinfoconfig "github.com/mast-mesh/mast/samples/bookinfo/config"
)

// Scenario is one proxy's configuration and the traffic that exercises it.
type Scenario struct {
	Name string
	// Args are the proxy's node flags (--node-id, --labels, --meta ...).
	Args []string
	// Node is the node those flags produce; Resources were generated for it.
	NodeID    string
	Resources map[resource.Type][]types.Resource
	// Outbound is the forward-proxy listener (PROXYIP:15001); Targets are
	// absolute-form URLs sent through it.
	Outbound string
	Targets  []string
	// Inbound is the inbound listener (PROXYIP:PORT) and InboundHost the
	// Host header sent to it.
	Inbound, InboundHost string
	// Backends are the addresses the test serves HTTP on: the endpoints the
	// targets resolve to, then (last) the application behind the inbound
	// listener.
	Backends []string
}

// Count returns the number of generated resources of each type.
func (s Scenario) Count() map[string]int {
	out := map[string]int{}
	for t, rs := range s.Resources {
		out[controlplane.ShortType(string(t))] = len(rs)
	}
	return out
}

// loopbackNet picks a random 127.N.0.0/16 network (N in 100..249) so that a
// run does not collide with `mast up` (127.0.1.x) or with another run.
func loopbackNet() string { return fmt.Sprintf("127.%d.", 100+rand.IntN(150)) }

// Bookinfo is the productpage-v1 sidecar of the Bookinfo mesh that `mast up`
// starts (samples/bookinfo/config, unchanged but for its loopback
// addresses, moved from 127.0.x.y to a random 127.N.x.y).
func Bookinfo() (Scenario, error) {
	pfx := loopbackNet()
	files := map[string][]byte{}
	err := fs.WalkDir(bookinfoconfig.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		b, err := fs.ReadFile(bookinfoconfig.Files, p)
		if err != nil {
			return err
		}
		files[p] = []byte(strings.ReplaceAll(string(b), "127.0.", pfx))
		return nil
	})
	if err != nil {
		return Scenario{}, err
	}
	ip := pfx + "1.1"
	s := Scenario{
		Name: "bookinfo",
		Args: []string{"--node-id", "sidecar~" + ip + "~productpage-v1.default~default.svc.cluster.local",
			"--labels", "app=productpage,version=v1", "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT=bookinfo-productpage"},
		Outbound:    ip + ":15001",
		Targets:     []string{"http://details:9080/details/0", "http://reviews:9080/reviews/0"},
		Inbound:     ip + ":9080",
		InboundHost: "productpage:9080",
		// details-v1, reviews-v1..v3 and productpage's own application.
		Backends: []string{pfx + "1.2:9080", pfx + "1.3:9080", pfx + "1.4:9080", pfx + "1.5:9080", pfx + "0.1:19081"},
	}
	return s.generate(files, xdsclient.NodeConfig{ID: s.Args[1], Labels: map[string]string{"app": "productpage", "version": "v1"},
		Meta: map[string]string{"INTERCEPTION_MODE": "NONE", "SERVICE_ACCOUNT": "bookinfo-productpage"}})
}

// Mesh is the sidecar of service 0 in bench/controlplane's synthetic mesh of
// services services (five endpoints each, ten namespaces, a VirtualService
// and DestinationRule on service 0), its addresses moved to a random
// 127.N.0.0/16, plus a Sidecar that points service 0's inbound port at its
// application. Traffic goes to services 1-4.
func Mesh(services int) (Scenario, error) {
	if services < 5 {
		return Scenario{}, fmt.Errorf("mesh: want at least 5 services, got %d", services)
	}
	pfx := loopbackNet()
	files := map[string][]byte{}
	for i := range services {
		y := strings.ReplaceAll(string(controlplane.ServiceYAML(i, -1)), "address: 10.1.", "address: "+pfx)
		files[controlplane.ServiceFile("mesh", i)] = []byte(y)
	}
	files[controlplane.VirtualServiceFile("mesh")] = controlplane.RoutingYAML(0)
	app := pfx + "250.1:8080"
	name, ns := controlplane.ServiceName(0), controlplane.Namespace(0)
	files["mesh/sidecar.yaml"] = fmt.Appendf(nil, `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: %s, namespace: %s}
spec:
  workloadSelector:
    labels: {app: %s}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %s
`, name, ns, name, app)
	ip := strings.Replace(controlplane.EndpointIP(0, 0, false), "10.1.", pfx, 1)
	id := fmt.Sprintf("sidecar~%s~%s-0.%s~%s.svc.cluster.local", ip, name, ns, ns)
	s := Scenario{
		Name:        fmt.Sprintf("mesh%d", services),
		Args:        []string{"--node-id", id, "--labels", "app=" + name + ",version=v1", "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT=" + name},
		Outbound:    ip + ":15001",
		Inbound:     ip + ":8080",
		InboundHost: controlplane.Hostname(0) + ":8080",
	}
	for i := 1; i <= 4; i++ {
		s.Targets = append(s.Targets, fmt.Sprintf("http://%s.%s:8080/svc", controlplane.ServiceName(i), controlplane.Namespace(i)))
		for j := range controlplane.EndpointsPerService {
			s.Backends = append(s.Backends, strings.Replace(controlplane.EndpointIP(i, j, false), "10.1.", pfx, 1)+":8080")
		}
	}
	s.Backends = append(s.Backends, app)
	return s.generate(files, xdsclient.NodeConfig{ID: id, Labels: map[string]string{"app": name, "version": "v1"},
		Meta: map[string]string{"INTERCEPTION_MODE": "NONE", "SERVICE_ACCOUNT": name}})
}

// generate loads files through the same path as mastd (config.Load,
// serviceentry.Build, model.NewPushContext) and generates every xDS type for
// the node nc describes. Any problem in the configuration is an error.
func (s Scenario) generate(files map[string][]byte, nc xdsclient.NodeConfig) (Scenario, error) {
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	var rs []config.Resource
	for _, f := range names {
		got, problems := config.Load(f, files[f])
		if problems.HasErrors() {
			return s, fmt.Errorf("%s: %w", s.Name, problems)
		}
		rs = append(rs, got...)
	}
	mesh := model.DefaultMeshConfig()
	snap := config.NewSnapshot(rs)
	reg := serviceentry.Build(snap, serviceentry.Options{TrustDomain: mesh.TrustDomain})
	pc := model.NewPushContext("proxymem", mesh, snap, reg)
	node, err := xdsclient.BuildNode(nc)
	if err != nil {
		return s, err
	}
	// mastd's model reads the generated Node: hand it the bytes the proxy sends.
	nb, err := node.Marshal()
	if err != nil {
		return s, err
	}
	var gnode corev3.Node
	if err := proto.Unmarshal(nb, &gnode); err != nil {
		return s, err
	}
	p, err := model.ParseNode(&gnode)
	if err != nil {
		return s, err
	}
	s.NodeID = node.ID
	s.Resources = map[resource.Type][]types.Resource{}
	for _, t := range controlplane.XDSTypes {
		got, err := generate.Generate(pc, p, t, nil)
		if err != nil {
			return s, fmt.Errorf("%s: generate %s: %w", s.Name, controlplane.ShortType(t), err)
		}
		for _, r := range got {
			s.Resources[t] = append(s.Resources[t], r.Resource)
		}
	}
	return s, nil
}
