package xdsparse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matchv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// generatedClusterBytes is the old CDS path end to end: proto.Unmarshal
// into go-control-plane's Cluster, then generatedCluster.
func generatedClusterBytes(b []byte) (string, *Cluster, error) {
	var m clusterv3.Cluster
	if err := proto.Unmarshal(b, &m); err != nil {
		return "", nil, fmt.Errorf("cluster: decode: %w", err)
	}
	c, err := generatedCluster(&m)
	return m.GetName(), c, err
}

// compareCluster decodes b both ways and reports a difference. Malformed
// bytes must be refused by both, at the same place: the texts may differ
// after protobuf's own "proto:" wording.
func compareCluster(t *testing.T, b []byte) {
	t.Helper()
	gName, gc, gErr := generatedClusterBytes(b)
	wName, wc, wErr := DecodeCluster(b)
	if i := strings.Index(fmt.Sprint(gErr), "proto:"); i >= 0 {
		prefix := gErr.Error()[:i]
		if wErr == nil || !strings.HasPrefix(wErr.Error(), prefix) || gName != wName {
			t.Fatalf("generated: %q, %v\nwire:      %q, %v\nbytes %x", gName, gErr, wName, wErr, b)
		}
		return
	}
	if fmt.Sprint(gErr) != fmt.Sprint(wErr) || gName != wName {
		t.Fatalf("generated: %q, %v\nwire:      %q, %v\nbytes %x", gName, gErr, wName, wErr, b)
	}
	if !reflect.DeepEqual(gc, wc) {
		t.Fatalf("generated: %+v\nwire:      %+v\nbytes %x", gc, wc, b)
	}
}

