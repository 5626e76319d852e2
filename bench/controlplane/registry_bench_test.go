package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hudl/fargo"
	logging "github.com/op/go-logging"

	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/consul"
	"github.com/mast-mesh/mast/internal/registry/eureka"
	"github.com/mast-mesh/mast/test/eurekaserver"
)

// registryBench is a registry holding the benchmark's services, which the
// benchmark adds instances to and removes them from.
type registryBench struct {
	watcher    registry.Watcher
	register   func(svc, k int) error // a new instance k of service svc
	deregister func(svc, k int) error
}

const (
	registryServices = 1000
	registryProxies  = 100
	eurekaInterval   = time.Second // mast up's --eureka-interval
)

// BenchmarkRegistrationToLastACK is the time from a registration in a
// registry holding 1,000 services (one instance each) to the last of 100
// simulated SotW proxies ACKing the EDS that carries the new instance, with
// mastd (controlplane.Run, in process) following the registry: a real Consul
// v1.22.7 dev agent (blocking queries), or Mast's Eureka test server polled
// every second as `mast up --platform eureka` does (registrations made with
// hudl/fargo; measured in steady state, once the initial registrations have
// left the server's delta queue). One op is one registration; the instance is deregistered
// (and that push ACKed) before the next. Reports p50/p99 of the whole time
// and of the fan-out alone (first response of the new version at any proxy
// to the last ACK). Run with -benchtime 20x.
func BenchmarkRegistrationToLastACK(b *testing.B) {
	b.Run("eureka", func(b *testing.B) { benchRegistration(b, eurekaBench(b)) })
	b.Run("consul", func(b *testing.B) { benchRegistration(b, consulBench(b)) })
}

func benchRegistration(b *testing.B, rb registryBench) {
	ctx := context.Background()
	srv, err := StartInProcessRegistries(b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)), []registry.Watcher{rb.watcher})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for rb.watcher.Status().Services < registryServices {
		if waitCtx.Err() != nil {
			b.Fatalf("mastd's registry has %+v, want %d services", rb.watcher.Status(), registryServices)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f, err := Connect(waitCtx, FleetConfig{Addr: srv.XDSAddr(), Protocol: SotW, Clients: registryProxies, Services: registryServices})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total, fanout []time.Duration
	k := 0
	for b.Loop() {
		k++
		svc := k * 37 % registryServices
		e := f.Expect(generate.EndpointType)
		t0 := time.Now()
		if err := rb.register(svc, k); err != nil {
			b.Fatal(err)
		}
		tm, err := e.Wait(waitCtx)
		if err != nil {
			b.Fatal(err)
		}
		total, fanout = append(total, tm.LastACK.Sub(t0)), append(fanout, tm.LastACK.Sub(tm.FirstResponse))
		b.StopTimer()
		e = f.Expect(generate.EndpointType)
		if err := rb.deregister(svc, k); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Wait(waitCtx); err != nil {
			b.Fatal(err)
		}
		// A random phase: registering right after the previous push would
		// always land just after a Eureka poll, the worst case.
		time.Sleep(rand.N(eurekaInterval))
		b.StartTimer()
	}
	s, fo := Summarize(total), Summarize(fanout)
	b.ReportMetric(s.P50, "p50-ms")
	b.ReportMetric(s.P99, "p99-ms")
	b.ReportMetric(fo.P50, "fanout-p50-ms")
	b.ReportMetric(fo.P99, "fanout-p99-ms")
}

// benchInstanceIP is the address of instance k (k < 0: the initial instance
// of service -k-1).
func benchInstanceIP(k int) string {
	if k < 0 {
		return fmt.Sprintf("10.1.%d.%d", (-k-1)/256, (-k-1)%256)
	}
	return fmt.Sprintf("10.2.%d.%d", k/256%256, k%256)
}

func eurekaBench(b *testing.B) registryBench {
	logging.SetLevel(logging.CRITICAL, "fargo")
	// Steady state: the initial registrations have left the recently-changed
	// queue (after 3 minutes on a Eureka server; 20 s here), so that deltas
	// carry only the benchmark's changes.
	const retention = 20 * time.Second
	s := eurekaserver.New(eurekaserver.Config{DeltaRetention: retention})
	b.Cleanup(s.Close)
	hs := httptest.NewServer(s)
	b.Cleanup(hs.Close)
	conn := fargo.NewConn(hs.URL + "/eureka/v2")
	conn.UseJson = true
	instance := func(svc, k int) *fargo.Instance {
		name := ServiceName(svc)
		ins := &fargo.Instance{InstanceId: name + "-" + strconv.Itoa(k), HostName: name, App: name, IPAddr: benchInstanceIP(k),
			VipAddress: name + ".eureka", Status: fargo.UP, Port: 9080, PortEnabled: true,
			DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn}, LeaseInfo: fargo.LeaseInfo{RenewalIntervalInSecs: 30, DurationInSecs: 3600}}
		ins.SetMetadataString("app", name)
		return ins
	}
	for i := range registryServices {
		if err := conn.RegisterInstance(instance(i, -i-1)); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(retention)
	w, err := eureka.New(eureka.Config{URL: hs.URL + "/eureka/v2", Interval: eurekaInterval, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return registryBench{
		watcher:    w,
		register:   func(svc, k int) error { return conn.RegisterInstance(instance(svc, k)) },
		deregister: func(svc, k int) error { return conn.DeregisterInstance(instance(svc, k)) },
	}
}

// consulBench starts a Consul dev agent (scripts/build-consul.sh's binary)
// with the services registered.
func consulBench(b *testing.B) registryBench {
	bin := os.Getenv("MAST_CONSUL")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "mast", "consul-v1.22.7")
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skip("no Consul binary: run scripts/build-consul.sh (builds ~/.cache/mast/consul-v1.22.7)")
	}
	var ports []string
	for range 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	addr := "127.0.0.1:" + ports[0]
	cmd := exec.Command(bin, "agent", "-dev", "-node", "bench", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-http-port", ports[0],
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-serf-lan-port", ports[1], "-serf-wan-port", ports[2],
		"-server-port", ports[3], "-log-level", "error")
	// Consul's default limits stay: at most 200 connections per client
	// (limits.http_max_conns_per_client), which the registry stays under.
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	b.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		b.Fatal(err)
	}
	return registryBench{
		watcher: startConsul(b, cmd, client, addr),
		register: func(svc, k int) error {
			name := ServiceName(svc)
			return client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: name + "-" + strconv.Itoa(k), Name: name,
				Address: benchInstanceIP(k), Port: 9080, Meta: map[string]string{"protocol": "http"}, Tags: []string{"app|" + name}})
		},
		deregister: func(svc, k int) error {
			return client.Agent().ServiceDeregister(ServiceName(svc) + "-" + strconv.Itoa(k))
		},
	}
}

func startConsul(b *testing.B, cmd *exec.Cmd, client *api.Client, addr string) registry.Watcher {
	b.Helper()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if leader, err := client.Status().Leader(); err == nil && leader != "" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("consul has no leader after a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range registryServices {
		name := ServiceName(i)
		if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: name + "-0", Name: name, Address: benchInstanceIP(-i - 1),
			Port: 9080, Meta: map[string]string{"protocol": "http"}, Tags: []string{"app|" + name}}); err != nil {
			b.Fatal(err)
		}
	}
	w, err := consul.New(consul.Config{Addr: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return w
}
