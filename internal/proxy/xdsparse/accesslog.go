package xdsparse

import (
	"fmt"
	"sort"

	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// Field numbers of envoy.config.accesslog.v3.AccessLog, the access
// loggers' configs and envoy.config.core.v3.SubstitutionFormatString.
const (
	alName, alFilter, alTypedConfig = 1, 2, 4

	fileAccessLogPath, fileAccessLogText, fileAccessLogJSON = 1, 2, 3
	fileAccessLogTypedJSON, fileAccessLogFormat             = 4, 5
	streamAccessLogFormat                                   = 1

	sfsText, sfsJSON, sfsOmitEmpty, sfsContentType, sfsTextSource, sfsFormatters = 1, 2, 3, 4, 5, 6 // ds*: routewire.go
)

// Access loggers mast-proxy writes with.
const (
	fileAccessLogName   = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	stdoutAccessLogName = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	stderrAccessLogName = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
)

// parseAccessLogsWire parses an HttpConnectionManager's or TcpProxy's
// access_log: Envoy's file and stdout/stderr loggers with text or JSON
// formats. Other loggers, filters and format options are NACKed by name.
func parseAccessLogsWire(logs []*wireMsg) ([]accesslog.Config, error) {
	var out []accesslog.Config
	for i, l := range logs {
		c, err := parseAccessLogWire(l)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d] %q: %w", i, l.str(alName), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseAccessLogWire(l *wireMsg) (accesslog.Config, error) {
	var c accesslog.Config
	if l.has(alFilter) {
		f, err := parseAccessLogFilterWire(l.sub(alFilter))
		if err != nil {
			return c, fmt.Errorf("filter: %w", err)
		}
		c.Filter = f
	}
	a := typedConfig(l, alTypedConfig)
	if a == nil {
		return c, fmt.Errorf("typed_config: missing")
	}
	// format parses the logger's format: a SubstitutionFormatString, the
	// file logger's older format fields, or Envoy's default line.
	format := func() (*accesslog.Format, error) { return parseLogFormatWire(nil) }
	url := a.GetTypeUrl()
	switch {
	case anyIs(url, fileAccessLogName):
		f, err := unpackTyped(descFileAccessLog, a.GetValue())
		if err != nil {
			return c, err
		}
		if f.str(fileAccessLogPath) == "" {
			return c, fmt.Errorf("path: empty")
		}
		c.Path = f.str(fileAccessLogPath)
		switch {
		case f.has(fileAccessLogFormat):
			lf := f.sub(fileAccessLogFormat)
			format = func() (*accesslog.Format, error) { return parseLogFormatWire(lf) }
		case f.has(fileAccessLogText):
			text := f.str(fileAccessLogText)
			format = func() (*accesslog.Format, error) { return wrapFormat(accesslog.ParseText(text)) }
		case f.has(fileAccessLogJSON):
			b := f.msg(fileAccessLogJSON)
			format = func() (*accesslog.Format, error) { return jsonLogFormat(b) }
		case f.has(fileAccessLogTypedJSON):
			return c, fmt.Errorf("access_log_format typed_json_format: not supported")
		}
	case anyIs(url, stdoutAccessLogName), anyIs(url, stderrAccessLogName):
		di, path := int16(descStdoutAccessLog), "/dev/stdout"
		if anyIs(url, stderrAccessLogName) {
			di, path = descStderrAccessLog, "/dev/stderr"
		}
		s, err := unpackTyped(di, a.GetValue())
		if err != nil {
			return c, err
		}
		c.Path = path
		if s.has(streamAccessLogFormat) {
			lf := s.sub(streamAccessLogFormat)
			format = func() (*accesslog.Format, error) { return parseLogFormatWire(lf) }
		}
	default:
		return c, fmt.Errorf("typed_config %s: not supported", url)
	}
	f, err := format()
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

// parseLogFormatWire parses a SubstitutionFormatString (nil: Envoy's
// default line).
func parseLogFormatWire(s *wireMsg) (*accesslog.Format, error) {
	if s == nil {
		return accesslog.ParseText(envoyDefaultFormat)
	}
	switch {
	case s.u64(sfsOmitEmpty) != 0:
		return nil, fmt.Errorf("log_format.omit_empty_values: not supported")
	case s.str(sfsContentType) != "":
		return nil, fmt.Errorf("log_format.content_type: not supported")
	case len(s.field(sfsFormatters)) > 0:
		return nil, fmt.Errorf("log_format.formatters: not supported")
	}
	// json_format_options.sort_properties: keys are always written sorted.
	switch {
	case s.has(sfsText):
		return wrapFormat(accesslog.ParseText(s.str(sfsText)))
	case s.has(sfsTextSource):
		src := s.sub(sfsTextSource)
		if !src.has(dsInlineString) {
			return nil, fmt.Errorf("log_format.text_format_source: only inline_string is supported")
		}
		return wrapFormat(accesslog.ParseText(src.str(dsInlineString)))
	case s.has(sfsJSON):
		return jsonLogFormat(s.msg(sfsJSON))
	default:
		return nil, fmt.Errorf("log_format: no format (text_format, text_format_source or json_format)")
	}
}

// jsonLogFormat parses a json_format (a google.protobuf.Struct whose
// values are command operators); a key whose value is not a string is
// refused, the first in sorted order named.
func jsonLogFormat(b []byte) (*accesslog.Format, error) {
	st := decodeWire(descStruct, b)
	keys, values := st.mapEntries(structFields)
	fields := make(map[string]string, len(keys))
	var bad []string
	for i, k := range keys {
		v := decodeWire(descValue, values[i])
		if !v.has(valueStr) {
			bad = append(bad, k)
			continue
		}
		fields[k] = v.str(valueStr)
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("log_format.json_format %q: only string values (command operators) are supported", bad[0])
	}
	return wrapFormat(accesslog.ParseJSON(fields))
}

func wrapFormat(f *accesslog.Format, err error) (*accesslog.Format, error) {
	if err != nil {
		return nil, fmt.Errorf("log_format: %w", err)
	}
	f.SetHostname(hostname()) // %HOSTNAME% wrote "-" before
	return f, nil
}
