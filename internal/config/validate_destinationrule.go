package config

import (
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func (v *validator) destinationRule(dr *networking.DestinationRule) {
	v.check("spec.host", validateWildcardDomain(dr.Host))
	v.trafficPolicy("spec.trafficPolicy", dr.TrafficPolicy)
	names := map[string]bool{}
	for i, s := range dr.Subsets {
		f := pathIndex("spec.subsets", i)
		if s == nil {
			v.errorf(f, "subset may not be null")
			continue
		}
		switch {
		case s.Name == "":
			v.errorf(f+".name", "subset name cannot be empty")
		case !isDNSLabel(s.Name, false):
			v.errorf(f+".name", "subset name is invalid: %s", s.Name)
		case names[s.Name]:
			v.errorf(f+".name", "duplicate subset names: %s", s.Name)
		}
		names[s.Name] = true
		v.labels(f+".labels", s.Labels)
		v.trafficPolicy(f+".trafficPolicy", s.TrafficPolicy)
	}
	v.exportTo("spec.exportTo", dr.ExportTo, false, dr.WorkloadSelector != nil)
	v.selectorLabels("spec.workloadSelector.matchLabels", dr.GetWorkloadSelector().GetMatchLabels(), dr.WorkloadSelector != nil)
}

func (v *validator) trafficPolicy(p string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.OutlierDetection == nil && tp.ConnectionPool == nil && tp.LoadBalancer == nil && tp.Tls == nil &&
		tp.PortLevelSettings == nil && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		v.errorf(p, "traffic policy must have at least one field")
		return
	}
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		v.errorf(p, "tunnel and proxyProtocol must not be set together")
	}
	v.outlierDetection(p+".outlierDetection", tp.OutlierDetection)
	v.connectionPool(p+".connectionPool", tp.ConnectionPool)
	v.loadBalancer(p+".loadBalancer", tp.LoadBalancer, tp.OutlierDetection)
	v.clientTLS(p+".tls", tp.Tls)
	if t := tp.Tunnel; t != nil {
		if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
			v.errorf(p+".tunnel.protocol", `tunnel protocol must be "CONNECT" or "POST"`)
		}
		if validateFQDN(t.TargetHost) != nil && !isIP(t.TargetHost) {
			v.errorf(p+".tunnel.targetHost", "tunnel target host %q must be a valid FQDN or IP address", t.TargetHost)
		}
		v.check(p+".tunnel.targetPort", validatePort(int(t.TargetPort)))
	}
	if rb := tp.RetryBudget; rb != nil && (rb.Percent.GetValue() < 0 || rb.Percent.GetValue() > 100) {
		v.errorf(p+".retryBudget.percent", "retry budget percent %v must be in range 0..100", rb.Percent.GetValue())
	}
	ports := map[uint32]bool{}
	for i, pl := range tp.PortLevelSettings {
		f := pathIndex(p+".portLevelSettings", i)
		if pl == nil {
			v.errorf(f, "port traffic policy may not be null")
			continue
		}
		if pl.Port == nil {
			v.errorf(f+".port", "port traffic policy must have a port")
		} else {
			v.check(f+".port.number", validatePort(int(pl.Port.Number)))
			if ports[pl.Port.Number] {
				v.errorf(f+".port.number", "duplicate port %d in portLevelSettings", pl.Port.Number)
			}
			ports[pl.Port.Number] = true
		}
		if pl.OutlierDetection == nil && pl.ConnectionPool == nil && pl.LoadBalancer == nil && pl.Tls == nil {
			v.errorf(f, "port traffic policy must have at least one field")
			continue
		}
		v.outlierDetection(f+".outlierDetection", pl.OutlierDetection)
		v.connectionPool(f+".connectionPool", pl.ConnectionPool)
		v.loadBalancer(f+".loadBalancer", pl.LoadBalancer, pl.OutlierDetection)
		v.clientTLS(f+".tls", pl.Tls)
	}
}

