package config

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// Support says what Mast does with one Istio field.
type Support uint8

// The three answers: every field of every kind Mast reads has exactly one.
const (
	// Honoured: the field takes effect (generated into xDS and carried out
	// by mast-proxy), as end-to-end tests show.
	Honoured Support = iota + 1
	// Warned: accepted but not carried out yet; validation warns, naming
	// the field, whenever it is set.
	Warned
	// NotApplicable: the field has no meaning for Mast (the reason says
	// why); setting it changes nothing and is not reported.
	NotApplicable
)

func (s Support) String() string {
	switch s {
	case Honoured:
		return "honoured"
	case Warned:
		return "warned"
	case NotApplicable:
		return "not applicable"
	}
	return fmt.Sprintf("support(%d)", s)
}

// supportRow classifies fields of one message. A Warned or NotApplicable
// field covers everything under it: its children need no rows of their own
// (they may have some, for whoever will flip the field to Honoured).
type supportRow struct {
	Message string // protobuf full name without "istio.": "networking.v1alpha3.HTTPRoute"
	Support Support
	Note    string // why (NotApplicable), or what is missing (Warned)
	Fields  string // the fields' JSON names, space-separated
}

const (
	telNotProven = `applied by mastd, not yet proven end to end`
	telNotDone   = `not implemented`
)

