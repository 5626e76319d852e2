package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// deadline bounds every wait; it is generous because the machine is shared.
const deadline = 20 * time.Second

func decode(path string, data []byte) ([]config.Resource, error) { return config.Decode(path, data) }

// serviceEntry is a ServiceEntry document named name with one host.
func serviceEntry(name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: default
spec:
  hosts: [%q]
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
`, name, host)
}

const invalidYAML = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x\nspec: [\n"

func seKey(name string) config.Key {
	return config.Key{Kind: config.ServiceEntry, Namespace: "default", Name: name}
}

// hostOf returns the first host of the ServiceEntry name in s, or "" if absent.
func hostOf(s *config.Snapshot, name string) string {
	r, ok := s.Get(seKey(name))
	if !ok {
		return ""
	}
	return r.Spec.(*networking.ServiceEntry).GetHosts()[0]
}

// write replaces path atomically (a hidden temporary file renamed over it), so
// that no scan sees it half written; writeInPlace truncates and writes.
func write(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	writeInPlace(t, tmp, data)
	must(t, os.Rename(tmp, path))
}

func writeInPlace(t *testing.T, path, data string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(data), 0o644))
}

type harness struct {
	t       *testing.T
	dir     string
	f       *File
	changes chan *config.Snapshot
}

type option func(*FileConfig, *File)

// start creates the store on a fresh temporary directory after setup has
// filled it, runs it, and waits until its watches are in place.
func start(t *testing.T, setup func(dir string), opts ...option) *harness {
	t.Helper()
	dir := t.TempDir()
	if setup != nil {
		setup(dir)
	}
	h := &harness{t: t, dir: dir, changes: make(chan *config.Snapshot, 1000)}
	cfg := FileConfig{
		Dir:      dir,
		Load:     decode,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnChange: func(_, s *config.Snapshot) { h.changes <- s },
		Rescan:   time.Hour, // events alone must do the work unless a test says otherwise
	}
	var post []option
	for _, o := range opts {
		o(&cfg, nil)
		post = append(post, o)
	}
	f, err := NewFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range post {
		o(nil, f)
	}
	h.f = f
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-f.ready:
	case <-time.After(deadline):
		t.Fatal("Run did not start")
	}
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitSnapshot waits for an OnChange whose snapshot satisfies ok and returns it
// and how many snapshots arrived until then.
func (h *harness) waitSnapshot(what string, ok func(*config.Snapshot) bool) (*config.Snapshot, int) {
	h.t.Helper()
	timeout := time.After(deadline)
	for n := 1; ; n++ {
		select {
		case s := <-h.changes:
			if ok(s) {
				return s, n
			}
		case <-timeout:
			h.t.Fatalf("%s: no such snapshot after %v; current has %d resources, status %+v", what, deadline, h.f.Snapshot().Len(), h.f.Status())
		}
	}
}

// waitStatus polls Status until ok holds (status changes need not change the snapshot).
func (h *harness) waitStatus(what string, ok func(Status) bool) Status {
	h.t.Helper()
	end := time.Now().Add(deadline)
	for {
		s := h.f.Status()
		if ok(s) {
			return s
		}
		if time.Now().After(end) {
			h.t.Fatalf("%s: status not reached after %v: %+v", what, deadline, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noChange fails if an OnChange is pending.
func (h *harness) noChange(what string) {
	h.t.Helper()
	select {
	case s := <-h.changes:
		h.t.Fatalf("%s: unexpected OnChange with %d resources", what, s.Len())
	default:
	}
}

func TestFileInitialLoad(t *testing.T) {
	h := start(t, func(dir string) {
		write(t, filepath.Join(dir, "a.yaml"), serviceEntry("a", "a.example.com"))
		write(t, filepath.Join(dir, "sub", "deeper", "b.yml"), serviceEntry("b", "b.example.com"))
		write(t, filepath.Join(dir, "c.json"), `{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":"c"},"spec":{"hosts":["c.example.com"],"resolution":"DNS"}}`)
		write(t, filepath.Join(dir, "multi.yaml"), serviceEntry("m1", "m1.example.com")+"---\n"+serviceEntry("m2", "m2.example.com"))
		write(t, filepath.Join(dir, "empty.yaml"), "# nothing here\n")
		// Ignored: hidden files and directories, editor files, other extensions.
		write(t, filepath.Join(dir, ".hidden.yaml"), serviceEntry("hidden", "x"))
		write(t, filepath.Join(dir, ".git", "x.yaml"), serviceEntry("git", "x"))
		write(t, filepath.Join(dir, "a.yaml~"), serviceEntry("backup", "x"))
		write(t, filepath.Join(dir, ".a.yaml.swp"), serviceEntry("swap", "x"))
		write(t, filepath.Join(dir, "#a.yaml#"), serviceEntry("emacs", "x"))
		write(t, filepath.Join(dir, "notes.txt"), serviceEntry("txt", "x"))
		write(t, filepath.Join(dir, "4913"), "")
	})
	s := h.f.Snapshot()
	var got []string
	for _, r := range s.All() {
		got = append(got, r.Name)
	}
	if want := []string{"a", "b", "c", "m1", "m2"}; !slices.Equal(got, want) {
		t.Fatalf("resources = %v, want %v", got, want)
	}
	if r, _ := s.Get(seKey("b")); r.Source.File != filepath.Join(h.dir, "sub", "deeper", "b.yml") {
		t.Errorf("source of b = %q", r.Source.File)
	}
	st := h.f.Status()
	var files []string
	for _, fs := range st.Files {
		files = append(files, strings.TrimPrefix(fs.Path, h.dir+"/")+"="+strings.Join(fs.Keys, ","))
	}
	want := []string{
		"a.yaml=ServiceEntry/default/a",
		"c.json=ServiceEntry/default/c",
		"empty.yaml=",
		"multi.yaml=ServiceEntry/default/m1,ServiceEntry/default/m2",
		"sub/deeper/b.yml=ServiceEntry/default/b",
	}
	if !slices.Equal(files, want) {
		t.Errorf("status files:\n got %q\nwant %q", files, want)
	}
	if st.Resources != 5 || len(st.Rejected) != 0 || len(st.Conflicts) != 0 || st.Dir != h.dir {
		t.Errorf("status = %+v", st)
	}
	h.noChange("initial load") // OnChange is not called for the initial load
}

