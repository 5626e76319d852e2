package analyze

import (
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// analyzeGatewayPorts: a Gateway's selector must match some pod (IST0101)
// and each server port must be a port of a Service in front of those pods
// (IST0162).
func analyzeGatewayPorts(c *context) {
	for _, r := range c.in.Config.List(config.Gateway) {
		gw := r.Spec.(*networking.Gateway)
		sel := selector(gw.GetSelector())
		servicePorts := map[uint32]bool{}
		portMapping := map[uint32]bool{}
		matches := 0
		for _, p := range c.in.Pods {
			if !sel.matches(p.Labels) {
				continue
			}
			matches++
			for _, s := range c.in.Services {
				if s.Namespace != p.Namespace || !selector(s.Selector).matches(p.Labels) {
					continue
				}
				for _, sp := range s.Ports {
					if sp.Protocol != "TCP" {
						continue
					}
					if tp, _ := strconv.Atoi(sp.TargetPort); tp != 0 {
						servicePorts[uint32(tp)] = true
						portMapping[uint32(sp.Port)] = true
					} else {
						servicePorts[uint32(sp.Port)] = true
					}
				}
			}
		}
		if matches == 0 {
			c.report(newMessage(ReferencedResourceNotFound, refOf(r), "selector", sel.String()))
			continue
		}
		for _, s := range gw.GetServers() {
			if s.GetPort() == nil {
				continue
			}
			n := s.GetPort().GetNumber()
			if !servicePorts[n] && !portMapping[n] {
				c.report(newMessage(GatewayPortNotDefinedOnService, refOf(r), int(n), sel.String()))
			}
		}
	}
}

// analyzeConflictingGateways: two Gateways on the same workloads and port
// must not claim the same host with the same bind address (IST0145).
func analyzeConflictingGateways(c *context) {
	type hostsBind map[string]string
	// "selector~port" -> gateway "ns/name" -> host -> bind
	byKey := map[string]map[string]hostsBind{}
	gws := c.in.Config.List(config.Gateway)
	for _, r := range gws {
		gw := r.Spec.(*networking.Gateway)
		sel := selector(gw.GetSelector()).String()
		for _, s := range gw.GetServers() {
			k := sel + "~" + strconv.Itoa(int(s.GetPort().GetNumber()))
			if byKey[k] == nil {
				byKey[k] = map[string]hostsBind{}
			}
			hb := hostsBind{}
			for _, h := range s.GetHosts() {
				hb[h] = s.GetBind()
			}
			byKey[k][r.Namespace+"/"+r.Name] = hb
		}
	}
	for _, r := range gws {
		gw := r.Spec.(*networking.Gateway)
		name := r.Namespace + "/" + r.Name
		gsel := selector(gw.GetSelector())
		sel := gsel.String()
		exists := false
		hit := map[string]map[string]hostsBind{}
		for k, v := range byKey {
			xsel, _, _ := strings.Cut(k, "~")
			matched := sel == xsel
			if !matched && (strings.Contains(xsel, sel) || strings.Contains(sel, xsel)) {
				x := parseSelector(xsel)
				for _, p := range c.in.Pods {
					if gsel.matches(p.Labels) && x.matches(p.Labels) {
						matched = true
						break
					}
				}
			}
			if matched {
				exists = true
				hit[k] = v
			}
		}
		if sel != "" && !exists {
			c.report(newMessage(ReferencedResourceNotFound, refOf(r), "selector", sel))
			continue
		}
		for _, s := range gw.GetServers() {
			port := strconv.Itoa(int(s.GetPort().GetNumber()))
			var conflicting []string
			for k, v := range hit {
				if _, p, _ := strings.Cut(k, "~"); p != port {
					continue
				}
				for other, hb := range v {
					if other == name {
						continue
					}
					for _, h := range s.GetHosts() {
						if b, ok := hb[h]; ok && b == s.GetBind() {
							conflicting = append(conflicting, other)
							break
						}
					}
				}
			}
			if len(conflicting) > 0 {
				sort.Strings(conflicting)
				c.report(newMessage(ConflictingGateways, refOf(r), strings.Join(conflicting, ","), sel, port, strings.Join(s.GetHosts(), ",")))
			}
		}
	}
}

func parseSelector(s string) selector {
	out := selector{}
	for _, pair := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(pair, "="); ok && !strings.Contains(v, "=") {
			out[k] = v
		}
	}
	return out
}

// analyzeGatewayCertificates: two Gateways on the same workloads serving the
// same certificate make HTTP/2 clients that reuse connections get 404s (IST0138).
func analyzeGatewayCertificates(c *context) {
	gws := c.in.Config.List(config.Gateway)
	for _, r := range gws {
		gw := r.Spec.(*networking.Gateway)
		for _, o := range gws {
			if o.Key() == r.Key() {
				continue
			}
			other := o.Spec.(*networking.Gateway)
			if len(gw.GetSelector()) > 0 && !selectorSubset(gw.GetSelector(), other.GetSelector()) {
				continue
			}
			for _, s := range gw.GetServers() {
				for _, os := range other.GetServers() {
					if s.GetTls() == nil || os.GetTls() == nil || !sameCertificate(s.GetTls(), os.GetTls()) {
						continue
					}
					c.report(newMessage(GatewayDuplicateCertificate, refOf(r), []string{r.Namespace + "/" + r.Name, o.Namespace + "/" + o.Name}))
				}
			}
		}
	}
}

func selectorSubset(x, y map[string]string) bool {
	count := 0
	for k, v := range x {
		if yv, ok := y[k]; ok {
			if yv != v {
				return false
			}
			count++
		}
	}
	return count == len(x)
}

func sameCertificate(a, b *networking.ServerTLSSettings) bool {
	if a.GetCredentialName() != "" && b.GetCredentialName() != "" {
		return a.GetCredentialName() == b.GetCredentialName()
	}
	if a.GetCredentialName() == "" && b.GetCredentialName() == "" && a.GetServerCertificate() != "" &&
		a.GetServerCertificate() == b.GetServerCertificate() && a.GetPrivateKey() != "" {
		return a.GetPrivateKey() == b.GetPrivateKey()
	}
	return false
}
