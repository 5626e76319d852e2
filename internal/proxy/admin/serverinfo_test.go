package admin

import (
	"encoding/json"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// TestServerInfo: /server_info is Envoy's shape, with the runtime's
// GOMAXPROCS as command_line_options.concurrency and the node's metadata.
func TestServerInfo(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{"MAST_PROXYCONFIG": "ratings"})
	started := time.Unix(1000, 0)
	b := serverInfo(true, Bootstrap{Node: &xdswire.Node{ID: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Metadata: md}, Started: started}, started.Add(90*time.Second))
	var info struct {
		State   string `json:"state"`
		Uptime  string `json:"uptime_current_epoch"`
		Options struct {
			Concurrency int `json:"concurrency"`
		} `json:"command_line_options"`
		Node struct {
			ID       string         `json:"id"`
			Metadata map[string]any `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if info.State != "LIVE" || info.Uptime != "90s" || info.Options.Concurrency != runtime.GOMAXPROCS(0) ||
		info.Node.ID != "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local" || info.Node.Metadata["MAST_PROXYCONFIG"] != "ratings" {
		t.Errorf("server_info:\n%s", b)
	}
	// Served on the admin interface.
	rec := httptest.NewRecorder()
	Handler(&fakeSource{}, nil).ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:15000/server_info", nil))
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &info) != nil || info.Options.Concurrency != runtime.GOMAXPROCS(0) {
		t.Errorf("GET /server_info: %d %s", rec.Code, rec.Body)
	}
}
