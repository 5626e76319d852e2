// Package bookinfoconfig embeds the configuration that `mast up` starts the
// local Bookinfo mesh with: ServiceEntries, WorkloadEntries, Sidecars, the
// ingress gateway and destination rules.
package bookinfoconfig

import "embed"

// Files holds the *.yaml files of this directory.
//
//go:embed *.yaml
var Files embed.FS