// randomCluster builds a Cluster with go-control-plane's types: what Istio
// sends, values the proxy rejects, and fields it refuses, at random.
func randomCluster(r *rand.Rand) *clusterv3.Cluster {
	p := func(n int) bool { return r.IntN(n) == 0 }
	u32 := func() *wrapperspb.UInt32Value {
		return wrapperspb.UInt32([]uint32{0, 1, 3, 100, 101, 1 << 31}[r.IntN(6)])
	}
	dur := func() *durationpb.Duration {
		return durationpb.New([]time.Duration{0, -time.Second, time.Millisecond / 2, time.Second, time.Hour}[r.IntN(5)])
	}
	slowStart := func() *clusterv3.Cluster_SlowStartConfig {
		if p(4) {
			return nil
		}
		sc := &clusterv3.Cluster_SlowStartConfig{}
		if !p(10) {
			sc.SlowStartWindow = durationpb.New([]time.Duration{0, -time.Second, time.Second, time.Minute, 45 * time.Second, time.Hour, 10 * time.Second, time.Millisecond}[r.IntN(8)])
		}
		if p(2) {
			sc.Aggression = &corev3.RuntimeDouble{DefaultValue: []float64{0, 1, 2.5, -1, math.Inf(1), math.NaN()}[r.IntN(6)], RuntimeKey: "("}
		}
		if p(2) {
			sc.MinWeightPercent = &typev3.Percent{Value: []float64{0, 10, 100, 101, -1, math.NaN()}[r.IntN(6)]}
		}
		return sc
	}
	c := &clusterv3.Cluster{Name: []string{"", "c", "outbound|80||reviews.default.svc.cluster.local", "c", "outbound|80||reviews.default.svc.cluster.local", "d"}[r.IntN(6)]}
	switch r.IntN(12) {
	case 0, 2, 3, 4:
	case 1:
		c.ClusterDiscoveryType = &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "x"}}
	default:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_DiscoveryType(r.IntN(6))}
	}
	if p(2) {
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{ServiceName: []string{"", "svc"}[r.IntN(2)]}
		switch r.IntN(4) {
		case 0:
			c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
		case 1:
			c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/x"}}
		case 2:
			c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3}
		}
	}
	if p(2) {
		c.ConnectTimeout = dur()
	}
	c.LbPolicy = clusterv3.Cluster_LbPolicy([]int32{0, 0, 1, 2, 3, 5, 6, 7, 9}[r.IntN(9)])
	switch r.IntN(6) {
	case 0:
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{}}
		if p(2) {
			c.GetRingHashLbConfig().MinimumRingSize = wrapperspb.UInt64([]uint64{0, 16, 1 << 24}[r.IntN(3)])
		}
	case 1:
		c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{}}
		if p(2) {
			c.GetMaglevLbConfig().TableSize = wrapperspb.UInt64([]uint64{0, 16, 65537, 5000011}[r.IntN(4)])
		}
	case 2:
		lr := &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: slowStart()}
		if p(3) {
			lr.ChoiceCount = wrapperspb.UInt32([]uint32{2, 3}[r.IntN(2)])
		}
		if p(4) {
			lr.ActiveRequestBias = &corev3.RuntimeDouble{DefaultValue: []float64{1, 0.5}[r.IntN(2)], RuntimeKey: "k"}
		}
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: lr}
		if !p(4) {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		}
	case 3:
		c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: slowStart()}}
		if !p(4) {
			c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		}
	}
	if p(20) {
		c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{}
	}
	if p(2) {
		cb := &clusterv3.CircuitBreakers{}
		for range r.IntN(3) {
			th := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority(r.IntN(2))}
			if p(2) {
				th.MaxConnections = u32()
			}
			if p(2) {
				th.MaxPendingRequests = u32()
			}
			if p(2) {
				th.MaxRequests = u32()
			}
			if p(2) {
				th.MaxRetries = u32()
			}
			th.TrackRemaining = p(3)
			if p(5) {
				rb := &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
				if p(2) {
					rb.BudgetPercent = &typev3.Percent{Value: []float64{0, 25, 100, 101, -1, math.NaN()}[r.IntN(6)]}
				}
				if p(2) {
					rb.MinRetryConcurrency = u32()
				}
				if p(2) {
					rb.BudgetInterval = dur()
				}
				th.RetryBudget = rb
			}
			cb.Thresholds = append(cb.Thresholds, th)
		}
		c.CircuitBreakers = cb
	}
	h2 := func() *corev3.Http2ProtocolOptions {
		o := &corev3.Http2ProtocolOptions{}
		if p(2) {
			o.MaxConcurrentStreams = u32()
		}
		if p(3) {
			o.ConnectionKeepalive = &corev3.KeepaliveSettings{}
			if p(2) {
				o.ConnectionKeepalive.Interval = dur()
			}
			if !p(4) {
				o.ConnectionKeepalive.Timeout = dur()
			}
		}
		if p(15) {
			o.HpackTableSize = u32()
		}
		return o
	}
	common := func() *corev3.HttpProtocolOptions {
		o := &corev3.HttpProtocolOptions{}
		if p(2) {
			o.IdleTimeout = dur()
		}
		if p(2) {
			o.MaxConnectionDuration = dur()
		}
		if p(2) {
			o.MaxRequestsPerConnection = u32()
		}
		if p(15) {
			o.MaxHeadersCount = u32()
		}
		return o
	}
	if p(3) {
		c.Http2ProtocolOptions = h2()
	}
	if p(3) {
		c.CommonHttpProtocolOptions = common()
	}
	if p(3) {
		c.MaxRequestsPerConnection = u32()
	}
	if p(2) {
		po := &httpv3.HttpProtocolOptions{}
		switch r.IntN(5) {
		case 0:
			e := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{}
			if p(2) {
				e.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2()}
			} else {
				e.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}
			}
			po.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: e}
		case 1:
			u := &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}
			if p(2) {
				u.Http2ProtocolOptions = h2()
			}
			po.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: u}
		case 2:
			a := &httpv3.HttpProtocolOptions_AutoHttpConfig{}
			if p(2) {
				a.Http2ProtocolOptions = h2()
			}
			po.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_AutoConfig{AutoConfig: a}
		}
		if p(2) {
			po.CommonHttpProtocolOptions = common()
		}
		if p(15) {
			po.HashPolicy = []*routev3.RouteAction_HashPolicy{{}}
		}
		if p(4) {
			po.OutlierDetection = &httpv3.HttpProtocolOptions_OutlierDetection{ErrorMatcher: randomErrorMatcher(r)}
		}
		var a *anypb.Any
		if p(20) {
			a, _ = anypb.New(&corev3.Http1ProtocolOptions{})
		} else {
			a, _ = anypb.New(po)
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: a}
		if p(15) {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions": a}
		}
	}
	tls := func() *corev3.TransportSocket {
		switch r.IntN(3) {
		case 0:
			return &corev3.TransportSocket{Name: RawBufferTransportSocket}
		case 1:
			return socket(&tlsv3.UpstreamTlsContext{Sni: "outbound_.80_._.reviews", CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("default")}, AlpnProtocols: []string{"istio"}}})
		}
		return socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}, AllowRenegotiation: true})
	}
	if p(3) {
		c.TransportSocket = tls()
	}
	for range r.IntN(3) {
		m := &clusterv3.Cluster_TransportSocketMatch{Name: "tlsMode-istio", TransportSocket: tls()}
		switch r.IntN(3) {
		case 0:
			m.Match, _ = structpb.NewStruct(map[string]any{"tlsMode": "istio"})
		case 1:
			m.Match, _ = structpb.NewStruct(map[string]any{"tlsMode": 1.0})
		}
		c.TransportSocketMatches = append(c.TransportSocketMatches, m)
	}
	if p(3) {
		lc := &clusterv3.Cluster_CommonLbConfig{}
		if p(2) {
			lc.HealthyPanicThreshold = &typev3.Percent{Value: []float64{0, 50, 100, 101, -1, math.NaN()}[r.IntN(6)]}
		}
		switch r.IntN(3) {
		case 0:
			lc.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}
		case 1:
			lc.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig_{ZoneAwareLbConfig: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig{}}
		}
		if p(15) {
			lc.UpdateMergeWindow = dur()
		}
		c.CommonLbConfig = lc
	}
	if p(3) {
		ka := &corev3.TcpKeepalive{}
		if p(2) {
			ka.KeepaliveProbes = u32()
		}
		if p(2) {
			ka.KeepaliveTime = u32()
		}
		if p(2) {
			ka.KeepaliveInterval = u32()
		}
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: ka}
	}
	if p(3) {
		od := &clusterv3.OutlierDetection{}
		for _, f := range []**wrapperspb.UInt32Value{&od.Consecutive_5Xx, &od.EnforcingConsecutive_5Xx, &od.ConsecutiveGatewayFailure,
			&od.EnforcingConsecutiveGatewayFailure, &od.MaxEjectionPercent, &od.ConsecutiveLocalOriginFailure, &od.EnforcingConsecutiveLocalOriginFailure} {
			if p(3) {
				*f = u32()
			}
		}
		if p(8) {
			od.EnforcingSuccessRate = u32()
		}
		if p(15) {
			od.FailurePercentageThreshold = u32()
		}
		od.SplitExternalLocalOriginErrors = p(3)
		for _, f := range []**durationpb.Duration{&od.Interval, &od.BaseEjectionTime, &od.MaxEjectionTime} {
			if p(3) {
				*f = dur()
			}
		}
		c.OutlierDetection = od
	}
	if p(2) {
		c.LoadAssignment = xdstest.CLA(c.Name, "10.0.0.1:80", "[::1]:9080")
		if p(10) {
			c.LoadAssignment = xdstest.CLA(c.Name, "10.0.0.1:0")
		}
	}
	if p(2) {
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
		c.Metadata.FilterMetadata["istio"], _ = structpb.NewStruct(map[string]any{"services": []any{
			map[string]any{"host": "reviews.default.svc.cluster.local", "name": "reviews"}, map[string]any{"name": "x"}}})
		if p(3) {
			c.Metadata.FilterMetadata["other"], _ = structpb.NewStruct(map[string]any{"k": true})
		}
		if c.OutlierDetection != nil && !p(4) || p(8) {
			// At most one bad key: the parse reports the first it meets in
			// a map, so two would make either error right.
			lat := map[string]any{}
			for _, kv := range [][2]any{{"percentile", 95.0}, {"factor", 2.0}, {"minimum_excess", "5ms"}, {"request_volume", 10.0}, {"minimum_hosts", 2.0}} {
				if p(2) {
					lat[kv[0].(string)] = kv[1]
				}
			}
			switch r.IntN(12) {
			case 0:
				lat["percentile"] = 101.0
			case 1:
				lat["minimum_excess"] = "soon"
			case 2:
				lat["minimum_hosts"] = 1.0
			case 3:
				lat["bogus"] = 1.0
			}
			mast := map[string]any{"latency_outlier": lat}
			if p(10) {
				mast = map[string]any{"other": true}
			}
			c.Metadata.FilterMetadata["mast"], _ = structpb.NewStruct(mast)
		}
	}
	c.AltStatName = []string{"", "stat"}[r.IntN(2)]
	c.DnsLookupFamily = clusterv3.Cluster_DnsLookupFamily(r.IntN(3))
	if p(15) {
		c.RespectDnsTtl = true
	}
	if p(15) {
		c.PerConnectionBufferLimitBytes = u32()
	}
	return c
}

func TestDecodeClusterMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 1))
	accepted := 0
	// Each feature must be accepted at least once, or the comparison
	// says nothing about it.
	seen := map[string]int{}
	for i := 0; i < 3000; i++ {
		b, err := proto.Marshal(randomCluster(r))
		if err != nil {
			t.Fatal(err)
		}
		compareCluster(t, b)
		if _, c, _ := DecodeCluster(b); c != nil {
			for name, ok := range map[string]bool{"slow start": c.SlowStart != nil, "retry budget": c.RetryBudget != nil,
				"outlier error codes": len(c.OutlierErrorCodes) > 0, "latency outlier": c.Outlier != nil && c.Outlier.Latency != nil,
				"tls matches": len(c.TLSMatches) > 0, "outlier": c.Outlier != nil, "h2": c.H2 != (H2Options{})} {
				if ok {
					seen[name]++
				}
			}
			accepted++
		}
		// Two encodings concatenated are one message, the second merged
		// into the first: scalars overwritten, lists appended, singular
		// messages merged, oneofs switched.
		b2, _ := proto.Marshal(randomCluster(r))
		compareCluster(t, append(b[:len(b):len(b)], b2...))
	}
	if accepted < 100 {
		t.Fatalf("only %d of 3000 random clusters accepted: the generator tests too little of the parse", accepted)
	}
	for _, name := range []string{"slow start", "retry budget", "outlier error codes", "latency outlier", "tls matches", "outlier", "h2"} {
		if seen[name] < 3 {
			t.Errorf("%s: in %d accepted clusters, want at least 3", name, seen[name])
		}
	}
	t.Logf("accepted %d of 3000: %v", accepted, seen)
}

