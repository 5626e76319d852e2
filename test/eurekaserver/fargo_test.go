package eurekaserver

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hudl/fargo"
	logging "github.com/op/go-logging"

	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/eureka"
)

func init() { logging.SetLevel(logging.CRITICAL, "fargo") }

func fargoInstance(host, ip, version string) *fargo.Instance {
	ins := &fargo.Instance{
		HostName: host, App: "REVIEWS", IPAddr: ip, VipAddress: "reviews", SecureVipAddress: "reviews-secure",
		Status: fargo.UP, Port: 9080, PortEnabled: true, SecurePort: 9443, SecurePortEnabled: false,
		DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn},
		LeaseInfo:      fargo.LeaseInfo{RenewalIntervalInSecs: 30, DurationInSecs: 90},
	}
	ins.SetMetadataString("version", version)
	ins.SetMetadataString("app", "reviews")
	return ins
}

// TestFargo: hudl/fargo, a Go Eureka client written by others, registers,
// heartbeats, changes status and deregisters against the server, in JSON and
// in XML, and reads back what it wrote.
func TestFargo(t *testing.T) {
	for _, useJSON := range []bool{true, false} {
		name := map[bool]string{true: "json", false: "xml"}[useJSON]
		t.Run(name, func(t *testing.T) {
			s := New(Config{})
			defer s.Close()
			srv := httptest.NewServer(s)
			defer srv.Close()
			conn := fargo.NewConn(srv.URL + "/eureka/v2")
			conn.UseJson = useJSON

			ins := fargoInstance("reviews-1.local", "10.0.0.1", "v1")
			if err := conn.RegisterInstance(ins); err != nil {
				t.Fatalf("register: %v", err)
			}
			app, err := conn.GetApp("REVIEWS")
			if err != nil {
				t.Fatalf("get app: %v", err)
			}
			if len(app.Instances) != 1 {
				t.Fatalf("instances %+v", app.Instances)
			}
			got := app.Instances[0]
			if got.HostName != "reviews-1.local" || got.IPAddr != "10.0.0.1" || got.Port != 9080 || !got.PortEnabled ||
				got.SecurePort != 9443 || got.SecurePortEnabled || got.Status != fargo.UP || got.VipAddress != "reviews" ||
				got.DataCenterInfo.Name != fargo.MyOwn || got.LeaseInfo.DurationInSecs != 90 || got.LeaseInfo.RegistrationTimestamp == 0 {
				t.Errorf("read back %+v", got)
			}
			if v, err := got.Metadata.GetString("version"); err != nil || v != "v1" {
				t.Errorf("metadata version = %q, %v", v, err)
			}
			if err := conn.HeartBeatInstance(ins); err != nil {
				t.Errorf("heartbeat: %v", err)
			}
			if err := conn.HeartBeatInstance(fargoInstance("unknown", "10.0.0.9", "v1")); err == nil {
				t.Error("heartbeat of an unknown instance succeeded (Eureka answers 404)")
			}
			if err := conn.UpdateInstanceStatus(ins, fargo.OUTOFSERVICE); err != nil {
				t.Fatalf("status: %v", err)
			}
			back, err := conn.GetInstance("REVIEWS", ins.Id())
			if err != nil || back.Status != fargo.OUTOFSERVICE {
				t.Fatalf("after OUT_OF_SERVICE: %+v, %v", back, err)
			}
			// Re-registering does not lift an override, as with Eureka.
			if err := conn.ReregisterInstance(ins); err != nil {
				t.Fatal(err)
			}
			apps, err := conn.GetApps()
			if err != nil || apps["REVIEWS"] == nil || apps["REVIEWS"].Instances[0].Status != fargo.OUTOFSERVICE {
				t.Fatalf("apps after re-registration: %+v, %v", apps, err)
			}
			vips, err := conn.GetInstancesByVIPAddress("reviews", false)
			if err != nil || len(vips) != 1 {
				t.Errorf("by vip: %+v, %v", vips, err)
			}
			if err := conn.AddMetadataString(ins, "zone", "z1"); err != nil {
				t.Errorf("metadata: %v", err)
			}
			if err := conn.DeregisterInstance(ins); err != nil {
				t.Fatalf("deregister: %v", err)
			}
			if _, err := conn.GetInstance("REVIEWS", ins.Id()); err == nil {
				t.Error("instance still there after deregistration")
			}
		})
	}
}

// TestRegistryFollowsFargo: Mast's Eureka registry follows what fargo
// registers (JSON and XML), with OUT_OF_SERVICE removing an instance, and a
// delta whose hash does not match falling back to a full fetch.
func TestRegistryFollowsFargo(t *testing.T) {
	for _, useXML := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "xml"}[useXML], func(t *testing.T) {
			s := New(Config{})
			defer s.Close()
			srv := httptest.NewServer(s)
			defer srv.Close()
			conn := fargo.NewConn(srv.URL + "/eureka/v2")
			conn.UseJson = true
			r, err := eureka.New(eureka.Config{URL: srv.URL + "/eureka/v2", XML: useXML, Interval: 20 * time.Millisecond, TrustDomain: "cluster.local", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { r.Run(ctx, func() {}); close(done) }()
			defer func() { cancel(); <-done }()
			wait := func(what string, ok func(*registry.Snapshot) bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !ok(r.Snapshot()) {
					if time.Now().After(deadline) {
						t.Fatalf("%s: never; snapshot %+v", what, r.Snapshot().Endpoints)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			addrs := func(s *registry.Snapshot) []string {
				var out []string
				for _, e := range s.EndpointsFor("reviews", 9080) {
					out = append(out, e.Address+"/"+e.Labels["version"])
				}
				return out
			}
			one, two := fargoInstance("r1", "10.0.0.1", "v1"), fargoInstance("r2", "10.0.0.2", "v2")
			for _, i := range []*fargo.Instance{one, two} {
				if err := conn.RegisterInstance(i); err != nil {
					t.Fatal(err)
				}
			}
			wait("two instances", func(s *registry.Snapshot) bool { return len(addrs(s)) == 2 })
			if svc := r.Snapshot().Service("reviews"); svc == nil || len(svc.Ports) != 1 || svc.Ports[0].Protocol != registry.HTTP {
				t.Fatalf("service %+v", svc)
			}
			if r.Snapshot().Service("reviews-secure") != nil {
				t.Error("a disabled secure port made a service")
			}
			if err := conn.UpdateInstanceStatus(two, fargo.OUTOFSERVICE); err != nil {
				t.Fatal(err)
			}
			wait("OUT_OF_SERVICE removes r2", func(s *registry.Snapshot) bool {
				a := addrs(s)
				return len(a) == 1 && a[0] == "10.0.0.1/v1"
			})
			full, mismatches := r.Fetches()
			if full != 1 || mismatches != 0 {
				t.Errorf("before a lost delta: %d full fetches, %d mismatches; want 1, 0 (deltas only)", full, mismatches)
			}
			s.LoseNextDelta()
			if err := conn.DeregisterInstance(one); err != nil {
				t.Fatal(err)
			}
			wait("a lost delta: full fetch drops r1", func(s *registry.Snapshot) bool { return len(addrs(s)) == 0 })
			if full, mismatches := r.Fetches(); full != 2 || mismatches != 1 {
				t.Errorf("after a lost delta: %d full fetches, %d mismatches; want 2, 1", full, mismatches)
			}
		})
	}
}
