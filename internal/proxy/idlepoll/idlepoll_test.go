package idlepoll

import (
	"net"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func waitResumed(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatalf("not resumed: %s", what)
	}
}

// TestParkResumesOnReadable: a parked connection is resumed once when
// data arrives, again after parking again, and when its peer closes.
func TestParkResumesOnReadable(t *testing.T) {
	var p Poller
	server, client := pair(t)
	resumed := make(chan struct{}, 4)
	var c Conn
	if !c.Init(server, func() { resumed <- struct{}{} }) {
		t.Fatal("a TCP connection cannot be parked")
	}
	for i, step := range []func(){
		func() { client.Write([]byte("a")) },
		func() { client.Write([]byte("b")) },
		func() { client.Close() },
	} {
		if !p.Park(&c) {
			t.Fatal("Park failed")
		}
		if p.Parked() != 1 {
			t.Fatalf("step %d: %d parked", i, p.Parked())
		}
		step()
		waitResumed(t, resumed, "readable")
		if p.Parked() != 0 {
			t.Fatalf("step %d: still parked after resuming", i)
		}
		server.SetReadDeadline(time.Now().Add(30 * time.Second))
		if i < 2 {
			server.Read(make([]byte, 1))
		}
	}
	select {
	case <-resumed:
		t.Fatal("resumed twice")
	default:
	}
}

// TestWake: Wake resumes a parked connection once, and nothing else.
func TestWake(t *testing.T) {
	var p Poller
	server, _ := pair(t)
	resumed := make(chan struct{}, 4)
	var c Conn
	c.Init(server, func() { resumed <- struct{}{} })
	if p.Wake(&c) {
		t.Fatal("woke a connection that is not parked")
	}
	p.Park(&c)
	if !p.Wake(&c) {
		t.Fatal("Wake of a parked connection")
	}
	waitResumed(t, resumed, "woken")
	if p.Wake(&c) {
		t.Fatal("woke it twice")
	}
	// Parking again after a wake (re-registering the socket) works.
	if !p.Park(&c) || !p.Wake(&c) {
		t.Fatal("park after wake")
	}
	waitResumed(t, resumed, "woken again")
}

// TestNoSocket: connections without a socket (net.Pipe) cannot be parked.
func TestNoSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var c Conn
	if c.Init(a, func() {}) {
		t.Fatal("net.Pipe cannot be parked")
	}
	var p Poller
	if p.Park(&c) {
		t.Fatal("parked a connection without a socket")
	}
}
