package admin

import (
	"encoding/json"
	"runtime"
	"strconv"
	"time"

	"github.com/mast-mesh/mast/internal/buildinfo"
)

// serverInfo renders Envoy's /server_info (envoy.admin.v3.ServerInfo) for
// mast-proxy: version, state (LIVE once the first configuration is in
// force), uptime, the node (with its metadata, ISTIO_META_* environment
// variables among it) and command_line_options.concurrency, which for
// mast-proxy is the Go runtime's GOMAXPROCS: the parallelism its workers
// run with (ProxyConfig concurrency sets it).
func serverInfo(ready bool, boot Bootstrap, now time.Time) []byte {
	state := "PRE_INITIALIZING"
	if ready {
		state = "LIVE"
	}
	uptime := "0s"
	if !boot.Started.IsZero() {
		uptime = strconv.FormatInt(int64(now.Sub(boot.Started)/time.Second), 10) + "s"
	}
	out, _ := json.MarshalIndent(map[string]any{
		"version":              "mast-proxy/" + buildinfo.Version(),
		"state":                state,
		"uptime_current_epoch": uptime,
		"uptime_all_epochs":    uptime,
		"node":                 json.RawMessage(nodeJSON(boot.Node)),
		"command_line_options": map[string]any{"concurrency": runtime.GOMAXPROCS(0)},
	}, "", "  ")
	return out
}
