package dataplane

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// HopConfig is what a peer's configuration generator needs to know about one
// hop process.
type HopConfig struct {
	Hop     int    // 1 (client side) or 2 (server side)
	IP      string // the address it listens on
	Next    string // the address it forwards to: the second hop or the server
	Dir     string // its working directory (pid file, logs, temp files)
	Certs   Certs  // TLS material (the first hop presents Client, the second Server)
	Workers int    // worker processes or threads (the CPUs it is pinned to)
	// Services, when above zero, adds a mesh of that many services (virtual
	// hosts with two upstream endpoints each) to measure memory.
	Services int
	// H2Upstream (nginx-h2up): nginx's h2c listeners forward over HTTP/2
	// with grpc_pass instead of HTTP/1.1 with proxy_pass.
	H2Upstream bool
}

// MeshServiceHost is the hostname of mesh service i of the memory scenario.
func MeshServiceHost(i int) string { return fmt.Sprintf("svc%04d.%s.svc.cluster.local", i, Namespace) }

// MeshEndpoint is the address of endpoint j (0 or 1) of mesh service i;
// nothing listens there, proxies only hold it in their configuration.
func MeshEndpoint(i, j int) string {
	n := 2*i + j
	return fmt.Sprintf("10.%d.%d.%d", 10+n/65536, n/256%256, n%256)
}

// nextPort is the port a hop forwards a protocol to, and whether that
// upstream speaks TLS.
func (h HopConfig) nextPort(proto Protocol, tlsChain bool) (int, bool) {
	if h.Hop == 2 {
		return proto.AppPort(), false
	}
	if tlsChain {
		return proto.Port() + TLSPortOffset, true
	}
	return proto.Port(), false
}

// NginxConf is nginx.conf for one hop: HTTP/1.1 with keep-alive upstream
// pools, h2c downstream with HTTP/1.1 upstream (nginx's proxy module has no
// HTTP/2 upstream; with H2Upstream, HTTP/2 upstream through grpc_pass,
// which forwards any HTTP/2 request, not only gRPC), gRPC through grpc_pass. The first hop also listens on
// each port + TLSPortOffset forwarding over mutual TLS to the second hop,
// which terminates it there.
func NginxConf(h HopConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, `daemon off;
master_process on;
worker_processes %d;
pid %s;
error_log %s warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    http2_max_requests 1000000;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;
    grpc_read_timeout 3600s;
    grpc_send_timeout 3600s;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
`, max(h.Workers, 1), filepath.Join(h.Dir, "nginx.pid"), filepath.Join(h.Dir, "error.log"),
		filepath.Join(h.Dir, "client_body"), filepath.Join(h.Dir, "proxy"), filepath.Join(h.Dir, "fastcgi"),
		filepath.Join(h.Dir, "uwsgi"), filepath.Join(h.Dir, "scgi"))
	upstream := func(name, addr string) {
		fmt.Fprintf(&b, "    upstream %s { server %s; keepalive 64; keepalive_requests 1000000; }\n", name, addr)
	}
	sslClient := func(prefix string) {
		fmt.Fprintf(&b, "            %s_ssl_certificate %s; %s_ssl_certificate_key %s; %s_ssl_trusted_certificate %s;\n",
			prefix, h.Certs.ClientCert, prefix, h.Certs.ClientKey, prefix, h.Certs.CA)
		fmt.Fprintf(&b, "            %s_ssl_verify on; %s_ssl_name %s; %s_ssl_server_name on; %s_ssl_session_reuse on;\n",
			prefix, prefix, CertServerName, prefix, prefix)
	}
	for _, tlsChain := range []bool{false, true} {
		if h.Services > 0 {
			break // the memory scenario: the mesh alone
		}
		for _, proto := range Protocols {
			listen := proto.Port()
			if tlsChain {
				listen += TLSPortOffset
			}
			np, upTLS := h.nextPort(proto, tlsChain)
			h2up := proto == GRPC || proto == GRPCStream || (proto == HTTP2 && h.H2Upstream)
			if proto == HTTP2 && !upTLS && h.Hop == 1 && !h2up {
				np = HTTP1.Port() // the second hop's plaintext h2c port accepts only HTTP/2
			}
			up := fmt.Sprintf("up_%d", listen)
			upstream(up, h.Next+":"+strconv.Itoa(np))
			opts := ""
			if proto != HTTP1 {
				opts = " http2"
			}
			if tlsChain && h.Hop == 2 {
				opts = " ssl" + opts
			}
			fmt.Fprintf(&b, "    server {\n        listen %s:%d%s;\n", h.IP, listen, opts)
			if tlsChain && h.Hop == 2 {
				fmt.Fprintf(&b, "        ssl_certificate %s; ssl_certificate_key %s;\n        ssl_client_certificate %s; ssl_verify_client on;\n",
					h.Certs.ServerCert, h.Certs.ServerKey, h.Certs.CA)
			}
			b.WriteString("        location / {\n")
			switch {
			case h2up:
				scheme := "grpc"
				if upTLS {
					scheme = "grpcs"
				}
				fmt.Fprintf(&b, "            grpc_pass %s://%s;\n", scheme, up)
				if upTLS {
					sslClient("grpc")
				}
			default:
				scheme := "http"
				if upTLS {
					scheme = "https"
				}
				fmt.Fprintf(&b, "            proxy_pass %s://%s;\n", scheme, up)
				if upTLS {
					sslClient("proxy")
				}
			}
			b.WriteString("        }\n    }\n")
		}
	}
	for i := 0; i < h.Services; i++ {
		fmt.Fprintf(&b, "    upstream svc%04d { server %s:28080; server %s:28080; keepalive 16; }\n", i, MeshEndpoint(i, 0), MeshEndpoint(i, 1))
		fmt.Fprintf(&b, "    server { listen %s:28080; server_name %s; location / { proxy_pass http://svc%04d; } }\n", h.IP, MeshServiceHost(i), i)
	}
	b.WriteString("}\n")
	return b.String()
}