// supportTable is THE table: what Mast does with every field of every Istio
// kind it reads. TestSupportTableCoversEveryField walks istio.io/api's
// descriptors and fails on a field in no row; validation warns for every
// set Warned field (warnUnsupported); the README's field table is generated
// from it (TestReadmeFieldTable). Never modified.
var supportTable = []supportRow{
	// ---- VirtualService
	{"networking.v1alpha3.VirtualService", Honoured, "", "hosts gateways http tls tcp exportTo"},
	{"networking.v1alpha3.HTTPRoute", Honoured, "", "name match route redirect directResponse rewrite timeout retries fault headers mirror mirrors mirrorPercent mirrorPercentage corsPolicy delegate"},
	{"networking.v1alpha3.HTTPMatchRequest", Honoured, "", "name uri scheme method authority headers port sourceLabels gateways queryParams ignoreUriCase withoutHeaders sourceNamespace statPrefix"},
	{"networking.v1alpha3.StringMatch", Honoured, "", "exact prefix regex"},
	{"networking.v1alpha3.HTTPRouteDestination", Honoured, "", "destination weight headers"},
	{"networking.v1alpha3.Destination", Honoured, "", "host subset port"},
	{"networking.v1alpha3.PortSelector", Honoured, "", "number"},
	{"networking.v1alpha3.Headers", Honoured, "", "request response"},
	{"networking.v1alpha3.Headers.HeaderOperations", Honoured, "", "set add remove"},
	{"networking.v1alpha3.HTTPRedirect", Honoured, "", "uri authority port scheme redirectCode prefixRewrite derivePort"},
	{"networking.v1alpha3.HTTPDirectResponse", Honoured, "", "status body"},
	{"networking.v1alpha3.HTTPBody", Honoured, "", "string bytes"},
	{"networking.v1alpha3.Delegate", Honoured, "", "name namespace"},
	{"networking.v1alpha3.HTTPRewrite", Honoured, "", "uri authority uriRegexRewrite"},
	{"networking.v1alpha3.RegexRewrite", Honoured, "", "match rewrite"},
	{"networking.v1alpha3.HTTPRetry", Honoured, "", "attempts perTryTimeout retryOn retryIgnorePreviousHosts backoff retryRemoteLocalities"},
	{"networking.v1alpha3.HTTPFaultInjection", Honoured, "", "delay abort"},
	{"networking.v1alpha3.HTTPFaultInjection.Delay", Honoured, "", "percent fixedDelay percentage"},
	{"networking.v1alpha3.HTTPFaultInjection.Delay", Warned, "rejected by validation as in Istio", "exponentialDelay"},
	{"networking.v1alpha3.Percent", Honoured, "", "value"},
	{"networking.v1alpha3.HTTPFaultInjection.Abort", Honoured, "", "httpStatus grpcStatus percentage"},
	{"networking.v1alpha3.HTTPFaultInjection.Abort", Warned, "rejected by validation as in Istio", "http2Error"},
	{"networking.v1alpha3.HTTPMirrorPolicy", Honoured, "", "destination percentage"},
	{"networking.v1alpha3.CorsPolicy", Honoured, "", "allowOrigin allowOrigins allowMethods allowHeaders exposeHeaders maxAge allowCredentials unmatchedPreflights"},
	{"networking.v1alpha3.TLSRoute", Honoured, "", "match route"},
	{"networking.v1alpha3.TLSMatchAttributes", Honoured, "", "sniHosts port sourceLabels gateways sourceNamespace destinationSubnets"},
	{"networking.v1alpha3.RouteDestination", Honoured, "", "destination weight"},
	{"networking.v1alpha3.TCPRoute", Honoured, "", "match route"},
	{"networking.v1alpha3.L4MatchAttributes", Honoured, "", "port sourceLabels gateways sourceNamespace destinationSubnets sourceSubnet"},

	// ---- DestinationRule
	{"networking.v1alpha3.DestinationRule", Honoured, "", "host trafficPolicy subsets exportTo workloadSelector"},
	{"networking.v1alpha3.Subset", Honoured, "", "name labels trafficPolicy"},
	{"type.v1beta1.WorkloadSelector", Honoured, "", "matchLabels"},
	{"networking.v1alpha3.TrafficPolicy", Honoured, "", "loadBalancer connectionPool outlierDetection tls portLevelSettings"},
	{"networking.v1alpha3.TrafficPolicy", Honoured, "tunnel: TCP and TLS routes to a single destination, over HTTP/1.1, as in Istio; proxyProtocol: on a TCP route the header names the downstream client, on HTTP it names the proxy's pooled upstream connection", "tunnel proxyProtocol"},
	{"networking.v1alpha3.TrafficPolicy", Honoured, "", "retryBudget"},
	{"networking.v1alpha3.TrafficPolicy.PortTrafficPolicy", Honoured, "", "port loadBalancer connectionPool outlierDetection tls"},
	{"networking.v1alpha3.TrafficPolicy.TunnelSettings", Honoured, "", "protocol targetHost targetPort"},
	{"networking.v1alpha3.TrafficPolicy.ProxyProtocol", Honoured, "", "version"},
	{"networking.v1alpha3.TrafficPolicy.RetryBudget", Honoured, "", "percent minRetryConcurrency budgetInterval"},
	{"networking.v1alpha3.LoadBalancerSettings", Honoured, "", "simple consistentHash"},
	{"networking.v1alpha3.LoadBalancerSettings", Honoured, "", "localityLbSetting"},
	{"networking.v1alpha3.LoadBalancerSettings", Honoured, "with ROUND_ROBIN and LEAST_REQUEST, as in Envoy", "warmupDurationSecs warmup"},
	{"networking.v1alpha3.LoadBalancerSettings", Warned, "zone-aware load balancing is not implemented", "zoneAwareLbSetting"},
	{"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB", Honoured, "", "httpHeaderName httpCookie useSourceIp httpQueryParameterName ringHash maglev minimumRingSize"},
	{"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie", Honoured, "", "name path ttl attributes"},
	{"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie.Attribute", Honoured, "", "name value"},
	{"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.RingHash", Honoured, "", "minimumRingSize"},
	{"networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.MagLev", Honoured, "", "tableSize"},
	{"networking.v1alpha3.LocalityLoadBalancerSetting", Honoured, "", "distribute failover enabled failoverPriority"},
	{"networking.v1alpha3.LocalityLoadBalancerSetting.Distribute", Honoured, "", "from to"},
	{"networking.v1alpha3.LocalityLoadBalancerSetting.Failover", Honoured, "", "from to"},
	{"networking.v1alpha3.ZoneAwareLoadBalancerSetting", Warned, "zone-aware load balancing is not implemented", "enabled failover failoverPriority minClusterSize"},
	{"networking.v1alpha3.ZoneAwareLoadBalancerSetting.Failover", Warned, "zone-aware load balancing is not implemented", "from to"},
	{"networking.v1alpha3.WarmupConfiguration", Honoured, "", "duration minimumPercent aggression"},
	{"networking.v1alpha3.ConnectionPoolSettings", Honoured, "", "tcp http"},
	{"networking.v1alpha3.ConnectionPoolSettings.TCPSettings", Honoured, "", "maxConnections connectTimeout tcpKeepalive idleTimeout maxConnectionDuration"},
	{"networking.v1alpha3.ConnectionPoolSettings.TCPSettings.TcpKeepalive", Honoured, "", "probes time interval"},
	{"networking.v1alpha3.ConnectionPoolSettings.HTTPSettings", Honoured, "", "http1MaxPendingRequests http2MaxRequests maxRequestsPerConnection maxRetries idleTimeout h2UpgradePolicy useClientProtocol"},
	{"networking.v1alpha3.ConnectionPoolSettings.HTTPSettings", Honoured, "on clusters that are HTTP/2 by their port's protocol (GRPC, HTTP2), as istiod", "maxConcurrentStreams http2KeepAlive"},
	{"networking.v1alpha3.ConnectionPoolSettings.HTTPSettings.ConnectionKeepalive", Honoured, "", "interval timeout"},
	{"networking.v1alpha3.OutlierDetection", Honoured, "", "consecutiveErrors consecutiveGatewayErrors consecutive5xxErrors interval baseEjectionTime maxEjectionPercent minHealthPercent"},
	{"networking.v1alpha3.OutlierDetection", Honoured, "", "splitExternalLocalOriginErrors consecutiveLocalOriginFailures outlierDetectionHttpErrorCodes"},
	{"networking.v1alpha3.ClientTLSSettings", Honoured, "", "mode clientCertificate privateKey caCertificates subjectAltNames sni insecureSkipVerify caCrl credentialName"},

	// ---- Gateway
	{"networking.v1alpha3.Gateway", Honoured, "", "servers selector"},
	{"networking.v1alpha3.Server", Honoured, "", "port hosts tls"},
	{"networking.v1alpha3.Server", Honoured, "a listener of its own on that IP, or on a unix socket (unix://PATH, port 0), with routes named http.PORT.BIND as in istiod", "bind"},
	{"networking.v1alpha3.Server", NotApplicable, "istio/api marks it NOT IMPLEMENTED (hidden from its docs) and istiod never reads it for Gateway servers", "defaultEndpoint"},
	{"networking.v1alpha3.Server", NotApplicable, "a label only: Mast names a gateway's routes after its port", "name"},
	{"networking.v1alpha3.Port", Honoured, "", "number protocol name"},
	{"networking.v1alpha3.Port", NotApplicable, "deprecated by Istio and ignored there too: a gateway listens on number", "targetPort"},
	{"networking.v1alpha3.ServerTLSSettings", Honoured, "", "httpsRedirect mode serverCertificate privateKey caCertificates subjectAltNames minProtocolVersion maxProtocolVersion " +
		"caCrl credentialName caCertCredentialName verifyCertificateSpki verifyCertificateHash cipherSuites credentialNames tlsCertificates"},
	{"networking.v1alpha3.ServerTLSSettings", Honoured, "MUTUAL, OPTIONAL_MUTUAL and ISTIO_MUTUAL: a client certificate that fails the checks is accepted (Envoy's ACCEPT_UNTRUSTED, as istiod generates it); MUTUAL still requires one", "insecureSkipVerify"},
	{"networking.v1alpha3.ServerTLSSettings.TLSCertificate", Honoured, "", "serverCertificate privateKey caCertificates"},

	// ---- ServiceEntry, WorkloadEntry
	{"networking.v1alpha3.ServiceEntry", Honoured, "", "hosts addresses ports location resolution endpoints workloadSelector exportTo subjectAltNames"},
	{"networking.v1alpha3.ServicePort", Honoured, "", "number protocol name targetPort"},
	// network: split-horizon EDS with meshNetworks gateways (TestMultiNetwork)
	{"networking.v1alpha3.WorkloadEntry", Honoured, "", "address ports labels locality weight serviceAccount network"},
	{"networking.v1alpha3.WorkloadSelector", Honoured, "", "labels"},

	// ---- Sidecar
	// (Sidecar ingress bind/captureMode/tls/connectionPool,
	// inboundConnectionPool and egressProxy: test/e2e TestSidecarIngressFields.)
	{"networking.v1alpha3.Sidecar", Honoured, "", "workloadSelector ingress egress outboundTrafficPolicy inboundConnectionPool"},
	{"networking.v1alpha3.IstioIngressListener", Honoured, "", "port defaultEndpoint bind captureMode connectionPool"},
	{"networking.v1alpha3.IstioIngressListener", Honoured, "terminated by the sidecar when the port's mTLS mode is DISABLE (a PeerAuthentication, or a proxy without a workload certificate); with mTLS in force mTLS takes the port, as in istiod. Certificate files only: credentialName is refused by validation, as istiod refuses it", "tls"},
	{"networking.v1alpha3.SidecarPort", Honoured, "", "number protocol name"},
	{"networking.v1alpha3.SidecarPort", NotApplicable, "deprecated; validation refuses it (\"targetPort has no impact on Sidecars\") and istiod ignores it, as Mast does", "targetPort"},
	{"networking.v1alpha3.IstioEgressListener", Honoured, "", "port bind captureMode hosts"},
	{"networking.v1alpha3.OutboundTrafficPolicy", Honoured, "", "mode egressProxy"},

	// ---- WorkloadGroup: auto-registration on Kubernetes (a proxy naming
	// its group gets a WorkloadEntry from the template and the metadata;
	// test/kube TestWorkloadAutoRegistration). The probe is run by the
	// workload's mast-proxy (--readiness-probe, the spec.probe as JSON),
	// which reports health changes over its ADS stream; mastd withdraws the
	// endpoints of an unhealthy WorkloadEntry annotated
	// proxy.istio.io/health-checks-enabled (auto-registration sets it when
	// the proxy runs a probe); test/e2e TestWorkloadHealthProbe.
	{"networking.v1alpha3.WorkloadGroup", Honoured, "", "metadata template"},
	{"networking.v1alpha3.WorkloadGroup.ObjectMeta", Honoured, "", "labels annotations"},
	{"networking.v1alpha3.WorkloadGroup", Honoured, "run by the workload's mast-proxy, given the probe with --readiness-probe (as istio-agent takes it from its mesh config); an unhealthy workload's endpoints are withdrawn until it passes again", "probe"},
	{"networking.v1alpha3.ReadinessProbe", Honoured, "", "initialDelaySeconds timeoutSeconds periodSeconds successThreshold failureThreshold httpGet tcpSocket"},
	{"networking.v1alpha3.ReadinessProbe", Honoured, "run only when the proxy's operator allows commands (mast-proxy --allow-exec-probe); otherwise the proxy refuses to start, naming the flag", "exec"},
	{"networking.v1alpha3.ReadinessProbe", Honoured, "run by mast-proxy's agent; validation refuses it in a WorkloadGroup, as istiod's does", "grpc"},
	{"networking.v1alpha3.HTTPHealthCheckConfig", Honoured, "", "path port host scheme httpHeaders"},
	{"networking.v1alpha3.HTTPHeader", Honoured, "", "name value"},
	{"networking.v1alpha3.TCPHealthCheckConfig", Honoured, "", "host port"},
	{"networking.v1alpha3.ExecHealthCheckConfig", Honoured, "", "command"},
	{"networking.v1alpha3.GrpcHealthCheckConfig", Honoured, "", "port service"},

	// ---- ProxyConfig, EnvoyFilter
	{"networking.v1beta1.ProxyConfig", Honoured, "applied when a proxy starts, with Istio's precedence (root namespace < namespace < selector < proxy.istio.io/config), by the Kubernetes injector and by mast up: concurrency as mast-proxy's GOMAXPROCS (admin /server_info's concurrency), environmentVariables in its environment (ISTIO_META_* in its node metadata)", "selector concurrency environmentVariables"},
	{"networking.v1beta1.ProxyConfig", Honoured, "the Kubernetes injector's image type (a tag suffix, as Istio); not applicable to the local mesh, which runs its own mast-proxy binary", "image"},
	{"networking.v1beta1.ProxyImage", Honoured, "by the Kubernetes sidecar injector (a tag suffix, as Istio's); not applicable to the local mesh (mast up), which runs the mast-proxy binary", "imageType"},
	{"networking.v1alpha3.EnvoyFilter", Honoured, "", "workloadSelector targetRefs configPatches priority"},
	{"networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectPatch", Honoured, "", "applyTo match patch"},
	{"networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectMatch", Honoured, "", "context proxy listener routeConfiguration cluster"},
	{"networking.v1alpha3.EnvoyFilter.EnvoyConfigObjectMatch", NotApplicable, "Mast has no ambient waypoints: a patch matching a waypoint applies to no Mast proxy, as in a sidecar-only Istio mesh", "waypoint"},
	{"networking.v1alpha3.EnvoyFilter.ProxyMatch", Honoured, "", "proxyVersion metadata"},
	{"networking.v1alpha3.EnvoyFilter.ListenerMatch", Honoured, "", "portNumber filterChain listenerFilter name"},
	{"networking.v1alpha3.EnvoyFilter.ListenerMatch", Warned, "not matched by istiod either (reserved in the API)", "portName"},
	{"networking.v1alpha3.EnvoyFilter.ListenerMatch.FilterChainMatch", Honoured, "", "name sni transportProtocol applicationProtocols filter destinationPort"},
	{"networking.v1alpha3.EnvoyFilter.ListenerMatch.FilterMatch", Honoured, "", "name subFilter"},
	{"networking.v1alpha3.EnvoyFilter.ListenerMatch.SubFilterMatch", Honoured, "", "name"},
	{"networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch", Honoured, "", "portNumber portName gateway vhost name"},
	{"networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch", Honoured, "", "name domainName route"},
	{"networking.v1alpha3.EnvoyFilter.RouteConfigurationMatch.RouteMatch", Honoured, "", "name action"},
	{"networking.v1alpha3.EnvoyFilter.ClusterMatch", Honoured, "", "portNumber service subset name"},
	{"networking.v1alpha3.EnvoyFilter.Patch", Honoured, "", "operation value"},
	{"networking.v1alpha3.EnvoyFilter.Patch", Warned, "refused by validation: order filters with INSERT_BEFORE/INSERT_AFTER", "filterClass"},

	// ---- security.istio.io
	{"security.v1beta1.PeerAuthentication", Honoured, "", "selector mtls portLevelMtls"},
	{"security.v1beta1.PeerAuthentication.MutualTLS", Honoured, "", "mode"},
	{"security.v1beta1.RequestAuthentication", Honoured, "", "selector targetRef targetRefs jwtRules"},
	{"security.v1beta1.JWTRule", Honoured, "", "issuer audiences jwksUri jwks fromHeaders fromParams outputPayloadToHeader fromCookies forwardOriginalToken outputClaimToHeaders timeout"},
	{"security.v1beta1.JWTRule", Warned, "space-delimited claims are matched as one string by request.auth.claims", "spaceDelimitedClaims"},
	{"security.v1beta1.JWTHeader", Honoured, "", "name prefix"},
	{"security.v1beta1.ClaimToHeader", Honoured, "", "header claim"},
	{"security.v1beta1.AuthorizationPolicy", Honoured, "", "selector targetRef targetRefs rules action provider"},
	{"security.v1beta1.Rule", Honoured, "", "from to when"},
	{"security.v1beta1.Rule.From", Honoured, "", "source"},
	{"security.v1beta1.Rule.To", Honoured, "", "operation"},
	{"security.v1beta1.Source", Honoured, "", "principals notPrincipals requestPrincipals notRequestPrincipals namespaces notNamespaces serviceAccounts notServiceAccounts ipBlocks notIpBlocks remoteIpBlocks notRemoteIpBlocks"},
	{"security.v1beta1.Source", Warned, "trust domain aliases are not implemented", "trustDomains notTrustDomains"},
	{"security.v1beta1.Operation", Honoured, "", "hosts notHosts ports notPorts methods notMethods paths notPaths"},
	{"security.v1beta1.Condition", Honoured, "", "key values notValues"},
	{"security.v1beta1.AuthorizationPolicy.ExtensionProvider", Honoured, "", "name"},
	{"type.v1beta1.PolicyTargetReference", Warned, "targetRef attaches policies to Gateway API resources, which Mast does not read", "group kind name namespace"},

	// ---- ratelimit.mast.io (Mast's own kind, docs/ratelimit.md)
	{"mast.ratelimit.v1alpha1.RateLimit", Honoured, "", "selector mode dimensions maxAmount validDuration algorithm bucketDuration overrides failureModeDeny timeout responseHeaders"},
	{"mast.ratelimit.v1alpha1.WorkloadSelector", Honoured, "", "matchLabels"},
	{"mast.ratelimit.v1alpha1.Dimension", Honoured, "", "name requestHeader remoteAddress value"},
	{"mast.ratelimit.v1alpha1.Override", Honoured, "", "dimensions maxAmount validDuration"},

	// ---- telemetry.istio.io
	{"telemetry.v1alpha1.Telemetry", Honoured, "", "selector tracing accessLogging metrics"},
	{"telemetry.v1alpha1.Telemetry", Warned, telNotProven, "targetRef targetRefs"},
	{"telemetry.v1alpha1.Tracing", Honoured, "", "providers randomSamplingPercentage disableSpanReporting customTags match"},
	{"telemetry.v1alpha1.Tracing", Warned, telNotDone, "useRequestIdForTraceSampling enableIstioTags disableContextPropagation"},
	{"telemetry.v1alpha1.Tracing.TracingSelector", Honoured, "", "mode"},
	{"telemetry.v1alpha1.ProviderRef", Honoured, "", "name"},

	// ---- Mixer (config.istio.io/v1alpha2)
	{"policy.v1beta1.Handler", Honoured, "", "compiledAdapter params"},
	{"policy.v1beta1.Handler", NotApplicable, "metadata.name names a handler", "name"},
	{"policy.v1beta1.Handler", Warned, "out-of-process adapters are not supported (validation refuses adapter)", "adapter connection"},
	{"policy.v1beta1.Instance", Honoured, "", "compiledTemplate params"},
	{"policy.v1beta1.Instance", NotApplicable, "metadata.name names an instance", "name"},
	{"policy.v1beta1.Instance", Warned, "out-of-process templates are not supported (validation refuses template)", "template attributeBindings"},
	{"policy.v1beta1.Rule", Honoured, "", "match actions"},
	{"policy.v1beta1.Rule", Warned, "route directives (header operations) and sampling are not carried out yet", "requestHeaderOperations responseHeaderOperations sampling"},
	{"policy.v1beta1.Action", Honoured, "", "handler instances"},
	{"policy.v1beta1.Action", NotApplicable, "a label only", "name"},
	{"policy.v1beta1.AttributeManifest", Warned, "Mast uses Istio's standard attribute vocabulary; extra manifests are not merged into it yet", "attributes"},
	{"policy.v1beta1.AttributeManifest", NotApplicable, "labels only", "revision name"},
	{"mixer.v1.config.client.QuotaSpec", Honoured, "", "rules"},
	{"mixer.v1.config.client.QuotaRule", Honoured, "", "quotas"},
	{"mixer.v1.config.client.QuotaRule", Warned, "quota rules apply to every request of a bound service; match clauses are not evaluated yet", "match"},
	{"mixer.v1.config.client.Quota", Honoured, "", "quota charge"},
	{"mixer.v1.config.client.QuotaSpecBinding", Honoured, "", "services quotaSpecs"},
	{"mixer.v1.config.client.QuotaSpecBinding.QuotaSpecReference", Honoured, "", "name namespace"},
	{"mixer.v1.config.client.IstioService", Honoured, "", "name namespace service"},
	{"mixer.v1.config.client.IstioService", Warned, "services are matched by name and namespace only", "domain labels"},
	{"google.protobuf.Struct", NotApplicable, "adapter and template params: decoded and checked by the Mixer's own validation, which names the field", "fields"},
	{"telemetry.v1alpha1.Tracing.CustomTag", Honoured, "", "literal environment header"},
	{"telemetry.v1alpha1.Tracing.CustomTag", Warned, telNotDone, "formatter"},
	{"telemetry.v1alpha1.Tracing.Literal", Honoured, "", "value"},
	{"telemetry.v1alpha1.Tracing.Environment", Honoured, "", "name defaultValue"},
	{"telemetry.v1alpha1.Tracing.RequestHeader", Honoured, "", "name defaultValue"},
	{"telemetry.v1alpha1.Tracing.Formatter", Warned, telNotDone, "value"},
	{"telemetry.v1alpha1.Metrics", Honoured, "", "providers overrides reportingInterval"},
	{"telemetry.v1alpha1.MetricsOverrides", Honoured, "", "match disabled tagOverrides"},
	{"telemetry.v1alpha1.MetricSelector", Honoured, "", "metric mode"},
	{"telemetry.v1alpha1.MetricSelector", Warned, "a custom metric exists only where the stats filter's definitions name it, which Istio sets with an EnvoyFilter (not applied by Mast); an override of a metric nothing defines changes nothing, as in Istio", "customMetric"},
	{"telemetry.v1alpha1.MetricsOverrides.TagOverride", Honoured, "", "operation value"},
	{"telemetry.v1alpha1.AccessLogging", Honoured, "", "disabled filter providers match"},
	{"telemetry.v1alpha1.AccessLogging.LogSelector", Honoured, "", "mode"},
	{"telemetry.v1alpha1.AccessLogging.Filter", Honoured, "", "expression"},
}

