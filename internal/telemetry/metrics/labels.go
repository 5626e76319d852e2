package metrics

import (
	"strings"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// Label indexes Istio's standard metric labels, in Istio's order.
type Label int

// Istio's standard labels (https://istio.io/latest/docs/reference/config/metrics/).
const (
	Reporter Label = iota
	SourceWorkload
	SourceCanonicalService
	SourceCanonicalRevision
	SourceWorkloadNamespace
	SourcePrincipal
	SourceApp
	SourceVersion
	SourceCluster
	DestinationWorkload
	DestinationWorkloadNamespace
	DestinationPrincipal
	DestinationApp
	DestinationVersion
	DestinationService
	DestinationCanonicalService
	DestinationCanonicalRevision
	DestinationServiceName
	DestinationServiceNamespace
	DestinationCluster
	RequestProtocol
	ResponseCode
	GRPCResponseStatus
	ResponseFlags
	ConnectionSecurityPolicy
	NumLabels
)

var labelNames = [NumLabels]string{"reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
	"source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
	"destination_version", "destination_service", "destination_canonical_service", "destination_canonical_revision",
	"destination_service_name", "destination_service_namespace", "destination_cluster", "request_protocol",
	"response_code", "grpc_response_status", "response_flags", "connection_security_policy"}

// String is the label's Prometheus name.
func (l Label) String() string { return labelNames[l] }

// LabelByName returns the standard label called name.
func LabelByName(name string) (Label, bool) {
	for i, n := range labelNames {
		if n == name {
			return Label(i), true
		}
	}
	return 0, false
}

// tcpOmits are the labels Istio's TCP metrics do not have.
func tcpOmits(l Label) bool { return l == ResponseCode || l == GRPCResponseStatus }

// msgOmits are the labels Istio's gRPC message metrics do not have: they
// are reported while a stream is open, before its outcome is known.
func msgOmits(l Label) bool {
	return l == RequestProtocol || l == ResponseCode || l == GRPCResponseStatus || l == ResponseFlags || l == ConnectionSecurityPolicy
}

// Labels is one label set: the standard labels, and the record its side's
// custom dimensions are evaluated from (Config.FillCustom) when the set is
// recorded. Any number of custom dimensions costs no allocation.
type Labels struct {
	Std [NumLabels]string

	cfg   *Config
	rec   *telemetry.Record
	local *Local
}

// ValidLabelName reports whether s may name a custom Prometheus label: the
// exposition format's syntax, and not reserved (no "__" prefix).
func ValidLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