// TestDecodeClusterWire covers what go-control-plane never encodes.
func TestDecodeClusterWire(t *testing.T) {
	base, _ := proto.Marshal(xdstest.EDSCluster("c"))
	field := func(num protowire.Number, typ protowire.Type, v []byte) []byte {
		return append(protowire.AppendTag(nil, num, typ), v...)
	}
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	cases := map[string][]byte{
		"plain":                          base,
		"type as bytes (unknown)":        cat(base, bytesField(clType, []byte("x"))),
		"type then cluster_type":         cat(base, bytesField(clClusterType, bytesField(1, []byte("t")))),
		"cluster_type then type":         cat(bytesField(clClusterType, bytesField(1, []byte("t"))), base),
		"ring hash then maglev":          cat(base, field(clLbPolicy, protowire.VarintType, []byte{5}), bytesField(clRingHash, nil), bytesField(clMaglev, bytesField(1, []byte{8, 17}))),
		"invalid utf-8 deep in metadata": cat(base, bytesField(clMetadata, bytesField(1, cat(bytesField(1, []byte("k")), bytesField(2, bytesField(1, cat(bytesField(1, []byte{0xff})))))))),
		"invalid utf-8 in cosmetic":      cat(base, bytesField(28, []byte{0xc3})),
		"invalid utf-8 in protocol opts": cat(base, bytesField(clTypedExtOptions, cat(bytesField(1, []byte(httpProtocolOptionsName)), bytesField(2, cat(bytesField(1, []byte("type.googleapis.com/"+httpProtocolOptionsName)), bytesField(2, bytesField(6, bytesField(1, []byte{0xff})))))))),
		"packed list of varints":         cat(base, bytesField(57, []byte{1, 2})),
		"truncated":                      base[:len(base)-1],
		"unknown group":                  cat(base, []byte{9<<3 | 3, 1 << 3, 1, 9<<3 | 4}),
		"field number 0":                 cat(base, []byte{0, 1}),
		"negative type":                  cat(base, field(clType, protowire.VarintType, protowire.AppendVarint(nil, uint64(1<<64-1)))),
		"connect timeout merged":         cat(base, bytesField(clConnectTimeout, []byte{2 << 3, 5})),
		"metadata entry replaced":        cat(base, bytesField(clMetadata, bytesField(1, bytesField(1, []byte("istio")))), bytesField(clMetadata, bytesField(1, bytesField(1, []byte("istio"))))),
	}
	for n, b := range cases {
		t.Run(n, func(t *testing.T) { compareCluster(t, b) })
	}
}

