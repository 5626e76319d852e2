package httpproxy

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{
		"reviews:9080": "reviews-shadow:9080",
		"reviews":      "reviews-shadow",
		"[::1]":        "[::1]-shadow",
	} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnsample(t *testing.T) {
	h := headers.List{{Name: "x-b3-sampled", Value: "1"}, {Name: "b3", Value: "80f198ee56343ba8-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"},
		{Name: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	unsample(&h)
	for name, want := range map[string]string{"x-b3-sampled": "0", "b3": "80f198ee56343ba8-e457b5a2e4d86bd1-0-05e3ac9a4f6e3b90",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"} {
		if got := h.Value(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestMirrorIsFireAndForget: a route mirroring to its own cluster sends the
// backend a copy with the "-shadow" host and the same body; the primary's
// answer reaches the client while the copy is still held by the backend.
func TestMirrorIsFireAndForget(t *testing.T) {
	release := make(chan struct{})
	backend, seen := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Host, "-shadow") {
			<-release // the copy hangs until the primary has been answered
		}
		io.WriteString(w, "primary")
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := startTestProxy(t, backend, proxyOpts{routes: func(rc *routev3.RouteConfiguration) {
		for _, r := range rc.VirtualHosts[0].Routes {
			ra := r.GetRoute()
			if ra.GetCluster() != "c" {
				continue
			}
			ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "c", TraceSampled: wrapperspb.Bool(false),
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}}}
		}
	}})
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/orders", strings.NewReader("order-1"))
	req.Host = "shop:9080"
	req.Header.Set("x-b3-sampled", "1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "primary" {
		t.Fatalf("primary: %d %q", resp.StatusCode, b)
	}
	close(release)
	got := map[string]seenRequest{}
	for range 2 {
		select {
		case r := <-seen:
			got[r.header.Get("x-b3-sampled")] = r
		case <-time.After(5 * time.Second):
			t.Fatalf("backend saw %d requests, want the primary and its copy", len(got))
		}
	}
	cp, ok := got["0"]
	if !ok || cp.body != "order-1" || cp.uri != "/orders" {
		t.Errorf("copy: %+v, want POST /orders with body order-1 marked not sampled", got)
	}
	if p.srv.Stats.Mirrored.Load() != 1 {
		t.Errorf("mirrored = %d, want 1", p.srv.Stats.Mirrored.Load())
	}
}

// TestMirrorPercentage: a 0 % mirror sends nothing.
func TestMirrorPercentage(t *testing.T) {
	var n atomic.Int64
	backend, _ := recordingBackend(t, false, func(http.ResponseWriter, *http.Request) { n.Add(1) })
	p := startTestProxy(t, backend, proxyOpts{routes: func(rc *routev3.RouteConfiguration) {
		for _, r := range rc.VirtualHosts[0].Routes {
			if ra := r.GetRoute(); ra.GetCluster() == "c" {
				ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "c",
					RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0,
						Denominator: typev3.FractionalPercent_MILLION}}}}
			}
		}
	}})
	for range 20 {
		resp, err := http.Get("http://" + p.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if m := p.srv.Stats.Mirrored.Load(); m != 0 || n.Load() != 20 {
		t.Errorf("mirrored %d, backend saw %d requests: want 0 copies of 20", m, n.Load())
	}
}