// fieldClass is one classification found in the table.
type fieldClass struct {
	Support Support
	Note    string
}

// supportIndex maps "networking.v1alpha3.HTTPRoute.mirrors" to its row;
// built once from supportTable, never modified.
var supportIndex = buildSupportIndex(supportTable)

func buildSupportIndex(rows []supportRow) map[string]fieldClass {
	idx := map[string]fieldClass{}
	for _, r := range rows {
		for _, f := range strings.Fields(r.Fields) {
			idx[r.Message+"."+f] = fieldClass{r.Support, r.Note}
		}
	}
	return idx
}

// classify returns the table's classification of field fd.
func classify(fd protoreflect.FieldDescriptor) (fieldClass, bool) {
	c, ok := supportIndex[strings.TrimPrefix(string(fd.ContainingMessage().FullName()), "istio.")+"."+fd.JSONName()]
	return c, ok
}

// subMessage is the message a field holds (the value's message for a map),
// or nil for scalars and Google's well-known types, which are leaves.
func subMessage(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	var md protoreflect.MessageDescriptor
	switch {
	case fd.IsMap():
		if v := fd.MapValue(); v.Kind() == protoreflect.MessageKind {
			md = v.Message()
		}
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		md = fd.Message()
	}
	if md == nil || strings.HasPrefix(string(md.FullName()), "google.") {
		return nil
	}
	return md
}

