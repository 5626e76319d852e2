package generate

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	telemetryapi "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/celfilter"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// meshAccessLog is the file access log MeshConfig asks for, nil when
// accessLogFile is empty (Istio's default: off).
func meshAccessLog(m model.MeshConfig) *accesslogv3.AccessLog {
	if m.AccessLogFile == "" {
		return nil
	}
	f := &filev3.FileAccessLog{Path: m.AccessLogFile}
	if m.AccessLogEncoding == "JSON" {
		fields := map[string]*structpb.Value{}
		for k, v := range accesslog.IstioJSONFormat {
			fields[k] = structpb.NewStringValue(v)
		}
		if m.AccessLogFormat != "" {
			// Istio: with JSON encoding the format is a JSON object of
			// field -> command operators; an unparsable one keeps the default.
			if st := jsonFormatFields(m.AccessLogFormat); st != nil {
				fields = st
			}
		}
		f.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: fields}}}}
	} else {
		text := accesslog.IstioTextFormat
		if m.AccessLogFormat != "" {
			text = m.AccessLogFormat
		}
		f.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: text}}}}}
	}
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: toAny(f)}}
}

func jsonFormatFields(s string) map[string]*structpb.Value {
	var st structpb.Struct
	if err := st.UnmarshalJSON([]byte(s)); err != nil {
		return nil
	}
	return st.Fields
}

// withTelemetry adds the access logs and the tracing that apply to every
// HTTP connection manager and TCP proxy of the listeners. Listeners may be
// shared between proxies within a push, so changed ones are copies.
func (g *gen) withTelemetry(out []model.XDSResource) []model.XDSResource {
	logIn, logOut := g.accessLogs(true), g.accessLogs(false)
	tracing := g.pc.Traced(g.p)
	mp := g.pc.Metrics(g.p)
	if len(logIn) == 0 && len(logOut) == 0 && !tracing && mp.Empty() {
		return out
	}
	statsIn, statsOut := statsConfig(mp.Server, mp.Off, mp.ReportingInterval), statsConfig(mp.Client, mp.Off, mp.ReportingInterval)
	var traceIn, traceOut *hcmv3.HttpConnectionManager_Tracing
	if tracing {
		traceIn, traceOut = g.hcmTracing(true), g.hcmTracing(false)
	}
	for i, r := range out {
		l, ok := r.Resource.(*listenerv3.Listener)
		if !ok {
			continue
		}
		l = proto.Clone(l).(*listenerv3.Listener)
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		tr, logs, stats := traceOut, logOut, statsOut
		if l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND {
			tr, logs, stats = traceIn, logIn, statsIn
		}
		for _, fc := range chains {
			for j := 0; j < len(fc.GetFilters()); j++ {
				if g.addTelemetry(fc.Filters[j], logs, tr, stats) {
					addStatsTCP(fc, j, stats)
					j++
				}
			}
		}
		out[i].Resource, out[i].Encoded = l, nil
	}
	return out
}

// accessLogs are the access logs of the proxy's inbound (SERVER) or
// outbound and gateway (CLIENT) listeners: the Telemetry API's providers in
// force on that side, each with its CEL filter.expression compiled into
// Envoy's native access log filters ("envoy" is MeshConfig's file,
// /dev/stdout when unset; an envoyFileAccessLog extension provider writes
// its own file); MeshConfig's accessLogFile when the Telemetry API puts
// nothing in force there, as istiod falls back.
func (g *gen) accessLogs(inbound bool) []*accesslogv3.AccessLog {
	mesh := g.pc.Mesh
	mode := telemetryapi.WorkloadMode_CLIENT
	if inbound {
		mode = telemetryapi.WorkloadMode_SERVER
	}
	provs := g.pc.AccessLogging(g.p, mode)
	var out []*accesslogv3.AccessLog
	known := false
	for _, lp := range provs {
		if lp.Name == "" {
			return nil // disabled with no provider: MeshConfig's file too
		}
		al := g.providerAccessLog(lp.Name)
		if al == nil {
			continue // not an access log provider, or unknown (validation names it)
		}
		known = true
		if lp.Disabled {
			continue
		}
		if lp.Filter != "" {
			f, err := celfilter.Compile(lp.Filter)
			if err != nil {
				continue // validation refuses such a resource; never log unfiltered
			}
			al.Filter = f
		}
		out = append(out, al)
	}
	if !known {
		if def := meshAccessLog(mesh); def != nil {
			return []*accesslogv3.AccessLog{def}
		}
	}
	return out
}

// providerAccessLog is the file access log of the extension provider
// named name, nil when it names none.
func (g *gen) providerAccessLog(name string) *accesslogv3.AccessLog {
	mesh := g.pc.Mesh
	if name == "envoy" {
		m := mesh
		if m.AccessLogFile == "" {
			m.AccessLogFile = "/dev/stdout"
		}
		return meshAccessLog(m)
	}
	fl := mesh.ExtensionProvider(name).GetEnvoyFileAccessLog()
	if fl == nil {
		return nil
	}
	m := model.MeshConfig{AccessLogFile: fl.GetPath(), AccessLogEncoding: "TEXT"}
	if lf := fl.GetLogFormat(); lf.GetText() != "" {
		m.AccessLogFormat = lf.GetText()
	} else if lf.GetLabels() != nil {
		m.AccessLogEncoding = "JSON"
		if b, err := lf.GetLabels().MarshalJSON(); err == nil {
			m.AccessLogFormat = string(b)
		}
	}
	return meshAccessLog(m)
}

// addTelemetry adds the access logs to an HCM or TCP proxy filter, and
// tracing tr (if any) and the stats filter (if any) to an HCM, naming the
// spans of its inline routes. It reports whether f is a TCP proxy (which
// takes the stats filter as a network filter before it).
func (g *gen) addTelemetry(f *listenerv3.Filter, logs []*accesslogv3.AccessLog, tr *hcmv3.HttpConnectionManager_Tracing, stats *anypb.Any) bool {
	a := f.GetTypedConfig()
	switch {
	case a == nil:
	case a.MessageIs((*hcmv3.HttpConnectionManager)(nil)):
		var h hcmv3.HttpConnectionManager
		if a.UnmarshalTo(&h) == nil {
			h.AccessLog = append(h.AccessLog, logs...)
			addStatsHTTP(&h, stats)
			if tr != nil {
				h.Tracing = tr
				if rc := h.GetRouteConfig(); rc != nil {
					decorate(rc, g.inboundOperation)
				}
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&h)}
		}
	case a.MessageIs((*tcpproxyv3.TcpProxy)(nil)):
		if len(logs) > 0 {
			var t tcpproxyv3.TcpProxy
			if a.UnmarshalTo(&t) == nil {
				t.AccessLog = append(t.AccessLog, logs...)
				f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&t)}
			}
		}
		return stats != nil
	}
	return false
}
