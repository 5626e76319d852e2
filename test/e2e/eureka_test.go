package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hudl/fargo"
	logging "github.com/op/go-logging"
)

var buildEurekaServer = sync.OnceValues(func() (string, error) {
	out := filepath.Join(binDir, "eureka-server")
	b, err := exec.Command("go", "build", "-o", out, "../eurekaserver/cmd/eureka-server").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the Eureka test server: %v\n%s", err, b)
	}
	return out, nil
})

// TestEurekaPlatformBookinfo runs `mast up --platform eureka`: Mast's Eureka
// test server (no Eureka server can be obtained here; test/eurekaserver is
// proven faithful with hudl/fargo and eureka-js-client) holds Bookinfo's
// instances, registered and renewed by mast up's registrator as each
// workload's Eureka client would, and mastd follows it over HTTP
// (--registry eureka). Istio's routing files route the instances unchanged;
// status changes and deregistrations made with hudl/fargo, a Eureka client
// written by others, move traffic; the server frozen loses no request.
func TestEurekaPlatformBookinfo(t *testing.T) {
	server, err := buildEurekaServer()
	if err != nil {
		t.Fatal(err)
	}
	logging.SetLevel(logging.CRITICAL, "fargo")
	dir := compatDir(t)
	f := func(name string) string { return filepath.Join(dir, name) }
	m := startMesh(t, "--platform", "eureka", "--eureka-bin", server, "--eureka-interval", "1s")
	conn := fargo.NewConn("http://127.0.0.1:8761/eureka/v2")
	conn.UseJson = true
	anon := &http.Client{Timeout: 30 * time.Second}
	follows := func(what string, ok func(map[string]int) bool) { t.Helper(); m.follows(anon, 30*time.Second, what, ok) }
	instance := func(app, id string) *fargo.Instance {
		t.Helper()
		ins, err := conn.GetInstance(app, id)
		if err != nil {
			t.Fatalf("fargo: instance %s/%s: %v", app, id, err)
		}
		return ins
	}

	t.Run("Bookinfo's instances come from Eureka", func(t *testing.T) {
		apps, err := conn.GetApps()
		if err != nil {
			t.Fatal(err)
		}
		for app, n := range map[string]int{"PRODUCTPAGE": 1, "DETAILS": 1, "REVIEWS": 3, "RATINGS": 1} {
			if a := apps[app]; a == nil || len(a.Instances) != n {
				t.Errorf("fargo reads %s with %v, want %d instances", app, a, n)
			}
		}
		if v, _ := instance("REVIEWS", "reviews-v2").Metadata.GetString("version"); v != "v2" {
			t.Errorf("reviews-v2's metadata version = %q", v)
		}
		out, err := m.mast("proxy-config", "endpoint", "productpage-v1")
		if err != nil || !strings.Contains(out, "reviews.eureka") {
			t.Errorf("productpage's sidecar has no endpoints of reviews.eureka: %v\n%s", err, out)
		}
		got := m.versions(anon, 60)
		if got["reviews-v1"] == 0 || got["reviews-v2"] == 0 || got["reviews-v3"] == 0 {
			t.Fatalf("got %v, want all three versions", got)
		}
	})
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		m.apply(f("virtual-service-all-v1.yaml"))
		if got := m.versions(anon, 40); got["reviews-v1"] != 40 {
			t.Fatalf("got %v, want all 40 on reviews-v1", got)
		}
	})
	t.Run("virtual-service-reviews-80-20 by metadata version subsets", func(t *testing.T) {
		m.apply(f("virtual-service-reviews-80-20.yaml"))
		const n = 500
		within(t, m.versions(anon, n), n, map[string]float64{"reviews-v1": 0.8, "reviews-v2": 0.2})
	})
	t.Run("OUT_OF_SERVICE removes the instance and UP brings it back", func(t *testing.T) {
		all := filepath.Join(t.TempDir(), "reviews-all.yaml")
		if err := os.WriteFile(all, []byte(reviewsAnyVersion), 0o644); err != nil {
			t.Fatal(err)
		}
		m.apply(all)
		v2 := instance("REVIEWS", "reviews-v2")
		if err := conn.UpdateInstanceStatus(v2, fargo.OUTOFSERVICE); err != nil {
			t.Fatal(err)
		}
		follows("reviews-v2 OUT_OF_SERVICE", func(got map[string]int) bool {
			return got["reviews-v2"] == 0 && got["reviews-v1"]+got["reviews-v3"] == 20
		})
		if s := instance("REVIEWS", "reviews-v2").Status; s != fargo.OUTOFSERVICE {
			t.Errorf("after heartbeats, fargo reads reviews-v2 %s, want the override OUT_OF_SERVICE kept", s)
		}
		if err := conn.UpdateInstanceStatus(v2, fargo.UP); err != nil {
			t.Fatal(err)
		}
		follows("reviews-v2 UP again", func(got map[string]int) bool { return got["reviews-v2"] > 0 })
	})
	t.Run("deregistered with fargo then registered again by its next heartbeat", func(t *testing.T) {
		// Deregister just after a heartbeat of mast up's registrator, so
		// that the deregistration is followed before the next heartbeat
		// (30 s later) finds the instance gone and registers it again, as
		// a Eureka client does.
		before := instance("REVIEWS", "reviews-v3").LeaseInfo.LastRenewalTimestamp
		eventually(t, 45*time.Second, "a heartbeat of reviews-v3", func() error {
			if got := instance("REVIEWS", "reviews-v3").LeaseInfo.LastRenewalTimestamp; got == before {
				return fmt.Errorf("last renewal still %d", got)
			}
			return nil
		})
		if err := conn.DeregisterInstance(instance("REVIEWS", "reviews-v3")); err != nil {
			t.Fatal(err)
		}
		follows("reviews-v3 deregistered", func(got map[string]int) bool {
			return got["reviews-v3"] == 0 && got["reviews-v1"]+got["reviews-v2"] == 20
		})
		m.follows(anon, time.Minute, "reviews-v3 registered again by its heartbeat", func(got map[string]int) bool { return got["reviews-v3"] > 0 })
	})
	t.Run("Eureka frozen loses no request and keeps the last services", func(t *testing.T) {
		// mastd's Eureka client gives up on an answer after 30 s: then
		// /debug/registryz says stale, and the mesh still routes.
		m.freezeLosesNoRequest(t, anon, "eureka", 40*time.Second, func() {
			eventually(t, 50*time.Second, "registryz says eureka is stale", func() error {
				if z := m.registryz(t); len(z) != 2 || z[1].Name != "eureka" || !z[1].Stale || z[1].Endpoints != 6 {
					return fmt.Errorf("%+v", z)
				}
				return nil
			})
		})
		eventually(t, 45*time.Second, "registryz says eureka answers again", func() error {
			if z := m.registryz(t); len(z) != 2 || !z[1].Synced || z[1].Stale {
				return fmt.Errorf("%+v", z)
			}
			return nil
		})
		if got := m.versions(anon, 30); got["reviews-v1"] == 0 || got["reviews-v2"] == 0 || got["reviews-v3"] == 0 {
			t.Fatalf("after Eureka came back: %v, want all three versions", got)
		}
	})
}
