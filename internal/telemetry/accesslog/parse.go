package accesslog

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Entry is one access log line in Istio's default format (TEXT or JSON)
// read back: what `mast why` follows a request by.
type Entry struct {
	Start                time.Time
	Method, Path         string
	Protocol             string
	ResponseCode         int
	ResponseFlags        string // "-" for none
	ResponseCodeDetails  string
	TerminationDetails   string
	UpstreamFailure      string // %UPSTREAM_TRANSPORT_FAILURE_REASON%
	BytesReceived        int64
	BytesSent            int64
	Duration             time.Duration
	UpstreamServiceTime  string
	ForwardedFor         string
	UserAgent            string
	RequestID            string
	Authority            string
	UpstreamHost         string
	UpstreamCluster      string
	UpstreamLocalAddress string
	DownstreamLocal      string
	DownstreamRemote     string
	RequestedServerName  string
	RouteName            string
}

var errNotEntry = errors.New("not an access log line in Istio's default format")

// ParseLine reads one line written in Istio's default TEXT format
// (IstioTextFormat) or JSON format (IstioJSONFormat). Absent values ("-",
// JSON null) are "". Lines of other formats are an error.
func ParseLine(line string) (Entry, error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "{") {
		return parseJSONLine(line)
	}
	if !strings.HasPrefix(line, "[") {
		return Entry{}, errNotEntry
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return Entry{}, errNotEntry
	}
	var e Entry
	t, err := time.Parse(time.RFC3339Nano, line[1:end])
	if err != nil {
		return Entry{}, errNotEntry
	}
	e.Start = t
	toks, ok := tokens(line[end+1:])
	if !ok {
		return Entry{}, errNotEntry
	}
	reqLine := strings.Fields(toks[0])
	if len(reqLine) == 3 {
		e.Method, e.Path, e.Protocol = dash(reqLine[0]), dash(reqLine[1]), dash(reqLine[2])
	}
	if e.ResponseCode, err = strconv.Atoi(toks[1]); err != nil {
		return Entry{}, errNotEntry
	}
	e.ResponseFlags = toks[2]
	e.ResponseCodeDetails = dash(toks[3])
	e.TerminationDetails = dash(toks[4])
	e.UpstreamFailure = dash(toks[5])
	e.BytesReceived, _ = strconv.ParseInt(toks[6], 10, 64)
	e.BytesSent, _ = strconv.ParseInt(toks[7], 10, 64)
	ms, _ := strconv.ParseInt(toks[8], 10, 64)
	e.Duration = time.Duration(ms) * time.Millisecond
	e.UpstreamServiceTime = dash(toks[9])
	e.ForwardedFor, e.UserAgent, e.RequestID, e.Authority = dash(toks[10]), dash(toks[11]), dash(toks[12]), dash(toks[13])
	e.UpstreamHost, e.UpstreamCluster, e.UpstreamLocalAddress = dash(toks[14]), dash(toks[15]), dash(toks[16])
	e.DownstreamLocal, e.DownstreamRemote = dash(toks[17]), dash(toks[18])
	e.RequestedServerName, e.RouteName = dash(toks[19]), dash(toks[20])
	return e, nil
}

// tokens splits the rest of a text line into the 21 fields of Istio's
// format: "quoted" values (which may hold spaces; a backslash escapes a
// quote) and bare words.
func tokens(s string) ([]string, bool) {
	var out []string
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		if len(out) == 21 {
			return nil, false // more fields than Istio's format has
		}
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			out = append(out, b.String())
			s = s[i+1:]
			continue
		}
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			i = len(s)
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out, len(out) == 21
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func parseJSONLine(line string) (Entry, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return Entry{}, errNotEntry
	}
	str := func(k string) string {
		if v, ok := m[k].(string); ok {
			return dash(v)
		}
		return ""
	}
	num := func(k string) int64 {
		switch v := m[k].(type) {
		case float64:
			return int64(v)
		case string:
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
		return 0
	}
	start, err := time.Parse(time.RFC3339Nano, str("start_time"))
	if err != nil {
		return Entry{}, errNotEntry
	}
	if _, ok := m["response_code"]; !ok {
		return Entry{}, errNotEntry
	}
	e := Entry{
		Start: start, Method: str("method"), Path: str("path"), Protocol: str("protocol"),
		ResponseCode: int(num("response_code")), ResponseFlags: str("response_flags"),
		ResponseCodeDetails: str("response_code_details"), TerminationDetails: str("connection_termination_details"),
		UpstreamFailure: str("upstream_transport_failure_reason"), BytesReceived: num("bytes_received"),
		BytesSent: num("bytes_sent"), Duration: time.Duration(num("duration")) * time.Millisecond,
		UpstreamServiceTime: str("upstream_service_time"), ForwardedFor: str("x_forwarded_for"),
		UserAgent: str("user_agent"), RequestID: str("request_id"), Authority: str("authority"),
		UpstreamHost: str("upstream_host"), UpstreamCluster: str("upstream_cluster"),
		UpstreamLocalAddress: str("upstream_local_address"), DownstreamLocal: str("downstream_local_address"),
		DownstreamRemote: str("downstream_remote_address"), RequestedServerName: str("requested_server_name"),
		RouteName: str("route_name"),
	}
	if e.ResponseFlags == "" {
		e.ResponseFlags = "-"
	}
	return e, nil
}
