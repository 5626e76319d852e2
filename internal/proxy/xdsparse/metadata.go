package xdsparse

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"unique"
)

// Metadata is string-valued endpoint metadata (an endpoint's
// envoy.transport_socket_match entries) in a canonical, interned form:
// the keys sorted, each key and value length-prefixed. Every endpoint of a
// mesh typically carries the same few entries (Istio's tlsMode=istio), so
// the bytes are shared process-wide through the unique package instead of
// a map per endpoint (a one-entry map costs ~700 bytes; 2,000 endpoints
// held 1.6 MB of them). The zero value has no entries.
type Metadata string

// MakeMetadata returns the canonical form of m.
func MakeMetadata(m map[string]string) Metadata {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return Metadata(unique.Make(string(b)).Value())
}

// makeMetadataPairs is MakeMetadata of key-value pairs as they fill a map:
// a later pair replaces an earlier one of the same key. It sorts p.
func makeMetadataPairs(p []kvPair) Metadata {
	if len(p) == 0 {
		return ""
	}
	slices.SortStableFunc(p, func(a, b kvPair) int { return bytes.Compare(a.k, b.k) })
	var buf [64]byte
	b := buf[:0]
	for i, kv := range p {
		if i+1 < len(p) && bytes.Equal(kv.k, p[i+1].k) {
			continue // replaced by the later pair
		}
		b = binary.AppendUvarint(b, uint64(len(kv.k)))
		b = append(b, kv.k...)
		b = binary.AppendUvarint(b, uint64(len(kv.v)))
		b = append(b, kv.v...)
	}
	return Metadata(unique.Make(string(b)).Value())
}

// Get returns the value of key k.
func (md Metadata) Get(k string) (string, bool) {
	s := string(md)
	for len(s) > 0 {
		key, rest, ok := cutLenPrefixed(s)
		if !ok {
			return "", false
		}
		val, rest, ok := cutLenPrefixed(rest)
		if !ok {
			return "", false
		}
		if key == k {
			return val, true
		}
		s = rest
	}
	return "", false
}

// Map returns the entries as a map (for display and tests).
func (md Metadata) Map() map[string]string {
	out := map[string]string{}
	s := string(md)
	for len(s) > 0 {
		key, rest, ok := cutLenPrefixed(s)
		if !ok {
			break
		}
		val, rest, ok := cutLenPrefixed(rest)
		if !ok {
			break
		}
		out[key] = val
		s = rest
	}
	return out
}

func cutLenPrefixed(s string) (field, rest string, ok bool) {
	n, w := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
	if w <= 0 || uint64(len(s)-w) < n {
		return "", "", false
	}
	return s[w : w+int(n)], s[w+int(n):], true
}

// intern returns s with its bytes shared with every equal string interned
// before (locality names, repeated across every endpoint set).
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(strings.Clone(s)).Value()
}
