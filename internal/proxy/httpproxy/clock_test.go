package httpproxy

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestMonoAdd(t *testing.T) {
	now := monoNow()
	if now <= 0 {
		t.Fatalf("monoNow = %d, want > 0", now)
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
		if got := monoAdd(tc.t, tc.d); got != tc.want {
			t.Errorf("monoAdd(%d, %d) = %d, want %d", tc.t, tc.d, got, tc.want)
		}
	}
}

// TestStreamTimerCenturies: timeouts of centuries (an xDS duration that
// saturates to math.MaxInt64) never fire, instead of wrapping into the
// past and firing at once.
func TestStreamTimerCenturies(t *testing.T) {
	forever := time.Duration(math.MaxInt64)
	st := newStream(context.Background(), forever, forever, nil)
	if d := st.next(monoNow()); d < 100*365*24*time.Hour {
		t.Fatalf("next = %v, want centuries", d)
	}
	st.fire()
	if err := st.Err(); err != nil {
		t.Fatalf("the stream ended: %v", err)
	}
	if err := st.stop(); err != nil {
		t.Fatalf("stop = %v, want no timer's cause", err)
	}
}
