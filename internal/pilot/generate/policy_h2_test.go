package generate

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// TestHTTP2StreamLimitAndKeepalive: maxConcurrentStreams and http2KeepAlive
// land in the HTTP/2 protocol options of a cluster that is HTTP/2 by its
// port (GRPC, HTTP2), as istiod generates them; a cluster made HTTP/2 by
// h2UpgradePolicy or useClientProtocol gets plain HTTP/2 options, also as
// istiod does (it applies the connection pool before the upgrade).
func TestHTTP2StreamLimitAndKeepalive(t *testing.T) {
	h2opts := func(portH2 bool, h *networking.ConnectionPoolSettings_HTTPSettings) *corev3.Http2ProtocolOptions {
		c := &clusterv3.Cluster{}
		applyConnectionPool(c, &networking.ConnectionPoolSettings{Http: h}, nil, true, portH2, false)
		a := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]
		if a == nil {
			return nil
		}
		var po upstreamhttpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&po); err != nil {
			t.Fatal(err)
		}
		if o := po.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); o != nil {
			return o
		}
		return po.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions()
	}
	ka := &networking.ConnectionPoolSettings_HTTPSettings_ConnectionKeepalive{Interval: durationpb.New(10 * time.Second), Timeout: durationpb.New(2 * time.Second)}
	o := h2opts(true, &networking.ConnectionPoolSettings_HTTPSettings{MaxConcurrentStreams: 7, Http2KeepAlive: ka})
	if o.GetMaxConcurrentStreams().GetValue() != 7 || o.GetConnectionKeepalive().GetInterval().AsDuration() != 10*time.Second ||
		o.GetConnectionKeepalive().GetTimeout().AsDuration() != 2*time.Second {
		t.Errorf("GRPC/HTTP2 port: %v, want max_concurrent_streams 7 and connection_keepalive 10s/2s", o)
	}
	o = h2opts(false, &networking.ConnectionPoolSettings_HTTPSettings{MaxConcurrentStreams: 7, Http2KeepAlive: ka,
		H2UpgradePolicy: networking.ConnectionPoolSettings_HTTPSettings_UPGRADE})
	if o == nil || o.GetMaxConcurrentStreams() != nil || o.GetConnectionKeepalive() != nil {
		t.Errorf("HTTP port upgraded to HTTP/2: %v, want empty HTTP/2 options", o)
	}
	o = h2opts(true, &networking.ConnectionPoolSettings_HTTPSettings{MaxConcurrentStreams: 7, Http2KeepAlive: ka, UseClientProtocol: true})
	if o == nil || o.GetMaxConcurrentStreams() != nil || o.GetConnectionKeepalive() != nil {
		t.Errorf("useClientProtocol: %v, want empty HTTP/2 options", o)
	}
}

// TestOutlierErrorCodesMatcher: outlierDetectionHttpErrorCodes become the
// HTTP protocol options' outlier_detection.error_matcher, a :status exact
// match per code (their or_match for several), also on a cluster with no
// other HTTP protocol option (explicit HTTP/1.1 then, as the options need a
// protocol).
func TestOutlierErrorCodesMatcher(t *testing.T) {
	po := func(od *networking.OutlierDetection) *upstreamhttpv3.HttpProtocolOptions {
		c := &clusterv3.Cluster{}
		applyConnectionPool(c, nil, od, true, false, false)
		a := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]
		if a == nil {
			return nil
		}
		po := &upstreamhttpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(po); err != nil {
			t.Fatal(err)
		}
		return po
	}
	if o := po(&networking.OutlierDetection{}); o != nil {
		t.Errorf("no codes: %v, want no HTTP protocol options", o)
	}
	o := po(&networking.OutlierDetection{OutlierDetectionHttpErrorCodes: []uint32{404}})
	m := o.GetOutlierDetection().GetErrorMatcher().GetHttpResponseHeadersMatch().GetHeaders()
	if len(m) != 1 || m[0].GetName() != ":status" || m[0].GetStringMatch().GetExact() != "404" || o.GetExplicitHttpConfig().GetHttpProtocolOptions() == nil {
		t.Errorf("one code: %v, want a :status exact 404 match on explicit HTTP/1.1", o)
	}
	o = po(&networking.OutlierDetection{OutlierDetectionHttpErrorCodes: []uint32{404, 429}})
	rules := o.GetOutlierDetection().GetErrorMatcher().GetOrMatch().GetRules()
	if len(rules) != 2 || rules[1].GetHttpResponseHeadersMatch().GetHeaders()[0].GetStringMatch().GetExact() != "429" {
		t.Errorf("two codes: %v, want an or_match of two :status matches", o.GetOutlierDetection())
	}
}
