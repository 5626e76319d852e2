package accesslog

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// istioDocsRecord is the request behind the access log line in Istio's
// "Envoy Access Logs" task (curl to httpbin's /status/418).
func istioDocsRecord() *telemetry.Record {
	return &telemetry.Record{
		Start:    time.Date(2020, 11, 25, 21, 26, 18, 409_000_000, time.UTC),
		Duration: 4 * time.Millisecond, UpstreamServiceTime: 4 * time.Millisecond,
		Outbound: true, Protocol: "HTTP/1.1", Method: "GET", Path: "/status/418", Authority: "httpbin:8000",
		RequestHeaders: headers.List{{Name: "user-agent", Value: "curl/7.73.0-DEV"}, {Name: "x-request-id", Value: "84961386-6d84-929d-98bd-c5aee93b5c88"}},
		ResponseCode:   418, ResponseDetails: "via_upstream", BytesReceived: 0, BytesSent: 135,
		UpstreamHost: "10.44.1.27:80", UpstreamCluster: "outbound|8000||httpbin.foo.svc.cluster.local",
		UpstreamLocalAddress: "10.44.1.23:37652", DownstreamLocal: "10.0.45.184:8000", DownstreamRemote: "10.44.1.23:46520",
		RouteName: "default",
	}
}

// The line Istio's documentation shows for that request.
const istioDocsLine = `[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default` + "\n"

func TestIstioDefaultTextFieldByField(t *testing.T) {
	f, err := ParseText(IstioTextFormat)
	if err != nil {
		t.Fatal(err)
	}
	got := string(f.Append(nil, istioDocsRecord()))
	gf, wf := strings.Fields(got), strings.Fields(istioDocsLine)
	names := []string{"[START_TIME]", `"METHOD`, "PATH", `PROTOCOL"`, "RESPONSE_CODE", "RESPONSE_FLAGS", "RESPONSE_CODE_DETAILS",
		"CONNECTION_TERMINATION_DETAILS", "UPSTREAM_TRANSPORT_FAILURE_REASON", "BYTES_RECEIVED", "BYTES_SENT", "DURATION",
		"UPSTREAM_SERVICE_TIME", "X-FORWARDED-FOR", "USER-AGENT", "X-REQUEST-ID", "AUTHORITY", "UPSTREAM_HOST", "UPSTREAM_CLUSTER_RAW",
		"UPSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS", "REQUESTED_SERVER_NAME", "ROUTE_NAME"}
	if len(gf) != len(wf) || len(wf) != len(names) {
		t.Fatalf("%d fields, want %d:\n got %s\nwant %s", len(gf), len(wf), got, istioDocsLine)
	}
	for i := range wf {
		if gf[i] != wf[i] {
			t.Errorf("field %d %s = %s, want %s", i, names[i], gf[i], wf[i])
		}
	}
	if got != istioDocsLine {
		t.Errorf("line:\n got %q\nwant %q", got, istioDocsLine)
	}
}

func TestFormatsGolden(t *testing.T) {
	rec := istioDocsRecord()
	rec.Flags = telemetry.FaultInjected | telemetry.DelayInjected
	rec.ResponseDetails = "fault_filter_abort"
	rec.RequestHeaders = append(rec.RequestHeaders, headers.Field{Name: "x-forwarded-for", Value: "1.2.3.4"}, headers.Field{Name: "user-agent2", Value: "q\"uote\n"})
	rec.OriginalPath = "/before/rewrite"
	tcp := &telemetry.Record{TCP: true, Start: rec.Start, Duration: 2 * time.Second, BytesReceived: 10, BytesSent: 20,
		UpstreamHost: "10.0.0.5:27017", UpstreamCluster: "outbound|27017||mongo.default.svc.cluster.local", DownstreamRemote: "10.0.0.9:5555"}
	jsonF, err := ParseJSON(IstioJSONFormat)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := ParseText(`%START_TIME(%Y/%m/%dT%H:%M:%S.%3f %s)% %REQ(USER-AGENT2):4% %REQ(X-MISSING?USER-AGENT)% 100%% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %RESP(:STATUS)%`)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := ParseText(IstioTextFormat)
	var out bytes.Buffer
	for _, f := range []*Format{text, jsonF, custom} {
		out.Write(f.Append(nil, rec))
		out.Write(f.Append(nil, tcp))
	}
	// JSON lines are valid JSON with typed values.
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(line, "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			if _, ok := m["response_code"].(float64); !ok {
				t.Errorf("response_code not a number: %s", line)
			}
			if m["requested_server_name"] != nil {
				t.Errorf("unset value not null: %s", line)
			}
			if len(m) != len(IstioJSONFormat) {
				t.Errorf("%d fields", len(m))
			}
		}
	}
	golden := filepath.Join("testdata", "formats.golden")
	if *update {
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("output differs from %s (-update to rewrite):\n%s", golden, out.String())
	}
}

