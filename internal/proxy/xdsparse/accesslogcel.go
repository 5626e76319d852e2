package xdsparse

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// parseExtensionFilter parses an access log extension filter. CEL
// expression filters (what Istio's Telemetry API filter.expression becomes)
// are not evaluated by mast-proxy yet: they are NACKed by name.
func parseExtensionFilter(e *accesslogv3.ExtensionFilter) (func(*telemetry.Record) bool, error) {
	return nil, fmt.Errorf("extension_filter %q (%s): not supported", e.GetName(), e.GetTypedConfig().GetTypeUrl())
}
