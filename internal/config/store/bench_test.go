package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// meshFile is one service's file as in bench/controlplane: a ServiceEntry and
// five WorkloadEntries; addr varies the first workload's address.
func meshFile(i int, addr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc%[1]d, namespace: ns%[2]d}
spec:
  hosts: [svc%[1]d.ns%[2]d.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: svc%[1]d}}
`, i, i%10)
	for j := range 5 {
		a := fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1)
		if j == 0 && addr != "" {
			a = addr
		}
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc%d-%d, namespace: ns%d}\nspec:\n  address: %s\n  labels: {app: svc%d}\n", i, j, i%10, a, i)
	}
	return b.String()
}

// BenchmarkFileUpdateOneFile measures what a file event costs the store in a
// tree of one file per service: re-reading the file, merging, publishing.
func BenchmarkFileUpdateOneFile(b *testing.B) {
	for _, services := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			dir := b.TempDir()
			t := &testing.T{}
			for i := range services {
				writeInPlace(t, filepath.Join(dir, fmt.Sprintf("ns%d", i%10), fmt.Sprintf("svc%d.yaml", i)), meshFile(i, ""))
			}
			f, err := NewFile(FileConfig{Dir: dir, Load: decode})
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(dir, "ns0", "svc0.yaml")
			b.ResetTimer()
			for i := range b.N {
				writeInPlace(t, path, meshFile(0, fmt.Sprintf("10.200.%d.%d", i/250%250, 1+i%250)))
				req := scanRequest{}
				req.add(path)
				if err := f.update(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
