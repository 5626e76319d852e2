package h2server

import (
	"errors"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
)

// readPingAck reads frames until the ACK of the PING with data.
func (c *client) readPingAck(data [8]byte) error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.PingFrame:
			if !f.IsAck() {
				continue
			}
			if f.Data != data {
				return errors.New("the ACK of another PING")
			}
			return nil
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		}
	}
}

// A client that pings once per response it reads, as grpc-go's BDP
// estimator does, is answered however many responses it reads: five times
// the control-frame bucket's burst, which the bucket alone cut after about
// 1,000 (a gRPC client making 3,000 calls a second over one connection lost
// it every third of a second). A client that pings without being sent
// anything is still cut.
func TestPingPerResponseIsNotAFlood(t *testing.T) {
	n := 5 * controlBurst
	h := &testHandler{started: make(chan string, n+1), served: make(chan string, n+1)}
	var reason atomic.Value
	c := serveTest(t, Config{OnFlood: func(r string) { reason.Store(r) }}, h)
	for i := 0; i < n; i++ {
		id := uint32(2*i + 1)
		c.post(id, true)
		if st, _ := c.response(id); st != "200" {
			t.Fatalf("request %d: status %s", i, st)
		}
		data := [8]byte{byte(i), byte(i >> 8)}
		if err := c.fr.WritePing(false, data); err != nil {
			t.Fatalf("PING %d: %v (flood: %v)", i, err, reason.Load())
		}
		if err := c.readPingAck(data); err != nil {
			t.Fatalf("the ACK of PING %d: %v (flood: %v)", i, err, reason.Load())
		}
	}
	if r := reason.Load(); r != nil {
		t.Fatalf("cut as a flood: %v", r)
	}
	for i := 0; ; i++ {
		if i > 10*controlBurst {
			t.Fatal("PINGs without responses were not cut")
		}
		data := [8]byte{1}
		if c.fr.WritePing(false, data) != nil || c.readPingAck(data) != nil {
			break
		}
	}
	if reason.Load() == nil {
		t.Fatal("the connection ended without a flood")
	}
}

// A client that floods PINGs while its ACKs cannot be written (here a
// response holds the connection's writer, as one blocked on a client that
// does not read would) is cut once maxQueuedControl ACKs wait.
func TestPingFloodWithoutReadingIsCut(t *testing.T) {
	h := newHandler()
	hold, release := make(chan struct{}), make(chan struct{})
	h.serve = func(s *Stream) {
		s.c.lockWrite()
		close(hold)
		<-release
		s.c.unlockWrite(false)
		s.Abort()
	}
	var reason atomic.Value
	cut := make(chan struct{})
	c := serveTest(t, Config{OnFlood: func(r string) {
		reason.Store(r)
		close(cut)
	}}, h)
	defer close(release)
	c.post(1, true)
	recv(t, h.served, "Serve")
	<-hold
	sent := 0
	for ; sent < 10*maxQueuedControl; sent++ {
		if c.fr.WritePing(false, [8]byte{1}) != nil {
			break
		}
	}
	select {
	case <-cut:
	default:
		// Every PING was written: the reader may not have read them all yet.
		for {
			if _, err := c.fr.ReadFrame(); err != nil {
				break
			}
		}
	}
	if reason.Load() == nil {
		t.Fatalf("not cut after %d PINGs whose ACKs could not be written", sent)
	}
}
