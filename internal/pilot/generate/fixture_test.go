package generate

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

func res(kind config.Kind, ns, name string, spec proto.Message) config.Resource {
	return config.Resource{Meta: config.Meta{Kind: kind, Name: name, Namespace: ns, Source: config.Source{File: "fixture"}}, Spec: spec}
}

func exact(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: s}}
}
func prefix(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: s}}
}
func regex(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: s}}
}
func dest(host, subset string, port uint32) *networking.Destination {
	d := &networking.Destination{Host: host, Subset: subset}
	if port != 0 {
		d.Port = &networking.PortSelector{Number: port}
	}
	return d
}
func durp(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func svc(host, ns, vip string, res registry.Resolution, ports ...registry.Port) *registry.Service {
	s := &registry.Service{Hostname: host, Namespace: ns, Ports: ports, Resolution: res, Registry: "fixture"}
	if vip != "" {
		s.Addresses = []string{vip}
	}
	return s
}

func ep(host string, sport uint32, addr string, port uint32, locality string, labels map[string]string) *registry.Endpoint {
	return &registry.Endpoint{Hostname: host, ServicePort: sport, Address: addr, Port: port, Locality: locality, Labels: labels, ServiceAccount: "bookinfo-" + labels["app"]}
}

var (
	http9080 = registry.Port{Name: "http", Number: 9080, Protocol: registry.HTTP}
	tcpMongo = registry.Port{Name: "mongo", Number: 27017, Protocol: registry.Mongo}
	grpc7070 = registry.Port{Name: "grpc", Number: 7070, Protocol: registry.GRPC}
	tls443   = registry.Port{Name: "tls", Number: 443, Protocol: registry.TLS}
	http80   = registry.Port{Name: "http", Number: 80, Protocol: registry.HTTP}
)

// bookinfoRegistry is a Bookinfo-like mesh: four HTTP services (reviews with
// three versions in two localities), a TCP database, a gRPC echo service,
// an external DNS service and a service in another namespace.
func bookinfoRegistry() *registry.Snapshot {
	const sfx = ".default.svc.cluster.local"
	services := []*registry.Service{
		svc("api.example.com", "default", "", registry.ResolutionDNS, tls443),
		svc("details"+sfx, "default", "10.0.0.2", registry.ResolutionStatic, http9080),
		svc("echo"+sfx, "default", "10.0.0.7", registry.ResolutionStatic, grpc7070),
		svc("httpbin.other.svc.cluster.local", "other", "10.0.0.8", registry.ResolutionStatic, http80),
		svc("mongodb"+sfx, "default", "10.0.0.6", registry.ResolutionStatic, tcpMongo),
		svc("productpage"+sfx, "default", "10.0.0.1", registry.ResolutionStatic, http9080),
		svc("ratings"+sfx, "default", "10.0.0.3", registry.ResolutionStatic, http9080),
		svc("reviews"+sfx, "default", "10.0.0.4", registry.ResolutionStatic, http9080),
	}
	services[3].ExportTo = []string{"*"}
	eps := map[string][]*registry.Endpoint{
		"details" + sfx:                   {ep("details"+sfx, 9080, "10.1.0.6", 9080, "us-east/a", map[string]string{"app": "details", "version": "v1"})},
		"echo" + sfx:                      {ep("echo"+sfx, 7070, "10.1.0.9", 7070, "us-east/a", map[string]string{"app": "echo"}), ep("echo"+sfx, 7070, "10.1.0.10", 7070, "us-east/b", map[string]string{"app": "echo"})},
		"httpbin.other.svc.cluster.local": {ep("httpbin.other.svc.cluster.local", 80, "10.1.0.11", 8080, "", map[string]string{"app": "httpbin"})},
		"mongodb" + sfx:                   {ep("mongodb"+sfx, 27017, "10.1.0.8", 27017, "us-east/a", map[string]string{"app": "mongodb"})},
		"productpage" + sfx:               {ep("productpage"+sfx, 9080, "10.1.0.1", 9080, "us-east/a", map[string]string{"app": "productpage", "version": "v1"})},
		"ratings" + sfx:                   {ep("ratings"+sfx, 9080, "10.1.0.5", 9080, "us-east/b", map[string]string{"app": "ratings", "version": "v1"})},
		"reviews" + sfx: {
			ep("reviews"+sfx, 9080, "10.1.0.2", 9080, "us-east/a", map[string]string{"app": "reviews", "version": "v1"}),
			ep("reviews"+sfx, 9080, "10.1.0.3", 9080, "us-east/b", map[string]string{"app": "reviews", "version": "v2"}),
			ep("reviews"+sfx, 9080, "10.1.0.4", 9080, "us-east/b", map[string]string{"app": "reviews", "version": "v3"}),
		},
	}
	return &registry.Snapshot{Services: services, Endpoints: eps}
}

// bookinfoConfig exercises every routing feature.
func bookinfoConfig() []config.Resource {
	subsets := func(versions ...string) []*networking.Subset {
		var out []*networking.Subset
		for _, v := range versions {
			out = append(out, &networking.Subset{Name: v, Labels: map[string]string{"version": v}})
		}
		return out
	}
	reviewsVS := &networking.VirtualService{
		Hosts: []string{"reviews"},
		Http: []*networking.HTTPRoute{
			{
				Name: "jason",
				Match: []*networking.HTTPMatchRequest{
					{Name: "header", Headers: map[string]*networking.StringMatch{"end-user": exact("jason"), "x-debug": {}}},
					{Name: "regex", Uri: regex("/api/v[0-9]+/reviews"), IgnoreUriCase: true, Method: exact("GET")},
				},
				Route:   []*networking.HTTPRouteDestination{{Destination: dest("reviews", "v2", 0)}},
				Timeout: durp(3 * time.Second),
				Retries: &networking.HTTPRetry{Attempts: 3, PerTryTimeout: durp(time.Second), RetryOn: "5xx,gateway-error,503"},
				Headers: &networking.Headers{Request: &networking.Headers_HeaderOperations{Set: map[string]string{"x-route": "jason"}, Remove: []string{"x-internal"}}},
			},
			{
				Name: "canary",
				Match: []*networking.HTTPMatchRequest{
					{Uri: prefix("/canary"), QueryParams: map[string]*networking.StringMatch{"v": exact("3")}, WithoutHeaders: map[string]*networking.StringMatch{"x-skip": {}}, Authority: prefix("reviews")},
					{Uri: exact("/from-productpage"), SourceLabels: map[string]string{"app": "productpage"}},
					{Uri: exact("/from-ratings"), SourceLabels: map[string]string{"app": "ratings"}},
					{Uri: exact("/other-port"), Port: 9999},
				},
				Route: []*networking.HTTPRouteDestination{
					{Destination: dest("reviews", "v1", 0), Weight: 75, Headers: &networking.Headers{Response: &networking.Headers_HeaderOperations{Add: map[string]string{"x-version": "v1"}}}},
					{Destination: dest("reviews", "v3", 0), Weight: 25},
				},
				Mirror:           dest("reviews", "v2", 9080),
				MirrorPercentage: &networking.Percent{Value: 12.5},
				CorsPolicy: &networking.CorsPolicy{
					AllowOrigins: []*networking.StringMatch{exact("https://example.com"), regex(".*\\.example\\.org")},
					AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"x-a"}, ExposeHeaders: []string{"x-b"},
					MaxAge: durp(24 * time.Hour), AllowCredentials: wrapperspb.Bool(true),
				},
			},
			{
				Name:    "rewrite",
				Match:   []*networking.HTTPMatchRequest{{Uri: prefix("/old")}},
				Rewrite: &networking.HTTPRewrite{Uri: "/new", Authority: "reviews.internal"},
				Route:   []*networking.HTTPRouteDestination{{Destination: dest("reviews", "v1", 9080)}},
			},
			{
				Name:    "regex-rewrite",
				Match:   []*networking.HTTPMatchRequest{{Uri: prefix("/re")}},
				Rewrite: &networking.HTTPRewrite{UriRegexRewrite: &networking.RegexRewrite{Match: "^/re/(.*)$", Rewrite: "/\\1"}},
				Route:   []*networking.HTTPRouteDestination{{Destination: dest("reviews", "v1", 0)}},
				Retries: &networking.HTTPRetry{Attempts: 0},
			},
			{
				Name:     "moved",
				Match:    []*networking.HTTPMatchRequest{{Uri: exact("/moved")}},
				Redirect: &networking.HTTPRedirect{Uri: "/reviews", Authority: "reviews.example.com", RedirectCode: 302, Scheme: "https"},
			},
			{
				Name:           "teapot",
				Match:          []*networking.HTTPMatchRequest{{Uri: exact("/teapot")}},
				DirectResponse: &networking.HTTPDirectResponse{Status: 418, Body: &networking.HTTPBody{Specifier: &networking.HTTPBody_String_{String_: "short and stout"}}},
			},
			{Name: "default", Route: []*networking.HTTPRouteDestination{{Destination: dest("reviews", "v1", 0)}}},
		},
	}
	ratingsVS := &networking.VirtualService{
		Hosts: []string{"ratings.default.svc.cluster.local"},
		Http: []*networking.HTTPRoute{{
			Fault: &networking.HTTPFaultInjection{
				Delay: &networking.HTTPFaultInjection_Delay{Percentage: &networking.Percent{Value: 10}, HttpDelayType: &networking.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durp(7 * time.Second)}},
				Abort: &networking.HTTPFaultInjection_Abort{Percentage: &networking.Percent{Value: 0.5}, ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 500}},
			},
			Route: []*networking.HTTPRouteDestination{{Destination: dest("ratings", "v1", 0)}},
		}},
	}
	mongoVS := &networking.VirtualService{
		Hosts: []string{"mongodb"},
		Tcp: []*networking.TCPRoute{{Route: []*networking.RouteDestination{
			{Destination: dest("mongodb", "", 27017), Weight: 90},
			{Destination: dest("mongodb", "backup", 27017), Weight: 10},
		}}},
	}
	echoVS := &networking.VirtualService{
		Hosts: []string{"echo"},
		Http: []*networking.HTTPRoute{
			{
				Match: []*networking.HTTPMatchRequest{{Uri: prefix("/echo.Echo/Slow"), Headers: map[string]*networking.StringMatch{"x-tier": exact("gold")}}},
				Route: []*networking.HTTPRouteDestination{
					{Destination: dest("echo", "v1", 0), Weight: 80},
					{Destination: dest("echo", "v2", 0), Weight: 20},
				},
				Timeout: durp(2 * time.Second),
				Retries: &networking.HTTPRetry{Attempts: 4, RetryOn: "unavailable,5xx", Backoff: durp(50 * time.Millisecond)},
			},
			{Match: []*networking.HTTPMatchRequest{{QueryParams: map[string]*networking.StringMatch{"q": exact("1")}}}, Route: []*networking.HTTPRouteDestination{{Destination: dest("echo", "v2", 0)}}},
			{Route: []*networking.HTTPRouteDestination{{Destination: dest("echo", "v1", 0)}}},
		},
	}
	bookinfoVS := &networking.VirtualService{
		Hosts:    []string{"bookinfo.example.com"},
		Gateways: []string{"bookinfo-gateway"},
		Http: []*networking.HTTPRoute{
			{Match: []*networking.HTTPMatchRequest{{Uri: exact("/productpage")}, {Uri: prefix("/static")}}, Route: []*networking.HTTPRouteDestination{{Destination: dest("productpage", "", 9080)}}},
			{Match: []*networking.HTTPMatchRequest{{Uri: prefix("/api"), Gateways: []string{"mesh"}}}, Route: []*networking.HTTPRouteDestination{{Destination: dest("reviews", "", 9080)}}},
		},
	}
	tlsVS := &networking.VirtualService{
		Hosts:    []string{"secure.example.com"},
		Gateways: []string{"bookinfo-gateway"},
		Tls: []*networking.TLSRoute{{
			Match: []*networking.TLSMatchAttributes{{SniHosts: []string{"secure.example.com"}, Port: 8443}},
			Route: []*networking.RouteDestination{{Destination: dest("details", "", 9080)}},
		}},
	}
	reviewsDR := &networking.DestinationRule{
		Host: "reviews",
		TrafficPolicy: &networking.TrafficPolicy{
			LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}},
			ConnectionPool: &networking.ConnectionPoolSettings{
				Tcp:  &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: 100, ConnectTimeout: durp(3 * time.Second), TcpKeepalive: &networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive{Probes: 3, Time: durp(time.Minute), Interval: durp(10 * time.Second)}},
				Http: &networking.ConnectionPoolSettings_HTTPSettings{Http1MaxPendingRequests: 10, Http2MaxRequests: 200, MaxRequestsPerConnection: 5, MaxRetries: 4, IdleTimeout: durp(30 * time.Second), H2UpgradePolicy: networking.ConnectionPoolSettings_HTTPSettings_UPGRADE},
			},
			OutlierDetection: &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(5), ConsecutiveGatewayErrors: wrapperspb.UInt32(0), Interval: durp(10 * time.Second), BaseEjectionTime: durp(30 * time.Second), MaxEjectionPercent: 50, MinHealthPercent: 20},
			Tls:              &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL},
		},
		Subsets: []*networking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}},
			{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networking.TrafficPolicy{
				LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{
					HashKey:       &networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie{HttpCookie: &networking.LoadBalancerSettings_ConsistentHashLB_HTTPCookie{Name: "user", Ttl: durp(time.Hour)}},
					HashAlgorithm: &networking.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networking.LoadBalancerSettings_ConsistentHashLB_MagLev{TableSize: 65537}},
				}}},
			}},
			{Name: "v3", Labels: map[string]string{"version": "v3"}, TrafficPolicy: &networking.TrafficPolicy{
				Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_DISABLE},
			}},
		},
	}
	ratingsDR := &networking.DestinationRule{
		Host: "ratings.default.svc.cluster.local",
		TrafficPolicy: &networking.TrafficPolicy{
			LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{
				HashKey:       &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "X-User"},
				HashAlgorithm: &networking.LoadBalancerSettings_ConsistentHashLB_RingHash_{RingHash: &networking.LoadBalancerSettings_ConsistentHashLB_RingHash{MinimumRingSize: 1024}},
			}}},
			PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{
				Port:           &networking.PortSelector{Number: 9080},
				ConnectionPool: &networking.ConnectionPoolSettings{Http: &networking.ConnectionPoolSettings_HTTPSettings{Http2MaxRequests: 50}},
			}},
		},
		Subsets: subsets("v1"),
	}
	mongoDR := &networking.DestinationRule{Host: "mongodb", Subsets: []*networking.Subset{{Name: "backup", Labels: map[string]string{"app": "mongodb"}}},
		TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true}}}}}}
	echoDR := &networking.DestinationRule{Host: "echo", Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"app": "echo"}}, {Name: "v2", Labels: map[string]string{"app": "echo"}}},
		TrafficPolicy: &networking.TrafficPolicy{
			LoadBalancer:     &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_ROUND_ROBIN}},
			OutlierDetection: &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(3), Interval: durp(5 * time.Second)},
		}}
	externalDR := &networking.DestinationRule{Host: "api.example.com", TrafficPolicy: &networking.TrafficPolicy{
		Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_SIMPLE, Sni: "api.example.com", CaCertificates: "/etc/certs/ca.pem", SubjectAltNames: []string{"api.example.com"}},
	}}
	// A root-namespace DestinationRule for details; the mesh default for *.
	rootDR := &networking.DestinationRule{Host: "*.default.svc.cluster.local", TrafficPolicy: &networking.TrafficPolicy{
		Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_MUTUAL, ClientCertificate: "/etc/certs/cert.pem", PrivateKey: "/etc/certs/key.pem", CaCertificates: "/etc/certs/root.pem"},
	}}
	gateway := &networking.Gateway{
		Selector: map[string]string{"istio": "ingressgateway"},
		Servers: []*networking.Server{
			{Port: &networking.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"bookinfo.example.com"}, Tls: &networking.ServerTLSSettings{HttpsRedirect: true}},
			{Port: &networking.Port{Number: 443, Name: "https", Protocol: "HTTPS"}, Hosts: []string{"bookinfo.example.com"}, Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, CredentialName: "bookinfo-cert"}},
			{Port: &networking.Port{Number: 443, Name: "https-files", Protocol: "HTTPS"}, Hosts: []string{"files.example.com"}, Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_MUTUAL, ServerCertificate: "/etc/certs/server.pem", PrivateKey: "/etc/certs/server-key.pem", CaCertificates: "/etc/certs/ca.pem", MinProtocolVersion: networking.ServerTLSSettings_TLSV1_2}},
			{Port: &networking.Port{Number: 8443, Name: "tls", Protocol: "TLS"}, Hosts: []string{"secure.example.com"}, Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_PASSTHROUGH}},
			{Port: &networking.Port{Number: 15443, Name: "tls-auto", Protocol: "TLS"}, Hosts: []string{"*.default.svc.cluster.local"}, Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_AUTO_PASSTHROUGH}},
		},
	}
	otherSidecar := &networking.Sidecar{
		Egress:                []*networking.IstioEgressListener{{Hosts: []string{"./*", "default/reviews.default.svc.cluster.local"}}},
		OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_REGISTRY_ONLY},
	}
	productpageSidecar := &networking.Sidecar{
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "productpage"}},
		Ingress:          []*networking.IstioIngressListener{{Port: &networking.SidecarPort{Number: 9080, Protocol: "HTTP", Name: "http"}, DefaultEndpoint: "127.0.2.7:9080"}},
		Egress:           []*networking.IstioEgressListener{{Hosts: []string{"*/*"}}},
	}
	// A workload without capture that reaches upstreams through local ports.
	egressSidecar := &networking.Sidecar{
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "egress-client"}},
		Egress: []*networking.IstioEgressListener{
			{Port: &networking.SidecarPort{Number: 9080, Protocol: "HTTP", Name: "http"}, Bind: "127.0.1.7", Hosts: []string{"./reviews.default.svc.cluster.local"}},
			{Port: &networking.SidecarPort{Number: 27017, Protocol: "TCP", Name: "tcp"}, Bind: "127.0.1.7", Hosts: []string{"./mongodb.default.svc.cluster.local"}},
			{Port: &networking.SidecarPort{Number: 443, Protocol: "TLS", Name: "tls"}, Bind: "127.0.1.7", Hosts: []string{"*/api.example.com"}},
			{Port: &networking.SidecarPort{Number: 9080, Protocol: "HTTP", Name: "http-all"}, Hosts: []string{"./*"}},
		},
	}
	apiVS := &networking.VirtualService{
		Hosts: []string{"api.example.com", "v2.api.example.com"},
		Tls: []*networking.TLSRoute{{
			Match: []*networking.TLSMatchAttributes{{SniHosts: []string{"v2.api.example.com"}}},
			Route: []*networking.RouteDestination{{Destination: dest("api.example.com", "", 443)}},
		}},
	}
	return []config.Resource{
		res(config.VirtualService, "default", "reviews", reviewsVS),
		res(config.VirtualService, "default", "ratings", ratingsVS),
		res(config.VirtualService, "default", "mongodb", mongoVS),
		res(config.VirtualService, "default", "echo", echoVS),
		res(config.VirtualService, "default", "bookinfo", bookinfoVS),
		res(config.VirtualService, "default", "secure", tlsVS),
		res(config.DestinationRule, "default", "reviews", reviewsDR),
		res(config.DestinationRule, "default", "ratings", ratingsDR),
		res(config.DestinationRule, "default", "mongodb", mongoDR),
		res(config.DestinationRule, "default", "echo", echoDR),
		res(config.DestinationRule, "default", "external", externalDR),
		res(config.DestinationRule, "istio-system", "default-mtls", rootDR),
		res(config.Gateway, "default", "bookinfo-gateway", gateway),
		res(config.Sidecar, "other", "default", otherSidecar),
		res(config.Sidecar, "default", "productpage", productpageSidecar),
		res(config.DestinationRule, "default", "selected", &networking.DestinationRule{
			Host:             "details",
			WorkloadSelector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "nomatch"}},
		}),
		res(config.Sidecar, "default", "egress-client", egressSidecar),
		res(config.VirtualService, "default", "api", apiVS),
	}
}

