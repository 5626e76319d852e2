package ctl

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// route finds the virtual host and route the request takes.
func (w *whyRun) route(p proxy, d *configDump, name, host, port string) (string, *finding) {
	hostOnly := w.u.Hostname()
	gateway := strings.HasPrefix(p.ID, "router~")
	for _, rc := range d.Routes {
		if rc.Name != name {
			continue
		}
		for _, vh := range rc.VirtualHosts {
			if !domainMatches(vh.Domains, host, hostOnly) {
				continue
			}
			w.trace = append(w.trace, fmt.Sprintf("%s: virtual host %q", p.Name, vh.Name))
			for _, rt := range vh.Routes {
				if !w.pathMatches(rt.Match.Prefix, rt.Match.Path, rt.Match.SafeRegex) || !w.headersMatch(rt.Match.Headers) {
					continue
				}
				if rt.DirectResponse != nil {
					return "", &finding{Hop: p.Name, Cause: fmt.Sprintf("the matching route answers directly with %d", rt.DirectResponse.Status)}
				}
				if rt.Route == nil {
					continue
				}
				if rt.Route.Cluster != "" {
					return rt.Route.Cluster, nil
				}
				if rt.Route.WeightedClusters != nil && len(rt.Route.WeightedClusters.Clusters) > 0 {
					// Check every weighted destination; report the first broken one.
					for _, wc := range rt.Route.WeightedClusters.Clusters[1:] {
						if f := w.cluster(p, d, wc.Name); f != nil {
							return "", f
						}
					}
					return rt.Route.WeightedClusters.Clusters[0].Name, nil
				}
			}
			f := &finding{Hop: p.Name, Flag: "NR", Cause: fmt.Sprintf("no route of virtual host %q matches %s %s (with these headers)", vh.Name, w.method, w.u.RequestURI())}
			if vs := w.vsFor(strings.Split(vh.Name, ":")[0], gateway); vs != nil {
				f.Resource, f.Field = "VirtualService "+vs.Namespace+"/"+vs.Name, "spec.http[].match"
			}
			return "", f
		}
		f := &finding{Hop: p.Name, Flag: "NR", Cause: fmt.Sprintf("unknown host %q: no virtual host of route configuration %q serves it", host, name)}
		if gateway {
			f.Cause += "; no VirtualService bound to the gateway lists this host"
			f.Resource, f.Field = w.gatewayFor(port), "spec.servers[].hosts"
		} else {
			f.Cause += "; no ServiceEntry or VirtualService defines this host in the mesh"
			f.Field = "ServiceEntry spec.hosts"
		}
		return "", f
	}
	return "", &finding{Hop: p.Name, Flag: "NR", Cause: fmt.Sprintf("route configuration %q is missing from the proxy", name)}
}

func domainMatches(domains []string, hostPort, host string) bool {
	for _, d := range domains {
		switch {
		case d == "*", d == hostPort, d == host:
			return true
		case strings.HasPrefix(d, "*") && (strings.HasSuffix(hostPort, d[1:]) || strings.HasSuffix(host, d[1:])):
			return true
		}
	}
	return false
}

func (w *whyRun) pathMatches(prefix, path string, re *struct {
	Regex string `json:"regex"`
}) bool {
	p := w.u.Path
	if p == "" {
		p = "/"
	}
	switch {
	case path != "":
		return p == path
	case re != nil:
		ok, _ := regexp.MatchString("^(?:"+re.Regex+")$", p)
		return ok
	}
	return strings.HasPrefix(p, prefix)
}

func (w *whyRun) headersMatch(ms []headerMatcher) bool {
	for _, m := range ms {
		vals, present := w.header[http.CanonicalHeaderKey(m.Name)]
		if strings.HasPrefix(m.Name, ":") {
			continue // pseudo-headers (authority, method) are matched by the virtual host and method
		}
		ok := present
		if present && m.StringMatch != nil {
			v := vals[0]
			sm := m.StringMatch
			switch {
			case sm.SafeRegex != nil:
				ok, _ = regexp.MatchString("^(?:"+sm.SafeRegex.Regex+")$", v)
			case sm.Prefix != "":
				ok = strings.HasPrefix(v, sm.Prefix)
			case sm.Suffix != "":
				ok = strings.HasSuffix(v, sm.Suffix)
			default:
				ok = v == sm.Exact
			}
		}
		if ok == m.InvertMatch {
			return false
		}
	}
	return true
}