func TestFileAddEditDelete(t *testing.T) {
	h := start(t, nil)
	path := filepath.Join(h.dir, "se.yaml")

	write(t, path, serviceEntry("se", "one.example.com"))
	h.waitSnapshot("add", func(s *config.Snapshot) bool { return hostOf(s, "se") == "one.example.com" })

	writeInPlace(t, path, serviceEntry("se", "two.example.com"))
	h.waitSnapshot("edit", func(s *config.Snapshot) bool { return hostOf(s, "se") == "two.example.com" })

	// Rewriting the same content, or touching the file, is not a change.
	write(t, path, serviceEntry("se", "two.example.com"))
	now := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(h.dir, "other.yaml"), serviceEntry("other", "o.example.com"))
	s, n := h.waitSnapshot("add other", func(s *config.Snapshot) bool { return hostOf(s, "other") != "" })
	if s.Len() != 2 || n != 1 {
		t.Fatalf("snapshot has %d resources after %d changes, want 2 after 1 (rewrite and touch are no change)", s.Len(), n)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s, _ = h.waitSnapshot("delete", func(s *config.Snapshot) bool { return hostOf(s, "se") == "" })
	if s.Len() != 1 || hostOf(s, "other") == "" {
		t.Fatalf("after delete: %d resources", s.Len())
	}
	if st := h.f.Status(); len(st.Files) != 1 {
		t.Errorf("status files after delete = %+v", st.Files)
	}
}