func bookinfoPush() *model.PushContext {
	return model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot(bookinfoConfig()), bookinfoRegistry())
}

// Proxies of the fixture mesh.
func productpageProxy() *model.Proxy {
	return &model.Proxy{
		ID: "sidecar~10.1.0.1~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.1"}, Name: "productpage-v1", Namespace: "default",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, ServiceAccount: "bookinfo-productpage",
		Metadata: map[string]string{},
	}
}

func reviewsNoneProxy() *model.Proxy {
	return &model.Proxy{
		ID: "sidecar~10.1.0.2~reviews-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.2"}, Name: "reviews-v1", Namespace: "default",
		Labels:   map[string]string{"app": "reviews", "version": "v1"},
		Metadata: map[string]string{"INTERCEPTION_MODE": "NONE"},
	}
}

// egressNoneProxy runs without capture and reaches upstreams through the
// local ports of its Sidecar's egress listeners.
func egressNoneProxy() *model.Proxy {
	return &model.Proxy{
		ID: "sidecar~10.1.0.30~egress-client.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.30"}, Name: "egress-client", Namespace: "default",
		Labels:   map[string]string{"app": "egress-client"},
		Metadata: map[string]string{"INTERCEPTION_MODE": "NONE"},
	}
}

func gatewayProxy() *model.Proxy {
	return &model.Proxy{
		ID: "router~10.1.0.100~ingress.istio-system~istio-system.svc.cluster.local", Type: model.Router,
		IPAddresses: []string{"10.1.0.100"}, Name: "ingress", Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}, Metadata: map[string]string{},
	}
}

