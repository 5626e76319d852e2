package xdsparse

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func ppSocket(t *testing.T, v corev3.ProxyProtocolConfig_Version, extra func(*proxyprotocolv3.ProxyProtocolUpstreamTransport)) *corev3.TransportSocket {
	t.Helper()
	raw, _ := anypb.New(&rawbufferv3.RawBuffer{})
	p := &proxyprotocolv3.ProxyProtocolUpstreamTransport{
		Config:          &corev3.ProxyProtocolConfig{Version: v},
		TransportSocket: &corev3.TransportSocket{Name: RawBufferTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: raw}},
	}
	if extra != nil {
		extra(p)
	}
	a, _ := anypb.New(p)
	return &corev3.TransportSocket{Name: UpstreamProxyProtocolSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func TestClusterProxyProtocol(t *testing.T) {
	cluster := func(ts *corev3.TransportSocket, ms ...*corev3.TransportSocket) *clusterv3.Cluster {
		c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout: durationpb.New(1e9), TransportSocket: ts}
		for i, m := range ms {
			c.TransportSocketMatches = append(c.TransportSocketMatches, &clusterv3.Cluster_TransportSocketMatch{Name: string(rune('a' + i)), TransportSocket: m})
		}
		return c
	}
	for _, c := range []struct {
		name    string
		c       *clusterv3.Cluster
		version uint8
		err     string
	}{
		{"none", cluster(nil), 0, ""},
		{"v1", cluster(ppSocket(t, corev3.ProxyProtocolConfig_V1, nil)), 1, ""},
		{"v2 on every match", cluster(nil, ppSocket(t, corev3.ProxyProtocolConfig_V2, nil), ppSocket(t, corev3.ProxyProtocolConfig_V2, nil)), 2, ""},
		{"versions differ", cluster(ppSocket(t, corev3.ProxyProtocolConfig_V2, nil), ppSocket(t, corev3.ProxyProtocolConfig_V1, nil)), 0,
			"transport_socket_matches[0]: PROXY protocol version 1 differs from another transport socket's 2"},
		{"TLVs refused", cluster(ppSocket(t, corev3.ProxyProtocolConfig_V2, func(p *proxyprotocolv3.ProxyProtocolUpstreamTransport) {
			p.Config.AddedTlvs = []*corev3.TlvEntry{{Type: 0xE0, Value: []byte("x")}}
		})), 0, "not supported by mast-proxy: config.added_tlvs"},
		{"unspecified address refused", cluster(ppSocket(t, corev3.ProxyProtocolConfig_V1, func(p *proxyprotocolv3.ProxyProtocolUpstreamTransport) {
			p.AllowUnspecifiedAddress = true
		})), 0, "allow_unspecified_address"},
		{"no inner socket", cluster(ppSocket(t, corev3.ProxyProtocolConfig_V1, func(p *proxyprotocolv3.ProxyProtocolUpstreamTransport) {
			p.TransportSocket = nil
		})), 0, "transport_socket missing"},
	} {
		got, err := ParseCluster(c.c)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got.ProxyProtocol != c.version {
			t.Errorf("%s: version %v (%v), want %d", c.name, got, err, c.version)
		}
	}
}
