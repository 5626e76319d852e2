package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mast-mesh/mast/internal/config"
)

// Defaults for FileConfig.
const (
	DefaultRescan        = 2 * time.Second
	DefaultWatchedRescan = time.Minute
	DefaultDebounce      = 15 * time.Millisecond
)

// racyWindow: a file modified this recently when it was read is read again at
// the next rescan, because a same-size rewrite within the file system's
// timestamp granularity would not show in size and mtime.
const racyWindow = time.Second

// FileConfig configures a File store.
type FileConfig struct {
	// Dir is the root of the configuration tree.
	Dir string
	// Load decodes and validates one file. An error rejects the whole file: the
	// resources of its last valid version stay in force.
	Load func(path string, data []byte) ([]config.Resource, error)
	// Logger receives rejections, conflicts and applied changes; nil discards.
	Logger *slog.Logger
	// OnChange is called serially, from Run's goroutine, after each change that
	// alters the snapshot. It is not called for the initial load in NewFile.
	OnChange func(old, new *config.Snapshot)
	// Rescan is the period of the full rescan when the tree cannot be
	// watched; 0 means DefaultRescan.
	Rescan time.Duration
	// WatchedRescan is the period of the full rescan that backs up file
	// watching; 0 means DefaultWatchedRescan. Events name what changed and
	// a watch error (queue overflow) rescans at once, so this only guards
	// against events a file system never delivers: a rescan stats every
	// file, which in a tree of thousands costs more than the changes do.
	WatchedRescan time.Duration
	// Debounce is how long a burst of file events is coalesced before the
	// named files are read again (at most ten times this from the first
	// event); 0 means DefaultDebounce. It only needs to merge the events of
	// one save (write, rename, chmod): the push debouncer downstream
	// coalesces changes over a longer window.
	Debounce time.Duration
	// OnUpdate, when set, is called like OnChange (after it), with the kinds
	// of the resources that changed, so that a consumer need not compare
	// snapshots to find out.
	OnUpdate func(Update)
}

// Update is a change of the store's snapshot.
type Update struct {
	Old, New *config.Snapshot
	// Kinds are the kinds of the resources added, removed or changed
	// (possibly more: every kind in a changed file counts).
	Kinds map[config.Kind]struct{}
}

// File is a configuration store backed by a directory tree of YAML and JSON
// files (.yaml, .yml, .json; hidden files and directories and editor temporary
// files are skipped). It watches the tree with fsnotify, adding new
// subdirectories as they appear, re-reads only the files and directories the
// events name, and rescans the whole tree periodically as a safety net (every
// Rescan when the tree cannot be watched, every WatchedRescan when it can).
//
// A file whose new content fails to load is reported (logged and in Status) and
// the resources of its last valid version stay in force. Deleting a file deletes
// its resources. A key defined in two files is taken from the first file in
// lexical path order; the conflict is reported.
type File struct {
	cfg FileConfig
	log *slog.Logger

	snap    atomic.Pointer[config.Snapshot]
	running atomic.Bool

	// Owned by the goroutine that scans: NewFile, then Run.
	files     map[string]*fileState
	pending   map[string][]config.Resource // files whose resources in force changed since the last publish
	idx       *index                       // the merge of the files, as last published
	conflicts []Conflict                   // of the last merge
	watcher   *fsnotify.Watcher
	watched   map[string]bool
	kinds     map[config.Kind]struct{} // of resources changed since the last publish

	mu     sync.Mutex
	status Status

	noWatch bool          // tests: rely on the periodic rescan alone
	ready   chan struct{} // closed when Run has set up its watches
}

// fileState is what the store knows of one file.
type fileState struct {
	size  int64
	mtime time.Time
	hash  [sha256.Size]byte // of the content last read, valid or not
	racy  bool              // read within racyWindow of its mtime: read again at the next rescan

	resources []config.Resource // of the last valid version; nil when none
	valid     bool              // a version has loaded
	readErr   bool              // the last attempt failed to read the file: retry every scan
	err       string            // why the current content is rejected; "" when it is not
	errTime   time.Time
}

