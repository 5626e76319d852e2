package localmesh

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mast-mesh/mast/internal/config"
)

// doc is one YAML document of a file, with the resources it holds.
type doc struct {
	text []byte
	keys []config.Key
}

// splitDocs splits YAML text at "---" lines, keeping each document's text as written.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.HasPrefix(t, []byte("---#")) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, bytes.Clone(cur.Bytes()))
}

// readDocs decodes every document of a file on its own, so each can be replaced or removed alone.
func readDocs(path string, b []byte) ([]doc, error) {
	var out []doc
	for _, text := range splitDocs(b) {
		rs, err := config.Decode(path, text)
		if err != nil {
			return nil, err
		}
		d := doc{text: text}
		for _, r := range rs {
			d.keys = append(d.keys, r.Key())
		}
		out = append(out, d)
	}
	return out, nil
}

func configFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// Change is one line of what apply or delete did, as kubectl prints it.
type Change struct {
	Key    config.Key
	Action string // created, configured, unchanged, deleted, not found
	File   string
}

func (c Change) String() string {
	return fmt.Sprintf("%s/%s (namespace %s) %s in %s", strings.ToLower(c.Key.Kind.Kind), c.Key.Name, c.Key.Namespace, c.Action, c.File)
}

// Apply validates the input files and writes their resources into configDir,
// replacing any resource with the same kind, namespace and name wherever it
// is defined there (as `kubectl apply` replaces by key). Nothing is written
// if any input has an error.
func Apply(configDir string, inputs []string) ([]Change, error) {
	incoming, err := readInputs(inputs)
	if err != nil {
		return nil, err
	}
	return rewrite(configDir, incoming, false)
}

// Delete removes the resources named in the input files from configDir.
func Delete(configDir string, inputs []string) ([]Change, error) {
	incoming, err := readInputs(inputs)
	if err != nil {
		return nil, err
	}
	return rewrite(configDir, incoming, true)
}

type inputDoc struct {
	key  config.Key
	text []byte
}

func readInputs(inputs []string) ([]inputDoc, error) {
	if _, problems := config.LoadPaths(inputs...); problems.HasErrors() {
		return nil, fmt.Errorf("refusing to apply invalid configuration:\n%s", problems.Errors())
	}
	var files []string
	for _, in := range inputs {
		fs, err := configFiles(in)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	var out []inputDoc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if filepath.Ext(f) == ".json" {
			rs, err := config.Decode(f, b)
			if err != nil {
				return nil, err
			}
			if len(rs) != 1 {
				return nil, fmt.Errorf("%s: a JSON file must hold exactly one resource to be applied (it has %d)", f, len(rs))
			}
			out = append(out, inputDoc{key: rs[0].Key(), text: b})
			continue
		}
		docs, err := readDocs(f, b)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if len(d.keys) == 1 {
				out = append(out, inputDoc{key: d.keys[0], text: d.text})
			} else if len(d.keys) > 1 {
				return nil, fmt.Errorf("%s: a List document cannot be applied; split it into one document per resource", f)
			}
		}
	}
	return out, nil
}

func rewrite(configDir string, incoming []inputDoc, del bool) ([]Change, error) {
	files, err := configFiles(configDir)
	if err != nil {
		return nil, err
	}
	where := map[config.Key]string{}
	contents := map[string][]doc{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs, err := readDocs(f, b)
		if err != nil {
			continue // a file the store rejects too; leave it alone
		}
		contents[f] = docs
		for _, d := range docs {
			for _, k := range d.keys {
				if _, dup := where[k]; !dup {
					where[k] = f
				}
			}
		}
	}
	var changes []Change
	dirty := map[string]bool{}
	for _, in := range incoming {
		f, exists := where[in.key]
		switch {
		case del && !exists:
			changes = append(changes, Change{Key: in.key, Action: "not found", File: configDir})
		case del:
			contents[f] = removeKey(contents[f], in.key)
			dirty[f] = true
			changes = append(changes, Change{Key: in.key, Action: "deleted", File: f})
		case exists && bytes.Equal(bytes.TrimSpace(docFor(contents[f], in.key)), bytes.TrimSpace(in.text)):
			changes = append(changes, Change{Key: in.key, Action: "unchanged", File: f})
		case exists:
			contents[f] = replaceKey(contents[f], in.key, in.text)
			dirty[f] = true
			changes = append(changes, Change{Key: in.key, Action: "configured", File: f})
		default:
			nf := filepath.Join(configDir, "applied", strings.ToLower(fmt.Sprintf("%s-%s-%s.yaml", in.key.Kind.Kind, in.key.Namespace, in.key.Name)))
			contents[nf] = []doc{{text: in.text, keys: []config.Key{in.key}}}
			where[in.key] = nf
			dirty[nf] = true
			changes = append(changes, Change{Key: in.key, Action: "created", File: nf})
		}
	}
	for f := range dirty {
		if err := writeDocs(f, contents[f]); err != nil {
			return changes, err
		}
	}
	return changes, nil
}

func docFor(docs []doc, k config.Key) []byte {
	for _, d := range docs {
		if len(d.keys) == 1 && d.keys[0] == k {
			return d.text
		}
	}
	return nil
}

func replaceKey(docs []doc, k config.Key, text []byte) []doc {
	for i, d := range docs {
		if len(d.keys) == 1 && d.keys[0] == k {
			docs[i] = doc{text: text, keys: d.keys}
		}
	}
	return docs
}

func removeKey(docs []doc, k config.Key) []doc {
	out := docs[:0]
	for _, d := range docs {
		if len(d.keys) == 1 && d.keys[0] == k {
			continue
		}
		out = append(out, d)
	}
	return out
}

// writeDocs writes the documents back (atomically), or removes the file when none hold a resource.
func writeDocs(path string, docs []doc) error {
	var buf bytes.Buffer
	n := 0
	for _, d := range docs {
		if len(d.keys) == 0 && len(bytes.TrimSpace(d.text)) == 0 {
			continue
		}
		if len(d.keys) > 0 {
			n++
		}
		if buf.Len() > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(d.text)
		if !bytes.HasSuffix(d.text, []byte("\n")) {
			buf.WriteByte('\n')
		}
	}
	if n == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
