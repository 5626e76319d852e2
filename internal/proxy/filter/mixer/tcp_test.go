package mixer

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/config"
	mixersrv "github.com/mast-mesh/mast/internal/mixer"
	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb/mixergrpc"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/filter"
)

// tcpPolicy is Istio 1.4's TCP metrics task (the mongo byte counters of
// "Collecting Metrics for TCP services") plus a denylist of one client
// address for TCP connections.
const tcpPolicy = `apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: mongosentbytes, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: connection.sent.bytes | 0
    dimensions:
      source_ip: source.ip | ip("0.0.0.0")
      destination_version: destination.labels["version"] | "unknown"
    monitoredResourceType: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: mongoreceivedbytes, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: connection.received.bytes | 0
    dimensions:
      source_ip: source.ip | ip("0.0.0.0")
      destination_version: destination.labels["version"] | "unknown"
    monitoredResourceType: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: mongohandler, namespace: istio-system}
spec:
  compiledAdapter: prometheus
  params:
    metrics:
    - name: mongo_sent_bytes
      instance_name: mongosentbytes.instance.istio-system
      kind: COUNTER
      label_names: [source_ip, destination_version]
    - name: mongo_received_bytes
      instance_name: mongoreceivedbytes.instance.istio-system
      kind: COUNTER
      label_names: [source_ip, destination_version]
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: mongoprom, namespace: istio-system}
spec:
  match: context.protocol == "tcp"
  actions:
  - handler: mongohandler
    instances: [mongoreceivedbytes, mongosentbytes]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: denyclients, namespace: istio-system}
spec:
  compiledAdapter: listchecker
  params:
    overrides: ["127.0.0.66"]
    blacklist: true
    entryType: IP_ADDRESSES
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: sourceip, namespace: istio-system}
spec:
  compiledTemplate: listentry
  params:
    value: source.ip | ip("0.0.0.0")
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: denyclients, namespace: istio-system}
spec:
  match: context.protocol == "tcp"
  actions:
  - handler: denyclients
    instances: [sourceip]
`