func TestFileInvalidEditKeepsResources(t *testing.T) {
	path := ""
	h := start(t, func(dir string) {
		path = filepath.Join(dir, "se.yaml")
		write(t, path, serviceEntry("se", "good.example.com"))
	})

	write(t, path, invalidYAML)
	st := h.waitStatus("rejection", func(s Status) bool { return len(s.Rejected) == 1 })
	if r := st.Rejected[0]; r.Path != path || r.Error == "" || r.Time.IsZero() {
		t.Errorf("rejection = %+v", r)
	}
	if len(st.Files) != 1 || !st.Files[0].Stale || !slices.Equal(st.Files[0].Keys, []string{"ServiceEntry/default/se"}) {
		t.Errorf("files = %+v, want se.yaml stale with its old key", st.Files)
	}
	h.noChange("invalid edit")
	if got := hostOf(h.f.Snapshot(), "se"); got != "good.example.com" {
		t.Fatalf("after invalid edit host = %q, want the old one kept", got)
	}

	// A different invalid version is reported again; still nothing lost.
	write(t, path, "kind: NoSuchKind\napiVersion: networking.istio.io/v1\nmetadata: {name: y}\n")
	h.waitStatus("second rejection", func(s Status) bool { return len(s.Rejected) == 1 && s.Rejected[0].Error != st.Rejected[0].Error })
	// The next change is the next valid one, with se.yaml's old resources intact.
	write(t, filepath.Join(h.dir, "other.yaml"), serviceEntry("other", "other.example.com"))
	s, n := h.waitSnapshot("valid change after invalid edits", func(s *config.Snapshot) bool { return hostOf(s, "other") != "" })
	if n != 1 || hostOf(s, "se") != "good.example.com" || s.Len() != 2 {
		t.Fatalf("after invalid edits and one valid change: %d snapshots, se host %q, %d resources", n, hostOf(s, "se"), s.Len())
	}

	write(t, path, serviceEntry("se", "fixed.example.com"))
	h.waitSnapshot("fix", func(s *config.Snapshot) bool { return hostOf(s, "se") == "fixed.example.com" })
	st = h.waitStatus("accepted", func(s Status) bool { return len(s.Rejected) == 0 })
	if st.Files[0].Stale {
		t.Errorf("file still stale after fix: %+v", st.Files[0])
	}

	// A file that was never valid provides nothing, and deleting it clears its rejection.
	bad := filepath.Join(h.dir, "bad.yaml")
	write(t, bad, invalidYAML)
	h.waitStatus("new invalid file", func(s Status) bool { return len(s.Rejected) == 1 && s.Rejected[0].Path == bad })
	h.noChange("new invalid file")
	os.Remove(bad)
	h.waitStatus("invalid file deleted", func(s Status) bool { return len(s.Rejected) == 0 && len(s.Files) == 2 })
	h.noChange("invalid file deleted")
}

func TestFileNewSubdirectory(t *testing.T) {
	h := start(t, nil)
	sub := filepath.Join(h.dir, "team", "payments")
	write(t, filepath.Join(sub, "one.yaml"), serviceEntry("one", "one.example.com"))
	h.waitSnapshot("file in new subdirectory", func(s *config.Snapshot) bool { return hostOf(s, "one") != "" })
	// Only a watch on the new directory sees this (the periodic rescan is an hour).
	write(t, filepath.Join(sub, "two.yaml"), serviceEntry("two", "two.example.com"))
	h.waitSnapshot("second file in new subdirectory", func(s *config.Snapshot) bool { return hostOf(s, "two") != "" })

	if err := os.RemoveAll(filepath.Join(h.dir, "team")); err != nil {
		t.Fatal(err)
	}
	h.waitSnapshot("subdirectory removed", func(s *config.Snapshot) bool { return s.Len() == 0 })

	// The same directory created again is watched again.
	write(t, filepath.Join(sub, "three.yaml"), serviceEntry("three", "three.example.com"))
	h.waitSnapshot("file in recreated subdirectory", func(s *config.Snapshot) bool { return hostOf(s, "three") != "" })
	write(t, filepath.Join(sub, "four.yaml"), serviceEntry("four", "four.example.com"))
	h.waitSnapshot("second file in recreated subdirectory", func(s *config.Snapshot) bool { return hostOf(s, "four") != "" })

	// Removed and created again at once, within one burst of events.
	must(t, os.RemoveAll(filepath.Join(h.dir, "team")))
	write(t, filepath.Join(sub, "five.yaml"), serviceEntry("five", "five.example.com"))
	h.waitSnapshot("quickly recreated subdirectory", func(s *config.Snapshot) bool { return hostOf(s, "five") != "" && s.Len() == 1 })
	write(t, filepath.Join(sub, "six.yaml"), serviceEntry("six", "six.example.com"))
	h.waitSnapshot("second file in quickly recreated subdirectory", func(s *config.Snapshot) bool { return hostOf(s, "six") != "" })
}

