package ads

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// subscribeAll performs Envoy's startup sequence on a SotW stream at version v:
// CDS wildcard, EDS for the clusters, LDS wildcard, RDS "80"; each ACKed.
func subscribeAll(c *sotwClient, v string, clusters ...string) {
	c.t.Helper()
	c.request(ClusterType)
	c.ack(c.expect(ClusterType, v, clA, clB, clC))
	c.request(EndpointType, clusters...)
	c.ack(c.expect(EndpointType, v, clusters...), clusters...)
	c.request(ListenerType)
	c.ack(c.expect(ListenerType, v, "0.0.0.0_80"))
	c.request(RouteType, "80")
	c.ack(c.expect(RouteType, v, "80"), "80")
}

func TestSotwInitialFetchACKAndPush(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	subscribeAll(c, "v1", clA, clB)
	c.barrier()

	st := e.status(t, c.id)
	if st.Stream != "sotw" || st.Namespace != "default" || len(st.Types) != 5 || st.Types[4].TypeURL != barrierType+"1" {
		t.Fatalf("status = %+v", st)
	}
	for _, typ := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
		ts := st.typ(typ)
		if ts.State != StateSynced || ts.VersionSent != "v1" || ts.VersionAcked != "v1" || ts.NonceAcked != ts.NonceSent {
			t.Fatalf("%s after ACK: %+v", shortType(typ), ts)
		}
	}
	if ts := st.typ(ClusterType); !ts.Wildcard || ts.Resources != 3 || ts.BytesSent == 0 {
		t.Fatalf("cds status %+v: want wildcard, 3 resources, bytes counted", ts)
	}
	if ts := st.typ(EndpointType); ts.Wildcard || !slices.Equal(ts.Subscribed, []string{clA, clB}) {
		t.Fatalf("eds status %+v: want named subscription to a and b", ts)
	}

	// A full push arrives in make-before-break order: CDS, EDS, LDS, RDS.
	v2 := baseState()
	v2.endpoints[hostA] = "10.2.0.1"
	e.ads.Push(m.set("v2", v2), &model.PushRequest{Full: true, Reason: "test"})
	c.ack(c.expect(ClusterType, "v2", clA, clB, clC))
	c.ack(c.expect(EndpointType, "v2", clA, clB), clA, clB)
	c.ack(c.expect(ListenerType, "v2", "0.0.0.0_80"))
	c.ack(c.expect(RouteType, "v2", "80"), "80")
	c.barrier()
	for _, ts := range e.status(t, c.id).Types[:4] {
		if ts.State != StateSynced || ts.VersionAcked != "v2" || ts.Responses != 2 {
			t.Fatalf("%s after push: %+v", shortType(ts.TypeURL), ts)
		}
	}
	if got := counter(t, e, "pilot_xds_pushes", "cds"); got != 2 {
		t.Fatalf("pilot_xds_pushes{type=cds} = %v, want 2", got)
	}
	if got := gauge(t, e, "pilot_xds"); got != 1 {
		t.Fatalf("pilot_xds = %v, want 1", got)
	}
}

