package config

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func (v *validator) gateway(gw *networking.Gateway) {
	if len(gw.Servers) == 0 {
		v.errorf("spec.servers", "gateway must have at least one server")
	}
	portNames := map[string]bool{}
	for i, s := range gw.Servers {
		f := pathIndex("spec.servers", i)
		if s == nil {
			v.errorf(f, "server may not be null")
			continue
		}
		v.server(f, s)
		if s.Port != nil {
			if portNames[s.Port.Name] {
				v.errorf(f+".port.name", "port names in servers must be unique: duplicate name %s", s.Port.Name)
			}
			portNames[s.Port.Name] = true
			if !isHTTPProtocol(s.Port.Protocol) && s.GetTls().GetHttpsRedirect() {
				v.warnf(f+".tls.httpsRedirect", "tls.httpsRedirect should only be used with HTTP servers")
			}
		}
	}
	v.selectorLabels("spec.selector", gw.Selector, false)
}

func (v *validator) server(p string, s *networking.Server) {
	if len(s.Hosts) == 0 {
		v.errorf(p+".hosts", "server config must contain at least one host")
	}
	for i, h := range s.Hosts {
		for _, err := range validateNamespaceSlashHost(h, true) {
			v.check(pathIndex(p+".hosts", i), err)
		}
	}
	portOK := true
	if s.Port == nil {
		v.errorf(p+".port", "port is required")
		portOK = false
	} else {
		if protocolOf(s.Port.Protocol) == "" {
			v.errorf(p+".port.protocol", "invalid protocol %q; supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-Web, TLS, TCP, Mongo, Redis, MySQL", s.Port.Protocol)
			portOK = false
		}
		if s.Port.Number > 0 || !strings.HasPrefix(s.Bind, unixPrefix) {
			if err := validatePort(int(s.Port.Number)); err != nil {
				v.check(p+".port.number", err)
				portOK = false
			}
		}
		if s.Port.TargetPort > 0 {
			v.errorf(p+".port.targetPort", "targetPort has no impact on Gateways")
		}
		if s.Port.Name == "" {
			v.errorf(p+".port.name", "port name must be set")
		}
	}
	if strings.HasPrefix(s.Bind, unixPrefix) {
		v.check(p+".bind", validateUnixAddress(strings.TrimPrefix(s.Bind, unixPrefix)))
		if s.Port != nil && s.Port.Number != 0 {
			v.errorf(p+".port.number", "port number must be 0 for unix domain socket")
		}
	} else if s.Bind != "" {
		v.check(p+".bind", validateIP(s.Bind))
	}
	v.serverTLS(p+".tls", s.Tls)
	if !portOK {
		return
	}
	switch proto := s.Port.Protocol; {
	case isTLSProtocol(proto) && s.Tls == nil:
		v.errorf(p+".tls", "server must have TLS settings for HTTPS/TLS protocols")
	case !isTLSProtocol(proto) && s.Tls != nil:
		t := s.Tls
		passthrough := t.Mode == networking.ServerTLSSettings_PASSTHROUGH || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
		if !isHTTPProtocol(proto) {
			v.errorf(p+".tls", "server cannot have TLS settings for non HTTPS/TLS ports")
		} else if !passthrough || t.CaCertificates != "" || t.PrivateKey != "" || t.ServerCertificate != "" {
			// Only tls.httpsRedirect makes sense on a plain-text HTTP server.
			v.errorf(p+".tls", "server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)")
		}
	}
}

// cipherSuites are the names Envoy's BoringSSL understands, in OpenSSL style.
var cipherSuites = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
		"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
		"ECDHE-PSK-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-PSK-AES128-CBC-SHA",
		"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "ECDHE-PSK-AES256-CBC-SHA", "AES128-GCM-SHA256",
		"AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "PSK-AES128-CBC-SHA", "PSK-AES256-CBC-SHA", "DES-CBC3-SHA"} {
		m[s] = true
	}
	for _, s := range tls.CipherSuites() {
		m[s.Name] = true
	}
	return m
}()

// ValidCipherSuite reports whether name is a cipher suite Envoy (or
// crypto/tls, by its Go name) understands.
func ValidCipherSuite(name string) bool { return cipherSuites[name] }

