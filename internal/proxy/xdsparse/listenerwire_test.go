package xdsparse

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// generatedListenerBytes is the old LDS path end to end: proto.Unmarshal
// into go-control-plane's Listener, then generatedListener.
func generatedListenerBytes(b []byte) (string, *Listener, error) {
	var m listenerv3.Listener
	if err := proto.Unmarshal(b, &m); err != nil {
		return "", nil, fmt.Errorf("listener: decode: %w", err)
	}
	l, err := generatedListener(&m)
	return m.GetName(), l, err
}

// compareListeners decodes b both ways and reports a difference (see
// compareRoutes).
func compareListeners(t *testing.T, b []byte) {
	t.Helper()
	gName, gl, gErr := generatedListenerBytes(b)
	wName, wl, wErr := DecodeListener(b)
	if gName != wName || !sameError(gErr, wErr) {
		t.Fatalf("generated: %q, %v\nwire:      %q, %v\nbytes %x", gName, gErr, wName, wErr, b)
	}
	if !reflect.DeepEqual(gl, wl) {
		t.Fatalf("generated: %+v\nwire:      %+v\nbytes %x", gl, wl, b)
	}
}

// randomListener builds a listener using what the listener parser reads
// (the connection manager and tcp_proxy in their common shapes), with now
// and then a field it refuses or a value it rejects.
func randomListener(r *rand.Rand) *listenerv3.Listener {
	p := func(pct int) bool { return r.IntN(100) < pct }
	clean := p(50)
	bad := func(pct int) bool { return !clean && p(pct) }
	pick := func(s ...string) string {
		if clean {
			return s[r.IntN(min(len(s), 2))]
		}
		return s[r.IntN(len(s))]
	}
	l := &listenerv3.Listener{Name: pick("virtualInbound", "0.0.0.0_9080", "")}
	switch {
	case bad(10):
	case bad(10):
		l.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "::", Protocol: corev3.SocketAddress_UDP,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}}
	case bad(10):
		l.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "::",
			PortSpecifier: &corev3.SocketAddress_NamedPort{NamedPort: "http"}}}}
	case p(10):
		l.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: pick("/tmp/s", "@abs", "rel", "")}}}
	default:
		l.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: pick("0.0.0.0", "::", "127.0.0.1"),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(r.IntN(70000)*b2i(!clean) + r.IntN(65536)*b2i(clean))}}}}
	}
	if p(30) {
		l.UseOriginalDst = wrapperspb.Bool(p(50))
	}
	if p(20) {
		l.BindToPort = wrapperspb.Bool(p(50))
	}
	if p(20) {
		l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(uint32(r.IntN(3)) << uint(r.IntN(32)) * uint32(1+b2i(clean)))
	}
	if p(30) {
		l.TrafficDirection = corev3.TrafficDirection(r.IntN(3))
	}
	if p(20) {
		l.ListenerFiltersTimeout = durationpb.New(time.Duration(r.IntN(2000)-100*b2i(!clean)) * time.Millisecond)
	}
	l.ContinueOnListenerFiltersTimeout = p(20)
	for range r.IntN(3) {
		f := &listenerv3.ListenerFilter{Name: pick("envoy.filters.listener.tls_inspector", "envoy.filters.listener.http_inspector", "x", "envoy.filters.listener.proxy_protocol")}
		switch r.IntN(4) {
		case 0:
			a, _ := anypb.New(&tlsinspv3.TlsInspector{})
			f.ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}
		case 1:
			a, _ := anypb.New(&origdstv3.OriginalDst{})
			f.ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}
		}
		l.ListenerFilters = append(l.ListenerFilters, f)
	}
	if bad(5) {
		l.Transparent = wrapperspb.Bool(true)
	}
	if p(10) {
		l.StatPrefix = "s"
		l.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": {}}}
	}
	chain := func() *listenerv3.FilterChain {
		fc := &listenerv3.FilterChain{Name: pick("inbound|9080||", "c", "")}
		if p(60) {
			m := &listenerv3.FilterChainMatch{}
			for range r.IntN(3) {
				c := &corev3.CidrRange{AddressPrefix: pick("10.0.0.0", "::1", "bad", "")}
				if p(60) {
					c.PrefixLen = wrapperspb.UInt32(uint32(r.IntN(40)*(1-b2i(clean)) + r.IntN(9)))
				}
				if p(50) {
					m.PrefixRanges = append(m.PrefixRanges, c)
				} else {
					m.SourcePrefixRanges = append(m.SourcePrefixRanges, c)
				}
			}
			if p(40) {
				m.DestinationPort = wrapperspb.UInt32(uint32(r.IntN(70000)*b2i(!clean) + r.IntN(65536)*b2i(clean)))
			}
			for range r.IntN(3) {
				m.ServerNames = append(m.ServerNames, pick("*.example.com", "Reviews.default", "a*b", "*"))
			}
			m.TransportProtocol = pick("", "tls", "raw_buffer", "quic")
			for range r.IntN(3) {
				m.ApplicationProtocols = append(m.ApplicationProtocols, pick("h2c", "http/1.1", "istio-peer-exchange"))
			}
			if bad(5) {
				m.SourcePorts = []uint32{1}
			}
			fc.FilterChainMatch = m
		}
		switch r.IntN(8) {
		case 0:
			a, _ := anypb.New(&tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: pick("c", "d", "")}})
			fc.Filters = []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}}
		case 1:
			if !clean {
				break // no filters
			}
			fallthrough
		case 2:
			h := xdstest.HCM(pick("80", "r"))
			h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: xdstest.RouteConfig(pick("inline", "i2", ""), []string{"*"}, xdstest.RouteTo("/", "c"))}
			fc.Filters = []*listenerv3.Filter{{Name: HCMFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(h)}}}
		case 3:
			if !clean {
				fc.Filters = []*listenerv3.Filter{{Name: "x", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x.Y"}}}}
				if p(50) {
					fc.Filters[0].ConfigType = nil
				}
				break
			}
			fallthrough
		default:
			h := xdstest.HCM(pick("80", "r"))
			if bad(10) {
				h.MaxRequestHeadersKb = wrapperspb.UInt32(9000)
			}
			fc.Filters = []*listenerv3.Filter{{Name: HCMFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.Any(h)}}}
		}
		if bad(10) && len(fc.Filters) > 0 {
			// a filter in front of the terminal one: an unknown one, or the stats filter
			fc.Filters = append([]*listenerv3.Filter{{Name: pick("envoy.filters.network.unknown", StatsFilterName)}}, fc.Filters...)
		}
		if p(10) {
			fc.Metadata = &corev3.Metadata{}
		}
		if bad(5) {
			fc.UseProxyProto = wrapperspb.Bool(true)
		}
		return fc
	}
	for range r.IntN(4) {
		l.FilterChains = append(l.FilterChains, chain())
	}
	if p(30) {
		l.DefaultFilterChain = chain()
	}
	return l
}

func TestDecodeListenerMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 7))
	accepted := 0
	seen := map[string]int{}
	for range 800 {
		b, err := proto.Marshal(randomListener(r))
		if err != nil {
			t.Fatal(err)
		}
		compareListeners(t, b)
		if _, l, _ := DecodeListener(b); l != nil {
			accepted++
			for name, ok := range map[string]bool{"pipe": l.Network == "unix", "default chain": l.Default != nil, "warnings": len(l.Warnings) > 0,
				"inspector": l.Filters.HTTPInspector, "original dst": l.Filters.OriginalDst, "tcp": len(l.Chains) > 0 && l.Chains[0].TCP != nil,
				"inline routes": len(l.Chains) > 0 && l.Chains[0].HTTP != nil && l.Chains[0].HTTP.Routes != nil,
				"chain match":   len(l.Chains) > 0 && !reflect.DeepEqual(l.Chains[0].Match, ChainMatch{})} {
				if ok {
					seen[name]++
				}
			}
		}
		b2, _ := proto.Marshal(randomListener(r))
		compareListeners(t, append(b[:len(b):len(b)], b2...))
	}
	if accepted < 150 {
		t.Fatalf("only %d of 800 random listeners accepted", accepted)
	}
	for _, name := range []string{"pipe", "default chain", "warnings", "inspector", "original dst", "tcp", "inline routes", "chain match"} {
		if seen[name] < 3 {
			t.Errorf("%s: in %d accepted listeners, want at least 3", name, seen[name])
		}
	}
	t.Logf("accepted %d of 800: %v", accepted, seen)
}

// TestDecodeListenerWire covers what go-control-plane never encodes.
func TestDecodeListenerWire(t *testing.T) {
	base, _ := proto.Marshal(xdstest.HTTPListener("l", "127.0.0.1:80", "r"))
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	cases := map[string][]byte{
		"plain":                       base,
		"truncated":                   base[:len(base)-1],
		"address merged":              cat(base, bytesField(lsAddress, bytesField(addrSocket, varint(saPortValue, 81)))),
		"pipe after socket":           cat(base, bytesField(lsAddress, bytesField(addrPipe, bytesField(pipePath, []byte("/s"))))),
		"port 2^32+80":                cat(base, bytesField(lsAddress, bytesField(addrSocket, varint(saPortValue, 1<<32+80)))),
		"invalid utf-8 in chain name": cat(base, bytesField(lsFilterChains, bytesField(fcName, []byte{0xff}))),
		"protocol out of range":       cat(base, bytesField(lsAddress, bytesField(addrSocket, varint(saProtocol, 7)))),
		"direction as bytes":          cat(base, bytesField(lsTrafficDirection, []byte("x"))),
		"unknown field":               cat(base, varint(1000, 1)),
	}
	for n, b := range cases {
		t.Run(n, func(t *testing.T) { compareListeners(t, b) })
	}
}

// TestDecodeListenerGeneratedCorpus: every listener Mast's generators
// produce for Bookinfo and Istio's samples decodes to the same listener
// both ways.
func TestDecodeListenerGeneratedCorpus(t *testing.T) {
	corpus := generatedCorpus(t, ListenerType)
	if len(corpus) < 5 {
		t.Fatalf("%d listeners generated, want at least 5", len(corpus))
	}
	accepted := 0
	for _, b := range corpus {
		compareListeners(t, b)
		name, _, err := DecodeListener(b)
		if err == nil {
			accepted++
		} else if !strings.Contains(err.Error(), "credential") {
			t.Errorf("%s: %v", name, err)
		}
	}
	t.Logf("%d distinct listeners, %d accepted", len(corpus), accepted)
}

// FuzzDecodeListener: any bytes decode as go-control-plane's types would
// (compareListeners).
func FuzzDecodeListener(f *testing.F) {
	r := rand.New(rand.NewPCG(13, 31))
	for range 16 {
		b, _ := proto.Marshal(randomListener(r))
		f.Add(b)
	}
	ls, _, _ := seeds()
	for _, b := range ls {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareListeners(t, b) })
}
