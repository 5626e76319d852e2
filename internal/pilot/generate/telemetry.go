package generate

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Istio's access log formats (pilot/pkg/model/telemetry_logging.go).
const istioTextLogFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% " +
	"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% " +
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% " +
	"%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" " +
	"\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" " +
	"\"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% " +
	"%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% " +
	"%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"

var istioJSONLogFields = map[string]string{
	"start_time": "%START_TIME%", "method": "%REQ(:METHOD)%", "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
	"response_code_details": "%RESPONSE_CODE_DETAILS%", "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
	"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%", "bytes_received": "%BYTES_RECEIVED%",
	"bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%", "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"x_forwarded_for": "%REQ(X-FORWARDED-FOR)%", "user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%",
	"authority": "%REQ(:AUTHORITY)%", "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
	"upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%", "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
	"downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%", "requested_server_name": "%REQUESTED_SERVER_NAME%",
	"route_name": "%ROUTE_NAME%",
}

// meshAccessLog is the file access log MeshConfig asks for, nil when
// accessLogFile is empty (Istio's default: off).
func meshAccessLog(m model.MeshConfig) *accesslogv3.AccessLog {
	if m.AccessLogFile == "" {
		return nil
	}
	f := &filev3.FileAccessLog{Path: m.AccessLogFile}
	if m.AccessLogEncoding == "JSON" {
		fields := map[string]*structpb.Value{}
		for k, v := range istioJSONLogFields {
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
		text := istioTextLogFormat
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

// withTelemetry adds the access logs that apply to every HTTP connection
// manager and TCP proxy of the listeners. Listeners may be shared between
// proxies within a push, so changed ones are copies.
func (g *gen) withTelemetry(out []model.XDSResource) []model.XDSResource {
	al := meshAccessLog(g.pc.Mesh)
	if al == nil {
		return out
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
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				addAccessLog(f, al)
			}
		}
		out[i].Resource = l
	}
	return out
}

func addAccessLog(f *listenerv3.Filter, al *accesslogv3.AccessLog) {
	a := f.GetTypedConfig()
	switch {
	case a == nil:
	case a.MessageIs((*hcmv3.HttpConnectionManager)(nil)):
		var h hcmv3.HttpConnectionManager
		if a.UnmarshalTo(&h) == nil {
			h.AccessLog = append(h.AccessLog, al)
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&h)}
		}
	case a.MessageIs((*tcpproxyv3.TcpProxy)(nil)):
		var t tcpproxyv3.TcpProxy
		if a.UnmarshalTo(&t) == nil {
			t.AccessLog = append(t.AccessLog, al)
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&t)}
		}
	}
}
