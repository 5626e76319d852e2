// Package attribute holds Mixer's attribute model: the vocabulary (names and
// value types), bags of attribute values, and the compressed wire form of
// istio.mixer.v1.CompressedAttributes with Istio's global word list. It is
// shared by mastd's Mixer and mast-proxy's Mixer client and links no
// expression or adapter code.
package attribute

import (
	_ "embed"
	"strings"
)

//go:embed global_dictionary.yaml
var globalDictionaryYAML string

// Dictionary is Istio's global word list (mixer/v1/global_dictionary.yaml of
// istio/api 1.4): index i encodes as i, a message's own words as -1, -2, ...
type Dictionary struct {
	words []string
	index map[string]int32
}

// GlobalDictionary parses the embedded global word list. Callers keep the
// result (it is immutable) and pass it down.
func GlobalDictionary() *Dictionary {
	d := &Dictionary{index: map[string]int32{}}
	for _, l := range strings.Split(globalDictionaryYAML, "\n") {
		w, ok := strings.CutPrefix(l, "- ")
		if !ok {
			continue
		}
		if len(w) >= 2 && (w[0] == '\'' || w[0] == '"') && w[len(w)-1] == w[0] {
			w = w[1 : len(w)-1]
		}
		if _, dup := d.index[w]; !dup {
			d.index[w] = int32(len(d.words))
		}
		d.words = append(d.words, w)
	}
	return d
}

// Len is the number of global words (CheckRequest.global_word_count).
func (d *Dictionary) Len() int { return len(d.words) }

// Word returns global word i.
func (d *Dictionary) Word(i int) (string, bool) {
	if i < 0 || i >= len(d.words) {
		return "", false
	}
	return d.words[i], true
}

// Index returns the global index of w.
func (d *Dictionary) Index(w string) (int32, bool) {
	i, ok := d.index[w]
	return i, ok
}