// Status is the store's state for /debug/configz. It is JSON-marshalable.
type Status struct {
	Dir        string       `json:"dir"`
	Resources  int          `json:"resources"`           // in the current snapshot
	LastChange time.Time    `json:"lastChange,omitzero"` // when the snapshot last changed
	Files      []FileStatus `json:"files"`               // every config file, by path
	Rejected   []Rejection  `json:"rejected"`            // files whose current content is rejected
	Conflicts  []Conflict   `json:"conflicts"`           // keys defined more than once
}

// FileStatus is one file and the keys it provides (that are in force from it).
type FileStatus struct {
	Path string   `json:"path"`
	Keys []string `json:"keys"`
	// Stale is true when the file's current content is rejected and Keys are
	// those of its last valid version.
	Stale bool `json:"stale,omitempty"`
}

// Rejection is a file whose current content failed to load.
type Rejection struct {
	Path  string    `json:"path"`
	Error string    `json:"error"`
	Time  time.Time `json:"time"` // when this content was rejected
}

// NewFile loads the tree under cfg.Dir once, synchronously. Files that fail to
// load are reported in Status, not returned as errors; an error means the
// directory itself cannot be read.
func NewFile(cfg FileConfig) (*File, error) {
	if cfg.Dir == "" {
		return nil, errors.New("config store: no directory")
	}
	if cfg.Load == nil {
		return nil, errors.New("config store: no load function")
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.WatchedRescan <= 0 {
		cfg.WatchedRescan = DefaultWatchedRescan
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("config store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("config store: %s is not a directory", cfg.Dir)
	}
	f := &File{cfg: cfg, log: log, files: map[string]*fileState{}, pending: map[string][]config.Resource{}, idx: newIndex(), watched: map[string]bool{}, kinds: map[config.Kind]struct{}{}, ready: make(chan struct{})}
	f.snap.Store(config.NewSnapshot(nil))
	if err := f.scan(scanRequest{all: true}, false); err != nil {
		return nil, fmt.Errorf("config store: %w", err)
	}
	return f, nil
}

// Snapshot returns the current snapshot. It is immutable.
func (f *File) Snapshot() *config.Snapshot { return f.snap.Load() }

// Status returns the store's state. Callers must not modify it.
func (f *File) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Run watches the tree and applies changes until ctx is done; it then returns
// nil. If file watching cannot be set up, it logs a warning and relies on the
// periodic rescan. Run must be called at most once.
func (f *File) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("config store: Run called twice")
	}
	var events chan fsnotify.Event
	var werrs chan error
	if f.noWatch {
		// Tests of the periodic rescan.
	} else if w, err := fsnotify.NewWatcher(); err != nil {
		f.log.Warn("cannot watch config directory; relying on periodic rescan", "dir", f.cfg.Dir, "rescan", f.cfg.Rescan, "error", err)
	} else {
		f.watcher = w
		events, werrs = w.Events, w.Errors
		defer func() {
			w.Close()
			f.watcher = nil
		}()
	}
	// Adds the watches and picks up changes made since NewFile.
	f.scanLogged(scanRequest{})
	close(f.ready)

	period := f.cfg.Rescan
	if f.watcher != nil {
		period = f.cfg.WatchedRescan
	}
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		pending  scanRequest
		armed    bool
		deadline time.Time
	)
	arm := func() {
		now := time.Now()
		if !armed {
			armed = true
			deadline = now.Add(10 * f.cfg.Debounce)
		}
		timer.Reset(min(f.cfg.Debounce, max(deadline.Sub(now), 0)))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// If it was a watched directory its watch is gone: add it
				// again should a directory of that name come back.
				delete(f.watched, filepath.Clean(ev.Name))
			}
			pending.add(ev.Name)
			arm()
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			// Events may have been lost (for example on queue overflow): re-read everything.
			f.log.Warn("config directory watch error; rescanning", "dir", f.cfg.Dir, "error", err)
			pending.all = true
			arm()
		case <-timer.C:
			armed = false
			if err := f.update(pending); err != nil {
				f.log.Error("cannot read config directory; keeping the current configuration", "dir", f.cfg.Dir, "error", err)
			}
			pending = scanRequest{}
		case <-ticker.C:
			if !armed {
				f.scanLogged(scanRequest{})
			}
		}
	}
}