// serverTLS validates a Gateway (or Sidecar ingress) server's TLS settings:
// SIMPLE and MUTUAL need either credentialName or certificate files.
func (v *validator) serverTLS(p string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	if (t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_0 || t.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_1) && len(t.CipherSuites) == 0 {
		v.warnf(p+".minProtocolVersion", "TLS versions below TLSV1_2 require setting compatible cipherSuites")
	}
	if t.MaxProtocolVersion != networking.ServerTLSSettings_TLS_AUTO && t.MinProtocolVersion > t.MaxProtocolVersion {
		v.errorf(p+".minProtocolVersion", "minProtocolVersion %s is greater than maxProtocolVersion %s", t.MinProtocolVersion, t.MaxProtocolVersion)
	}
	seen := map[string]bool{}
	for i, cs := range t.CipherSuites {
		f := pathIndex(p+".cipherSuites", i)
		if !cipherSuites[cs] {
			v.warnf(f, "ignoring invalid cipher suite %q", cs)
		} else if seen[cs] {
			v.warnf(f, "ignoring duplicate cipher suite %q", cs)
		}
		seen[cs] = true
	}
	hasFiles := t.ServerCertificate != "" || t.PrivateKey != "" || t.CaCertificates != ""
	hasCred := t.CredentialName != "" || len(t.CredentialNames) > 0 || len(t.TlsCertificates) > 0
	if t.CredentialName != "" && len(t.CredentialNames) > 0 {
		v.errorf(p+".credentialNames", "only one of credentialName or credentialNames can be set")
	}
	if len(t.TlsCertificates) > 0 && (t.CredentialName != "" || len(t.CredentialNames) > 0) {
		v.errorf(p+".tlsCertificates", "only one of credentialName, credentialNames or tlsCertificates can be set")
	}
	if len(t.CredentialNames) > 2 {
		v.errorf(p+".credentialNames", "at most 2 credentialNames (one RSA and one ECDSA certificate), got %d", len(t.CredentialNames))
	}
	if len(t.TlsCertificates) > 2 {
		v.errorf(p+".tlsCertificates", "at most 2 tlsCertificates (one RSA and one ECDSA certificate), got %d", len(t.TlsCertificates))
	}
	for i, c := range t.TlsCertificates {
		f := pathIndex(p+".tlsCertificates", i)
		if c.GetServerCertificate() == "" || c.GetPrivateKey() == "" {
			v.errorf(f, "serverCertificate and privateKey are both required")
		}
		if i == 0 && c.GetCaCertificates() == "" && t.Mode == networking.ServerTLSSettings_MUTUAL {
			v.errorf(f+".caCertificates", "MUTUAL TLS requires a client CA bundle in the first of tlsCertificates")
		}
	}
	switch t.Mode {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		if t.ServerCertificate != "" {
			v.errorf(p+".serverCertificate", "ISTIO_MUTUAL TLS cannot have associated server certificate")
		}
		if t.PrivateKey != "" {
			v.errorf(p+".privateKey", "ISTIO_MUTUAL TLS cannot have associated private key")
		}
		if t.CaCertificates != "" {
			v.errorf(p+".caCertificates", "ISTIO_MUTUAL TLS cannot have associated CA bundle")
		}
		if t.CredentialName != "" {
			v.errorf(p+".credentialName", "ISTIO_MUTUAL TLS cannot have associated credentialName")
		}
		return
	case networking.ServerTLSSettings_PASSTHROUGH, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		if hasFiles || hasCred || t.CaCrl != "" {
			v.warnf(p, "%s mode does not use certificates, they will be ignored", t.Mode)
		}
		return
	}
	if hasCred {
		if hasFiles {
			v.errorf(p+".credentialName", "credentialName cannot be combined with serverCertificate, privateKey or caCertificates files")
		}
		if t.CaCrl != "" {
			v.errorf(p+".caCrl", "CRL is not supported with credentialName; put the CRL in the credential")
		}
		return
	}
	switch t.Mode {
	case networking.ServerTLSSettings_SIMPLE:
		if t.ServerCertificate == "" {
			v.errorf(p+".serverCertificate", "SIMPLE TLS requires a server certificate (or credentialName)")
		}
		if t.PrivateKey == "" {
			v.errorf(p+".privateKey", "SIMPLE TLS requires a private key (or credentialName)")
		}
		if t.CaCrl != "" {
			v.errorf(p+".caCrl", "CRL is not supported with SIMPLE TLS")
		}
	case networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		if t.ServerCertificate == "" {
			v.errorf(p+".serverCertificate", "MUTUAL TLS requires a server certificate (or credentialName)")
		}
		if t.PrivateKey == "" {
			v.errorf(p+".privateKey", "MUTUAL TLS requires a private key (or credentialName)")
		}
		if t.CaCertificates == "" {
			v.errorf(p+".caCertificates", "MUTUAL TLS requires a client CA bundle (or credentialName)")
		}
	}
}

