package http1

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestAppendDecimal(t *testing.T) {
	cases := []int64{0, 1, 9, 10, 99, 100, 200, 999, 1000, 1024, 65535, 1 << 32, math.MaxInt64, -1, -10, math.MinInt64}
	for p := int64(1); p > 0 && p < math.MaxInt64/10; p *= 10 {
		cases = append(cases, p-1, p, p+1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		cases = append(cases, r.Int64N(math.MaxInt64), r.Int64N(1<<20))
	}
	for _, n := range cases {
		got := string(appendDecimal([]byte("x"), n))
		if want := "x" + strconv.FormatInt(n, 10); got != want {
			t.Fatalf("appendDecimal(%d) = %q, want %q", n, got, want)
		}
	}
}

func FuzzAppendDecimal(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(math.MaxInt64))
	f.Add(int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, n int64) {
		if got, want := string(appendDecimal(nil, n)), strconv.FormatInt(n, 10); got != want {
			t.Fatalf("appendDecimal(%d) = %q, want %q", n, got, want)
		}
	})
}
