package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// memSample is one reading of a process's memory: resident set, Go heap in
// use and goroutines.
type memSample struct {
	RSSKiB     int
	HeapMiB    float64
	Goroutines int
}

func (s memSample) String() string {
	return fmt.Sprintf("RSS %.1f MiB, heap %.1f MiB, %d goroutines", float64(s.RSSKiB)/1024, s.HeapMiB, s.Goroutines)
}

// proxyMemory reads a mast-proxy's admin /memory and its RSS.
func proxyMemory(p *process, admin string) (memSample, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/memory")
	if err != nil {
		return memSample{}, err
	}
	defer resp.Body.Close()
	var m map[string]uint64
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return memSample{}, err
	}
	return memSample{RSSKiB: rssKiB(p.cmd.Process.Pid), HeapMiB: float64(m["heap_inuse"]) / (1 << 20), Goroutines: int(m["goroutines"])}, nil
}

// mastdMemory reads mastd's heap and goroutines from its /metrics and its RSS.
func mastdMemory(p *process, mon string) (memSample, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + mon + "/metrics")
	if err != nil {
		return memSample{}, err
	}
	defer resp.Body.Close()
	s := memSample{RSSKiB: rssKiB(p.cmd.Process.Pid)}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			s.HeapMiB, found = f/(1<<20), found+1
		}
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			s.Goroutines, found = int(f), found+1
		}
	}
	if found != 2 {
		return s, fmt.Errorf("mastd /metrics lacks go_memstats_heap_inuse_bytes or go_goroutines")
	}
	return s, nil
}

var (
	adminLine   = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)
	servingLine = regexp.MustCompile(`msg="mastd serving" .*monitoring=(\S+)`)
)

// loggedAddr returns the first address re captures in p's output.
func loggedAddr(p *process, re *regexp.Regexp) (string, error) {
	if m := re.FindStringSubmatch(p.Output()); m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("%s has not logged %s yet", p.name, re)
}

// grew reports whether a late reading is beyond an early one by more than
// slack: heap more than 1.5x + 8 MiB, goroutines more than +25.
func grew(early, late memSample) string {
	var out []string
	if late.HeapMiB > early.HeapMiB*1.5+8 {
		out = append(out, fmt.Sprintf("heap %.1f -> %.1f MiB", early.HeapMiB, late.HeapMiB))
	}
	if late.Goroutines > early.Goroutines+25 {
		out = append(out, fmt.Sprintf("goroutines %d -> %d", early.Goroutines, late.Goroutines))
	}
	return strings.Join(out, ", ")
}
