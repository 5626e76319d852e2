package localmesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/config/store"
	bookinfoconfig "github.com/mast-mesh/mast/samples/bookinfo/config"
)

// bookinfoFiles returns Bookinfo's default configuration for a platform, by
// file name: on a registry platform, without its WorkloadEntries.
func bookinfoFiles(platform string) (map[string][]byte, error) {
	entries, err := fs.ReadDir(bookinfoconfig.Files, ".")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := fs.ReadFile(bookinfoconfig.Files, e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = b
	}
	if platform != PlatformFiles {
		delete(out, workloadsFile)
	}
	return out, nil
}

// pristine reports whether dir holds exactly Bookinfo's default files, unchanged.
func pristine(dir string, defaults map[string][]byte) bool {
	files, err := configFiles(dir)
	if err != nil || len(files) != len(defaults) {
		return false
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		b, err := os.ReadFile(f)
		if want, ok := defaults[rel]; !ok || err != nil || !bytes.Equal(b, want) {
			return false
		}
	}
	return true
}

// resetConfigDir makes dir hold Bookinfo's defaults before a mesh starts. A
// dir with anything else in it is moved to dir.previous first (replacing an
// older one), whose path is returned.
func resetConfigDir(dir, platform string) (moved string, err error) {
	defaults, err := bookinfoFiles(platform)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err == nil && !pristine(dir, defaults) {
		moved = dir + ".previous"
		if err := os.RemoveAll(moved); err != nil {
			return "", err
		}
		if err := os.Rename(dir, moved); err != nil {
			return "", err
		}
	}
	return moved, seedBookinfo(dir, platform)
}

// Reset returns the configuration directory of a running Bookinfo mesh to
// Bookinfo's defaults in place, so its mastd picks the change up like any
// edit: files that are not Bookinfo's are removed, Bookinfo's are rewritten
// where they differ. It returns one line per file changed.
func Reset(dir string) ([]string, error) { return ResetPlatform(dir, PlatformFiles) }

// ResetPlatform is Reset for a mesh running on platform (see ParsePlatform).
func ResetPlatform(dir, platform string) ([]string, error) {
	defaults, err := bookinfoFiles(platform)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files, err := configFiles(dir)
	if err != nil {
		return nil, err
	}
	var changes []string
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		if _, ok := defaults[rel]; ok {
			continue
		}
		if err := os.Remove(f); err != nil {
			return changes, err
		}
		changes = append(changes, "removed "+f)
	}
	names := make([]string, 0, len(defaults))
	for n := range defaults {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, defaults[n]) {
			continue
		}
		tmp := filepath.Join(dir, "."+n+".tmp")
		if err := os.WriteFile(tmp, defaults[n], 0o644); err != nil {
			return changes, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return changes, err
		}
		changes = append(changes, "restored "+p)
	}
	// Remove directories the removals left empty (applied/, ...).
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			os.Remove(filepath.Join(dir, e.Name())) // fails, harmlessly, when not empty
		}
	}
	return changes, nil
}

// reportRejections polls mastd's /debug/configz and prints, as they happen,
// the configuration files the store rejects (their previous version stays in
// force) and the rejected files that load again.
func reportRejections(ctx context.Context, w io.Writer, debugURL string, every time.Duration) {
	rejected := map[string]string{}
	first := true
	for {
		if st, err := storeStatus(ctx, debugURL); err == nil {
			now := map[string]string{}
			for _, r := range st.Rejected {
				now[r.Path] = r.Error
				if rejected[r.Path] != r.Error {
					fmt.Fprintf(w, "%s config: %s is rejected, its previous version stays in force:\n    %s\n",
						time.Now().Format(time.TimeOnly), r.Path, strings.ReplaceAll(strings.TrimSpace(r.Error), "\n", "\n    "))
				}
			}
			for p := range rejected {
				if _, still := now[p]; !still && !first {
					fmt.Fprintf(w, "%s config: %s loads again\n", time.Now().Format(time.TimeOnly), p)
				}
			}
			rejected, first = now, false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func storeStatus(ctx context.Context, debugURL string) (*store.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, debugURL+"/debug/configz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mastd's /debug/configz: %s", resp.Status)
	}
	var out struct {
		Store store.Status `json:"store"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("mastd's /debug/configz: %w", err)
	}
	return &out.Store, nil
}

// WatchParent calls stop once the process that started this one has gone
// (this process was re-parented), so that `kill` on `go run`'s PID does not
// leave the mesh running orphaned. It returns when ctx is done.
func WatchParent(ctx context.Context, stop func()) {
	parent := os.Getppid()
	if parent <= 1 {
		return // started by init or already orphaned: nothing to watch
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		if os.Getppid() != parent {
			stop()
			return
		}
	}
}