func grpcProxy() *model.Proxy {
	return &model.Proxy{
		ID: "sidecar~10.1.0.20~client.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.20"}, Name: "client", Namespace: "default", Generator: "grpc",
		Labels: map[string]string{"app": "client"}, Metadata: map[string]string{"GENERATOR": "grpc"},
	}
}

func otherProxy() *model.Proxy {
	return &model.Proxy{
		ID: "sidecar~10.1.0.11~httpbin.other~other.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.11"}, Name: "httpbin", Namespace: "other",
		Labels: map[string]string{"app": "httpbin"}, Metadata: map[string]string{},
	}
}

var allTypes = []string{ListenerType, RouteType, ClusterType, EndpointType}

// generateAll returns every resource of every type for p, keyed "TYPE/NAME".
// Route configs are the ones the listeners reference; for gRPC, the
// listeners are those of the names given.
func generateAll(pc *model.PushContext, p *model.Proxy, grpcNames ...string) (map[string][]model.XDSResource, error) {
	out := map[string][]model.XDSResource{}
	for _, t := range allTypes {
		var names []string
		if p.IsGRPC() && (t == ListenerType || t == RouteType) {
			names = grpcNames
		}
		rs, err := Generate(pc, p, t, names)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		out[t] = rs
	}
	return out, nil
}

func configSnapshot(rs []config.Resource) *config.Snapshot { return config.NewSnapshot(rs) }

// roundRobinDR is a DestinationRule with only a ROUND_ROBIN load balancer.
func roundRobinDR(host string) *networking.DestinationRule {
	return &networking.DestinationRule{Host: host, TrafficPolicy: &networking.TrafficPolicy{
		LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_ROUND_ROBIN}}},
	}
}
