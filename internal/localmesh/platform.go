package localmesh

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	bookinfoconfig "github.com/mast-mesh/mast/samples/bookinfo/config"
)

// Platforms `mast up --platform` runs Bookinfo on: "" (WorkloadEntries in
// the configuration), or a service registry its workloads are registered in
// instead, as a registrator beside them would.
const (
	PlatformFiles  = ""
	PlatformConsul = "consul"
	PlatformEureka = "eureka"
)

// workloadsFile is Bookinfo's file of WorkloadEntries: on a registry
// platform it describes what to run and register, and is not configuration.
const workloadsFile = "workloads.yaml"

// ParsePlatform checks a --platform value.
func ParsePlatform(s string) (string, error) {
	switch s {
	case "", "files":
		return PlatformFiles, nil
	case PlatformConsul, PlatformEureka:
		return s, nil
	}
	return "", fmt.Errorf("--platform %q: want files, consul or eureka", s)
}

// bookinfoWorkloads are Bookinfo's WorkloadEntries, from the embedded file.
func bookinfoWorkloads() ([]config.Resource, error) {
	b, err := fs.ReadFile(bookinfoconfig.Files, workloadsFile)
	if err != nil {
		return nil, err
	}
	rs, problems := config.Load(workloadsFile, b)
	if problems.HasErrors() {
		return nil, problems.Errors()
	}
	return rs, nil
}

// registration is one workload as a registry sees it.
type registration struct {
	ID, Service, Namespace, Address, ServiceAccount string
	Port                                            int
	Protocol                                        string
	Labels                                          map[string]string
	HealthAddr                                      string // the application's own address, checked by the registry
}

// registrations derives what to register from the configuration and the
// workloads: each Bookinfo workload, under its app label, on the first port
// of the ServiceEntry that selects it.
func registrations(snap *config.Snapshot) []registration {
	apps := sidecarEndpoints(snap)
	var out []registration
	for _, r := range snap.List(config.WorkloadEntry) {
		we := r.Spec.(*networking.WorkloadEntry)
		app := we.GetLabels()["app"]
		if addr, err := netip.ParseAddr(we.GetAddress()); err != nil || !addr.IsLoopback() || !isBookinfo(app) {
			continue
		}
		reg := registration{ID: r.Name, Service: app, Namespace: r.Namespace, Address: we.GetAddress(),
			ServiceAccount: we.GetServiceAccount(), Labels: we.GetLabels(), HealthAddr: apps[r.Namespace+"/"+r.Name]}
		for _, s := range snap.List(config.ServiceEntry) {
			se := s.Spec.(*networking.ServiceEntry)
			if s.Namespace == r.Namespace && se.GetWorkloadSelector() != nil && selects(se.GetWorkloadSelector().GetLabels(), we.GetLabels()) && len(se.GetPorts()) > 0 {
				p := se.GetPorts()[0]
				reg.Port, reg.Protocol = int(p.GetNumber()), p.GetProtocol()
				break
			}
		}
		if reg.Port != 0 {
			out = append(out, reg)
		}
	}
	return out
}

// consulAgent is the Consul dev agent `mast up --platform consul` runs: all
// in memory, on loopback, DNS and gRPC off.
func consulAgent(httpAddr string) (Proc, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return Proc{}, fmt.Errorf("--consul-addr %q: %w", httpAddr, err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return Proc{}, err
	}
	return Proc{
		Name:    "consul",
		Program: "consul",
		Args: []string{"agent", "-dev", "-node", "mast-local", "-bind", "127.0.0.1", "-client", host, "-http-port", port,
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
			"-serf-lan-port", strconv.Itoa(ports[0]), "-serf-wan-port", strconv.Itoa(ports[1]), "-server-port", strconv.Itoa(ports[2]),
			"-log-level", "warn"},
		Env: []string{"CHECKPOINT_DISABLE=1"},
	}, nil
}

func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// registerConsul waits for the agent to have a leader, then registers every
// workload with the agent: its labels as "key|value" tags (Istio's Consul
// convention), protocol, service account and namespace as service meta, and
// a TCP check of the application itself.
func registerConsul(ctx context.Context, addr string, regs []registration) error {
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		return err
	}
	for {
		leader, err := client.Status().Leader()
		if err == nil && leader != "" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consul at %s has no leader: %v", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, r := range regs {
		var tags []string
		for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
			tags = append(tags, k+"|"+r.Labels[k])
		}
		svc := &api.AgentServiceRegistration{
			ID: r.ID, Name: r.Service, Address: r.Address, Port: r.Port, Tags: tags,
			Meta: map[string]string{"protocol": r.Protocol, "service-account": r.ServiceAccount, "mesh-namespace": r.Namespace},
		}
		if r.HealthAddr != "" {
			svc.Check = &api.AgentServiceCheck{Name: "application", TCP: r.HealthAddr, Interval: "1s", Timeout: "1s", Status: api.HealthPassing}
		}
		if err := client.Agent().ServiceRegisterOpts(svc, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
			return fmt.Errorf("registering %s in consul: %w", r.ID, err)
		}
	}
	return nil
}
