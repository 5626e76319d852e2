// Package testnet gives tests TCP ports for processes they start, which
// must be told a port before they bind it.
//
// A port found by listening on :0 and closing the listener comes from the
// kernel's ephemeral range, the range outgoing connections take their local
// ports from, so another test's connection can take it before the process
// under test binds it ("address already in use"). The ports here lie below
// that range (20000–26999, and below net.ipv4.ip_local_port_range's lower
// bound when it is set lower), where only an explicit bind can take them,
// and are handed out once per test process.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The range ports are drawn from: below the usual ephemeral range
// (32768–60999) and away from the fixed ports tests and benchmarks use
// (15000s for the proxy, 27017, 28078–28080).
const lo, hi = 20000, 27000

// handedOut is the set of ports this test process has given out. It is
// process-wide because the ports it stands for are machine-wide: two tests
// of one process must never be given the same port before either binds it.
var handedOut sync.Map

// TB is the part of testing.TB the functions here use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// FreeAddr returns "127.0.0.1:port" with a port free on loopback now.
func FreeAddr(tb TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(pick(tb, "127.0.0.1")))
}

// FreePort returns a port free on loopback now.
func FreePort(tb TB) int {
	tb.Helper()
	return pick(tb, "127.0.0.1")
}

// FreePorts returns n distinct ports free on every address now.
func FreePorts(tb TB, n int) []int {
	tb.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = pick(tb, "")
	}
	return out
}

// pick returns a port of the range nobody in this process was given and
// that host:port can be bound now.
func pick(tb TB, host string) int {
	tb.Helper()
	top := min(hi, ephemeralLow())
	start := lo + rand.IntN(top-lo)
	for i := range top - lo {
		p := lo + (start-lo+i)%(top-lo)
		if _, taken := handedOut.LoadOrStore(p, true); taken {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			continue // bound by someone else; stays handed out, never retried
		}
		l.Close()
		return p
	}
	tb.Fatalf("testnet: no free port in %d-%d", lo, top-1)
	return 0
}

// ephemeralLow is the lower bound of the kernel's ephemeral port range,
// or hi when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return hi
	}
	var low int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &low); err != nil || low <= lo {
		return hi
	}
	return low
}
