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

// Of places a time.Now result on Now's scale between the readings taken
// around it, and an offset from epoch at that offset.
func TestOf(t *testing.T) {
	a := Now()
	tm := time.Now()
	b := Now()
	if got := Of(tm); got < a || got > b {
		t.Fatalf("Of(time.Now()) = %d, want within [%d, %d]", got, a, b)
	}
	if got := Of(epoch.Add(5 * time.Second)); got != int64(5*time.Second) {
		t.Fatalf("Of(epoch + 5s) = %d, want %d", got, int64(5*time.Second))
	}
}
