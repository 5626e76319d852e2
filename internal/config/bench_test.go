package config

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadBookinfo decodes and validates all of Istio's Bookinfo
// networking samples (21 files, 38 resources) per iteration.
func BenchmarkLoadBookinfo(b *testing.B) {
	files, err := filepath.Glob(sharedCompatDir + "/*.yaml")
	if err != nil || len(files) == 0 {
		b.Skipf("Istio's compatibility corpus %s is absent (%v)", sharedCompatDir, err)
	}
	data := make([][]byte, len(files))
	size := 0
	for i, f := range files {
		if data[i], err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
		size += len(data[i])
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for i, f := range files {
			rs, ps := Load(f, data[i])
			if ps.HasErrors() {
				b.Fatal(ps)
			}
			n += len(rs)
		}
		if n != 38 {
			b.Fatalf("%d resources", n)
		}
	}
}