func TestFileRenameOverWrite(t *testing.T) {
	path := ""
	h := start(t, func(dir string) {
		path = filepath.Join(dir, "se.yaml")
		write(t, path, serviceEntry("se", "v1.example.com"))
	})
	// Atomic save: write a temporary file, rename it over the target.
	tmp := filepath.Join(h.dir, ".se.yaml.tmp123")
	write(t, tmp, serviceEntry("se", "v2.example.com"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	h.waitSnapshot("rename over", func(s *config.Snapshot) bool { return hostOf(s, "se") == "v2.example.com" })

	// Vim with backupcopy=no: rename the original to a backup, write anew, remove the backup.
	if err := os.Rename(path, path+"~"); err != nil {
		t.Fatal(err)
	}
	write(t, path, serviceEntry("se", "v3.example.com"))
	os.Remove(path + "~")
	h.waitSnapshot("vim save", func(s *config.Snapshot) bool { return hostOf(s, "se") == "v3.example.com" })

	// Renaming a config file away from a config name deletes its resources.
	if err := os.Rename(path, filepath.Join(h.dir, "se.yaml.disabled")); err != nil {
		t.Fatal(err)
	}
	h.waitSnapshot("renamed away", func(s *config.Snapshot) bool { return s.Len() == 0 })
}

// A Kubernetes ConfigMap volume: visible files are symbolic links through
// "..data", which is swapped atomically to a new hidden directory.
func TestFileConfigMapSymlinkSwap(t *testing.T) {
	h := start(t, func(dir string) {
		write(t, filepath.Join(dir, "..v1", "se.yaml"), serviceEntry("se", "v1.example.com"))
		must(t, os.Symlink("..v1", filepath.Join(dir, "..data")))
		must(t, os.Symlink(filepath.Join("..data", "se.yaml"), filepath.Join(dir, "se.yaml")))
	})
	if got := hostOf(h.f.Snapshot(), "se"); got != "v1.example.com" {
		t.Fatalf("initial host = %q", got)
	}
	write(t, filepath.Join(h.dir, "..v2", "se.yaml"), serviceEntry("se", "v2.example.com"))
	must(t, os.Symlink("..v2", filepath.Join(h.dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(h.dir, "..data_tmp"), filepath.Join(h.dir, "..data")))
	h.waitSnapshot("configmap swap", func(s *config.Snapshot) bool { return hostOf(s, "se") == "v2.example.com" })
	if s := h.f.Snapshot(); s.Len() != 1 {
		t.Fatalf("hidden ..v1/..v2 directories were read: %d resources", s.Len())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFileConflicts(t *testing.T) {
	h := start(t, func(dir string) {
		write(t, filepath.Join(dir, "b.yaml"), serviceEntry("dup", "from-b.example.com"))
		write(t, filepath.Join(dir, "a", "z.yaml"), serviceEntry("dup", "from-a-z.example.com"))
		write(t, filepath.Join(dir, "c.yaml"), serviceEntry("dup", "from-c.example.com")+"---\n"+serviceEntry("own", "own.example.com"))
		write(t, filepath.Join(dir, "twice.yaml"), serviceEntry("twice", "first.example.com")+"---\n"+serviceEntry("twice", "second.example.com"))
	})
	s := h.f.Snapshot()
	if got := hostOf(s, "dup"); got != "from-a-z.example.com" {
		t.Errorf("dup = %q, want the first file's (a/z.yaml)", got)
	}
	if got := hostOf(s, "twice"); got != "first.example.com" {
		t.Errorf("twice = %q, want the first document's", got)
	}
	st := h.f.Status()
	p := func(rel string) string { return filepath.Join(h.dir, rel) }
	want := []Conflict{
		{Key: "ServiceEntry/default/dup", Winner: p("a/z.yaml"), Ignored: []string{p("b.yaml"), p("c.yaml")}},
		{Key: "ServiceEntry/default/twice", Winner: p("twice.yaml"), Ignored: []string{p("twice.yaml")}},
	}
	if !slices.EqualFunc(st.Conflicts, want, conflictEqual) {
		t.Errorf("conflicts:\n got %+v\nwant %+v", st.Conflicts, want)
	}
	for _, f := range st.Files {
		if f.Path == p("c.yaml") && !slices.Equal(f.Keys, []string{"ServiceEntry/default/own"}) {
			t.Errorf("c.yaml provides %v, want only its own key", f.Keys)
		}
	}

	// The winner goes away: the next file in order takes over.
	must(t, os.RemoveAll(p("a")))
	h.waitSnapshot("winner removed", func(s *config.Snapshot) bool { return hostOf(s, "dup") == "from-b.example.com" })
	st = h.waitStatus("conflict updated", func(s Status) bool {
		return len(s.Conflicts) == 2 && s.Conflicts[0].Winner == p("b.yaml")
	})
	if !slices.Equal(st.Conflicts[0].Ignored, []string{p("c.yaml")}) {
		t.Errorf("ignored = %v", st.Conflicts[0].Ignored)
	}
}

func TestFileBurstCoalesced(t *testing.T) {
	h := start(t, nil, func(c *FileConfig, _ *File) {
		if c != nil {
			c.Debounce = 500 * time.Millisecond // a burst of writes takes far less
		}
	})
	path := filepath.Join(h.dir, "se.yaml")
	const writes = 50
	for i := range writes {
		writeInPlace(t, path, serviceEntry("se", fmt.Sprintf("v%d.example.com", i)))
	}
	_, n := h.waitSnapshot("burst", func(s *config.Snapshot) bool { return hostOf(s, "se") == fmt.Sprintf("v%d.example.com", writes-1) })
	if n > 3 {
		t.Errorf("%d writes gave %d snapshots; want them coalesced", writes, n)
	}
}

func TestFilePeriodicRescanWithoutWatch(t *testing.T) {
	h := start(t, nil, func(c *FileConfig, f *File) {
		if c != nil {
			c.Rescan = 20 * time.Millisecond
		}
		if f != nil {
			f.noWatch = true
		}
	})
	path := filepath.Join(h.dir, "se.yaml")
	write(t, path, serviceEntry("se", "one.example.com"))
	h.waitSnapshot("add by rescan", func(s *config.Snapshot) bool { return hostOf(s, "se") == "one.example.com" })
	// Same size, new content: found by the rescan (mtime, or the racy-file re-read).
	write(t, path, serviceEntry("se", "two.example.com"))
	h.waitSnapshot("edit by rescan", func(s *config.Snapshot) bool { return hostOf(s, "se") == "two.example.com" })
	must(t, os.Remove(path))
	h.waitSnapshot("delete by rescan", func(s *config.Snapshot) bool { return s.Len() == 0 })
}

func TestFileStatusJSON(t *testing.T) {
	h := start(t, func(dir string) {
		write(t, filepath.Join(dir, "a.yaml"), serviceEntry("dup", "a"))
		write(t, filepath.Join(dir, "b.yaml"), serviceEntry("dup", "b"))
		write(t, filepath.Join(dir, "bad.yaml"), invalidYAML)
	})
	data, err := json.Marshal(h.f.Status())
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	must(t, json.Unmarshal(data, &back))
	for _, k := range []string{"dir", "resources", "files", "rejected", "conflicts"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON status lacks %q: %s", k, data)
		}
	}
	if rej := back["rejected"].([]any); len(rej) != 1 || rej[0].(map[string]any)["error"] == "" {
		t.Errorf("rejected = %v", rej)
	}
}

func TestNewFileErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.yaml")
	write(t, file, "")
	for _, tc := range []struct {
		name string
		cfg  FileConfig
		want string
	}{
		{"no dir", FileConfig{Load: decode}, "no directory"},
		{"no load", FileConfig{Dir: dir}, "no load function"},
		{"missing", FileConfig{Dir: filepath.Join(dir, "missing"), Load: decode}, "missing"},
		{"not a directory", FileConfig{Dir: file, Load: decode}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFile(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFileRunTwice(t *testing.T) {
	h := start(t, nil)
	if err := h.f.Run(context.Background()); err == nil {
		t.Fatal("second Run returned nil")
	}
}
