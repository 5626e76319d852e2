package config

import (
	"strconv"
	"strings"
)

// Positions records where each field of a decoded resource was written. It is
// built once by the decoder and read-only afterwards, so it may be shared.
//
// Entries are stored compactly (parent index plus one path segment) so that
// decoding allocates no path strings; paths are rebuilt only when a line is
// looked up, which happens when a problem is reported.
type Positions struct {
	entries []posEntry
}

type posEntry struct {
	parent int32  // index of the parent entry, -1 for a top-level field
	line   int32  // 1-based line in the file
	index  int32  // list index, or -1 for a named segment
	name   string // field name (JSON name) or map key
	isKey  bool   // name is a map key, rendered as [name]
}

// add appends an entry and returns its index.
func (p *Positions) add(parent int32, line int, name string, index int, isKey bool) int32 {
	p.entries = append(p.entries, posEntry{parent: parent, line: int32(line), index: int32(index), name: name, isKey: isKey})
	return int32(len(p.entries) - 1)
}

// Line returns the line where the field at path (for example
// "spec.http[0].route[1].weight") was written. When the field itself was not
// written (a missing field, say), it returns the line of its nearest written
// ancestor. It returns 0 when nothing is known.
func (p *Positions) Line(path string) int {
	if p == nil || len(p.entries) == 0 || path == "" {
		return 0
	}
	paths := make([]string, len(p.entries))
	best, bestLen := 0, -1
	for i, e := range p.entries {
		var prefix string
		if e.parent >= 0 {
			prefix = paths[e.parent]
		}
		paths[i] = appendSegment(prefix, e)
		s := paths[i]
		if s == path {
			return int(e.line)
		}
		if len(s) > bestLen && strings.HasPrefix(path, s) && (path[len(s)] == '.' || path[len(s)] == '[') {
			best, bestLen = int(e.line), len(s)
		}
	}
	return best
}

func appendSegment(prefix string, e posEntry) string {
	switch {
	case e.index >= 0:
		return prefix + "[" + strconv.Itoa(int(e.index)) + "]"
	case e.isKey:
		return prefix + "[" + mapKeySegment(e.name) + "]"
	case prefix == "":
		return e.name
	default:
		return prefix + "." + e.name
	}
}

// mapKeySegment renders a map key inside [] in a field path: plain when it is
// made of ordinary characters, quoted otherwise.
func mapKeySegment(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == '@' || c == '*') {
			return strconv.Quote(k)
		}
	}
	return k
}

// fieldPath helpers used by validators: they build the same path syntax.

func pathIndex(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

func pathKey(base, key string) string { return base + "[" + mapKeySegment(key) + "]" }