// startMixerYAML serves a Mixer with the given configuration.
func startMixerYAML(t testing.TB, text string) (string, *counting) {
	t.Helper()
	rs, probs := config.Load("policy.yaml", []byte(text))
	if probs.HasErrors() {
		t.Fatal(probs)
	}
	svc := &counting{Service: mixersrv.NewService(mixersrv.Options{}, nil)}
	svc.Update(config.NewSnapshot(rs))
	if pr := svc.Runtime().Problems; len(pr) > 0 {
		t.Fatal(pr)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	mixergrpc.RegisterMixerServer(gs, svc)
	go gs.Serve(lis)
	t.Cleanup(func() { gs.Stop(); svc.Close() })
	return lis.Addr().String(), svc
}

func tcpFilter(t *testing.T, cfg *clientpb.TcpClientConfig) *TCP {
	t.Helper()
	a, _ := anypb.New(cfg)
	f, err := NewTCP(Name, a)
	if err != nil {
		t.Fatal(err)
	}
	return f.(*TCP)
}

// TestTCPCheckAndReports: a connection from a denylisted address is
// refused; an admitted one is reported when it opens, while it lasts and
// when it closes, each Report with the bytes since the previous one and
// the totals, and the Mixer's prometheus adapter counts them.
func TestTCPCheckAndReports(t *testing.T) {
	addr, svc := startMixerYAML(t, tcpPolicy)
	svcs := services(t)
	f := tcpFilter(t, &clientpb.TcpClientConfig{
		Transport: &clientpb.TransportConfig{CheckCluster: addr},
		MixerAttributes: &mixerpb.Attributes{Attributes: map[string]*mixerpb.Attributes_AttributeValue{
			"destination.labels": labels(map[string]string{"app": "mongodb", "version": "v1"})}},
	})
	conn := func(from string) *filter.Conn {
		return &filter.Conn{Remote: netip.MustParseAddrPort(from + ":40000"), Local: netip.MustParseAddrPort("127.0.0.5:27017"),
			Start: time.Now(), Services: svcs}
	}
	if st := f.OnConnect(conn("127.0.0.66")); st != filter.Stop {
		t.Fatalf("a denylisted client: %v, want the connection closed", st)
	}
	c := conn("127.0.0.7")
	if st := f.OnConnect(c); st != filter.Continue {
		t.Fatalf("an allowed client: %v", st)
	}
	// A second connection from the same client: the cached answer.
	c2 := conn("127.0.0.7")
	if st := f.OnConnect(c2); st != filter.Continue {
		t.Fatalf("the allowed client again: %v", st)
	}
	f.OnClose(c2)
	if n := svc.checks.Load(); n != 2 {
		t.Errorf("%d Checks for 3 connections from 2 clients, want 2 (the answer references source.ip only)", n)
	}
	c.Received.Add(100)
	c.Sent.Add(30)
	v, _ := f.conns.Load(c)
	id := v.(*tcpConn).attrs.id
	f.periodic(c, v.(*tcpConn)) // as report_interval would
	c.Received.Add(5)
	f.OnClose(c)
	f.OnClose(c) // once only

	events := map[string]attribute.MapBag{}
	for deadline := time.Now().Add(10 * time.Second); len(events) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		svc.mu.Lock()
		for _, b := range svc.reported {
			if b["connection.id"] == id {
				ev, _ := b["connection.event"].(string)
				events[ev] = b
			}
		}
		svc.mu.Unlock()
	}
	want := map[string][4]int64{"open": {0, 0, 0, 0}, "continue": {100, 100, 30, 30}, "close": {5, 105, 0, 30}}
	for ev, w := range want {
		b := events[ev]
		if b == nil {
			t.Errorf("no %s Report of the connection (got %v)", ev, events)
			continue
		}
		got := [4]int64{}
		for i, n := range []string{"connection.received.bytes", "connection.received.bytes_total", "connection.sent.bytes", "connection.sent.bytes_total"} {
			got[i], _ = b[n].(int64)
		}
		if got != w {
			t.Errorf("%s Report: received, received total, sent, sent total = %v, want %v", ev, got, w)
		}
		if ip, _ := b["source.ip"].([]byte); b["context.protocol"] != "tcp" || b["destination.port"] != int64(27017) ||
			b["source.port"] != int64(40000) || !net.IP(ip).Equal(net.ParseIP("127.0.0.7")) {
			t.Errorf("%s Report: context.protocol %v, source %v port %v, destination.port %v", ev, b["context.protocol"],
				b["source.ip"], b["source.port"], b["destination.port"])
		}
		if _, ok := b["connection.duration"].(time.Duration); !ok {
			t.Errorf("%s Report: no connection.duration", ev)
		}
		for n := range b {
			if strings.HasPrefix(n, "request.") || strings.HasPrefix(n, "response.") {
				t.Errorf("%s Report carries %s", ev, n)
			}
		}
	}
	// The prometheus adapter added them up: 105 received, 30 sent for
	// this client (the second connection moved no bytes).
	fams, err := svc.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source_ip" && l.GetValue() == "127.0.0.7" {
					got[fam.GetName()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if got["istio_mongo_received_bytes"] != 105 || got["istio_mongo_sent_bytes"] != 30 {
		t.Errorf("prometheus adapter: %v, want istio_mongo_received_bytes 105 and istio_mongo_sent_bytes 30", got)
	}
}

func TestTCPFailPolicyAndFields(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close() // nothing listens there
	svcs := services(t)
	for _, open := range []bool{false, true} {
		policy := clientpb.NetworkFailPolicy_FAIL_CLOSE
		if open {
			policy = clientpb.NetworkFailPolicy_FAIL_OPEN
		}
		f := tcpFilter(t, &clientpb.TcpClientConfig{Transport: &clientpb.TransportConfig{CheckCluster: addr,
			NetworkFailPolicy: &clientpb.NetworkFailPolicy{Policy: policy}}, DisableReportCalls: true})
		c := &filter.Conn{Remote: netip.MustParseAddrPort("127.0.0.7:40000"), Services: svcs}
		if st := f.OnConnect(c); (st == filter.Continue) != open {
			t.Errorf("fail open %v: %v", open, st)
		}
	}
	f := tcpFilter(t, &clientpb.TcpClientConfig{Transport: &clientpb.TransportConfig{CheckCluster: addr}, ReportInterval: durationpb.New(time.Millisecond)})
	if f.interval != MinReportInterval {
		t.Errorf("report_interval 1ms: %v, want %v", f.interval, MinReportInterval)
	}
	for field, cfg := range map[string]*clientpb.TcpClientConfig{
		"transport.check_cluster": {},
		"connection_quota_spec[0].rules[0].match": {Transport: &clientpb.TransportConfig{CheckCluster: "x:1"},
			ConnectionQuotaSpec: &clientpb.QuotaSpec{Rules: []*clientpb.QuotaRule{{Match: []*clientpb.AttributeMatch{{}}}}}},
		"transport.network_fail_policy": {Transport: &clientpb.TransportConfig{CheckCluster: "x:1", NetworkFailPolicy: &clientpb.NetworkFailPolicy{MaxRetry: 3}}},
	} {
		a, _ := anypb.New(cfg)
		if _, err := NewTCP(Name, a); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}
