package tcpproxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

func sentBytes(t *testing.T, r *reporter.Reporter) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "istio_tcp_sent_bytes_total{") {
			return l[strings.LastIndexByte(l, ' ')+1:]
		}
	}
	return ""
}

// An open connection's bytes reach its series every reporting interval
// (Istio's tcp_reporting_duration), not only when it closes; with an
// interval longer than the connection they appear at the close, once.
func TestTCPBytesReportedEveryInterval(t *testing.T) {
	for _, every := range []time.Duration{5 * time.Millisecond, time.Hour} {
		r := reporter.New(reporter.Config{Local: telemetry.Peer{Workload: "db-1"}})
		ct := &connTel{rec: telemetry.Record{TCP: true, Protocol: "tcp"}, counts: &filter.Conn{}}
		ct.report(r.TCPOpened(&ct.rec), every)
		ct.counts.Sent.Add(42)
		if every == time.Hour {
			if got := sentBytes(t, r); got != "" && got != "0" {
				t.Fatalf("interval 1h: %s bytes reported while open", got)
			}
		} else {
			deadline := time.Now().Add(10 * time.Second)
			for sentBytes(t, r) != "42" && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := sentBytes(t, r); got != "42" {
				t.Fatalf("interval %v: %q bytes reported while open, want 42", every, got)
			}
		}
		ct.counts.Sent.Add(8)
		ct.close()
		if got := sentBytes(t, r); got != fmt.Sprint(50) {
			t.Errorf("interval %v: %q after close, want 50", every, got)
		}
	}
}
