package httpproxy

import (
	"bufio"
	"io"
	"maps"
	"net"
	"net/http"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// twoHosts routes authority "x" to cluster toX and "y" to toY ("c" is the
// backend, "missing" a cluster that does not exist: a 503).
func twoHosts(toX, toY string) *routev3.RouteConfiguration {
	rc := xdstest.RouteConfig("r", []string{"x"}, xdstest.RouteTo("/", toX))
	rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: "y", Domains: []string{"y"},
		Routes: []*routev3.Route{xdstest.RouteTo("/", toY)}})
	return rc
}

// TestRouteMemoFollowsAuthorityAndUpdates: on one keep-alive connection
// (one request state, its memo kept from request to request), each
// request is routed by its own authority, by the route table of the
// configuration current when it arrives, and to the cluster of that
// configuration: a remembered virtual host, table or cluster never
// outlives an update nor serves another authority.
func TestRouteMemoFollowsAuthorityAndUpdates(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	tp := startTestProxy(t, backend, proxyOpts{routes: func(rc *routev3.RouteConfiguration) {
		*rc = *twoHosts("c", "missing")
	}})
	nc, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	status := func(host string) int {
		t.Helper()
		if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	expect := func(step string, want map[string]int) {
		t.Helper()
		for range 2 {
			for _, host := range []string{"y", "x", "y", "x", "x", "y", "y"} { // each step starts with the last one's host
				if got := status(host); got != want[host] {
					t.Fatalf("%s: Host %s: status %d, want %d", step, host, got, want[host])
				}
			}
		}
	}
	expect("first configuration", map[string]int{"x": 200, "y": 503})

	// An update moves the virtual hosts' clusters: a new route table.
	first := tp.srv.cfg.Load()
	snap, err := xdsparse.Apply(xdsparse.EmptySnapshot(), xdsparse.RouteType, "2", []*anypb.Any{xdstest.Any(twoHosts("missing", "c"))})
	if err != nil {
		t.Fatal(err)
	}
	tp.srv.cfg.Store(&Config{Routes: snap.Routes, Clusters: first.Clusters})
	expect("route update", map[string]int{"x": 503, "y": 200})

	// An update removes the cluster, the route table stays.
	tp.srv.cfg.Store(&Config{Routes: snap.Routes, Clusters: map[string]*upstream.Cluster{}})
	expect("cluster removed", map[string]int{"x": 503, "y": 503})

	// And brings it back.
	tp.srv.cfg.Store(&Config{Routes: snap.Routes, Clusters: maps.Clone(first.Clusters)})
	expect("cluster back", map[string]int{"x": 503, "y": 200})
}
