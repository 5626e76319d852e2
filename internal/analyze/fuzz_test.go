package analyze

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzAnalyze feeds arbitrary files to the input reader and every analyzer:
// nothing may panic, whatever the YAML.
func FuzzAnalyze(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n"))
	f.Add([]byte("kind: Service\nspec: {ports: [{port: x}]}\n---\n- 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := NewInput()
		in.Add("fuzz.yaml", data)
		in.Offline()
		Analyze(in)
	})
}
