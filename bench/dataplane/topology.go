// Package dataplane benchmarks mast-proxy's data path against nginx, HAProxy
// and Caddy: fortio (and, for gRPC streaming, a small grpc-go client of this
// package) sends load on loopback through zero, one or two proxies to a
// fortio server, at a fixed rate and at saturation, while the harness reads
// each proxy's CPU time and resident memory from /proc.
//
// Every hop has its own loopback address, so the processes can share ports:
//
//	server (fortio + stream echo)  127.77.2.1   28080 HTTP/1.1+h2c, 28079 gRPC, 28078 gRPC streaming
//	mast   client sidecar 127.77.1.1 (15001), server sidecar 127.77.1.2
//	nginx  127.77.3.1 -> 127.77.3.2,  nginx-h2up 127.77.6.1 -> 127.77.6.2,  haproxy 127.77.4.1 -> 127.77.4.2,  caddy 127.77.5.1 -> 127.77.5.2
//
// The peers listen for HTTP/1.1 on 28080, h2c on 28081, gRPC on 28079 and gRPC
// streaming on 28078; their second hop accepts TLS (with client certificates)
// on those ports plus 10000.
package dataplane

import (
	"fmt"
	"strconv"
)

// Protocol is what the load generator speaks.
type Protocol string

// The protocols of the issue: HTTP/1.1 with 1 KiB bodies, HTTP/2 (h2c), and
// gRPC unary and bidirectional streaming.
const (
	HTTP1      Protocol = "http1"
	HTTP2      Protocol = "http2"
	GRPC       Protocol = "grpc"
	GRPCStream Protocol = "grpc-stream"
)

// Protocols lists every protocol in report order.
var Protocols = []Protocol{HTTP1, HTTP2, GRPC, GRPCStream}

// Port is the port a protocol uses on the server and on every proxy.
func (p Protocol) Port() int {
	switch p {
	case HTTP2:
		return 28081
	case GRPC:
		return 28079
	case GRPCStream:
		return 28078
	}
	return 28080
}

// AppPort is the server application's port for the protocol (the fortio
// server answers HTTP/1.1 and h2c on the same port).
func (p Protocol) AppPort() int {
	if p == HTTP2 {
		return 28080
	}
	return p.Port()
}

// TLSPortOffset moves a protocol's port to the TLS listener of a second hop.
const TLSPortOffset = 1000

// Peer is the proxy implementation of a path.
type Peer string

// The peers.
const (
	Direct Peer = "direct"
	Mast   Peer = "mast"
	Nginx  Peer = "nginx"
	// NginxH2Up is nginx with HTTP/2 on every hop of the h2c path: its
	// h2c listeners forward with grpc_pass (h2c or h2 over TLS) instead of
	// proxy_pass, which speaks only HTTP/1.1 upstream, so nginx's h2c row
	// talks HTTP/1.1 to the second hop and to the server while Mast and
	// HAProxy speak HTTP/2 on every hop. Only its h2c rows are run: on the
	// other protocols it is the same configuration as nginx.
	NginxH2Up Peer = "nginx-h2up"
	HAProxy   Peer = "haproxy"
	Caddy     Peer = "caddy"
)

// Peers lists every proxying peer in report order.
var Peers = []Peer{Mast, Nginx, NginxH2Up, HAProxy, Caddy}

// Runs reports whether a path is run for a protocol: nginx-h2up only
// differs from nginx on h2c.
func (p Path) Runs(proto Protocol) bool { return p.Peer != NginxH2Up || proto == HTTP2 }

// WithNginxH2Up adds nginx-h2up right after nginx when nginx is compared on
// h2c and nginx-h2up was not asked for, so that every h2c comparison
// with nginx also has nginx's all-HTTP/2 chain beside the HTTP/1.1-upstream
// one.
func WithNginxH2Up(peers []Peer, protos []Protocol) []Peer {
	h2, nginx := false, -1
	for _, p := range protos {
		h2 = h2 || p == HTTP2
	}
	for i, p := range peers {
		if p == NginxH2Up {
			return peers
		}
		if p == Nginx {
			nginx = i
		}
	}
	if !h2 || nginx < 0 {
		return peers
	}
	out := append([]Peer{}, peers[:nginx+1]...)
	out = append(out, NginxH2Up)
	return append(out, peers[nginx+1:]...)
}

// Path is a chain of proxies between the load generator and the server.
type Path struct {
	Peer Peer
	Hops int  // 0 (direct), 1 or 2
	TLS  bool // mutual TLS between the two hops
	// Telemetry (Mast, -telemetry mode): Istio's standard metrics on and
	// tracing at 1 % to a Zipkin collector; the other Mast paths of that
	// mode run with metrics disabled by the Telemetry API and no tracing.
	Telemetry bool
}

