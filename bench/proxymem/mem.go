package proxymem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mem is a process's memory as /proc/PID/status reports it, in KiB.
type Mem struct {
	VmRSS, RssAnon, RssFile, VmHWM int64
}

// ReadMem reads /proc/PID/status.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	return ParseStatus(b)
}

// ParseStatus parses the memory lines of a /proc/PID/status file; it is an
// error when VmRSS, RssAnon or RssFile is missing.
func ParseStatus(b []byte) (Mem, error) {
	var m Mem
	fields := map[string]*int64{"VmRSS": &m.VmRSS, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile, "VmHWM": &m.VmHWM}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		p := fields[k]
		if !ok || p == nil {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return Mem{}, fmt.Errorf("/proc status %s: %q: want a number of kB", k, strings.TrimSpace(v))
		}
		*p = n
		seen[k] = true
	}
	for _, k := range []string{"VmRSS", "RssAnon", "RssFile"} {
		if !seen[k] {
			return Mem{}, fmt.Errorf("/proc status: no %s line", k)
		}
	}
	return m, nil
}

// MB converts KiB to MB (10^6 bytes), as the targets are stated.
func MB(kib int64) float64 { return float64(kib) * 1024 / 1e6 }
