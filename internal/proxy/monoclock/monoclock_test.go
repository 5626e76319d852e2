package monoclock

import (
	"math"
	"testing"
	"time"
)

func TestAdd(t *testing.T) {
	now := Now()
	if now <= 0 {
		t.Fatalf("Now = %d, want > 0", now)
	}
	for _, tc := range []struct {
		t    int64
		d    time.Duration
		want int64
	}{
		{now, time.Second, now + int64(time.Second)},
		{now, -time.Second, now - int64(time.Second)},
		{now, math.MaxInt64, math.MaxInt64},
		{math.MaxInt64 - 1, 2, math.MaxInt64},
	} {
		if got := Add(tc.t, tc.d); got != tc.want {
			t.Errorf("Add(%d, %d) = %d, want %d", tc.t, tc.d, got, tc.want)
		}
	}
}
