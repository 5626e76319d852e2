package httpproxy

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/monoclock"
)

// TestStreamTimerCenturies: timeouts of centuries (an xDS duration that
// saturates to math.MaxInt64) never fire, instead of wrapping into the
// past and firing at once.
func TestStreamTimerCenturies(t *testing.T) {
	forever := time.Duration(math.MaxInt64)
	st := newStream(context.Background(), forever, forever, nil)
	if d := st.next(monoclock.Now()); d < 100*365*24*time.Hour {
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
