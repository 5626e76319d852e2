package consul

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/mast-mesh/mast/internal/registry"
)

func TestConvert(t *testing.T) {
	opts := convertOptions{TrustDomain: "example.org", Registry: "consul"}
	multi := instance("api-1", "10.1.0.1", 0, api.HealthPassing, nil, map[string]string{"service-account": "api"})
	multi.Service.Ports = api.ServicePorts{{Name: "http-web", Port: 8080, Default: true}, {Name: "grpc", Port: 9090}, {Name: "bad", Port: 70000}}
	multi.Service.Namespace = "team-a"
	zoned := instance("db-1", "db.internal", 5432, api.HealthPassing, []string{"protocol|tcp", "primary"}, nil)
	zoned.Node.Locality = &api.Locality{Region: "eu", Zone: "eu-1a"}
	zoned.Node.Meta = map[string]string{"external": "true"}
	for _, tc := range []struct {
		name    string
		entries []*api.ServiceEntry
		want    string
		skipped int
	}{
		{"tags, meta, protocol, service account", []*api.ServiceEntry{
			instance("reviews-1", "10.0.0.1", 9080, api.HealthPassing, []string{"version|v1", "canary"}, map[string]string{"protocol": "http", "service-account": "bookinfo-reviews", "mesh-namespace": "bookinfo"}),
		}, "reviews.service.consul ns=bookinfo static ext=false ports=[http:9080:HTTP] sa=[spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews] eps=[10.0.0.1:9080/9080 {canary= mesh-namespace=bookinfo protocol=http service-account=bookinfo-reviews version=v1} dc1 spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews w1]", 0},
		{"named ports of Consul 1.22, Enterprise namespace", []*api.ServiceEntry{multi},
			"api.service.consul ns=team-a static ext=false ports=[http-web:8080:HTTP grpc:9090:GRPC] sa=[spiffe://example.org/ns/team-a/sa/api] eps=[10.1.0.1:8080/8080 {service-account=api} dc1 spiffe://example.org/ns/team-a/sa/api w1 10.1.0.1:9090/9090 {service-account=api} dc1 spiffe://example.org/ns/team-a/sa/api w1]", 0},
		{"hostname address, locality, external node, protocol tag", []*api.ServiceEntry{zoned},
			"db.service.consul ns=default dns ext=true ports=[tcp:5432:TCP] sa=[] eps=[db.internal:5432/5432 {primary= protocol=tcp} eu/eu-1a  w1]", 0},
		{"malformed instances skipped, the service kept", []*api.ServiceEntry{nil, {Node: &api.Node{}}, {Service: &api.AgentService{}},
			{Node: &api.Node{Address: "10.0.0.9"}, Service: &api.AgentService{Port: -1}},
			instance("x-1", "10.0.0.1", 80, api.HealthPassing, nil, map[string]string{"protocol": "nonsense"})},
			"x.service.consul ns=default static ext=false ports=[tcp:80:TCP] sa=[] eps=[10.0.0.1:80/80 {protocol=nonsense} dc1  w1]", 4},
		{"no instance", nil, "x.service.consul ns=default static ext=false ports=[] sa=[] eps=[]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "x"
			if len(tc.entries) > 0 && tc.entries[len(tc.entries)-1] != nil && tc.entries[len(tc.entries)-1].Service != nil {
				name = tc.entries[len(tc.entries)-1].Service.Service
			}
			c, skipped := convert(name, tc.entries, opts)
			if got := describe(c); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", skipped, tc.skipped)
			}
		})
	}
}

func describe(c converted) string {
	s := c.svc
	res := "static"
	if s.Resolution == registry.ResolutionDNS {
		res = "dns"
	}
	var ports []string
	for _, p := range s.Ports {
		ports = append(ports, fmt.Sprintf("%s:%d:%s", p.Name, p.Number, p.Protocol))
	}
	var eps []string
	for _, e := range c.eps {
		var ls []string
		for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
			ls = append(ls, k+"="+e.Labels[k])
		}
		eps = append(eps, fmt.Sprintf("%s:%d/%d %v %s %s w%d", e.Address, e.Port, e.ServicePort, "{"+join(ls)+"}", e.Locality, e.ServiceAccount, e.Weight))
	}
	return fmt.Sprintf("%s ns=%s %s ext=%v ports=[%s] sa=[%s] eps=[%s]", s.Hostname, s.Namespace, res, s.MeshExternal, join(ports), join(s.ServiceAccounts), join(eps))
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}

// FuzzDecodeHealth feeds arbitrary answers of /v1/health/service/NAME
// through the client's decoding (encoding/json into consul/api's types)
// and the conversion: nothing panics, and what comes out is well formed.
func FuzzDecodeHealth(f *testing.F) {
	good, _ := json.Marshal([]*api.ServiceEntry{
		instance("reviews-1", "10.0.0.1", 9080, api.HealthPassing, []string{"version|v1"}, map[string]string{"protocol": "http"}),
		instance("reviews-2", "host.example", 9080, api.HealthWarning, []string{"a=b"}, nil),
	})
	for _, seed := range []string{string(good), `[]`, `null`, `[null]`, `[{}]`, `[{"Node":null,"Service":{"Port":80}}]`,
		`[{"Node":{"Address":"1.2.3.4"},"Service":{"Ports":[{"Name":"http","Port":99999}]}}]`,
		`[{"Node":{"Address":"1.2.3.4"},"Service":{"Port":80,"Weights":{"Passing":-5}}}]`,
		string(good[:len(good)/2]), `{"Node":[1,2]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []*api.ServiceEntry
		if err := decodeSafely(func() error { return json.Unmarshal(data, &entries) }); err != nil {
			return
		}
		c, _ := convert("svc", entries, convertOptions{TrustDomain: "cluster.local", AllowWarning: true})
		if c.svc == nil || c.svc.Hostname != "svc.service.consul" {
			t.Fatalf("service %+v", c.svc)
		}
		for _, e := range c.eps {
			if e.Address == "" || e.Port == 0 || e.Port > 65535 {
				t.Fatalf("bad endpoint %+v", e)
			}
			if _, ok := c.svc.PortByNumber(e.ServicePort); !ok {
				t.Fatalf("endpoint on undeclared port %d", e.ServicePort)
			}
		}
	})
}

// FuzzDecodeChecks feeds arbitrary answers of /v1/health/state/any through
// the client's decoding and checkSums: nothing panics, and a sum depends
// only on the set of checks, not their order.
func FuzzDecodeChecks(f *testing.F) {
	good, _ := json.Marshal(api.HealthChecks{
		{Node: "n1", CheckID: "serfHealth", Status: api.HealthPassing, ModifyIndex: 3},
		{Node: "n1", CheckID: "service:reviews-1", ServiceID: "reviews-1", ServiceName: "reviews", Status: api.HealthCritical, ModifyIndex: 9},
	})
	for _, seed := range []string{string(good), `[]`, `null`, `[null]`, `[{}]`, `[{"Definition":null}]`,
		`[{"ServiceName":"a","ModifyIndex":-1}]`, string(good[:len(good)/2]), `{"CheckID":[1]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var checks api.HealthChecks
		if err := decodeSafely(func() error { return json.Unmarshal(data, &checks) }); err != nil {
			return
		}
		sums := checkSums(checks)
		reversed := slices.Clone(checks)
		slices.Reverse(reversed)
		if got := checkSums(reversed); !maps.Equal(got, sums) {
			t.Fatalf("sums depend on the order: %v and %v", sums, got)
		}
	})
}