func (v *validator) outlierDetection(p string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	v.check(p+".baseEjectionTime", validateDuration(o.BaseEjectionTime))
	v.check(p+".interval", validateDuration(o.Interval))
	if o.ConsecutiveErrors != 0 {
		v.warnf(p+".consecutiveErrors", "outlier detection consecutiveErrors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead")
	}
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		v.errorf(p+".consecutiveLocalOriginFailures", "consecutiveLocalOriginFailures is set, but splitExternalLocalOriginErrors is false")
	}
	v.check(p+".maxEjectionPercent", validatePercent(o.MaxEjectionPercent))
	v.check(p+".minHealthPercent", validatePercent(o.MinHealthPercent))
	for i, c := range o.OutlierDetectionHttpErrorCodes {
		if c < 100 || c > 599 {
			v.errorf(pathIndex(p+".outlierDetectionHttpErrorCodes", i), "HTTP status %d is not in range 100-599", c)
		}
	}
}

func (v *validator) connectionPool(p string, c *networking.ConnectionPoolSettings) {
	if c == nil {
		return
	}
	if c.Http == nil && c.Tcp == nil {
		v.errorf(p, "connection pool must have at least one field")
		return
	}
	if h := c.Http; h != nil {
		nonNeg := []struct {
			name string
			val  int32
		}{{"http1MaxPendingRequests", h.Http1MaxPendingRequests}, {"http2MaxRequests", h.Http2MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection}, {"maxRetries", h.MaxRetries},
			{"maxConcurrentStreams", h.MaxConcurrentStreams}}
		for _, n := range nonNeg {
			if n.val < 0 {
				v.errorf(p+".http."+n.name, "%s must be non-negative", n.name)
			}
		}
		v.check(p+".http.idleTimeout", validateDuration(h.IdleTimeout))
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			v.errorf(p+".http.useClientProtocol", "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")
		}
		if ka := h.Http2KeepAlive; ka != nil {
			// Both are required, as istiod validates them.
			if ka.Interval == nil {
				v.errorf(p+".http.http2KeepAlive.interval", "http2 keepalive interval is required")
			}
			if ka.Timeout == nil {
				v.errorf(p+".http.http2KeepAlive.timeout", "http2 keepalive timeout is required")
			}
			v.check(p+".http.http2KeepAlive.interval", validateDuration(ka.Interval))
			v.check(p+".http.http2KeepAlive.timeout", validateDuration(ka.Timeout))
		}
	}
	if t := c.Tcp; t != nil {
		if t.MaxConnections < 0 {
			v.errorf(p+".tcp.maxConnections", "maxConnections must be non-negative")
		}
		v.check(p+".tcp.connectTimeout", validateDuration(t.ConnectTimeout))
		v.check(p+".tcp.maxConnectionDuration", validateDuration(t.MaxConnectionDuration))
		v.check(p+".tcp.idleTimeout", validateDuration(t.IdleTimeout))
		if ka := t.TcpKeepalive; ka != nil {
			v.check(p+".tcp.tcpKeepalive.time", validateDuration(ka.Time))
			v.check(p+".tcp.tcpKeepalive.interval", validateDuration(ka.Interval))
		}
	}
}

func (v *validator) loadBalancer(p string, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		f := p + ".consistentHash"
		if c := ch.GetHttpCookie(); c != nil && c.GetName() == "" {
			v.errorf(f+".httpCookie.name", "name required for httpCookie")
		}
		seen := map[string]bool{}
		for i, a := range ch.GetHttpCookie().GetAttributes() {
			af := pathIndex(f+".httpCookie.attributes", i) + ".name"
			switch {
			case a.GetName() == "":
				v.errorf(af, "cookie attribute name cannot be empty")
			case seen[a.GetName()]:
				v.errorf(af, "duplicate cookie attribute name: %s", a.GetName())
			}
			seen[a.GetName()] = true
		}
		if ch.MinimumRingSize != 0 {
			v.warnf(f+".minimumRingSize", "minimumRingSize is deprecated, use ringHash.minimumRingSize instead")
			if ch.HashAlgorithm != nil {
				v.errorf(f, "only one of minimumRingSize or maglev/ringHash can be specified")
			}
		}
		if ml := ch.GetMaglev(); ml != nil {
			switch {
			case ml.TableSize == 0:
				v.errorf(f+".maglev.tableSize", "tableSize must be set for maglev")
			case ml.TableSize >= 5000011:
				v.errorf(f+".maglev.tableSize", "tableSize must be less than 5000011 for maglev")
			case !isPrime(ml.TableSize):
				v.errorf(f+".maglev.tableSize", "tableSize %d must be a prime number for maglev", ml.TableSize)
			}
		}
	}
	v.localityLB(p+".localityLbSetting", lb.LocalityLbSetting, outlier)
	v.check(p+".warmupDurationSecs", validateDuration(lb.WarmupDurationSecs))
	if w := lb.Warmup; w != nil {
		// The proto's rules: a required duration, minimumPercent 0-100,
		// aggression >= 0; and not both warmup fields (the CRD's rule).
		if w.Duration == nil {
			v.errorf(p+".warmup.duration", "duration is required")
		}
		v.check(p+".warmup.duration", validateDuration(w.Duration))
		if m := w.GetMinimumPercent(); m != nil && (m.GetValue() < 0 || m.GetValue() > 100 || math.IsNaN(m.GetValue())) {
			v.errorf(p+".warmup.minimumPercent", "must be between 0 and 100, got %v", m.GetValue())
		}
		if a := w.GetAggression(); a != nil && (a.GetValue() < 0 || math.IsNaN(a.GetValue())) {
			v.errorf(p+".warmup.aggression", "must be >= 0, got %v", a.GetValue())
		}
		if lb.WarmupDurationSecs != nil {
			v.errorf(p+".warmup", "only one of warmupDurationSecs or warmup can be set")
		}
	}
}

