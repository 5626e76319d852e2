package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// checkSyncz waits until mastd's /debug/syncz lists the proxy with every type
// it was sent acknowledged and no NACK.
func checkSyncz(t *testing.T, monAddr, id string) {
	t.Helper()
	eventually(t, 10*time.Second, "syncz to show "+id+" synced", func() error {
		status, err := localmesh.Syncz(context.Background(), "http://"+monAddr)
		if err != nil {
			return err
		}
		for _, p := range status {
			if p.ID != id {
				continue
			}
			for _, ty := range p.Types {
				if ty.LastNACK != "" {
					return fmt.Errorf("%s NACKed %s: %s", id, ty.TypeURL, ty.LastNACK)
				}
			}
			if !localmesh.Synced(p) {
				return fmt.Errorf("%s not synced: %+v", id, p.Types)
			}
			return nil
		}
		return fmt.Errorf("%s not in syncz (%d proxies)", id, len(status))
	})
}
