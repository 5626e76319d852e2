package localmesh

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Where the Jaeger addon listens: OTLP gRPC (what the proxies report to),
// Zipkin v2 (the zipkin provider) and the UI / HTTP API.
const (
	JaegerOTLPAddr   = "127.0.0.1:4317"
	JaegerZipkinAddr = "127.0.0.1:9411"
	JaegerUIAddr     = "127.0.0.1:16686"
	// JaegerCollectorHost is the collector's mesh name (Istio's samples
	// use the same), made known to mastd by the addon's ServiceEntry.
	JaegerCollectorHost = "jaeger-collector.istio-system.svc.cluster.local"
	jaegerVersion       = "v1.76.0"
)

// jaegerProviders are the MeshConfig extensionProviders that send spans to
// the addon: OpenTelemetry (OTLP gRPC, the default: jaegerDefaults) and
// Zipkin, available to Telemetry resources as "zipkin".
const jaegerProviders = `- name: jaeger
  opentelemetry:
    service: ` + JaegerCollectorHost + `
    port: 4317
- name: zipkin
  zipkin:
    service: ` + JaegerCollectorHost + `
    port: 9411
`

const jaegerDefaults = `defaultProviders:
  tracing: [jaeger]
`

// jaegerServiceEntry declares the addon's collector to the mesh, so that
// proxies get the outbound|4317||... cluster the tracing provider names.
const jaegerServiceEntry = `# Written by mast up --addons jaeger: the local Jaeger's collector.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: jaeger-collector
  namespace: istio-system
spec:
  hosts: [` + JaegerCollectorHost + `]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 4317, name: grpc-otlp, protocol: GRPC}
  - {number: 9411, name: http-zipkin, protocol: HTTP}
  endpoints:
  - address: 127.0.0.1
`

// jaegerServiceEntryFile is the addon's file in the configuration directory.
const jaegerServiceEntryFile = "mast-addon-jaeger.yaml"

// jaegerBinary finds Jaeger all-in-one: $MAST_JAEGER, the build cache, or
// PATH; else it says how to build it.
func jaegerBinary() (string, error) {
	if p := os.Getenv("MAST_JAEGER"); p != "" {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "mast", "jaeger-all-in-one-"+jaegerVersion)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("jaeger-all-in-one"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("the jaeger addon needs Jaeger all-in-one %s: build it with scripts/build-jaeger.sh (cached in ~/.cache/mast), or set MAST_JAEGER", jaegerVersion)
}

// jaegerProc is the addon's process: in-memory storage, OTLP and Zipkin
// receivers and the query service on loopback.
func jaegerProc() Proc {
	return Proc{Name: "jaeger", Program: "jaeger", Args: []string{
		"--collector.otlp.grpc.host-port=" + JaegerOTLPAddr,
		"--collector.otlp.http.host-port=127.0.0.1:4318",
		"--collector.zipkin.host-port=" + JaegerZipkinAddr,
		"--query.http-server.host-port=" + JaegerUIAddr,
		"--query.grpc-server.host-port=127.0.0.1:16685",
		"--collector.http-server.host-port=127.0.0.1:14268",
		"--collector.grpc-server.host-port=127.0.0.1:14250",
		"--admin.http.host-port=127.0.0.1:14269",
		"--memory.max-traces=10000",
	}}
}

// writeJaegerServiceEntry puts the collector's ServiceEntry into the
// mesh's configuration directory.
func writeJaegerServiceEntry(configDir string) (string, error) {
	p := filepath.Join(configDir, jaegerServiceEntryFile)
	if err := os.WriteFile(p, []byte(jaegerServiceEntry), 0o644); err != nil {
		return "", fmt.Errorf("jaeger addon: %w", err)
	}
	return p, nil
}
