package xdsclient

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

func TestBuildNode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     NodeConfig
		id      string
		mode    string
		wantErr string
	}{
		{name: "explicit id", cfg: NodeConfig{ID: "sidecar~127.0.1.7~reviews-v1.default~default.svc.cluster.local"},
			id: "sidecar~127.0.1.7~reviews-v1.default~default.svc.cluster.local", mode: "REDIRECT"},
		{name: "built", cfg: NodeConfig{Type: "router", IP: "127.0.3.1", Name: "gw", Namespace: "istio-system", Meta: map[string]string{"INTERCEPTION_MODE": "NONE"}},
			id: "router~127.0.3.1~gw.istio-system~istio-system.svc.cluster.local", mode: "NONE"},
		{name: "bad type", cfg: NodeConfig{ID: "waypoint~1.2.3.4~a.b~b.svc"}, wantErr: "not sidecar or router"},
		{name: "bad ip", cfg: NodeConfig{ID: "sidecar~1.2.3~a.b~b.svc"}, wantErr: "IP"},
		{name: "bad mode", cfg: NodeConfig{ID: "sidecar~1.2.3.4~a.b~b.svc", Meta: map[string]string{"INTERCEPTION_MODE": "X"}}, wantErr: "INTERCEPTION_MODE"},
		{name: "missing name", cfg: NodeConfig{Namespace: "x"}, wantErr: "name and namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := BuildNode(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.ID != tc.id {
				t.Errorf("id %q, want %q", n.ID, tc.id)
			}
			if m := n.Metadata.GetFields()["INTERCEPTION_MODE"].GetStringValue(); m != tc.mode {
				t.Errorf("mode %q, want %q", m, tc.mode)
			}
		})
	}
}

func TestBuildNodeLabels(t *testing.T) {
	l, err := ParseKV("app=reviews,version=v1")
	if err != nil {
		t.Fatal(err)
	}
	n, err := BuildNode(NodeConfig{Name: "r", Namespace: "default", IP: "127.0.1.2", Labels: l})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Metadata.GetFields()["LABELS"].GetStructValue().GetFields()["version"].GetStringValue(); got != "v1" {
		t.Errorf("LABELS.version = %q", got)
	}
	if got := n.Metadata.GetFields()["INSTANCE_IPS"].GetStringValue(); got != "127.0.1.2" {
		t.Errorf("INSTANCE_IPS = %q", got)
	}
	if _, err := ParseKV("novalue"); err == nil {
		t.Error("ParseKV(novalue) succeeded")
	}
}

func TestBackoffBounds(t *testing.T) {
	base, max := 100*time.Millisecond, 2*time.Second
	for attempt := 0; attempt < 20; attempt++ {
		want := base << min(attempt, 5)
		want = min(want, max)
		for i := 0; i < 50; i++ {
			d := backoff(base, max, attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

// TestBuildNodeOnTheWire: what the proxy sends as its node is what mastd's
// generated Node reads: id, cluster, user agent and the metadata mastd's
// model.ParseNode uses.
func TestBuildNodeOnTheWire(t *testing.T) {
	n, err := BuildNode(NodeConfig{Type: "sidecar", IP: "10.0.0.7", Name: "reviews-v1", Namespace: "default",
		Labels: map[string]string{"app": "reviews", "version": "v1"}, Meta: map[string]string{"SERVICE_ACCOUNT": "bookinfo-reviews"}})
	if err != nil {
		t.Fatal(err)
	}
	n.Locality = xdswire.Locality{Region: "eu", Zone: "eu-1"}
	n.ClientFeatures = []string{"envoy.lb.does_not_support_overprovisioning"}
	b, err := n.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var g corev3.Node
	if err := proto.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	want := &corev3.Node{Id: n.ID, Cluster: "reviews-v1.default", Metadata: n.Metadata, UserAgentName: "mast-proxy",
		Locality: &corev3.Locality{Region: "eu", Zone: "eu-1"}, ClientFeatures: n.ClientFeatures}
	if !proto.Equal(&g, want) {
		t.Errorf("node on the wire:\n got %v\nwant %v", &g, want)
	}
	if g.GetMetadata().GetFields()["LABELS"].GetStructValue().GetFields()["app"].GetStringValue() != "reviews" {
		t.Errorf("labels: %v", g.GetMetadata())
	}
}
