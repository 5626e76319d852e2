package ctl

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/localmesh"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// hopEntry is one proxy's access log entry for a request.
type hopEntry struct {
	Proxy proxy
	accesslog.Entry
}

// inbound says the proxy logged the request on its workload's inbound side.
func (h *hopEntry) inbound() bool { return strings.HasPrefix(h.UpstreamCluster, "inbound|") }

func (h *hopEntry) hopName() string {
	if strings.HasPrefix(h.Proxy.ID, "router~") {
		return h.Proxy.Name
	}
	if h.inbound() {
		return h.Proxy.Name + " (inbound)"
	}
	return h.Proxy.Name + " (outbound)"
}

// scanHops appends to out the access log lines read from r (a proxy's log,
// where other lines may be mixed in) that keep accepts.
func scanHops(out []hopEntry, r io.Reader, px proxy, keep func(*accesslog.Entry) bool) ([]hopEntry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) == 0 || line[0] != '[' && line[0] != '{' {
			continue
		}
		e, err := accesslog.ParseLine(line)
		if err != nil || !keep(&e) {
			continue
		}
		out = append(out, hopEntry{Proxy: px, Entry: e})
	}
	return out, sc.Err()
}

// logTail is how much of each proxy's log `mast why` reads: the newest lines.
const logTail = 16 << 20

// readAccessLogs reads the access log lines of every proxy of the local mesh
// (their logs hold the access log: MeshConfig accessLogFile /dev/stdout) and
// returns those keep accepts, oldest first.
func readAccessLogs(st *localmesh.RunState, keep func(*accesslog.Entry) bool) []hopEntry {
	var out []hopEntry
	for _, p := range st.Procs {
		if p.Admin == "" || p.Log == "" {
			continue
		}
		px := proxy{Name: strings.TrimSuffix(p.Name, "-sidecar"), ID: p.ProxyID, Admin: p.Admin}
		f, err := os.Open(p.Log)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Size() > logTail {
			f.Seek(fi.Size()-logTail, io.SeekStart)
		}
		out, _ = scanHops(out, f, px, keep)
		f.Close()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// requestEntries returns every proxy's entries for the request ids.
func requestEntries(st *localmesh.RunState, ids map[string]bool) []hopEntry {
	return readAccessLogs(st, func(e *accesslog.Entry) bool { return ids[e.RequestID] })
}

// awaitEntries waits for the entries of the request `mast why` sent (known
// by its x-request-id, or at a gateway, which replaces that id, by its
// user agent) to reach the logs, which proxies flush every second.
func awaitEntries(st *localmesh.RunState, id, agent string, wait time.Duration) []hopEntry {
	deadline := time.Now().Add(wait)
	var out []hopEntry
	for {
		ids := map[string]bool{id: true}
		for _, e := range readAccessLogs(st, func(e *accesslog.Entry) bool { return e.UserAgent == agent }) {
			ids[e.RequestID] = true
		}
		got := requestEntries(st, ids)
		if len(got) > 0 && len(got) == len(out) || time.Now().After(deadline) {
			if len(got) > len(out) {
				out = got
			}
			return out
		}
		out = got
		time.Sleep(accesslog.FlushInterval + 200*time.Millisecond)
	}
}

// failed says an entry records a failure this proxy produced itself (not an
// error answer it only relayed), or an injected fault.
func failed(e *hopEntry) bool {
	if f := e.localFlags(); f != "" {
		return true
	}
	return e.ResponseCode >= 400 && e.ResponseCodeDetails != "via_upstream" && e.ResponseCodeDetails != ""
}

// localFlags are the entry's response flags this proxy set itself: an
// answer relayed from upstream (via_upstream) may carry the flags of the
// hop that made it, of which only a delay (DI) happened here.
func (h *hopEntry) localFlags() string {
	if h.ResponseFlags == "-" {
		return ""
	}
	if h.ResponseCodeDetails == "via_upstream" {
		if h.hasFlag("DI") {
			return "DI"
		}
		return ""
	}
	return h.ResponseFlags
}

// requestPath is the entry's path: a forward proxy's entry logs the
// absolute URI it was asked for.
func (h *hopEntry) requestPath() string {
	if strings.HasPrefix(h.Path, "http://") || strings.HasPrefix(h.Path, "https://") {
		rest := h.Path[strings.Index(h.Path, "//")+2:]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		return "/"
	}
	return h.Path
}

// hasFlag says the entry's %RESPONSE_FLAGS% include code.
func (h *hopEntry) hasFlag(code string) bool {
	return slices.Contains(strings.Split(h.ResponseFlags, ","), code)
}

// hasLocalFlag says this proxy set the flag code itself.
func (h *hopEntry) hasLocalFlag(code string) bool {
	return slices.Contains(strings.Split(h.localFlags(), ","), code)
}

// describeEntry is one line of the request's path.
func describeEntry(e *hopEntry) string {
	s := fmt.Sprintf("%s: %s %s%s -> %d", e.hopName(), e.Method, e.Authority, e.requestPath(), e.ResponseCode)
	if e.ResponseFlags != "" && e.ResponseFlags != "-" {
		s += " " + e.ResponseFlags
	}
	if e.ResponseCodeDetails != "" {
		s += " " + e.ResponseCodeDetails
	}
	if e.UpstreamCluster != "" {
		s += " via " + e.UpstreamCluster
	}
	return s + fmt.Sprintf(" (%s)", e.Duration)
}
