// Package accesslog formats and writes access logs with Envoy's command
// operators (%START_TIME%, %REQ(X?Y):Z%, %RESPONSE_FLAGS%, ...): text
// formats such as Istio's default line, and JSON objects. Formats are
// parsed once, from MeshConfig or xDS, and an unknown operator is an error
// naming it.
package accesslog

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// IstioTextFormat is Istio's default TEXT access log format
// (pilot/pkg/model/telemetry_logging.go, EnvoyTextLogFormat).
const IstioTextFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% " +
	"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% " +
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% " +
	"%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" " +
	"\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" " +
	"\"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% " +
	"%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% " +
	"%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"

// IstioJSONFormat is Istio's default JSON access log (EnvoyJSONLogFormatIstio).
var IstioJSONFormat = map[string]string{
	"start_time":                        "%START_TIME%",
	"method":                            "%REQ(:METHOD)%",
	"path":                              "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":                          "%PROTOCOL%",
	"response_code":                     "%RESPONSE_CODE%",
	"response_flags":                    "%RESPONSE_FLAGS%",
	"response_code_details":             "%RESPONSE_CODE_DETAILS%",
	"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
	"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	"bytes_received":                    "%BYTES_RECEIVED%",
	"bytes_sent":                        "%BYTES_SENT%",
	"duration":                          "%DURATION%",
	"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
	"user_agent":                        "%REQ(USER-AGENT)%",
	"request_id":                        "%REQ(X-REQUEST-ID)%",
	"authority":                         "%REQ(:AUTHORITY)%",
	"upstream_host":                     "%UPSTREAM_HOST%",
	"upstream_cluster":                  "%UPSTREAM_CLUSTER_RAW%",
	"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
	"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
	"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
	"requested_server_name":             "%REQUESTED_SERVER_NAME%",
	"route_name":                        "%ROUTE_NAME%",
}

type opKind uint8

const (
	opLiteral opKind = iota
	opStartTime
	opReq
	opResp
	opTrailer
	opProtocol
	opMethod
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opTerminationDetails
	opUpstreamFailure
	opBytesReceived
	opBytesSent
	opDuration
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocal
	opDownstreamLocal
	opDownstreamLocalNoPort
	opDownstreamRemote
	opDownstreamRemoteNoPort
	opDownstreamPeerURISAN
	opUpstreamPeerURISAN
	opRequestedServerName
	opRouteName
	opGRPCStatus
	opHostname
	opUpstreamRemoteNoPort
)

var simpleOps = map[string]opKind{
	"PROTOCOL":                               opProtocol,
	"METHOD":                                 opMethod,
	"RESPONSE_CODE":                          opResponseCode,
	"RESPONSE_FLAGS":                         opResponseFlags,
	"RESPONSE_CODE_DETAILS":                  opResponseCodeDetails,
	"CONNECTION_TERMINATION_DETAILS":         opTerminationDetails,
	"UPSTREAM_TRANSPORT_FAILURE_REASON":      opUpstreamFailure,
	"BYTES_RECEIVED":                         opBytesReceived,
	"BYTES_SENT":                             opBytesSent,
	"DURATION":                               opDuration,
	"UPSTREAM_HOST":                          opUpstreamHost,
	"UPSTREAM_REMOTE_ADDRESS":                opUpstreamHost,
	"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":   opUpstreamRemoteNoPort,
	"UPSTREAM_CLUSTER":                       opUpstreamCluster,
	"UPSTREAM_CLUSTER_RAW":                   opUpstreamCluster,
	"UPSTREAM_LOCAL_ADDRESS":                 opUpstreamLocal,
	"DOWNSTREAM_LOCAL_ADDRESS":               opDownstreamLocal,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":  opDownstreamLocalNoPort,
	"DOWNSTREAM_REMOTE_ADDRESS":              opDownstreamRemote,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": opDownstreamRemoteNoPort,
	"DOWNSTREAM_PEER_URI_SAN":                opDownstreamPeerURISAN,
	"UPSTREAM_PEER_URI_SAN":                  opUpstreamPeerURISAN,
	"REQUESTED_SERVER_NAME":                  opRequestedServerName,
	"ROUTE_NAME":                             opRouteName,
	"GRPC_STATUS":                            opGRPCStatus,
	"HOSTNAME":                               opHostname,
}

// numeric operators are written as JSON numbers.
func (k opKind) numeric() bool {
	return k == opResponseCode || k == opBytesReceived || k == opBytesSent || k == opDuration
}

