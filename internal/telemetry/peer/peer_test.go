package peer

import (
	"encoding/base64"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/telemetry"
)

func TestRoundTripAndIstioDefaults(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{"NAME": "reviews-v2-abc", "NAMESPACE": "default", "WORKLOAD_NAME": "reviews-v2",
		"CLUSTER_ID": "Kubernetes", "SERVICE_ACCOUNT": "bookinfo-reviews", "LABELS": map[string]any{"app": "reviews", "version": "v2"}})
	p := FromNode("sidecar~10.0.0.1~reviews-v2-abc.default~default.svc.cluster.local", md)
	want := telemetry.Peer{Name: "reviews-v2-abc", Workload: "reviews-v2", Namespace: "default", Cluster: "Kubernetes", App: "reviews",
		Version: "v2", CanonicalService: "reviews", CanonicalRevision: "v2", ServiceAccount: "bookinfo-reviews",
		ID: "sidecar~10.0.0.1~reviews-v2-abc.default~default.svc.cluster.local"}
	if p != want {
		t.Fatalf("FromNode = %+v", p)
	}
	got, err := Decode(Encode(&p), p.ID)
	if err != nil || *got != want {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	// Without WORKLOAD_NAME, app or version: Istio's fallbacks.
	bare := FromNode("", &structpb.Struct{Fields: map[string]*structpb.Value{"NAME": structpb.NewStringValue("x")}})
	if bare.Workload != "x" || bare.CanonicalService != "x" || bare.CanonicalRevision != "latest" {
		t.Errorf("defaults: %+v", bare)
	}
}

// An Envoy sidecar's header value is the same encoding: a serialized
// google.protobuf.Struct, base64 with padding.
func TestDecodesEnvoyEncoding(t *testing.T) {
	st, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "WORKLOAD_NAME": "productpage-v1", "LABELS": map[string]any{"app": "productpage"}})
	b, _ := proto.Marshal(st)
	p, err := Decode(base64.StdEncoding.EncodeToString(b), "id")
	if err != nil || p.Workload != "productpage-v1" || p.App != "productpage" || p.Namespace != "default" {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestBadValues(t *testing.T) {
	for _, v := range []string{"%%%", base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xff}), string(make([]byte, MaxHeaderLen+1))} {
		if _, err := Decode(v, ""); err == nil {
			t.Errorf("%q decoded", v[:min(len(v), 20)])
		}
	}
	c := NewCache(1)
	if c.Get("%%%", "") != nil || c.Get("", "") != nil {
		t.Error("bad value gave a peer")
	}
	p := telemetry.Peer{Workload: "w"}
	good := Encode(&p)
	if c.Get(good, "") == nil { // cache full: decoded uncached
		t.Error("uncached decode failed")
	}
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	c := NewCache(10)
	v := Encode(&telemetry.Peer{Workload: "w", Namespace: "n"})
	c.Get(v, "id")
	if n := testing.AllocsPerRun(100, func() { c.Get(v, "id") }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(&telemetry.Peer{Workload: "w", App: "a", Version: "v"}), "id")
	f.Add("", "")
	f.Add("AAAA", "x")
	f.Fuzz(func(t *testing.T, v, id string) {
		p, err := Decode(v, id)
		if err == nil && p == nil {
			t.Fatal("nil peer without error")
		}
	})
}

// TestCacheMemo: GetMemo answers as Get does whatever the memo holds (the
// last peer, another one, a value that does not decode, a full cache that
// keeps nothing), and answers a repeated value without allocating.
func TestCacheMemo(t *testing.T) {
	a := &telemetry.Peer{Name: "a-0", Namespace: "ns", Workload: "a", ID: "sidecar~1~a-0.ns~ns.svc.cluster.local"}
	b := &telemetry.Peer{Name: "b-0", Namespace: "ns", Workload: "b", ID: "sidecar~2~b-0.ns~ns.svc.cluster.local"}
	va, vb := Encode(a), Encode(b)
	for _, limit := range []int{0, 1, 16} {
		c := NewCache(limit)
		var m Memo
		for i, q := range []struct{ value, id string }{
			{va, a.ID}, {va, a.ID}, {vb, b.ID}, {va, a.ID}, {va, b.ID}, {"!!", a.ID}, {va, a.ID}, {"", ""}, {vb, b.ID}, {vb, b.ID},
		} {
			got, want := c.GetMemo(q.value, q.id, &m), c.Get(q.value, q.id)
			if (got == nil) != (want == nil) || got != nil && *got != *want {
				t.Fatalf("limit %d, lookup %d: GetMemo = %+v, Get = %+v", limit, i, got, want)
			}
		}
	}
	c := NewCache(16)
	var m Memo
	c.GetMemo(va, a.ID, &m)
	value := string([]byte(va)) // a new copy, as the next head brings
	if n := testing.AllocsPerRun(100, func() { c.GetMemo(value, a.ID, &m) }); n != 0 {
		t.Errorf("a repeated value: %.1f allocations, want 0", n)
	}
	// The memo holds the equal strings it was last asked for (the next
	// comparison of the same string is a pointer comparison).
	if unsafe.StringData(m.e.key.value) != unsafe.StringData(value) {
		t.Error("the memo kept its own copy of an equal value")
	}
}
