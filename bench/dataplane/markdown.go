package dataplane

import (
	"fmt"
	"sort"
	"strings"
)

// Istio's and Linkerd's published figures the issue compares against.
const (
	istioAddedP90ms      = 0.228
	istioAddedP99ms      = 0.298
	istioVCPUPerSidecar  = 0.20 // at 1,000 requests/s: CPU seconds per 1,000 requests
	istioMBPerSidecar    = 60
	linkerdMBPerProxyLow = 18
	linkerdMBPerProxyHi  = 26
)

// Markdown renders the report: settings, one latency/throughput/CPU table
// per protocol, memory, the ratios the issue asks for, and notes.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# Data plane benchmark, %s mode\n\n", r.Mode)
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, %d MB, Linux %s, %s, %s, commit %s; 1-minute load average %.2f at the start (a shared machine: other work ran beside the benchmark). Started %s, took %s.\n\n",
		m.NumCPU, m.CPUModel, m.MemoryMB, m.Kernel, m.GoVersion, m.OS, m.Commit, m.LoadAvg, r.Started.Format("2006-01-02T15:04:05Z"), r.Elapsed)
	if r.Command != "" {
		fmt.Fprintf(&b, "Command: `%s`\n\n", r.Command)
	}
	var vs []string
	for k, v := range r.Versions {
		vs = append(vs, fmt.Sprintf("%s: %s", k, v))
	}
	sort.Strings(vs)
	fmt.Fprintf(&b, "Versions: %s.\n\n", strings.Join(vs, "; "))
	pin := func(s string) string {
		if s == "" {
			return "unpinned"
		}
		return "CPU " + s
	}
	fmt.Fprintf(&b, "Pinning (taskset): load generator and mastd %s; every proxy %s (nginx workers and HAProxy threads = that CPU count, Go proxies' GOMAXPROCS follows the affinity); server %s.\n\n",
		pin(r.Pinning.Load), pin(r.Pinning.Proxy), pin(r.Pinning.Server))
	st := r.Settings
	fmt.Fprintf(&b, "Load: fortio %d connections, %d-byte request and response bodies; fixed rate %d requests/s for %gs, saturation (`-qps 0`) for %gs; %d repeat(s), figures are the median with the range [min–max] over repeats. gRPC streaming uses dpbench's own client (one bidirectional stream per connection, ping-pong messages) because fortio has no streaming load.\n\n",
		st.Conns, st.BodySize, st.QPS, st.FixedSeconds, st.SaturationSeconds, st.Repeats)
	if st.Uniform {
		b.WriteString("fortio ran with `-uniform` at the fixed rate: each connection's requests are spread over the period rather than all connections sending at its start.\n\n")
	} else {
		b.WriteString("fortio ran without `-uniform` (dpbench's default): at the fixed rate every connection sends at the start of each period, so requests arrive in bursts of up to the connection count and the p50 includes time queued behind the burst (`-uniform` spreads them).\n\n")
	}
	b.WriteString("Latency columns are added over direct at the fixed rate (median of the path minus median of direct), ms; the absolute p50 and p99 follow. CPU is CPU seconds (user+system: the time on a CPU of every thread of the proxy's processes, in nanoseconds from /proc/PID/task/*/schedstat; /proc's 10 ms ticks where a thread exited during the run) per 1,000 requests at the fixed rate, per hop (client side + server side); at 1,000 requests/s it equals vCPUs used. Scheduling is from /proc/PID/task/*/schedstat over the proxy's threads at the fixed rate, per request and hop: how long they were runnable but waiting for the CPU (the proxies and the server share one pinned CPU, so this is latency the request spent queued behind other processes), and how many times a thread was put on the CPU (wake-ups).\n\n")
	for _, proto := range Protocols {
		rows := r.rows(proto)
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n", protoTitle(proto))
		if proto == HTTP2 {
			b.WriteString("Hops beyond the first: Mast and HAProxy speak h2c on every hop. nginx's h2c rows forward over HTTP/1.1 to the second hop and to the server (proxy_pass has no HTTP/2 upstream); nginx-h2up's forward over HTTP/2 (grpc_pass), as Mast and HAProxy do. Compare Mast with nginx-h2up.\n\n")
		}
		b.WriteString("| path | +p50 | +p90 | +p99 | +p99.9 | p50 ms [range] | p99 ms [range] | max req/s [range] | CPU s / 1,000 req (hops) | run-queue wait µs / req (hops) | scheduled / req (hops) |\n|---|---:|---:|---:|---:|---|---|---|---|---|---|\n")
		for _, s := range rows {
			if s.Unavailable != "" {
				fmt.Fprintf(&b, "| %s | — | — | — | — | — | %s | | | | |\n", s.Path, mdEscape(s.Unavailable))
				continue
			}
			if s.P50.N == 0 && s.MaxQPS.N == 0 {
				msg := "failed"
				if len(s.Errors) > 0 {
					msg = "failed: " + s.Errors[0]
				}
				fmt.Fprintf(&b, "| %s | — | — | — | — | — | %s | | | | |\n", s.Path, mdEscape(clip(msg, 200)))
				continue
			}
			added := []string{"", "", "", ""}
			for i, a := range s.Added {
				added[i] = fmt.Sprintf("%+.3f", a)
			}
			if s.Path == "direct" {
				added = []string{"0", "0", "0", "0"}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", pathLabel(proto, s.Path), added[0], added[1], added[2], added[3],
				rangeStr(s.P50, "%.3f"), rangeStr(s.P99, "%.3f"), rangeStr(s.MaxQPS, "%.0f"), r.cpuStr(s), perHop(s.WaitUsPerReq, "%.0f"), perHop(s.SlicesPerReq, "%.2f"))
		}
		b.WriteString("\n")
		if proto == HTTP2 {
			b.WriteString(r.h2cVsNginx())
		}
	}
	b.WriteString(r.SyscallTable())
	b.WriteString(r.GoRuntimeTable())
	if len(r.Memory) > 0 {
		b.WriteString("## Resident memory per proxy process (MB)\n\n")
		fmt.Fprintf(&b, "Idle: after start-up with the benchmark's configuration, before any load. Under load: the largest RSS sampled every 200 ms during every run through it. Mesh: a fresh instance holding a %d-service mesh (two endpoints each; Mast: a sidecar of a mastd with %d ServiceEntries, the others: that many virtual hosts and upstreams in their own configuration).\n\n", st.MeshServices, st.MeshServices)
		b.WriteString("| peer | hop | idle | under load | with the mesh |\n|---|---|---:|---:|---:|\n")
		for _, mm := range r.Memory {
			mesh := ""
			if mm.MeshRSS > 0 {
				mesh = mbs(mm.MeshRSS)
			}
			hop := "client side"
			if mm.Hop == 2 {
				hop = "server side"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", mm.Peer, hop, mbs(mm.IdleRSS), mbs(mm.LoadRSS), mesh)
		}
		b.WriteString("\n")
	}
	b.WriteString(r.Ratios())
	b.WriteString(r.TelemetryCost())
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", mdEscape(n))
		}
		b.WriteString("\n")
	}
	var errs []string
	for _, s := range r.Summaries {
		for _, e := range s.Errors {
			errs = append(errs, fmt.Sprintf("%s %s, %s", s.Protocol, s.Path, clip(e, 300)))
		}
	}
	if len(errs) > 0 {
		b.WriteString("## Failed runs (left out of the figures)\n\n")
		for _, e := range errs {
			fmt.Fprintf(&b, "- %s\n", mdEscape(e))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// SyscallTable lists, for every path with counts, each hop's system calls
// per request at the fixed rate (perf; median over repeats), the calls
// made at least once per 20 requests by name.
func (r *Report) SyscallTable() string {
	var b strings.Builder
	for _, s := range r.Summaries {
		if len(s.Syscalls) == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("## System calls per request (fixed rate)\n\n")
			b.WriteString("Counted with `perf stat` on the proxy's threads during the fixed-rate run (tracepoints: no ptrace, little cost to the proxy), per request and hop; independent of the machine's load. `read-eagain`: reads that found nothing to read.\n\n")
			b.WriteString("CPU µs / req: the hop's user + system CPU time per request (schedstat, as above), and the system (kernel) part (from /proc's user/system split, sampled at 10 ms ticks, so coarse).\n\n")
			b.WriteString("| protocol | path | hop | CPU µs / req (kernel) | all | by name |\n|---|---|---|---|---:|---|\n")
		}
		names := make([]string, 0, len(s.Syscalls))
		for name := range s.Syscalls {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			counts := s.Syscalls[name]
			var parts []string
			for _, e := range SyscallEvents {
				if st, ok := counts[e.Name]; ok && e.Name != "all" && st.Median >= 0.05 {
					parts = append(parts, fmt.Sprintf("%s %.2f", e.Name, st.Median))
				}
			}
			cpu := ""
			if c, ok := s.CPUPer1000[name]; ok {
				cpu = fmt.Sprintf("%.0f (%.0f)", c.Median*1000, s.SysCPUPer1000[name].Median*1000)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %s |\n", s.Protocol, s.Path, name, cpu, counts["all"].Median, strings.Join(parts, ", "))
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// Ratios is the comparison the issue asks for, from the HTTP/1.1 figures.
func (r *Report) Ratios() string {
	var b strings.Builder
	b.WriteString("## Ratios (HTTP/1.1, 1,000 requests/s, 16 connections, 1 KiB)\n\n")
	ratio := func(a, c float64) string {
		if c <= 0 || a <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f×", a/c)
	}
	added := func(path string, i int) (float64, bool) {
		s := r.find(HTTP1, path)
		if s == nil || len(s.Added) <= i {
			return 0, false
		}
		return s.Added[i], true
	}
	for _, tls := range []bool{false, true} {
		suffix, label := "", "plaintext"
		if tls {
			suffix, label = " mTLS", "TLS between the hops"
		}
		mp, ok1 := added("mast 2-hop"+suffix, 2)
		np, ok2 := added("nginx 2-hop"+suffix, 2)
		switch {
		case ok1 && ok2:
			fmt.Fprintf(&b, "- Two-hop added p99, %s: Mast %+.3f ms, nginx %+.3f ms: Mast/nginx = %s.", label, mp, np, ratio(mp, np))
			if mp <= 0 || np <= 0 {
				b.WriteString(" A negative figure means direct's own p99 was higher than the path's: the tail is set by other work on the machine, not by the proxies, so there is no meaningful p99 ratio in this run.")
			}
			m50, _ := added("mast 2-hop"+suffix, 0)
			n50, _ := added("nginx 2-hop"+suffix, 0)
			m90, _ := added("mast 2-hop"+suffix, 1)
			n90, _ := added("nginx 2-hop"+suffix, 1)
			fmt.Fprintf(&b, " Added p50: Mast %+.3f ms, nginx %+.3f ms (%s); added p90: Mast %+.3f ms, nginx %+.3f ms (%s).\n", m50, n50, ratio(m50, n50), m90, n90, ratio(m90, n90))
		case !ok1:
			why := "no figures"
			if s := r.find(HTTP1, "mast 2-hop"+suffix); s != nil && s.Unavailable != "" {
				why = s.Unavailable
			}
			fmt.Fprintf(&b, "- Two-hop added p99, %s: Mast: %s.\n", label, why)
		default:
			fmt.Fprintf(&b, "- Two-hop added p99, %s: nginx has no figures.\n", label)
		}
	}
	cpu := func(path string) float64 {
		if s := r.find(HTTP1, path); s != nil && s.CPUPer1000Total.N > 0 {
			return s.CPUPer1000Total.Median / 2
		}
		return 0
	}
	mc, nc, hc := cpu("mast 2-hop"), cpu("nginx 2-hop"), cpu("haproxy 2-hop")
	var figures []string // the peers that ran
	for _, p := range []struct {
		name string
		path string
	}{{"Mast", "mast 2-hop"}, {"nginx", "nginx 2-hop"}, {"HAProxy", "haproxy 2-hop"}, {"Caddy", "caddy 2-hop"}} {
		if v := cpu(p.path); v > 0 {
			figures = append(figures, fmt.Sprintf("%s %.3f", p.name, v))
		}
	}
	fmt.Fprintf(&b, "- CPU seconds per 1,000 requests per proxy (two-hop plaintext, mean of the two hops): %s; Mast/nginx = %s, Mast/HAProxy = %s.\n",
		strings.Join(figures, ", "), ratio(mc, nc), ratio(mc, hc))
	if mp, ok := added("mast 2-hop", 1); ok {
		m99, _ := added("mast 2-hop", 2)
		fmt.Fprintf(&b, "- Against Istio's published two-sidecar figures (+%.3f ms p90, +%.3f ms p99, %.2f vCPU and %d MB per sidecar; those are with mTLS on its own hardware): Mast two-hop plaintext adds %+.3f ms p90, %+.3f ms p99 and uses %.3f vCPU per sidecar at 1,000 requests/s.\n",
			istioAddedP90ms, istioAddedP99ms, istioVCPUPerSidecar, istioMBPerSidecar, mp, m99, mc)
	}
	for _, mm := range r.Memory {
		if mm.Peer == Mast && mm.Hop == 1 {
			mesh := ""
			if r.Settings.MeshServices > 0 {
				mesh = fmt.Sprintf(", with a %d-service mesh %s MB", r.Settings.MeshServices, mbs(mm.MeshRSS))
			}
			fmt.Fprintf(&b, "- Sidecar memory (Mast client sidecar RSS): idle %s MB, under load %s MB%s; Istio publishes %d MB per sidecar, Linkerd's proxy about %d–%d MB.\n",
				mbs(mm.IdleRSS), mbs(mm.LoadRSS), mesh, istioMBPerSidecar, linkerdMBPerProxyLow, linkerdMBPerProxyHi)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func (r *Report) rows(proto Protocol) []*Summary {
	var out []*Summary
	for _, s := range r.Summaries {
		if s.Protocol == proto {
			out = append(out, s)
		}
	}
	return out
}

func (r *Report) cpuStr(s *Summary) string {
	if s.CPUPer1000Total.N == 0 {
		return ""
	}
	return perHop(s.CPUPer1000, "%.3f")
}

// perHop renders the medians of a per-process figure in hop order (process
// names sort by hop), joined with " + ".
func perHop(m map[string]Stat, f string) string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf(f, m[n].Median))
	}
	return strings.Join(parts, " + ")
}

func rangeStr(s Stat, f string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 {
		return fmt.Sprintf(f, s.Median)
	}
	return fmt.Sprintf(f+" ["+f+"–"+f+"]", s.Median, s.Min, s.Max)
}

// h2cVsNginx compares Mast's two h2c hops with nginx's, both nginx-h2up
// (HTTP/2 on every hop, like for like) and nginx (HTTP/1.1 to the
// backend): CPU over both hops and added p50.
func (r *Report) h2cVsNginx() string {
	var b strings.Builder
	for _, suffix := range []string{"", " mTLS"} {
		m := r.find(HTTP2, "mast 2-hop"+suffix)
		if m == nil || m.CPUPer1000Total.N == 0 || len(m.Added) == 0 {
			continue
		}
		for _, peer := range []Peer{NginxH2Up, Nginx} {
			n := r.find(HTTP2, string(peer)+" 2-hop"+suffix)
			if n == nil || n.CPUPer1000Total.N == 0 || len(n.Added) == 0 {
				continue
			}
			fmt.Fprintf(&b, "- Two hops%s, Mast against %s: CPU %.3f vs %.3f s / 1,000 req (%.2f×), added p50 %+.3f vs %+.3f ms.\n",
				suffix, pathLabel(HTTP2, string(peer)), m.CPUPer1000Total.Median, n.CPUPer1000Total.Median,
				m.CPUPer1000Total.Median/n.CPUPer1000Total.Median, m.Added[0], n.Added[0])
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// pathLabel is a path's label in a protocol's table: on h2c, nginx's rows
// say which protocol nginx speaks past its first hop.
func pathLabel(proto Protocol, path string) string {
	if proto != HTTP2 {
		return path
	}
	switch {
	case path == string(Nginx) || strings.HasPrefix(path, string(Nginx)+" "):
		return path + " (HTTP/1.1 to the backend)"
	case path == string(NginxH2Up) || strings.HasPrefix(path, string(NginxH2Up)+" "):
		return path + " (HTTP/2 to the backend)"
	}
	return path
}

func protoTitle(p Protocol) string {
	switch p {
	case HTTP2:
		return "HTTP/2 (h2c)"
	case GRPC:
		return "gRPC unary (fortio ping)"
	case GRPCStream:
		return "gRPC bidirectional streaming"
	}
	return "HTTP/1.1"
}

func mbs(b uint64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