type segment struct {
	kind    opKind
	name    string // the operator's name, for messages
	lit     string // literal text, or the time layout of START_TIME
	h1, h2  string // REQ/RESP/TRAILER header and its alternative (lower case)
	maxLen  int    // :Z truncation, 0 for none
	strftim []timePart
}

// Format is a parsed access log format, or header value (ParseHeaderValue).
type Format struct {
	json   bool
	header bool        // a header value: an operator without a value writes nothing
	segs   []segment   // text
	fields []jsonField // JSON, sorted by key as Envoy writes them
	host   string
}

type jsonField struct {
	key  string
	segs []segment
}

// ParseText parses a text format string; a format without a trailing
// newline gets one, as Istio adds it.
func ParseText(s string) (*Format, error) {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	segs, err := parseSegments(s)
	if err != nil {
		return nil, err
	}
	return &Format{segs: segs}, nil
}

// ParseJSON parses a JSON format: field names to format strings.
func ParseJSON(fields map[string]string) (*Format, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("json format: no fields")
	}
	f := &Format{json: true}
	for k, v := range fields {
		segs, err := parseSegments(v)
		if err != nil {
			return nil, fmt.Errorf("json format field %q: %w", k, err)
		}
		f.fields = append(f.fields, jsonField{key: k, segs: segs})
	}
	sort.Slice(f.fields, func(i, j int) bool { return f.fields[i].key < f.fields[j].key })
	return f, nil
}

// headerOps are the operators whose values a proxy knows while it adds
// request or response headers (Envoy's request_headers_to_add and
// response_headers_to_add); those about the finished stream (bytes,
// duration, details) are not.
var headerOps = map[opKind]bool{
	opStartTime: true, opReq: true, opResp: true, opProtocol: true, opResponseCode: true, opResponseFlags: true,
	opUpstreamHost: true, opUpstreamRemoteNoPort: true, opUpstreamCluster: true,
	opDownstreamLocal: true, opDownstreamLocalNoPort: true, opDownstreamRemote: true, opDownstreamRemoteNoPort: true,
	opDownstreamPeerURISAN: true, opRequestedServerName: true, opRouteName: true, opHostname: true,
}

// ParseHeaderValue parses a header value written with Envoy's command
// operators ("%DOWNSTREAM_REMOTE_ADDRESS%", "%REQ(x-user)%", "%%" for a
// literal %). It returns nil when the value has no operator (literal is
// then the value). An operator that headers cannot carry is an error
// naming it.
func ParseHeaderValue(s string) (f *Format, literal string, err error) {
	if !strings.Contains(s, "%") {
		return nil, s, nil
	}
	segs, err := parseSegments(s)
	if err != nil {
		return nil, "", err
	}
	if len(segs) == 0 {
		return nil, "", nil
	}
	if len(segs) == 1 && segs[0].kind == opLiteral {
		return nil, segs[0].lit, nil
	}
	for _, sg := range segs {
		if sg.kind != opLiteral && !headerOps[sg.kind] {
			return nil, "", fmt.Errorf("command operator %%%s%%: not supported in header values", sg.name)
		}
	}
	return &Format{header: true, segs: segs}, "", nil
}

// HeaderValue renders a header value format for r.
func (f *Format) HeaderValue(r *telemetry.Record) string {
	var buf [128]byte
	return string(f.appendSegs(buf[:0], f.segs, r))
}

// SetHostname sets what %HOSTNAME% writes.
func (f *Format) SetHostname(h string) { f.host = h }

func parseSegments(s string) ([]segment, error) {
	var out []segment
	lit := strings.Builder{}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' { // %% is a literal %
			lit.WriteByte('%')
			i += 2
			continue
		}
		end, seg, err := parseOperator(s, i)
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			out = append(out, segment{kind: opLiteral, lit: lit.String()})
			lit.Reset()
		}
		out = append(out, seg)
		i = end
	}
	if lit.Len() > 0 {
		out = append(out, segment{kind: opLiteral, lit: lit.String()})
	}
	return out, nil
}

