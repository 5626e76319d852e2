package xdsparse

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// parseAccessLogs parses an HttpConnectionManager's or TcpProxy's
// access_log: Envoy's file and stdout/stderr loggers with text or JSON
// formats. Other loggers, filters and format options are NACKed by name.
func parseAccessLogs(logs []*accesslogv3.AccessLog) ([]accesslog.Config, error) {
	var out []accesslog.Config
	for i, l := range logs {
		c, err := parseAccessLog(l)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d] %q: %w", i, l.GetName(), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseAccessLog(l *accesslogv3.AccessLog) (accesslog.Config, error) {
	var c accesslog.Config
	if l.GetFilter() != nil {
		f, err := parseAccessLogFilter(l.GetFilter())
		if err != nil {
			return c, fmt.Errorf("filter: %w", err)
		}
		c.Filter = f
	}
	a := l.GetTypedConfig()
	if a == nil {
		return c, fmt.Errorf("typed_config: missing")
	}
	var format *corev3.SubstitutionFormatString
	switch {
	case a.MessageIs((*filev3.FileAccessLog)(nil)):
		var f filev3.FileAccessLog
		if err := a.UnmarshalTo(&f); err != nil {
			return c, err
		}
		if f.GetPath() == "" {
			return c, fmt.Errorf("path: empty")
		}
		c.Path = f.GetPath()
		switch lf := f.GetAccessLogFormat().(type) {
		case nil:
		case *filev3.FileAccessLog_LogFormat:
			format = lf.LogFormat
		case *filev3.FileAccessLog_Format:
			format = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: lf.Format}}
		case *filev3.FileAccessLog_JsonFormat:
			format = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: lf.JsonFormat}}
		default:
			return c, fmt.Errorf("access_log_format %T: not supported", lf)
		}
	case a.MessageIs((*streamv3.StdoutAccessLog)(nil)):
		var s streamv3.StdoutAccessLog
		if err := a.UnmarshalTo(&s); err != nil {
			return c, err
		}
		c.Path, format = "/dev/stdout", s.GetLogFormat()
	case a.MessageIs((*streamv3.StderrAccessLog)(nil)):
		var s streamv3.StderrAccessLog
		if err := a.UnmarshalTo(&s); err != nil {
			return c, err
		}
		c.Path, format = "/dev/stderr", s.GetLogFormat()
	default:
		return c, fmt.Errorf("typed_config %s: not supported", a.GetTypeUrl())
	}
	f, err := parseLogFormat(format)
	if err != nil {
		return c, err
	}
	c.Format = f
	return c, nil
}

// envoyDefaultFormat is Envoy's own default line, used when a logger names
// no format (Istio always names one).
const envoyDefaultFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" " +
	"%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% " +
	"\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

func parseLogFormat(s *corev3.SubstitutionFormatString) (*accesslog.Format, error) {
	if s == nil {
		return accesslog.ParseText(envoyDefaultFormat)
	}
	switch {
	case s.GetOmitEmptyValues():
		return nil, fmt.Errorf("log_format.omit_empty_values: not supported")
	case s.GetContentType() != "":
		return nil, fmt.Errorf("log_format.content_type: not supported")
	case len(s.GetFormatters()) > 0:
		return nil, fmt.Errorf("log_format.formatters: not supported")
	case s.GetJsonFormatOptions().GetSortProperties():
		// Keys are always written sorted.
	}
	switch f := s.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		return wrapFormat(accesslog.ParseText(f.TextFormat))
	case *corev3.SubstitutionFormatString_TextFormatSource:
		in, ok := f.TextFormatSource.GetSpecifier().(*corev3.DataSource_InlineString)
		if !ok {
			return nil, fmt.Errorf("log_format.text_format_source: only inline_string is supported")
		}
		return wrapFormat(accesslog.ParseText(in.InlineString))
	case *corev3.SubstitutionFormatString_JsonFormat:
		fields := map[string]string{}
		for k, v := range f.JsonFormat.GetFields() {
			sv, ok := v.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("log_format.json_format %q: only string values (command operators) are supported", k)
			}
			fields[k] = sv.StringValue
		}
		return wrapFormat(accesslog.ParseJSON(fields))
	default:
		return nil, fmt.Errorf("log_format %T: not supported", f)
	}
}

func wrapFormat(f *accesslog.Format, err error) (*accesslog.Format, error) {
	if err != nil {
		return nil, fmt.Errorf("log_format: %w", err)
	}
	f.SetHostname(hostname()) // %HOSTNAME% wrote "-" before
	return f, nil
}