func TestSotwNACKKeepsLastGood(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	c.request(ClusterType)
	c.ack(c.expect(ClusterType, "v1", clA, clB, clC))
	c.barrier() // the ACK is handled before the push below

	e.ads.Push(m.set("v2", baseState()), nil)
	r := c.expect(ClusterType, "v2", clA, clB, clC)
	c.barrier()
	if ts := e.status(t, c.id).typ(ClusterType); ts.State != StateStale || ts.VersionSent != "v2" || ts.VersionAcked != "v1" {
		t.Fatalf("v2 sent, not yet answered: %+v, want STALE", ts)
	}
	// NACK: the version is the last accepted one, error_detail says why.
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: ClusterType, VersionInfo: "v1", ResponseNonce: r.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "cluster a: bad lb policy"}})
	c.barrier() // the NACK is not answered with a resend

	ts := e.status(t, c.id).typ(ClusterType)
	if ts.State != StateNACKed || ts.LastNACK != "cluster a: bad lb policy" || ts.LastNACKTime.IsZero() ||
		ts.VersionAcked != "v1" || ts.VersionSent != "v2" {
		t.Fatalf("after NACK: %+v", ts)
	}
	if got := counter(t, e, "pilot_total_xds_rejects", "cds"); got != 1 {
		t.Fatalf("pilot_total_xds_rejects{type=cds} = %v, want 1", got)
	}

	// /debug/syncz shows it.
	rec := httptest.NewRecorder()
	e.ads.SynczHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/syncz?proxy="+c.id, nil))
	var sz []ProxyStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &sz); err != nil {
		t.Fatalf("syncz JSON: %v\n%s", err, rec.Body)
	}
	if len(sz) != 1 || sz[0].ID != c.id || sz[0].typ(ClusterType).LastNACK != "cluster a: bad lb policy" || sz[0].typ(ClusterType).VersionAcked != "v1" {
		t.Fatalf("syncz = %s", rec.Body)
	}

	// The stream stays up and the next push is accepted.
	e.ads.Push(m.set("v3", baseState()), nil)
	c.ack(c.expect(ClusterType, "v3", clA, clB, clC))
	c.barrier()
	ts = e.status(t, c.id).typ(ClusterType)
	if ts.State != StateSynced || ts.VersionAcked != "v3" || ts.LastNACK == "" {
		t.Fatalf("after recovery: %+v (the last NACK stays on record)", ts)
	}
}

func TestSotwStaleNonceIgnored(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	c.request(EndpointType, clA)
	old := c.expect(EndpointType, "v1", clA)
	e.ads.Push(m.set("v2", baseState()), nil)
	latest := c.expect(EndpointType, "v2", clA)

	// A request answering the older response, even one changing names, is stale.
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: old.Nonce, ResourceNames: []string{clA, clB}})
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: old.Nonce,
		ErrorDetail: &statuspb.Status{Message: "stale NACK"}})
	c.barrier()
	ts := e.status(t, c.id).typ(EndpointType)
	if !slices.Equal(ts.Subscribed, []string{clA}) || ts.LastNACK != "" || ts.VersionAcked != "" || ts.NonceSent != latest.Nonce {
		t.Fatalf("stale requests changed state: %+v", ts)
	}
	// The current nonce is honoured.
	c.ack(latest, clA)
	c.barrier()
	if ts := e.status(t, c.id).typ(EndpointType); ts.VersionAcked != "v2" || ts.State != StateSynced {
		t.Fatalf("after ACK of current nonce: %+v", ts)
	}
}

// TestSotwNamedSubscriptions runs with the ADS codec (whose decoder skips
// an ACK's names when they repeat the subscription) and with gRPC's own.
func TestSotwNamedSubscriptions(t *testing.T) {
	for _, codec := range []struct {
		name string
		opts []grpc.ServerOption
	}{{"ads codec", []grpc.ServerOption{grpc.ForceServerCodecV2(Codec())}}, {"grpc codec", nil}} {
		t.Run(codec.name, func(t *testing.T) {
			testSotwNamedSubscriptions(t, newEnvWith(t, newTestMesh(), codec.opts))
		})
	}
}

