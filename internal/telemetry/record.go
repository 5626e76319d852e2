package telemetry

import (
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Peer is a workload's metadata as Istio's metadata exchange carries it
// (node metadata NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, LABELS, ...).
type Peer struct {
	Name              string // pod (instance) name
	Workload          string
	Namespace         string
	Cluster           string
	App               string
	Version           string
	CanonicalService  string
	CanonicalRevision string
	ServiceAccount    string
	// ID is the peer's x-envoy-peer-metadata-id (its xDS node id).
	ID string
}

// Record is one finished HTTP request or TCP connection as the proxy saw it;
// the metrics, the access log and the spans are all derived from it. The
// proxy fills it once, at the end; nothing in it is retained by consumers.
type Record struct {
	Start    time.Time
	Duration time.Duration
	// UpstreamServiceTime is the time the upstream took (Envoy's
	// x-envoy-upstream-service-time), 0 when no upstream answered.
	UpstreamServiceTime time.Duration

	// TCP is set for a TCP connection; the HTTP fields are then empty.
	TCP bool
	// Outbound is a request this proxy sent out for its own workload
	// (reporter "source"); else it received it for its workload
	// (reporter "destination"), or it is a gateway.
	Outbound bool

	Protocol          string // HTTP/1.1, HTTP/2, "tcp"
	Method, Path      string // Path as received (with the query)
	OriginalPath      string // x-envoy-original-path, "" when not rewritten
	Authority         string
	RequestHeaders    headers.List
	ResponseHeaders   headers.List
	ResponseCode      int
	GRPCStatus        string // "" when not gRPC
	Flags             Flags
	ResponseDetails   string // %RESPONSE_CODE_DETAILS%, e.g. "via_upstream"
	TerminationDetail string
	BytesReceived     int64
	BytesSent         int64

	UpstreamHost    string // ip:port
	UpstreamCluster string
	// ClusterServices are the services the upstream cluster serves (its
	// Istio metadata istio.services[].host): on inbound clusters, the
	// services of this workload's port, which name destination_service.
	ClusterServices      []string
	UpstreamLocalAddress string
	UpstreamFailure      string // %UPSTREAM_TRANSPORT_FAILURE_REASON%
	DownstreamLocal      string // ip:port
	DownstreamRemote     string // ip:port
	RequestedServerName  string
	RouteName            string

	// DownstreamMTLS says the downstream connection was mutual TLS;
	// DownstreamPrincipal and UpstreamPrincipal are the peers' SPIFFE IDs
	// from their certificates ("" when not known).
	DownstreamMTLS      bool
	DownstreamPrincipal string
	UpstreamPrincipal   string
	// DownstreamPeer and UpstreamPeer are the peers' metadata from the
	// metadata exchange, nil when the peer sent none.
	DownstreamPeer *Peer
	UpstreamPeer   *Peer
}