func (v *validator) sidecar(sc *networking.Sidecar) {
	selector := sc.WorkloadSelector
	v.selectorLabels("spec.workloadSelector.labels", selector.GetLabels(), selector != nil)
	if len(sc.Egress) == 0 && len(sc.Ingress) == 0 && sc.OutboundTrafficPolicy == nil && sc.InboundConnectionPool == nil {
		v.errorf("spec", "sidecar: empty configuration provided")
		return
	}
	ports := map[uint32]bool{}
	for i, in := range sc.Ingress {
		f := pathIndex("spec.ingress", i)
		if in == nil {
			v.errorf(f, "ingress may not be null")
			continue
		}
		if in.Port == nil {
			v.errorf(f+".port", "port is required for ingress listeners")
			continue
		}
		if in.Port.TargetPort > 0 {
			v.errorf(f+".port.targetPort", "targetPort has no impact on Sidecars")
		}
		v.sidecarPort(f+".port", in.Port)
		if in.Bind != "" {
			v.check(f+".bind", validateIP(in.Bind))
		}
		if ports[in.Port.Number] {
			v.errorf(f+".port.number", "ports on IP bound listeners must be unique")
		}
		ports[in.Port.Number] = true
		if ep := in.DefaultEndpoint; ep != "" {
			v.defaultEndpoint(f+".defaultEndpoint", ep)
		}
		if t := in.Tls; t != nil {
			if len(t.SubjectAltNames) > 0 {
				v.errorf(f+".tls.subjectAltNames", "subjectAltNames is not supported in ingress tls")
			}
			if t.HttpsRedirect {
				v.errorf(f+".tls.httpsRedirect", "httpsRedirect is not supported")
			}
			if t.CredentialName != "" {
				v.errorf(f+".tls.credentialName", "credentialName is not currently supported")
			}
			if len(t.CredentialNames) > 0 {
				v.errorf(f+".tls.credentialNames", "credentialNames is not currently supported")
			}
			if len(t.TlsCertificates) > 0 {
				v.errorf(f+".tls.tlsCertificates", "tlsCertificates is not currently supported")
			}
			if p := strings.ToUpper(in.Port.Protocol); p != "HTTPS" && p != "TLS" {
				v.errorf(f+".tls", "server cannot have TLS settings for non HTTPS/TLS ports (port %d is %q)", in.Port.Number, in.Port.Protocol)
			}
			if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				v.errorf(f+".tls.mode", "cannot set mode to %s in sidecar ingress tls", t.Mode)
			}
			v.serverTLS(f+".tls", t)
		}
		v.connectionPool(f+".connectionPool", in.ConnectionPool)
		if in.ConnectionPool.GetHttp() != nil && !isHTTPProtocol(in.Port.Protocol) {
			v.warnf(f+".connectionPool.http", "HTTP connection pool settings are configured for port %d but its protocol is not HTTP (%s); only TCP settings will apply", in.Port.Number, in.Port.Protocol)
		}
	}
	v.connectionPool("spec.inboundConnectionPool", sc.InboundConnectionPool)

	ports = map[uint32]bool{}
	uds := map[string]bool{}
	for i, eg := range sc.Egress {
		f := pathIndex("spec.egress", i)
		if eg == nil {
			v.errorf(f, "egress listener may not be null")
			continue
		}
		if eg.Port == nil {
			if i != len(sc.Egress)-1 {
				v.errorf(f, "the egress listener with empty port should be the last listener in the list")
			}
		} else {
			if eg.Port.TargetPort > 0 {
				v.errorf(f+".port.targetPort", "targetPort has no impact on Sidecars")
			}
			if eg.Port.Number == 0 {
				if eg.Port.Name != "" {
					v.check(f+".port.name", validatePortName(eg.Port.Name))
				}
				v.check(f+".port.protocol", validateProtocol(eg.Port.Protocol))
				if !strings.HasPrefix(eg.Bind, unixPrefix) {
					v.errorf(f+".bind", "ports with 0 value must have a unix domain socket bind address")
				} else {
					v.check(f+".bind", validateUnixAddress(strings.TrimPrefix(eg.Bind, unixPrefix)))
				}
				if eg.CaptureMode != networking.CaptureMode_DEFAULT && eg.CaptureMode != networking.CaptureMode_NONE {
					v.errorf(f+".captureMode", "captureMode must be DEFAULT/NONE for unix domain socket listeners")
				}
				if uds[eg.Bind] {
					v.errorf(f+".bind", "unix domain socket values for listeners must be unique")
				}
				uds[eg.Bind] = true
			} else {
				v.sidecarPort(f+".port", eg.Port)
				if eg.Bind != "" {
					v.check(f+".bind", validateIP(eg.Bind))
				}
				if ports[eg.Port.Number] {
					v.errorf(f+".port.number", "ports on IP bound listeners must be unique")
				}
				ports[eg.Port.Number] = true
			}
		}
		if len(eg.Hosts) == 0 {
			v.errorf(f+".hosts", "egress listener must contain at least one host")
		}
		byNS := map[string]map[string]bool{}
		for j, h := range eg.Hosts {
			hf := pathIndex(f+".hosts", j)
			if ns, svc, ok := strings.Cut(h, "/"); ok {
				if ns == "." {
					ns = v.r.Namespace
				}
				if byNS[ns] == nil {
					byNS[ns] = map[string]bool{}
				}
				if svc != "*" && (byNS[ns][svc] || byNS[ns]["*"]) || svc == "*" && len(byNS[ns]) != 0 {
					v.warnf(hf, "duplicated egress host: %s", h)
				}
				byNS[ns][svc] = true
			}
			for _, err := range validateNamespaceSlashHost(h, false) {
				v.check(hf, err)
			}
		}
		if byNS["*"]["*"] && len(byNS) != 1 {
			v.warnf(f+".hosts", "`*/*` host selects all services, no other hosts can be added")
		}
	}
	if tp := sc.OutboundTrafficPolicy; tp != nil && tp.EgressProxy != nil {
		f := "spec.outboundTrafficPolicy"
		if tp.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY {
			v.errorf(f+".egressProxy", "egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode")
		} else {
			v.check(f+".egressProxy.host", validateFQDN(tp.EgressProxy.Host))
			if tp.EgressProxy.Port == nil {
				v.errorf(f+".egressProxy.port", "egressProxy port must be set")
			}
			v.destination(f+".egressProxy", tp.EgressProxy)
			if h := tp.EgressProxy.Host; h != "" && len(sc.Egress) > 0 && !egressImports(sc.Egress, h) {
				v.warnf(f+".egressProxy.host", "egress proxy host %q is not imported by any egress listener's hosts: the sidecar has no cluster for it, so unknown traffic would fail", h)
			}
		}
	}
}

