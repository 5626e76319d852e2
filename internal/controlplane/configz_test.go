package controlplane

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestConfigzMessages: /debug/configz gives each resource in force its
// validation and analysis messages (a route to a subset no DestinationRule
// defines: IST0101; a validation warning: IST0133), and a rejected file's
// resources their errors (IST0106) among the others.
func TestConfigzMessages(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"vs.yaml": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
`,
		"dr.yaml": `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {tls: {mode: DISABLE, caCertificates: /etc/ca.pem}}
`,
		"bad.yaml": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [details]
  http: [{route: [{destination: {host: details}, weight: 50}, {destination: {host: details}, weight: 10}]}]
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			ConfigDir: dir, XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0", Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(_, mon net.Addr) { ready <- mon.String() },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	mon := <-ready
	resp, err := http.Get("http://" + mon + "/debug/configz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cz struct {
		Resources []configzResource `json:"resources"`
		Others    []configzMessage  `json:"others"`
		Store     struct {
			Rejected []struct{ Path, Error string } `json:"rejected"`
		} `json:"store"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cz); err != nil {
		t.Fatal(err)
	}
	has := func(ms []configzMessage, code, text string) bool {
		for _, m := range ms {
			if m.Code == code && strings.Contains(m.Message, text) {
				return true
			}
		}
		return false
	}
	found := map[string]bool{}
	for _, r := range cz.Resources {
		found[r.Kind+"/"+r.Name] = true
		switch r.Kind + "/" + r.Name {
		case "VirtualService/reviews":
			if !has(r.Messages, "IST0101", "v9") {
				t.Errorf("VirtualService reviews: %+v, want IST0101 naming subset v9", r.Messages)
			}
		case "DestinationRule/ratings":
			if !has(r.Messages, "IST0133", "will be ignored") {
				t.Errorf("DestinationRule ratings: %+v, want the validation warning (IST0133)", r.Messages)
			}
		}
	}
	if !found["VirtualService/reviews"] || !found["DestinationRule/ratings"] || found["VirtualService/broken"] {
		t.Errorf("resources in force: %v, want reviews and ratings, not the rejected broken", found)
	}
	if !has(cz.Others, "IST0106", "weights sum to 60") || len(cz.Store.Rejected) != 1 {
		t.Errorf("the rejected file: others %+v, store %+v; want IST0106 naming the weights", cz.Others, cz.Store.Rejected)
	}
}
