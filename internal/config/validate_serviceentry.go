package config

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func (v *validator) serviceEntry(se *networking.ServiceEntry) {
	hasSelector := se.WorkloadSelector != nil
	v.selectorLabels("spec.workloadSelector.labels", se.GetWorkloadSelector().GetLabels(), hasSelector)
	if hasSelector && se.Endpoints != nil {
		v.errorf("spec.workloadSelector", "only one of workloadSelector or endpoints is allowed in a ServiceEntry")
	}
	if len(se.Hosts) == 0 {
		v.errorf("spec.hosts", "service entry must have at least one host")
	}
	for i, h := range se.Hosts {
		f := pathIndex("spec.hosts", i)
		if h == "*" {
			v.errorf(f, "invalid host %s: a ServiceEntry cannot match every host", h)
			continue
		}
		v.check(f, validateWildcardDomain(h))
		if err := validatePartialWildcard(h); err != nil {
			v.warnf(f, "%v", err)
		}
	}
	cidr := false
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		v.check(pathIndex("spec.addresses", i), validateIPSubnet(a))
	}
	if cidr && se.Resolution != networking.ServiceEntry_NONE && se.Resolution != networking.ServiceEntry_STATIC {
		v.errorf("spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")
	}
	portNames := map[string]bool{}
	portNumbers := map[uint32]bool{}
	for i, p := range se.Ports {
		f := pathIndex("spec.ports", i)
		if p == nil {
			v.errorf(f, "service entry port may not be null")
			continue
		}
		if portNames[p.Name] {
			v.errorf(f+".name", "service entry port name %q already defined", p.Name)
		}
		if portNumbers[p.Number] {
			v.errorf(f+".number", "service entry port %d already defined", p.Number)
		}
		portNames[p.Name], portNumbers[p.Number] = true, true
		if p.TargetPort != 0 {
			v.check(f+".targetPort", validatePort(int(p.TargetPort)))
			if se.Resolution == networking.ServiceEntry_NONE {
				v.warnf(f+".targetPort", "targetPort has no effect when resolution mode is NONE")
			}
		}
		v.check(f+".name", validatePortName(p.Name))
		v.check(f+".protocol", validateProtocol(p.Protocol))
		v.check(f+".number", validatePort(int(p.Number)))
	}

	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) != 0 {
			v.errorf("spec.endpoints", "no endpoints should be provided for resolution type NONE")
		}
		if hasSelector {
			v.warnf("spec.workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
		}
	case networking.ServiceEntry_STATIC:
		for i, ep := range se.Endpoints {
			f := pathIndex("spec.endpoints", i)
			if ep == nil {
				v.errorf(f, "endpoint cannot be null")
				continue
			}
			v.workloadEntry(f, ep, portNames, false)
		}
		if len(se.Endpoints) == 0 && !hasSelector {
			v.warnf("spec.resolution", "STATIC resolution without endpoints or workloadSelector: the service has no endpoints")
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if err := validateFQDN(h); err != nil {
					v.errorf(pathIndex("spec.hosts", i), "hosts must be FQDN (no wildcard) if no endpoints are provided for resolution mode %s", se.Resolution)
				}
			}
		}
		if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			v.errorf("spec.endpoints", "there must only be 0 or 1 endpoint for resolution mode %s", se.Resolution)
		}
		for i, ep := range se.Endpoints {
			f := pathIndex("spec.endpoints", i)
			if ep == nil {
				v.errorf(f, "endpoint cannot be null")
				continue
			}
			if !isIP(ep.Address) && validateFQDN(ep.Address) != nil {
				v.errorf(f+".address", "endpoint address %q is not a valid FQDN or an IP address", ep.Address)
			}
			v.labels(f+".labels", ep.Labels)
			for name, port := range ep.Ports {
				pf := pathKey(f+".ports", name)
				if !portNames[name] {
					v.errorf(pf, "endpoint port %q is not defined by the service entry", name)
				}
				v.check(pf, validatePortName(name))
				v.check(pf, validatePort(int(port)))
			}
		}
		if hasSelector {
			v.warnf("spec.workloadSelector", "workloadSelector should not be set when resolution mode is %s", se.Resolution)
		}
		if len(se.Addresses) > 0 && len(se.Hosts) > 1 {
			for _, p := range se.Ports {
				if p != nil && isTCPProtocol(p.Protocol) {
					v.warnf("spec.hosts", "service entry can not have more than one host specified simultaneously with address and tcp port")
					break
				}
			}
		}
	default:
		v.errorf("spec.resolution", "unsupported resolution type %s", se.Resolution)
	}

	// Plain TCP cannot tell several hosts apart unless resolution is NONE.
	if se.Resolution != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for i, p := range se.Ports {
			if p != nil && !isHTTPProtocol(p.Protocol) && !isTLSProtocol(p.Protocol) {
				v.errorf(pathIndex("spec.ports", i), "multiple hosts provided with non-HTTP, non-TLS ports")
				break
			}
		}
	}
	for i, san := range se.SubjectAltNames {
		if san == "" {
			v.errorf(pathIndex("spec.subjectAltNames", i), "subjectAltNames entries must not be empty")
		}
	}
	v.exportTo("spec.exportTo", se.ExportTo, true, false)
}

