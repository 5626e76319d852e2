package model

import (
	"strconv"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

func TestScopeEgressListeners(t *testing.T) {
	svc := func(host, ns string) *registry.Service {
		return &registry.Service{Hostname: host, Namespace: ns, Ports: []registry.Port{{Name: "http", Number: 9080, Protocol: registry.HTTP}}}
	}
	reg := &registry.Snapshot{Services: []*registry.Service{
		svc("db.a.svc.cluster.local", "a"),
		svc("reviews.a.svc.cluster.local", "a"),
		svc("reviews.b.svc.cluster.local", "b"),
	}}
	port := func(n uint32, proto, name string) *networking.SidecarPort {
		return &networking.SidecarPort{Number: n, Protocol: proto, Name: name}
	}
	cfg := config.NewSnapshot([]config.Resource{res(config.Sidecar, "a", "s", &networking.Sidecar{Egress: []*networking.IstioEgressListener{
		{Port: port(9080, "HTTP", "http"), Bind: "127.0.1.7", CaptureMode: networking.CaptureMode_NONE, Hosts: []string{"./reviews.a.svc.cluster.local"}},
		{Hosts: []string{"*/*"}}, // no port: scope only
		{Port: port(5432, "", "tcp-db"), Hosts: []string{"./db.a.svc.cluster.local", "~/*"}},
		{Port: port(9080, "", "x"), Hosts: []string{"b/*"}},
	}})})
	pc := NewPushContext("1", DefaultMeshConfig(), cfg, reg)
	s := pc.Scope(&Proxy{Namespace: "a"})
	var got []string
	for _, e := range s.Egress {
		var hosts []string
		for _, svc := range e.Services {
			hosts = append(hosts, svc.Hostname)
		}
		got = append(got, strings.Join([]string{strconv.Itoa(e.Index), strconv.Itoa(int(e.Port)), string(e.Protocol), e.Bind("def"),
			map[bool]string{true: "none", false: "default"}[e.CaptureNone()], strings.Join(hosts, ",")}, " "))
	}
	want := []string{
		"0 9080 HTTP 127.0.1.7 none reviews.a.svc.cluster.local",
		"2 5432 TCP def default db.a.svc.cluster.local",
		"3 9080  def default reviews.b.svc.cluster.local", // protocol unset: the generator takes the service's
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("egress listeners:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(s.Services) != 3 {
		t.Errorf("scope services = %d, want all 3 (the port-less listener sees */*)", len(s.Services))
	}
}