func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	}
	if x&1 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for f := uint64(3); f <= limit; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

func (v *validator) localityLB(p string, lb *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if len(lb.Distribute) > 0 && len(lb.Failover) > 0 {
		v.errorf(p, "can not simultaneously specify 'distribute' and 'failover'")
		return
	}
	for i, d := range lb.Distribute {
		f := pathIndex(p+".distribute", i)
		total := uint32(0)
		for loc, w := range d.GetTo() {
			if w == 0 || w > 100 {
				v.errorf(pathKey(f+".to", loc), "locality weight must be in range [1, 100]")
			}
			total += w
		}
		if total != 100 {
			v.errorf(f+".to", "total locality weight %d != 100", total)
		}
		if n := strings.Count(d.GetFrom(), "*"); n > 1 || n == 1 && !strings.HasSuffix(d.GetFrom(), "*") {
			v.errorf(f+".from", "locality %s: wildcard '*' may appear once, at the end", d.GetFrom())
		}
	}
	if (len(lb.Failover) > 0 || len(lb.FailoverPriority) > 0) && outlier == nil {
		v.warnf(p, "outlier detection policy must be provided for failover")
	}
	for i, fo := range lb.Failover {
		f := pathIndex(p+".failover", i)
		if fo.GetFrom() == fo.GetTo() {
			v.errorf(f, "locality lb failover settings must specify different regions")
		}
		if strings.Contains(fo.GetFrom(), "/") || strings.Contains(fo.GetTo(), "/") {
			v.errorf(f, "locality lb failover only specifies regions")
		}
		if strings.Contains(fo.GetFrom(), "*") || strings.Contains(fo.GetTo(), "*") {
			v.errorf(f, "locality lb failover region should not contain '*' wildcard")
		}
	}
}

// clientTLS validates a DestinationRule's TLS settings.
func (v *validator) clientTLS(p string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		if t.Mode == networking.ClientTLSSettings_SIMPLE && (t.CaCertificates != "" || t.CredentialName != "" || t.SubjectAltNames != nil) {
			v.errorf(p, "cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true")
		}
		if t.Mode == networking.ClientTLSSettings_MUTUAL && (t.CaCertificates != "" || t.SubjectAltNames != nil) {
			v.errorf(p, "cannot specify caCertificates or subjectAltNames when insecureSkipVerify is true")
		}
	}
	if t.Mode == networking.ClientTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ClientTLSSettings_DISABLE {
		if t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CredentialName != "" {
			v.warnf(p, "%s mode does not use certificate files or credentialName; they will be ignored", t.Mode)
		}
		return
	}
	if (t.Mode == networking.ClientTLSSettings_SIMPLE || t.Mode == networking.ClientTLSSettings_MUTUAL) && t.CredentialName != "" {
		if t.ClientCertificate != "" || t.CaCertificates != "" || t.PrivateKey != "" || t.CaCrl != "" {
			v.errorf(p+".credentialName", "cannot specify client certificates or CA certificate or CA CRL if credentialName is set")
		}
		return
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if t.ClientCertificate == "" {
			v.errorf(p+".clientCertificate", "client certificate required for mutual tls (or set credentialName)")
		}
		if t.PrivateKey == "" {
			v.errorf(p+".privateKey", "private key required for mutual tls (or set credentialName)")
		}
	}
}