// scanRequest says which files to read even when their size and mtime are
// unchanged.
type scanRequest struct {
	all   bool
	dirty map[string]struct{}
}

func (r *scanRequest) add(path string) {
	if r.dirty == nil {
		r.dirty = map[string]struct{}{}
	}
	r.dirty[filepath.Clean(path)] = struct{}{}
}

func (r *scanRequest) forced(path string) bool {
	if r.all {
		return true
	}
	_, ok := r.dirty[path]
	return ok
}

func (f *File) scanLogged(req scanRequest) {
	if err := f.scan(req, true); err != nil {
		f.log.Error("cannot read config directory; keeping the current configuration", "dir", f.cfg.Dir, "error", err)
	}
}

// scan walks the tree, loads new and changed files, forgets deleted ones and,
// when the merged snapshot changed, publishes it (calling OnChange if notify).
func (f *File) scan(req scanRequest, notify bool) error {
	w, err := f.walk(f.cfg.Dir, req)
	if err != nil {
		return err
	}
	f.prune("", &w)
	return f.finish(w.changed, w.status, notify)
}

// update applies the file events of req: the named config files are read
// again and named directories walked, which costs what changed rather than
// the whole tree. Events it cannot attribute (a watch error, Kubernetes'
// "..data" symbolic link swaps) make it scan the whole tree; hidden and
// temporary files cannot change the configuration and are ignored.
func (f *File) update(req scanRequest) error {
	if req.all {
		return f.scan(req, true)
	}
	changed, status := false, false
	for path := range req.dirty {
		rel, err := filepath.Rel(f.cfg.Dir, path)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return f.scan(req, true)
		}
		if skip, full := skippedPath(rel); full {
			return f.scan(req, true)
		} else if skip {
			continue
		}
		fi, err := os.Lstat(path)
		switch {
		case err == nil && fi.IsDir():
			w, werr := f.walk(path, req)
			if errors.Is(werr, fs.ErrNotExist) {
				c, s := f.forgetUnder(path)
				changed, status = changed || c, status || s
				continue
			}
			if werr != nil {
				return f.scan(req, true)
			}
			f.prune(path, &w)
			changed, status = changed || w.changed, status || w.status
		case isConfigFile(filepath.Base(path)):
			c, present := f.check(path, true)
			if !present && f.files[path] != nil {
				c.resources, c.status = f.forget(path), true
			}
			changed, status = changed || c.resources, status || c.status
		case errors.Is(err, fs.ErrNotExist):
			// Perhaps a directory that was removed or renamed away.
			c, s := f.forgetUnder(path)
			changed, status = changed || c, status || s
		}
	}
	return f.finish(changed, status, true)
}

// skippedPath reports whether a path relative to the root has a hidden or
// temporary component (its events cannot matter), and whether that component
// starts with ".." (Kubernetes' atomic writer: rescan everything).
func skippedPath(rel string) (skip, full bool) {
	for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, "..") {
			return true, true
		}
		if skipName(part) {
			skip = true
		}
	}
	return skip, false
}

// walked is what a walk of a directory found.
type walked struct {
	files, dirs     map[string]bool
	unreadable      []string // directories whose files are kept as they were
	changed, status bool
}

// walk reads the config files under root that are new or changed (or forced
// by req) and adds watches on its directories.
func (f *File) walk(root string, req scanRequest) (walked, error) {
	w := walked{files: map[string]bool{}, dirs: map[string]bool{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			f.log.Warn("cannot read config subdirectory; keeping its files' configuration", "dir", path, "error", err)
			w.unreadable = append(w.unreadable, path+string(filepath.Separator))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if path != root && skipName(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			w.dirs[path] = true
			f.watch(path)
			return nil
		}
		if !isConfigFile(d.Name()) {
			return nil
		}
		// Symbolic links to files are followed (Kubernetes ConfigMap volumes use
		// them); anything else that is not a regular file is ignored.
		if t := d.Type(); t&fs.ModeSymlink == 0 && !t.IsRegular() {
			return nil
		}
		c, present := f.check(path, req.forced(path))
		if present {
			w.files[path] = true
		}
		w.changed = w.changed || c.resources
		w.status = w.status || c.status
		return nil
	})
	return w, err
}

