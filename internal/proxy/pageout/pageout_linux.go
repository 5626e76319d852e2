package pageout

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Executable pages out the read-only mappings of the running executable.
func Executable() (Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return Result{}, fmt.Errorf("page out: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return Result{}, fmt.Errorf("page out: %w", err)
	}
	var res Result
	for _, m := range readOnlyMappings(maps, exe) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT); errno != 0 {
			return res, fmt.Errorf("page out %s %#x-%#x: %w", exe, m.start, m.end, errno)
		}
		res.Mappings++
		res.Bytes += uint64(m.end - m.start)
	}
	return res, nil
}

type mapping struct{ start, end uintptr }

// readOnlyMappings returns the mappings of file path in a /proc/PID/maps
// listing that are not writable (text, read-only data).
func readOnlyMappings(maps []byte, path string) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[5] != path || len(f[1]) < 2 || f[1][1] == 'w' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		out = append(out, mapping{uintptr(a), uintptr(b)})
	}
	return out
}
