package ads

import "testing"

// TestSyncState covers the four proxy-status states, as istioctl names them,
// from the nonces of one type's latest response, ACK and NACK.
func TestSyncState(t *testing.T) {
	for _, c := range []struct {
		sent, acked, nacked, want string
	}{
		{"", "", "", StateNotSent},      // subscribed, nothing sent yet
		{"n1", "n1", "", StateSynced},   // the latest response ACKed
		{"n2", "n1", "", StateStale},    // a newer response in flight
		{"n2", "n1", "n2", StateNACKed}, // the latest response rejected
		{"n3", "n1", "n2", StateStale},  // rejected, then a newer one sent: not yet answered
		{"n3", "n3", "n2", StateSynced}, // an old NACK stays on record; the latest is ACKed
	} {
		if got := syncState(c.sent, c.acked, c.nacked); got != c.want {
			t.Errorf("syncState(sent %q, acked %q, nacked %q) = %s, want %s", c.sent, c.acked, c.nacked, got, c.want)
		}
	}
}