// prune forgets the files and watches under dir ("" for the whole tree) that
// the walk w of dir did not find.
func (f *File) prune(dir string, w *walked) {
	prefix := ""
	if dir != "" {
		prefix = dir + string(filepath.Separator)
	}
	for path := range f.files {
		if !strings.HasPrefix(path, prefix) || w.files[path] || slices.ContainsFunc(w.unreadable, func(p string) bool { return strings.HasPrefix(path, p) }) {
			continue
		}
		w.status = true
		w.changed = f.forget(path) || w.changed
	}
	for d := range f.watched {
		if (d == dir || strings.HasPrefix(d, prefix)) && !w.dirs[d] {
			f.unwatch(d)
		}
	}
}

// forgetUnder forgets every file and watch under dir (removed or renamed
// away) and reports whether resources in force went with them, and whether
// any file did.
func (f *File) forgetUnder(dir string) (changed, files bool) {
	prefix := dir + string(filepath.Separator)
	for path := range f.files {
		if strings.HasPrefix(path, prefix) {
			files = true
			changed = f.forget(path) || changed
		}
	}
	for d := range f.watched {
		if d == dir || strings.HasPrefix(d, prefix) {
			f.unwatch(d)
		}
	}
	return changed, files
}

// forget drops a file that no longer exists and reports whether it had
// resources in force.
func (f *File) forget(path string) bool {
	st := f.files[path]
	if st == nil {
		return false
	}
	delete(f.files, path)
	if !st.valid {
		return false
	}
	f.pending[path] = nil
	f.noteKinds(st.resources)
	f.log.Info("config file removed", "file", path, "resources", len(st.resources))
	return true
}

func (f *File) unwatch(dir string) {
	delete(f.watched, dir)
	if f.watcher != nil {
		f.watcher.Remove(dir) // usually already gone with the directory
	}
}

// noteKinds records the kinds of changed resources for the next Update.
func (f *File) noteKinds(rs []config.Resource) {
	for i := range rs {
		f.kinds[rs[i].Kind] = struct{}{}
	}
}

// noteChangedKinds records the kinds of the resources that differ between a
// file's old and new resources (a file often holds a ServiceEntry and its
// WorkloadEntries; moving one workload changes only WorkloadEntry). It costs
// what the file holds.
func (f *File) noteChangedKinds(old, new []config.Resource) {
	if len(old) == 0 {
		f.noteKinds(new)
		return
	}
	byKey := make(map[config.Key]*config.Resource, len(old))
	for i := range old {
		byKey[old[i].Key()] = &old[i]
	}
	for i := range new {
		k := new[i].Key()
		if o := byKey[k]; o == nil || !resourceEqual(*o, new[i]) {
			f.kinds[k.Kind] = struct{}{}
		}
		delete(byKey, k)
	}
	for k := range byKey {
		f.kinds[k.Kind] = struct{}{}
	}
}

// finish publishes the merged snapshot if resources changed, refreshes the
// status, and calls OnChange and OnUpdate if notify.
func (f *File) finish(changed, statusChanged, notify bool) error {
	var old, next *config.Snapshot
	if changed {
		var c bool
		old, next, c = f.publish()
		statusChanged = statusChanged || c
	}
	// Status first, so that OnChange and whoever it wakes see it up to date.
	if statusChanged {
		f.updateStatus()
	}
	if !changed {
		return nil
	}
	kinds := f.kinds
	f.kinds = map[config.Kind]struct{}{}
	if next != nil && notify {
		if f.cfg.OnChange != nil {
			f.cfg.OnChange(old, next)
		}
		if f.cfg.OnUpdate != nil {
			f.cfg.OnUpdate(Update{Old: old, New: next, Kinds: kinds})
		}
	}
	return nil
}

// publish merges the changed files' resources into the index and, if the
// snapshot changed, stores it and returns the old and new ones (next is nil
// when unchanged). status reports whether the published status must be rebuilt.
func (f *File) publish() (old, next *config.Snapshot, status bool) {
	changed, conflictsChanged := f.idx.apply(f.pending, f.log)
	f.pending = map[string][]config.Resource{}
	if conflictsChanged {
		f.conflicts = f.idx.conflictList()
	}
	if !changed {
		return nil, nil, conflictsChanged
	}
	old, next = f.snap.Load(), f.idx.snap
	f.snap.Store(next)
	f.mu.Lock()
	f.status.LastChange = time.Now()
	f.mu.Unlock()
	f.log.Info("config applied", "resources", next.Len())
	return old, next, true
}

