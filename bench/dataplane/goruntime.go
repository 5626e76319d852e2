package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/admin"
)

// GoRuntimeFigures are the names of the Go runtime figures a fixed-rate run
// reports for each Mast sidecar (from its admin /runtime before and after).
var GoRuntimeFigures = []string{"GC cycles / 1,000 req", "alloc B / req", "allocs / req", "GC pause max µs", "sched latency p99 µs", "sched latency p99.9 µs", "sched latency max µs"}

// mastAdmin is a Mast sidecar process's admin address, "" for the other
// processes.
func mastAdmin(name string) string {
	switch name {
	case ProcName(Mast, 1):
		return MastClientIP + ":15000"
	case ProcName(Mast, 2):
		return MastServerIP + ":15000"
	}
	return ""
}

func fetchRuntime(ctx context.Context, addr string) (admin.RuntimeStats, error) {
	var rs admin.RuntimeStats
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/runtime", nil)
	if err != nil {
		return rs, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rs, fmt.Errorf("admin /runtime: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return rs, fmt.Errorf("admin /runtime: %s", resp.Status)
	}
	return rs, json.NewDecoder(resp.Body).Decode(&rs)
}

// GoRuntimeOver returns the GoRuntimeFigures of total requests between two
// samples.
func GoRuntimeOver(before, after admin.RuntimeStats, total float64) map[string]float64 {
	if total <= 0 {
		return nil
	}
	pauses := after.GCPauses.Sub(before.GCPauses)
	lat := after.SchedLatencies.Sub(before.SchedLatencies)
	return map[string]float64{
		GoRuntimeFigures[0]: float64(after.GCCycles-before.GCCycles) * 1000 / total,
		GoRuntimeFigures[1]: float64(after.AllocBytes-before.AllocBytes) / total,
		GoRuntimeFigures[2]: float64(after.AllocObjects-before.AllocObjects) / total,
		GoRuntimeFigures[3]: pauses.Max() * 1e6,
		GoRuntimeFigures[4]: lat.Quantile(0.99) * 1e6,
		GoRuntimeFigures[5]: lat.Quantile(0.999) * 1e6,
		GoRuntimeFigures[6]: lat.Max() * 1e6,
	}
}

// GoRuntimeTable renders the Go runtime figures of every path that has
// them (median over repeats).
func (r *Report) GoRuntimeTable() string {
	var b strings.Builder
	for _, s := range r.Summaries {
		for _, name := range slices.Sorted(maps.Keys(s.GoRuntime)) {
			if b.Len() == 0 {
				b.WriteString("## Go runtime of Mast's sidecars (fixed rate)\n\n")
				b.WriteString("From each sidecar's admin `/runtime` (runtime/metrics) before and after the fixed-rate run: GC cycles and heap allocation per request, the longest GC stop-the-world pause, and how long goroutines waited runnable before they ran (a bucket's upper bound).\n\n")
				b.WriteString("| protocol | path | hop | " + strings.Join(GoRuntimeFigures, " | ") + " |\n|---|---|---|" + strings.Repeat("---:|", len(GoRuntimeFigures)) + "\n")
			}
			fmt.Fprintf(&b, "| %s | %s | %s |", s.Protocol, s.Path, name)
			for _, f := range GoRuntimeFigures {
				fmt.Fprintf(&b, " %.3g |", s.GoRuntime[name][f].Median)
			}
			b.WriteString("\n")
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
