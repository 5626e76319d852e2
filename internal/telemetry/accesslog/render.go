package accesslog

import (
	"net"
	"strconv"
	"unicode/utf8"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// Append appends the log line for r to b.
func (f *Format) Append(b []byte, r *telemetry.Record) []byte {
	if !f.json {
		return f.appendSegs(b, f.segs, r)
	}
	b = append(b, '{')
	for i := range f.fields {
		fl := &f.fields[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, fl.key)
		b = append(b, ':')
		if len(fl.segs) == 1 && fl.segs[0].kind != opLiteral {
			start := len(b)
			var ok bool
			b, ok = f.appendValue(b, &fl.segs[0], r)
			switch {
			case !ok:
				b = append(b[:start], "null"...)
			case fl.segs[0].kind.numeric():
			default:
				v := string(b[start:])
				b = appendJSONString(b[:start], v)
			}
			continue
		}
		start := len(b)
		b = f.appendSegs(b, fl.segs, r)
		v := string(b[start:])
		b = appendJSONString(b[:start], v)
	}
	return append(b, '}', '\n')
}

func (f *Format) appendSegs(b []byte, segs []segment, r *telemetry.Record) []byte {
	for i := range segs {
		s := &segs[i]
		if s.kind == opLiteral {
			b = append(b, s.lit...)
			continue
		}
		var ok bool
		if b, ok = f.appendValue(b, s, r); !ok && !f.header {
			b = append(b, '-')
		}
	}
	return b
}

func str(b []byte, v string) ([]byte, bool) {
	if v == "" {
		return b, false
	}
	return append(b, v...), true
}

// appendValue appends one operator's value, or nothing and false when the
// value is not set (written "-" in text and null in JSON).
func (f *Format) appendValue(b []byte, s *segment, r *telemetry.Record) ([]byte, bool) {
	start := len(b)
	var ok bool
	b, ok = f.value(b, s, r)
	if ok && s.maxLen > 0 && len(b)-start > s.maxLen {
		b = b[:start+s.maxLen]
	}
	return b, ok
}

func (f *Format) value(b []byte, s *segment, r *telemetry.Record) ([]byte, bool) {
	switch s.kind {
	case opStartTime:
		if r.Start.IsZero() {
			return b, false
		}
		return appendStartTime(b, s, r.Start), true
	case opReq:
		v, ok := reqHeader(r, s.h1)
		if !ok && s.h2 != "" {
			v, ok = reqHeader(r, s.h2)
		}
		if !ok {
			return b, false
		}
		return str(b, v)
	case opResp, opTrailer:
		v, ok := respHeader(r, s.h1)
		if !ok && s.h2 != "" {
			v, ok = respHeader(r, s.h2)
		}
		if !ok {
			return b, false
		}
		return str(b, v)
	case opProtocol:
		if r.TCP {
			return b, false
		}
		return str(b, r.Protocol)
	case opMethod:
		return str(b, r.Method)
	case opResponseCode:
		if r.TCP {
			return append(b, '0'), true
		}
		return strconv.AppendInt(b, int64(r.ResponseCode), 10), true
	case opResponseFlags:
		return append(b, r.Flags.String()...), true
	case opResponseCodeDetails:
		return str(b, r.ResponseDetails)
	case opTerminationDetails:
		return str(b, r.TerminationDetail)
	case opUpstreamFailure:
		return str(b, r.UpstreamFailure)
	case opBytesReceived:
		return strconv.AppendInt(b, r.BytesReceived, 10), true
	case opBytesSent:
		return strconv.AppendInt(b, r.BytesSent, 10), true
	case opDuration:
		return strconv.AppendInt(b, r.Duration.Milliseconds(), 10), true
	case opUpstreamHost:
		return str(b, r.UpstreamHost)
	case opUpstreamRemoteNoPort:
		return str(b, hostOnly(r.UpstreamHost))
	case opUpstreamCluster:
		return str(b, r.UpstreamCluster)
	case opUpstreamLocal:
		return str(b, r.UpstreamLocalAddress)
	case opDownstreamLocal:
		return str(b, r.DownstreamLocal)
	case opDownstreamLocalNoPort:
		return str(b, hostOnly(r.DownstreamLocal))
	case opDownstreamRemote:
		return str(b, r.DownstreamRemote)
	case opDownstreamRemoteNoPort:
		return str(b, hostOnly(r.DownstreamRemote))
	case opDownstreamPeerURISAN:
		return str(b, r.DownstreamPrincipal)
	case opUpstreamPeerURISAN:
		return str(b, r.UpstreamPrincipal)
	case opRequestedServerName:
		return str(b, r.RequestedServerName)
	case opRouteName:
		return str(b, r.RouteName)
	case opGRPCStatus:
		return str(b, r.GRPCStatus)
	case opHostname:
		return str(b, f.host)
	}
	return b, false
}

func hostOnly(a string) string {
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

func reqHeader(r *telemetry.Record, name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, r.Method != ""
	case ":path":
		return r.Path, r.Path != ""
	case ":authority", "host":
		return r.Authority, r.Authority != ""
	case "x-envoy-original-path":
		if r.OriginalPath != "" {
			return r.OriginalPath, true
		}
	}
	return r.RequestHeaders.Get(name)
}

func respHeader(r *telemetry.Record, name string) (string, bool) {
	if name == ":status" {
		if r.ResponseCode == 0 {
			return "", false
		}
		return strconv.Itoa(r.ResponseCode), true
	}
	if v, ok := r.ResponseHeaders.Get(name); ok {
		return v, true
	}
	// The router's upstream time, when the response did not carry the
	// header Envoy's router adds.
	if name == "x-envoy-upstream-service-time" && r.UpstreamServiceTime > 0 {
		return strconv.FormatInt(r.UpstreamServiceTime.Milliseconds(), 10), true
	}
	return "", false
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				switch c {
				case '\n':
					b = append(b, '\\', 'n')
				case '\r':
					b = append(b, '\\', 'r')
				case '\t':
					b = append(b, '\\', 't')
				default:
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				}
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