// workloadEntry validates a WorkloadEntry spec or a ServiceEntry endpoint.
// servicePorts, when not nil, are the port names of the owning ServiceEntry.
func (v *validator) workloadEntry(p string, we *networking.WorkloadEntry, servicePorts map[string]bool, allowFQDN bool) {
	addr := we.Address
	if addr == "" {
		if we.Network == "" {
			v.errorf(p+".address", "address is required")
			return
		}
		v.warnf(p+".address", "address is unset with network %q", we.Network)
	}
	unix := strings.HasPrefix(addr, unixPrefix)
	switch {
	case unix:
		v.check(p+".address", validateUnixAddress(strings.TrimPrefix(addr, unixPrefix)))
		if len(we.Ports) != 0 {
			v.errorf(p+".ports", "unix endpoint %s must not include ports", addr)
		}
	case addr != "" && !isIP(addr):
		if !allowFQDN {
			v.errorf(p+".address", "endpoint address %q is not a valid IP address", addr)
		} else if validateFQDN(addr) != nil {
			v.errorf(p+".address", "endpoint address %q is not a valid FQDN or an IP address", addr)
		}
	}
	for name, port := range we.Ports {
		f := pathKey(p+".ports", name)
		if servicePorts != nil && !servicePorts[name] {
			v.errorf(f, "endpoint port %q is not defined by the service entry", name)
		}
		v.check(f, validatePortName(name))
		v.check(f, validatePort(int(port)))
	}
	v.labels(p+".labels", we.Labels)
	if unix && servicePorts != nil && len(servicePorts) != 1 {
		v.errorf(p+".address", "exactly 1 service port required for unix endpoints")
	}
	if we.ServiceAccount != "" && !isDNSSubdomain(we.ServiceAccount) {
		v.errorf(p+".serviceAccount", "invalid service account name %q", we.ServiceAccount)
	}
}

func (v *validator) workloadGroup(wg *networking.WorkloadGroup) {
	if wg.Template == nil {
		v.errorf("spec.template", "template is required")
	} else {
		// Address is filled in per workload, so it is not required in the template.
		for name, port := range wg.Template.Ports {
			f := pathKey("spec.template.ports", name)
			v.check(f, validatePortName(name))
			v.check(f, validatePort(int(port)))
		}
		v.labels("spec.template.labels", wg.Template.Labels)
		if a := wg.Template.Address; a != "" && !isIP(a) && validateFQDN(a) != nil {
			v.errorf("spec.template.address", "address %q is not a valid FQDN or an IP address", a)
		}
	}
	if wg.Metadata != nil {
		v.labels("spec.metadata.labels", wg.Metadata.Labels)
	}
	pr := wg.Probe
	if pr == nil {
		return
	}
	const f = "spec.probe"
	nonNeg := []struct {
		name string
		val  int32
	}{{"periodSeconds", pr.PeriodSeconds}, {"initialDelaySeconds", pr.InitialDelaySeconds}, {"timeoutSeconds", pr.TimeoutSeconds},
		{"successThreshold", pr.SuccessThreshold}, {"failureThreshold", pr.FailureThreshold}}
	for _, n := range nonNeg {
		if n.val < 0 {
			v.errorf(f+"."+n.name, "%s must be non-negative", n.name)
		}
	}
	switch m := pr.HealthCheckMethod.(type) {
	case *networking.ReadinessProbe_HttpGet:
		h := m.HttpGet
		v.check(f+".httpGet.port", validatePort(int(h.GetPort())))
		if s := h.GetScheme(); s != "" && s != "HTTP" && s != "HTTPS" {
			v.errorf(f+".httpGet.scheme", `httpGet.scheme must be one of "HTTP", "HTTPS"`)
		}
		for i, hdr := range h.GetHttpHeaders() {
			v.check(pathIndex(f+".httpGet.httpHeaders", i)+".name", validateHeaderName(hdr.GetName()))
		}
	case *networking.ReadinessProbe_TcpSocket:
		v.check(f+".tcpSocket.port", validatePort(int(m.TcpSocket.GetPort())))
	case *networking.ReadinessProbe_Exec:
		if len(m.Exec.GetCommand()) == 0 {
			v.errorf(f+".exec.command", "exec.command is required")
		}
	default:
		v.errorf(f, "probe must set one of httpGet, tcpSocket or exec")
	}
}