// HAProxyConf is haproxy.cfg for one hop: mode http with connection reuse,
// h2 on both sides for HTTP/2 and gRPC (HAProxy speaks h2c upstream), and on
// the TLS chain mutual TLS with ALPN between the hops.
func HAProxyConf(h HopConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    nbthread %d
    maxconn 4096
    pidfile %s
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 3600s
    timeout server 3600s
    timeout http-keep-alive 300s
    http-reuse always
`, max(h.Workers, 1), filepath.Join(h.Dir, "haproxy.pid"))
	for _, tlsChain := range []bool{false, true} {
		if h.Services > 0 {
			break // the memory scenario: the mesh alone
		}
		for _, proto := range Protocols {
			listen := proto.Port()
			if tlsChain {
				listen += TLSPortOffset
			}
			np, upTLS := h.nextPort(proto, tlsChain)
			bindOpts, srvOpts := "", ""
			if proto != HTTP1 {
				bindOpts, srvOpts = " proto h2", " proto h2"
			}
			if tlsChain && h.Hop == 2 {
				bindOpts = fmt.Sprintf(" ssl crt %s ca-file %s verify required alpn h2,http/1.1", h.Certs.ServerPEM, h.Certs.CA)
			}
			if upTLS {
				alpn := "http/1.1"
				if proto != HTTP1 {
					alpn = "h2"
				}
				srvOpts = fmt.Sprintf(" ssl crt %s ca-file %s verify required verifyhost %s sni str(%s) alpn %s", h.Certs.ClientPEM, h.Certs.CA, CertServerName, CertServerName, alpn)
			}
			fmt.Fprintf(&b, "frontend f%d\n    bind %s:%d%s\n    default_backend b%d\nbackend b%d\n    server s %s:%d%s\n",
				listen, h.IP, listen, bindOpts, listen, listen, h.Next, np, srvOpts)
		}
	}
	if h.Services > 0 {
		fmt.Fprintf(&b, "frontend mesh\n    bind %s:28080\n    use_backend %%[req.hdr(host),lower,map(%s)]\n", h.IP, filepath.Join(h.Dir, "hosts.map"))
		for i := 0; i < h.Services; i++ {
			fmt.Fprintf(&b, "backend svc%04d\n    server a %s:28080\n    server b %s:28080\n", i, MeshEndpoint(i, 0), MeshEndpoint(i, 1))
		}
	}
	return b.String()
}

// HAProxyHostMap is the map file the 1,000-service HAProxy configuration
// selects its backend with.
func HAProxyHostMap(services int) string {
	var b strings.Builder
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "%s svc%04d\n%s:28080 svc%04d\n", MeshServiceHost(i), i, MeshServiceHost(i), i)
	}
	return b.String()
}

// Caddyfile is the Caddyfile for one hop: reverse_proxy with h2c upstreams
// for HTTP/2 and gRPC, and on the TLS chain mutual TLS between the hops.
func Caddyfile(h HopConfig) string {
	var b strings.Builder
	b.WriteString("{\n    admin off\n    auto_https off\n    persist_config off\n    servers {\n        protocols h1 h2 h2c\n        strict_sni_host insecure_off\n    }\n}\n")
	for _, tlsChain := range []bool{false, true} {
		if h.Services > 0 {
			break // the memory scenario: the mesh alone
		}
		for _, proto := range Protocols {
			listen := proto.Port()
			if tlsChain {
				listen += TLSPortOffset
			}
			np, upTLS := h.nextPort(proto, tlsChain)
			scheme := "http"
			if tlsChain && h.Hop == 2 {
				scheme = "https"
			}
			fmt.Fprintf(&b, "%s://:%d {\n    bind %s\n", scheme, listen, h.IP)
			if tlsChain && h.Hop == 2 {
				fmt.Fprintf(&b, "    tls %s %s {\n        client_auth {\n            mode require_and_verify\n            trust_pool file %s\n        }\n    }\n",
					h.Certs.ServerCert, h.Certs.ServerKey, h.Certs.CA)
			}
			up := "http://"
			if proto != HTTP1 {
				up = "h2c://"
			}
			if upTLS {
				up = "https://"
			}
			fmt.Fprintf(&b, "    reverse_proxy %s%s:%d {\n", up, h.Next, np)
			if proto == GRPCStream {
				b.WriteString("        flush_interval -1\n")
			}
			if upTLS {
				versions := "1.1"
				if proto != HTTP1 {
					versions = "2"
				}
				fmt.Fprintf(&b, "        transport http {\n            versions %s\n            tls_client_auth %s %s\n            tls_trust_pool file %s\n            tls_server_name %s\n        }\n",
					versions, h.Certs.ClientCert, h.Certs.ClientKey, h.Certs.CA, CertServerName)
			}
			b.WriteString("    }\n}\n")
		}
	}
	for i := 0; i < h.Services; i++ {
		fmt.Fprintf(&b, "http://%s:28080 {\n    bind %s\n    reverse_proxy %s:28080 %s:28080\n}\n", MeshServiceHost(i), h.IP, MeshEndpoint(i, 0), MeshEndpoint(i, 1))
	}
	return b.String()
}

// MastConfig is mastd's configuration for the benchmark: service echo-app
// (the server itself, one hop), echo (the server sidecar, two hops, a
// DestinationRule with TLS DISABLE so that the hops speak plaintext) and
// echo-mtls (the server sidecar with a DestinationRule ISTIO_MUTUAL), the
// server sidecar's Sidecar resource pointing its inbound ports at the
// server, and with services > 0 a mesh of that many more services with two
// endpoints each.
func MastConfig(services int) string {
	var b strings.Builder
	ports := func(indent string) {
		for _, p := range Protocols {
			fmt.Fprintf(&b, "%s- {number: %d, name: %s, protocol: %s}\n", indent, p.Port(), portName(p), portProtocol(p))
		}
	}
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo-app, namespace: %s}\nspec:\n  hosts: [%s]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n", Namespace, EchoAppHost)
	ports("  ")
	fmt.Fprintf(&b, "  workloadSelector:\n    labels: {app: echo-app}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: echo-app, namespace: %s}\nspec:\n  address: %s\n  labels: {app: echo-app}\n  ports: {%s: %d}\n",
		Namespace, ServerIP, portName(HTTP2), HTTP2.AppPort())
	for _, name := range []string{"echo", "echo-mtls"} {
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: %s}\nspec:\n  hosts: [%s.%s.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n", name, Namespace, name, Namespace)
		ports("  ")
		b.WriteString("  workloadSelector:\n    labels: {app: echo}\n")
	}
	fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: echo, namespace: %s}\nspec:\n  address: %s\n  labels: {app: echo}\n  serviceAccount: echo\n", Namespace, MastServerIP)
	fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: echo, namespace: %s}\nspec:\n  workloadSelector:\n    labels: {app: echo}\n  ingress:\n", Namespace)
	for _, p := range Protocols {
		fmt.Fprintf(&b, "  - port: {number: %d, protocol: %s, name: %s}\n    defaultEndpoint: %s:%d\n", p.Port(), portProtocol(p), portName(p), ServerIP, p.AppPort())
	}
	// The plaintext path must be plaintext: the echo WorkloadEntry has a
	// service account, so auto mTLS would otherwise encrypt it as Istio
	// does, and the "plaintext" row would compare Mast with mTLS against
	// the other proxies without.
	fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo, namespace: %s}\nspec:\n  host: %s\n  trafficPolicy:\n    tls: {mode: DISABLE}\n", Namespace, EchoHost)
	fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo-mtls, namespace: %s}\nspec:\n  host: %s\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n", Namespace, EchoMTLSHost)
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc%04d, namespace: %s}\nspec:\n  hosts: [%s]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {number: 28080, name: http, protocol: HTTP}\n  endpoints:\n  - {address: %s}\n  - {address: %s}\n",
			i, Namespace, MeshServiceHost(i), MeshEndpoint(i, 0), MeshEndpoint(i, 1))
	}
	return b.String()
}

func portName(p Protocol) string {
	switch p {
	case HTTP2:
		return "http2"
	case GRPC:
		return "grpc"
	case GRPCStream:
		return "grpc-stream"
	}
	return "http"
}

func portProtocol(p Protocol) string {
	switch p {
	case HTTP2:
		return "HTTP2"
	case GRPC, GRPCStream:
		return "GRPC"
	}
	return "HTTP"
}

// MastTelemetryMesh is the -telemetry mode's MeshConfig: a Zipkin tracing
// provider whose collector is the harness's span sink (ZipkinHost).
func MastTelemetryMesh() string {
	return fmt.Sprintf("extensionProviders:\n- name: zipkin\n  zipkin:\n    service: %s\n    port: %d\n", ZipkinHost, ZipkinPort)
}

// MastTelemetry is the -telemetry mode's switch, a file in mastd's
// configuration directory: the sink's ServiceEntry, and a mesh-wide
// Telemetry resource that either disables every standard metric (off) or
// turns on tracing at Istio's default 1 % to the sink, metrics staying on
// (on).
func MastTelemetry(on bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: zipkin, namespace: %s}\nspec:\n  hosts: [%s]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports:\n  - {number: %d, name: http-zipkin, protocol: HTTP}\n  endpoints:\n  - address: %s\n",
		Namespace, ZipkinHost, ZipkinPort, ServerIP)
	b.WriteString("---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: bench-telemetry, namespace: istio-system}\nspec:\n")
	if on {
		b.WriteString("  tracing:\n  - providers: [{name: zipkin}]\n    randomSamplingPercentage: 1\n")
	} else {
		b.WriteString("  metrics:\n  - overrides:\n    - disabled: true\n")
	}
	return b.String()
}
