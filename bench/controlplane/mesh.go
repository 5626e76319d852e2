// Package controlplane benchmarks mastd's control plane (Pilot): sidecar
// config generation, and pushes from a watched config directory to many
// simulated xDS clients (SotW and Delta ADS over real gRPC on loopback).
// cmd/cpbench drives it and writes the results to bench/results.
package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// EndpointsPerService is the number of WorkloadEntries behind each service.
const EndpointsPerService = 5

// Mesh describes the generated configuration: Services ServiceEntries with
// EndpointsPerService WorkloadEntries each, spread over 10 namespaces, one
// file per service, plus a VirtualService and a DestinationRule for service 0.
type Mesh struct {
	Services int
}

// Namespace returns the namespace of service i.
func Namespace(i int) string { return fmt.Sprintf("ns%d", i%10) }

// ServiceName returns the short name of service i.
func ServiceName(i int) string { return fmt.Sprintf("svc%05d", i) }

// Hostname returns the hostname of service i.
func Hostname(i int) string {
	return ServiceName(i) + "." + Namespace(i) + ".svc.cluster.local"
}

// EndpointIP returns the address of endpoint j of service i; alt selects an
// alternative address used by endpoint-only changes.
func EndpointIP(i, j int, alt bool) string {
	idx := i*EndpointsPerService + j
	a := 1 + idx/62500
	if alt {
		a += 100
	}
	return fmt.Sprintf("10.%d.%d.%d", a, (idx/250)%250, 1+idx%250)
}

// ServiceFile returns the path of service i's file under dir.
func ServiceFile(dir string, i int) string {
	return filepath.Join(dir, Namespace(i), ServiceName(i)+".yaml")
}

// VirtualServiceFile returns the path of the VirtualService that config
// changes rewrite.
func VirtualServiceFile(dir string) string { return filepath.Join(dir, "routing", "vs.yaml") }

// ServiceYAML returns service i's ServiceEntry and WorkloadEntries. altEndpoint,
// when in [0, EndpointsPerService), gives that endpoint its alternative address.
func ServiceYAML(i, altEndpoint int) []byte {
	var b strings.Builder
	name, ns := ServiceName(i), Namespace(i)
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: %s
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  workloadSelector:
    labels:
      app: %s
`, name, ns, Hostname(i), name)
	for j := range EndpointsPerService {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %s-%d
  namespace: %s
spec:
  address: %s
  serviceAccount: %s
  locality: region1/zone%d
  labels:
    app: %s
    version: v%d
`, name, j, ns, EndpointIP(i, j, j == altEndpoint), name, j%3, name, j%2+1)
	}
	return []byte(b.String())
}

// RoutingYAML returns the VirtualService (and its DestinationRule) for
// service 0; generation changes the route timeout, so every value is a
// distinct configuration.
func RoutingYAML(generation int) []byte {
	host := Hostname(0)
	return []byte(fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  hosts:
  - %[3]s
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: %[3]s
        subset: v2
  - route:
    - destination:
        host: %[3]s
        subset: v1
      weight: 90
    - destination:
        host: %[3]s
        subset: v2
      weight: 10
    timeout: %[4]d.%03[5]ds
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  host: %[3]s
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
`, ServiceName(0), Namespace(0), host, 1+generation/1000, generation%1000))
}

// Write writes the mesh's files under dir (which it creates).
func (m Mesh) Write(dir string) error {
	for i := range m.Services {
		if err := WriteFileAtomic(ServiceFile(dir, i), ServiceYAML(i, -1)); err != nil {
			return err
		}
	}
	return WriteFileAtomic(VirtualServiceFile(dir), RoutingYAML(0))
}

// WriteFileAtomic writes data to a hidden temporary file next to path and
// renames it into place, as config management tools do, so that the watcher
// never reads a half-written file.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ConfigMarker returns bytes that appear in the routes (a route
// configuration or virtual host) of service 0 once the VirtualService of
// RoutingYAML(generation) is applied, and in no earlier generation's: the
// route action's timeout as encoded (RouteAction.timeout, field 8).
func ConfigMarker(generation int) []byte {
	d, err := proto.MarshalOptions{Deterministic: true}.Marshal(durationpb.New(time.Duration(1+generation/1000)*time.Second + time.Duration(generation%1000)*time.Millisecond))
	if err != nil {
		panic(err) // a Duration always marshals
	}
	b := protowire.AppendTag(nil, 8, protowire.BytesType)
	return protowire.AppendBytes(b, d)
}

// EndpointMarker returns bytes that appear in service 0's load assignments
// when its last endpoint has its alternative address (moved) or its
// original one: that endpoint's SocketAddress.address (field 2) as encoded.
func EndpointMarker(moved bool) []byte {
	b := protowire.AppendTag(nil, 2, protowire.BytesType)
	return protowire.AppendString(b, EndpointIP(0, EndpointsPerService-1, moved))
}