func TestParseErrorsNameTheOperator(t *testing.T) {
	for in, want := range map[string]string{
		"%NOPE%":                "%NOPE%: not supported",
		"%REQ()%":               "needs a header name",
		"%DURATION":             "missing closing",
		"%START_TIME(%Q)%":      "%Q: not supported",
		"%REQ(X:Y%":             "unclosed",
		"%DURATION(x)%":         "takes no argument",
		"50% off":               "starts no command operator",
		"%REQ(USER-AGENT):0%":   "positive number",
		"%REQ(A?B?C)%":          "one alternative",
		"%RESPONSE_FLAGS_LONG%": "not supported",
	} {
		_, err := ParseText(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	if _, err := ParseJSON(map[string]string{"a": "%BAD%"}); err == nil || !strings.Contains(err.Error(), `field "a"`) {
		t.Errorf("json: %v", err)
	}
}

func TestSinkWritesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "access.log")
	s, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ParseText(IstioTextFormat)
	s.Log(f, istioDocsRecord())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != istioDocsLine {
		t.Errorf("file: %q", b)
	}
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{IstioTextFormat, "%REQ(A?B):3%", "%START_TIME(%s.%3f)%", "%%", "%", "%(%", "%REQ(%"} {
		f.Add(s)
	}
	rec := istioDocsRecord()
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := ParseText(s)
		if err != nil {
			return
		}
		fm.Append(nil, rec)
		fm.Append(nil, &telemetry.Record{})
	})
}

func BenchmarkIstioText(b *testing.B) {
	f, _ := ParseText(IstioTextFormat)
	rec := istioDocsRecord()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0], rec)
	}
}

// TestHeaderValues: the operators Istio users put in headers, rendered for
// a request; an operator without a value writes nothing (no "-"); those
// about the finished stream are refused by name.
func TestHeaderValues(t *testing.T) {
	r := istioDocsRecord()
	r.RequestHeaders = append(r.RequestHeaders, headers.Field{Name: "x-user", Value: "jason"})
	for in, want := range map[string]string{
		"%DOWNSTREAM_REMOTE_ADDRESS%":                     "10.44.1.23:46520",
		"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%":        "10.44.1.23",
		"%DOWNSTREAM_LOCAL_ADDRESS%":                      "10.0.45.184:8000",
		"%UPSTREAM_REMOTE_ADDRESS%":                       "10.44.1.27:80",
		"%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%":          "10.44.1.27",
		"user=%REQ(X-USER)%; via %PROTOCOL%":              "user=jason; via HTTP/1.1",
		"%REQ(x-missing)%":                                "",
		"%START_TIME(%s)%":                                "1606339578",
		"%START_TIME%":                                    "2020-11-25T21:26:18.409Z",
		"100%% %ROUTE_NAME%":                              "100% default",
		"%REQ(X-USER):2%":                                 "ja",
		"%HOSTNAME%":                                      "pod-1",
		"%UPSTREAM_CLUSTER%|%RESPONSE_CODE%":              "outbound|8000||httpbin.foo.svc.cluster.local|418",
		"%REQ(x-missing?x-user)%-%REQUESTED_SERVER_NAME%": "jason-",
	} {
		f, lit, err := ParseHeaderValue(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		got := lit
		if f != nil {
			f.SetHostname("pod-1")
			got = f.HeaderValue(r)
		}
		if got != want {
			t.Errorf("%q = %q, want %q", in, got, want)
		}
	}
	if f, lit, err := ParseHeaderValue("50%%"); f != nil || lit != "50%" || err != nil {
		t.Errorf("50%%%%: %v %q %v, want the literal 50%%", f, lit, err)
	}
	for in, want := range map[string]string{
		"%BYTES_SENT%":            "%BYTES_SENT%: not supported in header values",
		"%DURATION%":              "%DURATION%: not supported in header values",
		"%UPSTREAM_METADATA(a)%":  "%UPSTREAM_METADATA%: not supported",
		"%DYNAMIC_METADATA(x:y)%": "%DYNAMIC_METADATA%: not supported",
		"50%":                     "'%' starts no command operator",
	} {
		if _, _, err := ParseHeaderValue(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one saying %q", in, err, want)
		}
	}
}

func FuzzParseHeaderValue(f *testing.F) {
	for _, s := range []string{"%REQ(x)%", "%START_TIME(%s.%3f)%", "a%%b", "%DOWNSTREAM_REMOTE_ADDRESS%:%PROTOCOL%", "%", "%REQ(", "%X:0%"} {
		f.Add(s)
	}
	r := istioDocsRecord()
	f.Fuzz(func(t *testing.T, s string) {
		fm, _, err := ParseHeaderValue(s)
		if err == nil && fm != nil {
			fm.HeaderValue(r)
		}
	})
}
