package config

import (
	"os"
	"path/filepath"
	"testing"
)

// seedCorpus adds every testdata file to f's seed corpus.
func seedCorpus(f *testing.F) {
	f.Helper()
	for _, pattern := range []string{"../../samples/bookinfo/config/*.yaml", "testdata/invalid/*", "testdata/warn/*.yaml", "testdata/valid/*"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("{\"kind\": \"List\", \"items\": [1, null, {}]}"))
}

// FuzzDecode: decoding arbitrary bytes never panics, and every problem it
// reports names the file and a line.
func FuzzDecode(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode("fuzz.yaml", data)
		if err != nil {
			ps, ok := err.(Problems)
			if !ok || len(ps) == 0 {
				t.Fatalf("error %T %v is not a non-empty Problems", err, err)
			}
			for _, p := range ps {
				if p.Source.File != "fuzz.yaml" || p.Severity != Error {
					t.Fatalf("bad problem %+v", p)
				}
			}
		}
		for _, r := range rs {
			if r.Spec == nil || r.Name == "" || r.Namespace == "" {
				t.Fatalf("incomplete resource %+v", r.Meta)
			}
		}
	})
}

// FuzzValidate: whatever decodes, Validate and ValidateSnapshot never panic.
func FuzzValidate(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, _ := Decode("fuzz.yaml", data)
		for _, r := range rs {
			for _, p := range Validate(r) {
				if p.Resource != r.Key() {
					t.Fatalf("problem %v names resource %v, want %v", p, p.Resource, r.Key())
				}
			}
		}
		ValidateSnapshot(NewSnapshot(rs))
	})
}
