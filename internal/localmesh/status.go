package localmesh

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mast-mesh/mast/internal/pilot/ads"
)

// Syncz fetches mastd's /debug/syncz.
func Syncz(ctx context.Context, debugURL string) ([]ads.ProxyStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, debugURL+"/debug/syncz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mastd's /debug/syncz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mastd's /debug/syncz: %s", resp.Status)
	}
	var out []ads.ProxyStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("mastd's /debug/syncz: %w", err)
	}
	return out, nil
}

// Synced reports whether a proxy has acknowledged everything it was sent and
// has no push pending.
func Synced(p ads.ProxyStatus) bool {
	if p.PushPending || p.Sending != "" || len(p.Types) == 0 {
		return false
	}
	for _, t := range p.Types {
		if t.State != ads.StateSynced {
			return false
		}
	}
	return true
}

// AckedProxies returns the IDs of the connected proxies that are Synced.
func AckedProxies(ctx context.Context, debugURL string) (map[string]bool, error) {
	status, err := Syncz(ctx, debugURL)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range status {
		if Synced(p) {
			out[p.ID] = true
		}
	}
	return out, nil
}