// parseOperator parses the operator starting at s[i] == '%' and returns the
// index after its closing '%'.
func parseOperator(s string, i int) (int, segment, error) {
	j := i + 1
	for j < len(s) && (s[j] >= 'A' && s[j] <= 'Z' || s[j] == '_' || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	name := s[i+1 : j]
	if name == "" {
		return 0, segment{}, fmt.Errorf("offset %d: '%%' starts no command operator (write %%%% for a literal %%)", i)
	}
	var arg string
	hasArg := false
	if j < len(s) && s[j] == '(' {
		k := strings.IndexByte(s[j:], ')')
		if k < 0 {
			return 0, segment{}, fmt.Errorf("%%%s: unclosed '('", name)
		}
		arg, hasArg = s[j+1:j+k], true
		j += k + 1
	}
	maxLen := 0
	if j < len(s) && s[j] == ':' {
		k := j + 1
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		n, err := strconv.Atoi(s[j+1 : k])
		if err != nil || n <= 0 {
			return 0, segment{}, fmt.Errorf("%%%s: length after ':' must be a positive number", name)
		}
		maxLen, j = n, k
	}
	if j >= len(s) || s[j] != '%' {
		return 0, segment{}, fmt.Errorf("%%%s: missing closing '%%'", name)
	}
	seg := segment{maxLen: maxLen, name: name}
	switch name {
	case "REQ", "RESP", "TRAILER":
		if !hasArg || arg == "" {
			return 0, segment{}, fmt.Errorf("%%%s: needs a header name, e.g. %%%s(X-REQUEST-ID)%%", name, name)
		}
		seg.kind = map[string]opKind{"REQ": opReq, "RESP": opResp, "TRAILER": opTrailer}[name]
		h1, h2, _ := strings.Cut(arg, "?")
		seg.h1, seg.h2 = strings.ToLower(h1), strings.ToLower(h2)
		if strings.Contains(h2, "?") {
			return 0, segment{}, fmt.Errorf("%%%s(%s): at most one alternative header", name, arg)
		}
	case "START_TIME":
		seg.kind = opStartTime
		if hasArg && arg != "" {
			parts, err := parseStrftime(arg)
			if err != nil {
				return 0, segment{}, fmt.Errorf("%%START_TIME(%s)%%: %w", arg, err)
			}
			seg.strftim = parts
		}
	default:
		k, ok := simpleOps[name]
		if !ok {
			return 0, segment{}, fmt.Errorf("command operator %%%s%%: not supported", name)
		}
		if hasArg {
			return 0, segment{}, fmt.Errorf("%%%s%%: takes no argument", name)
		}
		seg.kind = k
	}
	return j + 1, seg, nil
}

// defaultStartTime is Envoy's default %START_TIME% layout (UTC, milliseconds).
const defaultStartTime = "2006-01-02T15:04:05.000Z"

type timePart struct {
	lit    string
	layout string // Go layout, or "" for special
	unix   bool   // %s
}

// parseStrftime turns the strftime subset Envoy users write into Go layouts.
func parseStrftime(f string) ([]timePart, error) {
	conv := map[string]string{"Y": "2006", "m": "01", "d": "02", "H": "15", "M": "04", "S": "05", "y": "06",
		"b": "Jan", "a": "Mon", "z": "-0700", "Z": "MST", "3f": "000", "6f": "000000", "9f": "000000000",
		"E3S": "05.000", "E6S": "05.000000", "E9S": "05.000000000", "F": "2006-01-02", "T": "15:04:05"}
	var out []timePart
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			out = append(out, timePart{lit: f[i : i+1]})
			continue
		}
		rest := f[i+1:]
		if rest[0] == 's' {
			out = append(out, timePart{unix: true})
			i++
			continue
		}
		matched := false
		for _, k := range []string{"E3S", "E6S", "E9S", "3f", "6f", "9f", "Y", "m", "d", "H", "M", "S", "y", "b", "a", "z", "Z", "F", "T"} {
			if strings.HasPrefix(rest, k) {
				out = append(out, timePart{layout: conv[k]})
				i += len(k)
				matched = true
				break
			}
		}
		if !matched {
			return nil, fmt.Errorf("%%%c: not supported", rest[0])
		}
	}
	return out, nil
}

func appendStartTime(b []byte, s *segment, t time.Time) []byte {
	t = t.UTC()
	if s.strftim == nil {
		return t.AppendFormat(b, defaultStartTime)
	}
	for _, p := range s.strftim {
		switch {
		case p.unix:
			b = strconv.AppendInt(b, t.Unix(), 10)
		case p.layout != "":
			if p.layout[0] == '0' && strings.Trim(p.layout, "0") == "" { // fractional digits alone
				frac := t.Format("." + p.layout)
				b = append(b, frac[1:]...)
			} else {
				b = t.AppendFormat(b, p.layout)
			}
		default:
			b = append(b, p.lit...)
		}
	}
	return b
}
