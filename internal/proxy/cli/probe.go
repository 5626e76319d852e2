package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/agent/probe"
)

// ReadinessProbeMeta is the node metadata key by which a proxy tells the
// control plane that its agent runs a readiness probe, so that the
// WorkloadEntry it auto-registers is healthy only once the probe passes
// (Istio's agent says so with PROXY_CONFIG's readinessProbe).
const ReadinessProbeMeta = "MAST_READINESS_PROBE"

// probeFlags are the flags of the agent's readiness probe.
type probeFlags struct {
	probe     string
	allowExec bool
}

func (f *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.probe, "readiness-probe", "", "the workload's readiness probe, a WorkloadGroup's spec.probe as JSON (Istio's ReadinessProbe: httpGet, tcpSocket, grpc or exec, "+
		"with initialDelaySeconds, timeoutSeconds, periodSeconds, successThreshold, failureThreshold), or @FILE holding it; the agent runs it against the "+
		"application and reports health changes to mastd, which takes an unhealthy auto-registered workload out of its services' endpoints")
	fs.BoolVar(&f.allowExec, "allow-exec-probe", false, "let an exec readiness probe run its command (as the proxy's user); off by default")
}

// checker parses the probe; nil when none is configured. host is the
// proxy's IP, probed when the probe names no host.
func (f *probeFlags) checker(host string, log *slog.Logger) (*probe.Checker, error) {
	if f.probe == "" {
		return nil, nil
	}
	data := []byte(f.probe)
	if name, ok := strings.CutPrefix(f.probe, "@"); ok {
		var err error
		if data, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("--readiness-probe: %w", err)
		}
	}
	c, err := probe.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("--readiness-probe: %w", err)
	}
	pr, err := probe.New(c, probe.Options{DefaultHost: host, AllowExec: f.allowExec})
	if err != nil {
		return nil, fmt.Errorf("--readiness-probe: %w", err)
	}
	return &probe.Checker{Prober: pr, Timing: c.Timing(), Logger: log}, nil
}