func testSotwNamedSubscriptions(t *testing.T, e *env) {
	m := e.mesh
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")

	steps := []struct {
		name    string
		typeURL string
		names   []string // new subscription, sent with the ACK of the previous response
		want    []string // resources in the response; nil: no response
	}{
		{"eds subscribe a", EndpointType, []string{clA}, []string{clA}},
		{"eds add b", EndpointType, []string{clA, clB}, []string{clA, clB}},
		{"eds same names in order is a plain ACK", EndpointType, []string{clA, clB}, nil},
		{"eds same names again", EndpointType, []string{clA, clB}, nil},
		{"eds same names is a plain ACK", EndpointType, []string{clB, clA}, nil},
		{"eds add c", EndpointType, []string{clA, clB, clC}, []string{clA, clB, clC}},
		{"eds drop c, in order", EndpointType, []string{clA, clB}, []string{clA, clB}},
		{"eds drop a", EndpointType, []string{clB}, []string{clB}},
		{"eds unknown cluster", EndpointType, []string{clB, "outbound|80||nope"}, []string{clB}},
		{"rds subscribe 80", RouteType, []string{"80"}, []string{"80"}},
		{"rds missing route", RouteType, []string{"80", "9080"}, []string{"80"}},
	}
	last := map[string]*discoveryv3.DiscoveryResponse{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c.t = t
			if prev := last[s.typeURL]; prev != nil {
				c.ack(prev, s.names...)
			} else {
				c.request(s.typeURL, s.names...)
			}
			if s.want == nil {
				c.barrier()
				return
			}
			last[s.typeURL] = c.expect(s.typeURL, "v1", s.want...)
		})
	}
	// Only the subscribed clusters are pushed.
	e.ads.Push(m.set("v2", baseState()), nil)
	c.t = t
	c.expect(EndpointType, "v2", clB)
	c.expect(RouteType, "v2", "80")
}

func TestBadNode(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	cc := e.dial(t)
	tests := []struct {
		name, id, want string
	}{
		{"missing", "", "missing node id"},
		{"not four parts", "sidecar~10.0.0.1", "want TYPE~IP~NAME.NAMESPACE~DOMAIN"},
		{"bad type", "pod~10.0.0.1~a.default~default.svc.cluster.local", `type "pod" is not sidecar or router`},
		{"bad ip", "sidecar~10.0.0.x~a.default~default.svc.cluster.local", `IP "10.0.0.x"`},
	}
	for _, tt := range tests {
		for _, kind := range []string{"sotw", "delta"} {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				var err error
				if kind == "sotw" {
					c := e.sotw(t, cc, "x")
					c.id = tt.id
					c.request(ClusterType)
					_, err = c.stream.Recv()
				} else {
					c := e.delta(t, cc, "x")
					c.id = tt.id
					c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
					_, err = c.stream.Recv()
				}
				assertCode(t, err, "InvalidArgument", tt.want)
			})
		}
	}
	if n := len(e.ads.Status()); n != 0 {
		t.Fatalf("%d proxies registered from bad nodes", n)
	}
}

func TestMissingTypeURL(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	c := e.sotw(t, e.dial(t), "app")
	c.request("")
	_, err := c.stream.Recv()
	assertCode(t, err, "InvalidArgument", "without type_url")
}

// TestSotwTypedPushSendsOnlyWhatChanged: a push limited to types (a change
// mastd classified) sends, of those types, only the ones whose resources
// changed for the proxy; an unlimited full push still sends every type.
func TestSotwTypedPushSendsOnlyWhatChanged(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	subscribeAll(c, "v1", clA, clB)
	c.barrier()

	v2 := baseState()
	v2.endpoints[hostA] = "10.2.0.1"
	all := map[string]struct{}{ClusterType: {}, EndpointType: {}, ListenerType: {}, RouteType: {}}
	e.ads.Push(m.set("v2", v2), &model.PushRequest{Full: true, Types: all, Reason: "test"})
	c.ack(c.expect(EndpointType, "v2", clA, clB), clA, clB)
	c.barrier() // nothing else arrived before the barrier's response

	e.ads.Push(m.set("v3", v2), &model.PushRequest{Full: true, Reason: "test"})
	c.ack(c.expect(ClusterType, "v3", clA, clB, clC))
	c.ack(c.expect(EndpointType, "v3", clA, clB), clA, clB)
	c.ack(c.expect(ListenerType, "v3", "0.0.0.0_80"))
	c.ack(c.expect(RouteType, "v3", "80"), "80")
	c.barrier()
}