// egressImports reports whether some egress listener's hosts may import
// host (by its DNS part: "*", the name, a "*.suffix" wildcard or a short
// form of one of them; namespace "~" imports nothing).
func egressImports(egress []*networking.IstioEgressListener, host string) bool {
	for _, eg := range egress {
		for _, h := range eg.GetHosts() {
			ns, dns, ok := strings.Cut(h, "/")
			if !ok || ns == "~" {
				continue
			}
			switch {
			case dns == "*", dns == host,
				strings.HasPrefix(dns, "*.") && strings.HasSuffix(host, dns[1:]),
				strings.HasPrefix(dns, host+"."), strings.HasPrefix(host, dns+"."):
				return true
			}
		}
	}
	return false
}

func (v *validator) sidecarPort(p string, port *networking.SidecarPort) {
	if port.Name != "" {
		v.check(p+".name", validatePortName(port.Name))
	}
	v.check(p+".protocol", validateProtocol(port.Protocol))
	v.check(p+".number", validatePort(int(port.Number)))
}

// defaultEndpoint checks a Sidecar ingress defaultEndpoint: unix://path, or
// host:port. Istio allows only loopback or wildcard hosts; Mast also allows
// any IP address, since workloads without traffic capture each listen on an
// address of their own (127.0.2.7:9080, say).
func (v *validator) defaultEndpoint(f, ep string) {
	if strings.HasPrefix(ep, unixPrefix) {
		v.check(f, validateUnixAddress(strings.TrimPrefix(ep, unixPrefix)))
		return
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		v.errorf(f, "defaultEndpoint %q must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>", ep)
		return
	}
	if host != "" && !isIP(host) {
		v.errorf(f, "defaultEndpoint host %q must be an IP address", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		v.errorf(f, "defaultEndpoint port %q is not a number", port)
		return
	}
	v.check(f, validatePort(n))
}
