package localmesh

import (
	"bytes"
	"testing"
)

// FuzzSplitDocs feeds arbitrary files to the document splitter `mast apply`
// and `mast delete` use: it must not panic, must keep every byte of every
// document, and must drop only separator lines.
func FuzzSplitDocs(f *testing.F) {
	for _, seed := range []string{twoRules, "", "---\n", "a: 1\n---\nb: 2", "--- # c\nx\n---\n---\n", "----\n---x\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		docs := splitDocs(b)
		if len(docs) == 0 {
			t.Fatal("no documents")
		}
		n := 0
		for _, d := range docs {
			n += len(d)
			if !bytes.Contains(b, d) {
				t.Fatalf("document %q is not part of the input", d)
			}
		}
		if n > len(b) {
			t.Fatalf("documents hold %d bytes, input %d", n, len(b))
		}
	})
}
