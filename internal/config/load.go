package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load decodes and validates the documents of one file. It returns the
// resources that have no errors (a resource with errors is left out, the
// others are kept) and every problem found, errors and warnings, sorted by
// line.
func Load(file string, data []byte) ([]Resource, Problems) {
	rs, probs := decodeFile(file, data)
	out := rs[:0]
	for _, r := range rs {
		ps := Validate(r)
		probs = append(probs, ps...)
		if !ps.HasErrors() {
			out = append(out, r)
		}
	}
	probs.Sort()
	return out, probs
}

// LoadPaths loads files and directory trees (every .yaml, .yml and .json file
// under a directory, skipping hidden directories; a file named directly is
// read whatever its extension). It runs Load on each file, then checks the
// resulting set as a whole with ValidateSnapshot, and warns about resources
// defined more than once (the last definition wins). Problems are sorted by
// file and line.
func LoadPaths(paths ...string) ([]Resource, Problems) {
	var all []Resource
	var probs Problems
	for _, file := range expandPaths(paths, &probs) {
		data, err := os.ReadFile(file)
		if err != nil {
			probs = append(probs, Problem{Severity: Error, Source: Source{File: file}, Message: err.Error()})
			continue
		}
		rs, ps := Load(file, data)
		all = append(all, rs...)
		probs = append(probs, ps...)
	}
	seen := make(map[Key]Source, len(all))
	for _, r := range all {
		if prev, ok := seen[r.Key()]; ok {
			probs = append(probs, Problem{Severity: Warning, Source: r.Source, Resource: r.Key(),
				Message: "also defined at " + prev.String() + "; this later definition wins"})
		}
		seen[r.Key()] = r.Source
	}
	probs = append(probs, ValidateSnapshot(NewSnapshot(all))...)
	probs.Sort()
	return all, probs
}

// expandPaths lists the files to read, in a stable order.
func expandPaths(paths []string, probs *Problems) []string {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			*probs = append(*probs, Problem{Severity: Error, Source: Source{File: p}, Message: err.Error()})
			continue
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				*probs = append(*probs, Problem{Severity: Error, Source: Source{File: path}, Message: err.Error()})
				return nil
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			*probs = append(*probs, Problem{Severity: Error, Source: Source{File: p}, Message: err.Error()})
		}
	}
	return files
}
