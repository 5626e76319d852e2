package accesslog

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// TestParseLineRoundTrip renders records in Istio's default TEXT and JSON
// formats and reads them back.
func TestParseLineRoundTrip(t *testing.T) {
	start := time.Date(2026, 12, 5, 19, 1, 2, 345e6, time.UTC)
	rec := &telemetry.Record{Start: start, Duration: 7 * time.Millisecond, Protocol: "HTTP/1.1", Method: "GET",
		Path: "/ratings/0", Authority: "ratings:9080", ResponseCode: 403,
		ResponseDetails: "rbac_access_denied_matched_policy[ns[default]-policy[deny-ratings]-rule[0]]",
		UpstreamCluster: "inbound|9080||", UpstreamFailure: "connection refused", DownstreamRemote: "127.0.1.4:4000",
		RouteName: "default"}
	rec.RequestHeaders.Set("x-request-id", "abc-1")
	rec.RequestHeaders.Set("user-agent", "mast-why/1 (x y)")
	for _, enc := range []string{"TEXT", "JSON"} {
		var f *Format
		var err error
		if enc == "TEXT" {
			f, err = ParseText(IstioTextFormat)
		} else {
			f, err = ParseJSON(IstioJSONFormat)
		}
		if err != nil {
			t.Fatal(err)
		}
		line := string(f.Append(nil, rec))
		e, err := ParseLine(line)
		if err != nil {
			t.Fatalf("%s: %v: %s", enc, err, line)
		}
		if !e.Start.Equal(start) || e.ResponseCode != 403 || e.ResponseCodeDetails != rec.ResponseDetails ||
			e.RequestID != "abc-1" || e.UserAgent != "mast-why/1 (x y)" || e.Authority != "ratings:9080" ||
			e.UpstreamCluster != "inbound|9080||" || e.UpstreamFailure != "connection refused" || e.ResponseFlags != "-" ||
			e.Duration != 7*time.Millisecond || e.Path != "/ratings/0" || e.RouteName != "default" || e.UpstreamHost != "" {
			t.Errorf("%s: %+v\nfrom %s", enc, e, line)
		}
	}
}

func TestParseLineRefusesOthers(t *testing.T) {
	for _, l := range []string{"", "time=2026 level=INFO msg=x", "[not a time] x", `[2020-11-25T21:26:18.409Z] "GET / HTTP/1.1" 200`, `{"msg":"x"}`} {
		if _, err := ParseLine(l); err == nil {
			t.Errorf("ParseLine(%q) accepted", l)
		}
	}
}

// FuzzParseLine: the lines come from files any process may write.
func FuzzParseLine(f *testing.F) {
	fh, err := os.Open("testdata/formats.golden")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	fh.Close()
	f.Add(`[2020-11-25T21:26:18.409Z] "GET / HTTP/1.1" 200 - via_upstream - "\"" 0 0 1 1 "-" "-" "-" "-" "-" - - - - - -`)
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseLine(line)
		if err == nil && strings.HasPrefix(line, "[") && e.Start.IsZero() {
			t.Errorf("accepted without a time: %q", line)
		}
	})
}
