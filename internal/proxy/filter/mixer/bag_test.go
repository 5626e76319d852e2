package mixer

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Range lists each attribute once with the value Get gives it, for a
// request and a connection, with static and forwarded attributes that
// overlap each other and the request's own.
func TestRangeAgreesWithGet(t *testing.T) {
	h := headers.List{{Name: "user-agent", Value: "curl/8"}, {Name: "x-request-id", Value: "abc"}}
	conn := &filter.Conn{Principal: "spiffe://cluster.local/ns/default/sa/client", Remote: netip.MustParseAddrPort("127.0.0.7:4000"),
		Local: netip.MustParseAddrPort("127.0.0.5:9080"), TLS: true}
	static := map[string]any{"destination.labels": map[string]string{"app": "ratings"}, "source.labels": map[string]string{"app": "static"},
		"request.path": "/static", "context.reporter.kind": "inbound", "destination.port": int64(1)}
	fwd := map[string]any{"source.labels": map[string]string{"app": "reviews"}, "source.workload.name": "reviews-v2",
		"request.path": "/forwarded"}
	req := &filter.Request{Method: "GET", Path: "/ratings/0", Authority: "ratings", Scheme: "http", Headers: &h, Conn: conn,
		RemoteIP: netip.MustParseAddr("127.0.0.7")}
	for name, b := range map[string]*reqBag{
		"request":    {r: req, static: static, fwd: fwd, now: time.Now()},
		"connection": {r: &filter.Request{Conn: conn, RemoteIP: conn.Remote.Addr()}, static: static, now: time.Now(), conn: &connAttrs{id: "c1", event: "open"}},
	} {
		seen := map[string]bool{}
		b.Range(func(n string, v any) {
			if seen[n] {
				t.Errorf("%s: %s twice", name, n)
			}
			seen[n] = true
			if g, ok := b.Get(n); !ok || !reflect.DeepEqual(g, v) {
				t.Errorf("%s: Range gives %s = %v, Get %v %v", name, n, v, g, ok)
			}
		})
		candidates := slices.Concat(requestAttrs, connNames, slices.Collect(maps.Keys(static)), slices.Collect(maps.Keys(fwd)))
		for _, n := range candidates {
			if _, ok := b.Get(n); ok && !seen[n] {
				t.Errorf("%s: Get has %s, Range does not", name, n)
			}
		}
		if v, _ := b.Get("source.labels"); name == "request" && v.(map[string]string)["app"] != "reviews" {
			t.Errorf("source.labels %v, want the forwarded ones", v)
		}
		// The encoder's one pass decodes to the same bag.
		enc := attribute.NewEncoder(attribute.GlobalDictionary())
		got, err := attribute.Decode(enc.Encode(b), attribute.GlobalDictionary(), attribute.GlobalDictionary().Len())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(seen) {
			t.Errorf("%s: decoded %d attributes, want %d", name, len(got), len(seen))
		}
	}
}
