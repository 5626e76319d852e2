package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// floodDuration is how long each flood runs (MAST_LONG_TESTS: 30s).
func floodDuration() time.Duration {
	if long() {
		return 30 * time.Second
	}
	return 3 * time.Second
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// legit sends requests one after another over HTTP/2 (h2c) through the
// gateway for d and returns their latencies and the failures.
func legit(addr string, d time.Duration) ([]time.Duration, int) {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var lat []time.Duration
	failed := 0
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t0 := time.Now()
		resp, err := c.Get("http://" + addr + "/json")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			failed++
			continue
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(2 * time.Millisecond) // a bounded rate: ~300/s at most
	}
	return lat, failed
}

func pct(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// attacker is one raw HTTP/2 connection driven by a flood.
type attacker struct {
	nc  net.Conn
	fr  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
}

func dialAttacker(addr string) (*attacker, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	a := &attacker{nc: nc, fr: http2.NewFramer(nc, nil)}
	a.enc = hpack.NewEncoder(&a.buf)
	io.WriteString(nc, http2.ClientPreface)
	a.fr.WriteSettings()
	go io.Copy(io.Discard, nc) // read whatever comes, so only the flood matters
	return a, nil
}

func (a *attacker) head(method string, extra ...string) []byte {
	a.buf.Reset()
	for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", "flood"}, {":path", "/json"}} {
		a.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		a.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return append([]byte(nil), a.buf.Bytes()...)
}

// floods are the attacks of issue 10's reliability suite; each runs on
// its own connection until stop, then returns the frames it sent.
var floods = map[string]func(a *attacker, stop <-chan struct{}) int{
	// Rapid reset (CVE-2023-44487): open a stream and reset it at once.
	"rapid reset": func(a *attacker, stop <-chan struct{}) int {
		hb := a.head("GET")
		n := 0
		for id := uint32(1); ; id += 2 {
			select {
			case <-stop:
				return n
			default:
			}
			if a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb, EndHeaders: true, EndStream: true}) != nil ||
				a.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return n
			}
			n += 2
		}
	},
	// CONTINUATION flood (CVE-2024-27316 class): a header block that never ends.
	"continuation": func(a *attacker, stop <-chan struct{}) int {
		hb := a.head("GET")
		if a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb, EndHeaders: false}) != nil {
			return 0
		}
		a.buf.Reset()
		a.enc.WriteField(hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("a", 1000)})
		frag := append([]byte(nil), a.buf.Bytes()...)
		n := 1
		for {
			select {
			case <-stop:
				return n
			default:
			}
			if a.fr.WriteContinuation(1, false, frag) != nil {
				return n
			}
			n++
		}
	},
	"ping": func(a *attacker, stop <-chan struct{}) int {
		n := 0
		for {
			select {
			case <-stop:
				return n
			default:
			}
			if a.fr.WritePing(false, [8]byte{1}) != nil {
				return n
			}
			n++
		}
	},
	"settings": func(a *attacker, stop <-chan struct{}) int {
		n := 0
		for {
			select {
			case <-stop:
				return n
			default:
			}
			if a.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(65535 + n%2)}) != nil {
				return n
			}
			n++
		}
	},
	// Slow bodies: many streams each promising a large body and sending a
	// byte now and then.
	"slow bodies": func(a *attacker, stop <-chan struct{}) int {
		hb := a.head("POST", "content-length", "1000000")
		n := 0
		var ids []uint32
		for id := uint32(1); id < 200; id += 2 {
			if a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb, EndHeaders: true}) != nil {
				return n
			}
			ids = append(ids, id)
			n++
		}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return n
			case <-tick.C:
			}
			for _, id := range ids {
				if a.fr.WriteData(id, false, []byte("x")) != nil {
					return n
				}
				n++
			}
		}
	},
}

// TestHTTP2Floods runs each flood against the gateway (on 8 connections)
// while a legitimate client sends requests, and reports the legitimate
// traffic's p50/p99 against its baseline and the gateway's peak RSS. It
// asserts what must hold whatever the machine's speed: no legitimate
// request fails, and the gateway's RSS stays bounded. The latency ratios
// are figures for the report, not assertions.
func TestHTTP2Floods(t *testing.T) {
	m := startH2Mesh(t)
	addr := m.gwIP + ":8080"
	pid := m.gateway.cmd.Process.Pid
	d := floodDuration()
	base, failed := legit(addr, d)
	if failed > 0 {
		t.Fatalf("baseline: %d requests failed", failed)
	}
	baseRSS := rssKiB(pid)
	t.Logf("baseline: %d requests, p50 %v p99 %v, gateway RSS %d KiB", len(base), pct(base, .5), pct(base, .99), baseRSS)
	names := make([]string, 0, len(floods))
	for n := range floods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			stop := make(chan struct{})
			var sent atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				a, err := dialAttacker(addr)
				if err != nil {
					t.Fatal(err)
				}
				defer a.nc.Close()
				wg.Add(1)
				go func() { defer wg.Done(); sent.Add(int64(floods[name](a, stop))) }()
			}
			peak := 0
			rssDone := make(chan struct{})
			go func() {
				defer close(rssDone)
				for {
					peak = max(peak, rssKiB(pid))
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			lat, failed := legit(addr, d)
			close(stop)
			wg.Wait()
			<-rssDone
			p99, b99 := pct(lat, .99), pct(base, .99)
			ratio := float64(p99) / float64(max(b99, time.Microsecond))
			t.Logf("%s: %d attack frames on 8 connections; legitimate: %d ok, %d failed, p50 %v p99 %v (%.1fx baseline p99); gateway peak RSS %d KiB (baseline %d)",
				name, sent.Load(), len(lat), failed, pct(lat, .5), p99, ratio, peak, baseRSS)
			if failed > 0 {
				t.Errorf("%d legitimate requests failed during the %s flood", failed, name)
			}
			if len(lat) == 0 {
				t.Errorf("no legitimate request completed during the %s flood", name)
			}
			if peak > 256*1024 {
				t.Errorf("gateway RSS reached %d KiB during the %s flood", peak, name)
			}
		})
	}
}
