package xdsparse

import (
	"fmt"
	"sort"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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
func parseAccessLogsWire(logs []*pbwire.Msg) ([]accesslog.Config, error) {
	var out []accesslog.Config
	for i, l := range logs {
		c, err := parseAccessLogWire(l)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d] %q: %w", i, l.Str(alName), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseAccessLogWire(l *pbwire.Msg) (accesslog.Config, error) {
	var c accesslog.Config
	if l.Has(alFilter) {
		f, err := parseAccessLogFilterWire(l.Sub(alFilter))
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
		if f.Str(fileAccessLogPath) == "" {
			return c, fmt.Errorf("path: empty")
		}
		c.Path = f.Str(fileAccessLogPath)
		switch {
		case f.Has(fileAccessLogFormat):
			lf := f.Sub(fileAccessLogFormat)
			format = func() (*accesslog.Format, error) { return parseLogFormatWire(lf) }
		case f.Has(fileAccessLogText):
			text := f.Str(fileAccessLogText)
			format = func() (*accesslog.Format, error) { return wrapFormat(accesslog.ParseText(text)) }
		case f.Has(fileAccessLogJSON):
			b := f.Bytes(fileAccessLogJSON)
			format = func() (*accesslog.Format, error) { return jsonLogFormat(b) }
		case f.Has(fileAccessLogTypedJSON):
			return c, fmt.Errorf("access_log_format typed_json_format: not supported")
		}
	case anyIs(url, stdoutAccessLogName), anyIs(url, stderrAccessLogName):
		di, path := descStdoutAccessLog, "/dev/stdout"
		if anyIs(url, stderrAccessLogName) {
			di, path = descStderrAccessLog, "/dev/stderr"
		}
		s, err := unpackTyped(di, a.GetValue())
		if err != nil {
			return c, err
		}
		c.Path = path
		if s.Has(streamAccessLogFormat) {
			lf := s.Sub(streamAccessLogFormat)
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
func parseLogFormatWire(s *pbwire.Msg) (*accesslog.Format, error) {
	if s == nil {
		return accesslog.ParseText(envoyDefaultFormat)
	}
	switch {
	case s.U64(sfsOmitEmpty) != 0:
		return nil, fmt.Errorf("log_format.omit_empty_values: not supported")
	case s.Str(sfsContentType) != "":
		return nil, fmt.Errorf("log_format.content_type: not supported")
	case len(s.Vals(sfsFormatters)) > 0:
		return nil, fmt.Errorf("log_format.formatters: not supported")
	}
	// json_format_options.sort_properties: keys are always written sorted.
	switch {
	case s.Has(sfsText):
		return wrapFormat(accesslog.ParseText(s.Str(sfsText)))
	case s.Has(sfsTextSource):
		src := s.Sub(sfsTextSource)
		if !src.Has(dsInlineString) {
			return nil, fmt.Errorf("log_format.text_format_source: only inline_string is supported")
		}
		return wrapFormat(accesslog.ParseText(src.Str(dsInlineString)))
	case s.Has(sfsJSON):
		return jsonLogFormat(s.Bytes(sfsJSON))
	default:
		return nil, fmt.Errorf("log_format: no format (text_format, text_format_source or json_format)")
	}
}

// jsonLogFormat parses a json_format (a google.protobuf.Struct whose
// values are command operators); a key whose value is not a string is
// refused, the first in sorted order named.
func jsonLogFormat(b []byte) (*accesslog.Format, error) {
	st := decodeWire(descStruct, b)
	keys, values := mapEntries(st, structFields)
	fields := make(map[string]string, len(keys))
	var bad []string
	for i, k := range keys {
		v := decodeWire(descValue, values[i])
		if !v.Has(valueStr) {
			bad = append(bad, k)
			continue
		}
		fields[k] = v.Str(valueStr)
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