// warnUnsupported warns, naming the path, for every field set in the spec
// that the table marks Warned. It descends only into Honoured fields: a
// Warned field is reported once, not again for each of its children.
func (v *validator) warnUnsupported() {
	if v.r.Spec == nil || !v.r.Spec.ProtoReflect().IsValid() {
		return
	}
	var walk func(m protoreflect.Message, path string)
	walk = func(m protoreflect.Message, path string) {
		// Range visits only populated fields, in an undefined order; sort by number for stable output.
		type setField struct {
			fd protoreflect.FieldDescriptor
			v  protoreflect.Value
		}
		var set []setField
		m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			set = append(set, setField{fd, val})
			return true
		})
		sort.Slice(set, func(i, j int) bool { return set[i].fd.Number() < set[j].fd.Number() })
		for _, s := range set {
			fd := s.fd
			p := path + "." + fd.JSONName()
			c, ok := classify(fd)
			if !ok {
				// TestSupportTableCoversEveryField makes this unreachable; never accept silently.
				c = fieldClass{Support: Warned, Note: "not in Mast's support table"}
			}
			switch c.Support {
			case Warned:
				if c.Note != "" {
					v.warnf(p, "not honoured by Mast (%s)", c.Note)
				} else {
					v.warnf(p, "not honoured by Mast")
				}
				continue
			case NotApplicable:
				continue
			}
			sub := subMessage(fd)
			if sub == nil {
				continue
			}
			switch {
			case fd.IsList():
				l := s.v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message(), pathIndex(p, i))
				}
			case fd.IsMap():
				var keys []protoreflect.MapKey
				s.v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
				for _, k := range keys {
					walk(s.v.Map().Get(k).Message(), pathKey(p, k.String()))
				}
			default:
				walk(s.v.Message(), p)
			}
		}
	}
	walk(v.r.Spec.ProtoReflect(), "spec")
	v.warnUnsupportedValues()
}

// warnUnsupportedValues warns about values of honoured fields that Mast
// does not carry out.
func (v *validator) warnUnsupportedValues() {
	vs, ok := v.r.Spec.(*networking.VirtualService)
	if !ok {
		return
	}
	ops := func(path string, h *networking.Headers) {
		for dir, o := range map[string]*networking.Headers_HeaderOperations{"request": h.GetRequest(), "response": h.GetResponse()} {
			for op, m := range map[string]map[string]string{"set": o.GetSet(), "add": o.GetAdd()} {
				for k, val := range m {
					if _, _, err := accesslog.ParseHeaderValue(val); err != nil {
						v.warnf(pathKey(path+".headers."+dir+"."+op, k), "not honoured by Mast: %v; mast-proxy refuses the route (write %%%% for a literal %%)", err)
					}
				}
			}
		}
	}
	for i, r := range vs.GetHttp() {
		p := pathIndex("spec.http", i)
		ops(p, r.GetHeaders())
		for j, d := range r.GetRoute() {
			ops(pathIndex(p+".route", j), d.GetHeaders())
		}
	}
}
