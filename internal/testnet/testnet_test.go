package testnet

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsBelowEphemeralAndDistinct: every port is outside the range
// outgoing connections take theirs from, bindable, and never given twice.
func TestPortsBelowEphemeralAndDistinct(t *testing.T) {
	top := min(hi, ephemeralLow())
	seen := map[int]bool{}
	ports := FreePorts(t, 200)
	for range 200 {
		ports = append(ports, FreePort(t))
	}
	for _, p := range ports {
		if p < lo || p >= top {
			t.Fatalf("port %d outside %d-%d", p, lo, top-1)
		}
		if seen[p] {
			t.Fatalf("port %d given twice", p)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("FreeAddr's port cannot be bound: %v", err)
	}
	l.Close()
}

// TestSkipsBoundPorts: a port someone holds is not given out.
func TestSkipsBoundPorts(t *testing.T) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	bound := map[int]bool{}
	for p := lo; p < lo+50; p++ {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			held = append(held, l)
			bound[p] = true
		}
	}
	for range 300 {
		if p := FreePort(t); bound[p] {
			t.Fatalf("port %d is bound by the test, and was given out", p)
		}
	}
}
