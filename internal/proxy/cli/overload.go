package cli

import (
	"flag"
	"fmt"

	"github.com/mast-mesh/mast/internal/proxy/overload"
)

// DefaultMaxDownstreamConnections caps a proxy's open downstream
// connections unless --max-downstream-connections says otherwise: high
// enough for a busy gateway, low enough that a connection flood ends in
// refused connections rather than an exhausted process (Envoy warns when
// no such cap is set).
const DefaultMaxDownstreamConnections = 100_000

// overloadFlags configure the overload manager. Envoy reads it from its
// bootstrap, which a Mast proxy does not have, so it comes from flags.
type overloadFlags struct {
	maxConns        int64
	stopAccept      string
	shed            string
	limitFromMemory *memoryFlags
}

func (f *overloadFlags) register(fs *flag.FlagSet, mem *memoryFlags) {
	f.limitFromMemory = mem
	fs.Int64Var(&f.maxConns, "max-downstream-connections", DefaultMaxDownstreamConnections,
		"most open downstream connections; more are closed as they are accepted (0: no cap)")
	fs.StringVar(&f.stopAccept, "overload-heap-stop-accepting", "",
		"heap size above which listeners stop accepting, e.g. 200MiB (default: 90% of --memory-limit, else off)")
	fs.StringVar(&f.shed, "overload-heap-shed", "",
		"heap size above which new requests get 503 and connections are not kept alive (default: 95% of --memory-limit, else off)")
}

func (f *overloadFlags) config() (overload.Config, error) {
	if f.maxConns < 0 {
		return overload.Config{}, fmt.Errorf("--max-downstream-connections %d: must not be negative", f.maxConns)
	}
	c := overload.Config{MaxConnections: f.maxConns}
	var limit int64
	if f.limitFromMemory != nil && f.limitFromMemory.limit != "" {
		n, err := parseBytes(f.limitFromMemory.limit)
		if err != nil {
			return c, fmt.Errorf("--memory-limit: %w", err)
		}
		limit = n
	}
	for _, w := range []struct {
		flag, val string
		pct       int64
		out       *uint64
	}{
		{"--overload-heap-stop-accepting", f.stopAccept, 90, &c.HeapStopAccepting},
		{"--overload-heap-shed", f.shed, 95, &c.HeapShed},
	} {
		switch {
		case w.val != "":
			n, err := parseBytes(w.val)
			if err != nil {
				return c, fmt.Errorf("%s: %w", w.flag, err)
			}
			*w.out = uint64(n)
		case limit > 0:
			*w.out = uint64(limit / 100 * w.pct)
		}
	}
	if c.HeapShed > 0 && c.HeapStopAccepting > c.HeapShed {
		return c, fmt.Errorf("--overload-heap-stop-accepting (%d) above --overload-heap-shed (%d): stop accepting first, then shed", c.HeapStopAccepting, c.HeapShed)
	}
	return c, nil
}