func conflictEqual(a, b Conflict) bool {
	return a.Key == b.Key && a.Winner == b.Winner && slices.Equal(a.Ignored, b.Ignored)
}

// checkResult says what a file check changed.
type checkResult struct {
	resources bool // the file's resources in force changed
	status    bool // only its reported state changed
}

// check brings the state of one file up to date. present is false when the file
// no longer exists.
func (f *File) check(path string, force bool) (res checkResult, present bool) {
	st := f.files[path]
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return res, false // vanished, or a dangling symbolic link
	}
	if err == nil && !fi.Mode().IsRegular() {
		return res, false
	}
	if err == nil && st != nil && !force && !st.racy && !st.readErr && fi.Size() == st.size && fi.ModTime().Equal(st.mtime) {
		return res, true
	}
	var data []byte
	if err == nil {
		data, err = os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return res, false
		}
	}
	now := time.Now()
	if st == nil {
		st = &fileState{}
		f.files[path] = st
		res.status = true
	}
	if err != nil {
		if !st.readErr || st.err != err.Error() {
			f.log.Warn("cannot read config file; keeping its last valid configuration", "file", path, "error", err)
			st.err, st.errTime, res.status = err.Error(), now, true
		}
		st.readErr = true
		st.hash = [sha256.Size]byte{} // so that the next successful read is loaded
		return res, true
	}
	st.readErr = false
	st.size, st.mtime = fi.Size(), fi.ModTime()
	st.racy = now.Sub(st.mtime) < racyWindow
	h := sha256.Sum256(data)
	if h == st.hash && (st.valid || st.err != "") {
		return res, true
	}
	st.hash = h
	rs, err := f.cfg.Load(path, data)
	if err != nil {
		f.log.Warn("config file rejected; keeping its last valid configuration", "file", path, "kept", len(st.resources), "error", err)
		st.err, st.errTime, res.status = err.Error(), now, true
		return res, true
	}
	if st.err != "" {
		f.log.Info("config file accepted", "file", path)
		st.err, st.errTime, res.status = "", time.Time{}, true
	}
	for i := range rs {
		if rs[i].Source.File == "" {
			rs[i].Source.File = path
		}
	}
	f.noteChangedKinds(st.resources, rs)
	f.pending[path] = rs
	st.resources, st.valid, res.resources = rs, true, true
	return res, true
}

// watch adds a watch on dir if there is a watcher and it has none yet.
func (f *File) watch(dir string) {
	if f.watcher == nil || f.watched[dir] {
		return
	}
	if err := f.watcher.Add(dir); err != nil {
		f.log.Warn("cannot watch config directory; relying on periodic rescan", "dir", dir, "error", err)
		return
	}
	f.watched[dir] = true
}

// updateStatus rebuilds the published Status from the files' state.
func (f *File) updateStatus() {
	paths := make([]string, 0, len(f.files))
	for p := range f.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	s := Status{Dir: f.cfg.Dir, Resources: f.snap.Load().Len(), Files: []FileStatus{}, Rejected: []Rejection{}, Conflicts: []Conflict{}}
	for _, p := range paths {
		st := f.files[p]
		keys := f.idx.providedStr[p]
		if keys == nil {
			keys = []string{}
		}
		s.Files = append(s.Files, FileStatus{Path: p, Keys: keys, Stale: st.err != "" && st.valid})
		if st.err != "" {
			s.Rejected = append(s.Rejected, Rejection{Path: p, Error: st.err, Time: st.errTime})
		}
	}
	s.Conflicts = append(s.Conflicts, f.conflicts...)
	f.mu.Lock()
	s.LastChange = f.status.LastChange
	f.status = s
	f.mu.Unlock()
}

// skipName reports whether a file or directory is hidden or an editor's
// temporary or backup file.
func skipName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~") || strings.HasSuffix(name, "#")
}

// isConfigFile reports whether name has a configuration file extension.
func isConfigFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}