// FuzzDecodeCluster: any bytes decode as go-control-plane's types would
// (see compareCluster), and never crash the decoder.
func FuzzDecodeCluster(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 19))
	for range 16 {
		b, _ := proto.Marshal(randomCluster(r))
		f.Add(b)
	}
	// Istio's shape with every feature main's parser gained after the
	// first wire decoder: warmup, retry budget, outlier codes, latency.
	c := xdstest.EDSCluster("outbound|9080||reviews.default.svc.cluster.local")
	c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{
		SlowStartConfig: &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(time.Minute),
			Aggression: &corev3.RuntimeDouble{DefaultValue: 2, RuntimeKey: "("}, MinWeightPercent: &typev3.Percent{Value: 20}}}}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 25}, MinRetryConcurrency: wrapperspb.UInt32(5)}}}}
	c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3)}
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	c.Metadata.FilterMetadata["mast"], _ = structpb.NewStruct(map[string]any{"latency_outlier": map[string]any{"factor": 2.0}})
	po, _ := anypb.New(&httpv3.HttpProtocolOptions{OutlierDetection: &httpv3.HttpProtocolOptions_OutlierDetection{ErrorMatcher: randomErrorMatcher(r)}})
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: po}
	b, _ := proto.Marshal(c)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { compareCluster(t, b) })
}

// BenchmarkCluster decodes an Istio-shaped outbound cluster both ways:
//
//	go test ./internal/proxy/xdsparse -run '^$' -bench Cluster -benchmem
func BenchmarkCluster(b *testing.B) {
	c := xdstest.EDSCluster("outbound|9080||reviews.default.svc.cluster.local")
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(4294967295),
		MaxPendingRequests: wrapperspb.UInt32(4294967295), MaxRequests: wrapperspb.UInt32(4294967295), MaxRetries: wrapperspb.UInt32(4294967295)}}}
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	c.Metadata.FilterMetadata["istio"], _ = structpb.NewStruct(map[string]any{"services": []any{
		map[string]any{"host": "reviews.default.svc.cluster.local", "name": "reviews", "namespace": "default"}}})
	for range 2 {
		c.TransportSocketMatches = append(c.TransportSocketMatches, &clusterv3.Cluster_TransportSocketMatch{Name: "tlsMode-istio",
			TransportSocket: socket(&tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._.reviews", CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("default")}, AlpnProtocols: []string{"istio-peer-exchange", "istio"}}})})
	}
	raw, _ := proto.Marshal(c)
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := DecodeCluster(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := generatedClusterBytes(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// randomErrorMatcher builds an outlier_detection.error_matcher: what
// istiod and mastd generate for outlierDetectionHttpErrorCodes, and
// matchers the proxy refuses.
func randomErrorMatcher(r *rand.Rand) *matcherv3.MatchPredicate {
	one := func() *matcherv3.MatchPredicate {
		if r.IntN(2) == 0 { // what mastd generates
			return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_HttpResponseHeadersMatch{HttpResponseHeadersMatch: &matcherv3.HttpHeadersMatch{
				Headers: []*routev3.HeaderMatcher{{Name: ":status", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matchv3.StringMatcher{
					MatchPattern: &matchv3.StringMatcher_Exact{Exact: []string{"500", "503", "404"}[r.IntN(3)]}}}}}}}}
		}
		h := &routev3.HeaderMatcher{Name: []string{":status", ":status", "x"}[r.IntN(3)]}
		code := []string{"503", "404", "4xx", "700", ""}[r.IntN(5)]
		switch r.IntN(6) {
		case 0:
			h.HeaderMatchSpecifier = &routev3.HeaderMatcher_ExactMatch{ExactMatch: code}
		case 1:
			h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "5"}
		case 2:
			h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matchv3.StringMatcher{
				MatchPattern: &matchv3.StringMatcher_Prefix{Prefix: "5"}}}
		case 3:
		default:
			h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matchv3.StringMatcher{
				MatchPattern: &matchv3.StringMatcher_Exact{Exact: code}, IgnoreCase: r.IntN(6) == 0}}
		}
		h.InvertMatch = r.IntN(10) == 0
		h.TreatMissingHeaderAsEmpty = r.IntN(10) == 0
		hm := &matcherv3.HttpHeadersMatch{Headers: []*routev3.HeaderMatcher{h}}
		switch r.IntN(10) {
		case 0:
			hm.Headers = nil
		case 1:
			hm.Headers = append(hm.Headers, h)
		case 2:
			return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_HttpRequestHeadersMatch{HttpRequestHeadersMatch: hm}}
		case 3:
			return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_AnyMatch{AnyMatch: true}}
		}
		return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_HttpResponseHeadersMatch{HttpResponseHeadersMatch: hm}}
	}
	if r.IntN(2) == 0 {
		return one()
	}
	set := &matcherv3.MatchPredicate_MatchSet{}
	for range r.IntN(4) {
		set.Rules = append(set.Rules, one())
	}
	return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_OrMatch{OrMatch: set}}
}
