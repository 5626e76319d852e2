// Package buildinfo names the build a Mast binary comes from: what `mast
// version` prints and what mast-proxy reports to mastd as its node's
// ISTIO_VERSION metadata.
package buildinfo

import "runtime/debug"

// Version is the module version and VCS revision this binary was built from,
// and its Go version: "(devel) (0123456789ab) go1.26.8".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v + " " + bi.GoVersion
}
