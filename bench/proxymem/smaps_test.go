package proxymem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// binaryPages sums Rss and Referenced (KiB) over the mappings of file bin
// in /proc/PID/smaps: what of the executable is resident (pages the
// process touched, plus the kernel's fault-around neighbours), and what was
// touched since the last clearRefs.
func binaryPages(pid int, bin string) (rss, referenced int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == bin
			continue
		}
		if !in || len(fields) < 2 {
			continue
		}
		n, perr := strconv.ParseInt(fields[1], 10, 64)
		if perr != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			rss += n
		case "Referenced:":
			referenced += n
		}
	}
	return rss, referenced, sc.Err()
}

// clearRefs clears the referenced bits of the process's pages
// (/proc/PID/clear_refs), so that Referenced then counts what it touches.
func clearRefs(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("1"), 0)
}
