package cli

import (
	"flag"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryFlags set the Go runtime's garbage collector for a sidecar: a soft
// memory limit (debug.SetMemoryLimit; the GC works harder as the process
// nears it, never failing an allocation) and the GC percentage. Unset, the
// GOMEMLIMIT and GOGC environment variables (or Go's defaults) apply.
type memoryFlags struct {
	limit     string
	gcPercent int
	// pageOut pages out the executable's start-up pages once the
	// configuration settles (dataplane.Config.PageOutExecutable).
	pageOut bool
}

func (f *memoryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.limit, "memory-limit", "", "soft memory limit of the Go runtime, e.g. 24MiB (0 or empty: GOMEMLIMIT / none)")
	fs.IntVar(&f.gcPercent, "gc-percent", 0, "GC target percentage, as GOGC (0: GOGC / 100)")
	fs.BoolVar(&f.pageOut, "page-out-binary", false, "once the configuration settles, let the kernel reclaim the pages of the proxy's executable (Linux madvise MADV_PAGEOUT; ~12 MB of resident memory at idle); pages touched again, on the next request or push, are read back, possibly from disk")
}

// apply sets the runtime's limits.
func (f *memoryFlags) apply() error {
	if f.limit != "" {
		n, err := parseBytes(f.limit)
		if err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
		if n > 0 {
			debug.SetMemoryLimit(n)
		}
	}
	if f.gcPercent < 0 {
		return fmt.Errorf("--gc-percent %d: must not be negative", f.gcPercent)
	}
	if f.gcPercent > 0 {
		debug.SetGCPercent(f.gcPercent)
	}
	return nil
}

// parseBytes parses a byte count with an optional unit: B, KiB, MiB, GiB
// (powers of 1024) or KB, MB, GB (powers of 1000), as GOMEMLIMIT does.
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "BKMGTib")
	unit := s[len(num):]
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KiB, MiB, GiB, KB, MB or GB)", s, unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a non-negative whole number with a unit", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
}