// Name is the path's label in reports, e.g. "mast 2-hop mTLS".
func (p Path) Name() string {
	if p.Hops == 0 {
		return "direct"
	}
	s := fmt.Sprintf("%s %d-hop", p.Peer, p.Hops)
	if p.TLS {
		s += " mTLS"
	}
	if p.Telemetry {
		s += " +telemetry"
	}
	return s
}

// Paths lists direct and, for each peer, one hop, two hops, and two hops with
// mutual TLS between them; with telemetry, Mast's two hops again with
// metrics and tracing on.
func Paths(peers []Peer, telemetry bool) []Path {
	out := []Path{{Peer: Direct}}
	for _, p := range peers {
		out = append(out, Path{Peer: p, Hops: 1}, Path{Peer: p, Hops: 2})
		if p == Mast && telemetry {
			out = append(out, Path{Peer: p, Hops: 2, Telemetry: true})
		}
		out = append(out, Path{Peer: p, Hops: 2, TLS: true})
	}
	return out
}

// Addresses of the processes.
const (
	ServerIP        = "127.77.2.1"
	MastClientIP    = "127.77.1.1"
	MastServerIP    = "127.77.1.2"
	MastMeshIP      = "127.77.1.3" // the sidecar that loads the 1,000-service mesh
	MastOutbound    = 15001
	ZipkinPort      = 29411 // the -telemetry mode's span sink, at ServerIP
	ZipkinHost      = "zipkin.bench.svc.cluster.local"
	Namespace       = "bench"
	EchoHost        = "echo.bench.svc.cluster.local"      // served through the server sidecar
	EchoAppHost     = "echo-app.bench.svc.cluster.local"  // the server itself, no sidecar
	EchoMTLSHost    = "echo-mtls.bench.svc.cluster.local" // the server sidecar, DestinationRule ISTIO_MUTUAL
	streamFullName  = "/mast.bench.Echo/Stream"
	streamService   = "mast.bench.Echo"
	streamMethod    = "Stream"
	defaultBodySize = 1024
)

// HopIPs returns the addresses of a peer's first and second hop.
func HopIPs(p Peer) (first, second string) {
	switch p {
	case Mast:
		return MastClientIP, MastServerIP
	case Nginx:
		return "127.77.3.1", "127.77.3.2"
	case NginxH2Up:
		return "127.77.6.1", "127.77.6.2"
	case HAProxy:
		return "127.77.4.1", "127.77.4.2"
	case Caddy:
		return "127.77.5.1", "127.77.5.2"
	}
	return ServerIP, ServerIP
}

// Target is where the load generator sends a protocol's traffic on a path.
type Target struct {
	Addr      string // host:port to connect to
	Authority string // Host / :authority to send, "" for the address itself
	// Proc names the proxy processes on the path, client side first.
	Procs []string
}

// TargetFor returns the load generator's target. Mast's first hop is the
// client sidecar's outbound listener (127.77.1.1:15001), reached the way
// captured traffic reaches it under iptables: an origin-form request whose
// Host names the service. One hop is the client sidecar alone, calling the
// server application (service echo-app, whose endpoint has no sidecar); two
// hops call service echo, whose endpoint is the server sidecar's inbound
// listener, which forwards to the application. The other peers are plain
// reverse proxies: one hop is their second-hop process alone.
func TargetFor(path Path, proto Protocol) Target {
	port := strconv.Itoa(proto.Port())
	if path.Hops == 0 {
		return Target{Addr: ServerIP + ":" + strconv.Itoa(proto.AppPort())}
	}
	first, second := HopIPs(path.Peer)
	if path.Peer == Mast {
		t := Target{Addr: MastClientIP + ":" + strconv.Itoa(MastOutbound), Procs: []string{ProcName(Mast, 1)}}
		if path.Hops == 1 {
			t.Authority = EchoAppHost + ":" + port
			return t
		}
		t.Authority = EchoHost + ":" + port
		if path.TLS {
			t.Authority = EchoMTLSHost + ":" + port
		}
		t.Procs = append(t.Procs, ProcName(Mast, 2))
		return t
	}
	if path.Hops == 1 {
		// The second hop's plaintext listener; its TLS listener serves only the first hop.
		return Target{Addr: second + ":" + port, Procs: []string{ProcName(path.Peer, 2)}}
	}
	if path.TLS {
		// The first hop's listener whose upstream is the second hop's TLS listener.
		port = strconv.Itoa(proto.Port() + TLSPortOffset)
	}
	return Target{Addr: first + ":" + port, Procs: []string{ProcName(path.Peer, 1), ProcName(path.Peer, 2)}}
}

// ProcName names a peer's hop process: "nginx-1" (client side), "nginx-2".
func ProcName(p Peer, hop int) string { return fmt.Sprintf("%s-%d", p, hop) }
