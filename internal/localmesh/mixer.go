package localmesh

import (
	"fmt"
	"strings"
)

// withComponent adds c to mastd's --components (pilot,galley by default).
func withComponent(args []string, c string) []string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--components" {
			out := append([]string(nil), args...)
			out[i+1] += "," + c
			return out
		}
	}
	return append(args, "--components", "pilot,galley,"+c)
}

// mixerMesh is the MeshConfig text of the Mixer settings.
func (cfg *Config) mixerMesh() string {
	var b strings.Builder
	if cfg.PolicyCheckFailOpen {
		b.WriteString("policyCheckFailOpen: true\n")
	}
	if cfg.MixerCheckServer != "" {
		fmt.Fprintf(&b, "mixerCheckServer: %q\nmixerReportServer: %q\n", cfg.MixerCheckServer, cfg.MixerCheckServer)
	}
	return b.String()
}
