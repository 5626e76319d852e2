package extauthz

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// The network filter's well-known name and type URL.
const (
	NetworkName    = "envoy.filters.network.ext_authz"
	NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz"
)

// NetworkConfig is a parsed network ExtAuthz: what the filter honours.
type NetworkConfig struct {
	GRPC    *GRPCService
	Timeout time.Duration
	// FailOpen is failure_mode_allow: an unreachable or failing authorizer
	// lets the connection through.
	FailOpen bool
	// Enabled is filter_enabled_metadata, matched against the connection's
	// dynamic metadata (nil: every connection).
	Enabled *MetadataMatcher
	// IncludeTLSSession sends the SNI in tls_session.
	IncludeTLSSession bool
}

// Network is envoy.filters.network.ext_authz: a connection its
// filter_enabled_metadata selects (Istio: one a CUSTOM policy's rules
// match, marked by the network RBAC shadow rules before it) is let
// through only when the gRPC authorizer answers OK for its attributes
// (source and destination addresses, the source principal of its verified
// client certificate, optionally the SNI); a denial closes it, and so does
// an error unless failure_mode_allow.
//
// Envoy asks on the connection's first bytes from the client; mast-proxy
// asks when the connection is accepted (after TLS), before tcp_proxy dials
// the upstream. The request carries the same attributes either way (no
// payload is ever sent); the difference is that an upstream which speaks
// first (SMTP, MySQL) reaches no client before the authorizer allowed it.
type Network struct {
	cfg  *NetworkConfig
	grpc *grpcConn
}

var _ filter.NetworkFilter = (*Network)(nil)

// NewNetwork parses the typed config.
func NewNetwork(_ string, a *anypb.Any) (filter.NetworkFilter, error) {
	cfg, err := ParseNetwork(a.GetValue())
	if err != nil {
		if errors.Is(err, errDecode) {
			return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
		}
		return nil, err
	}
	return NewNetworkFromConfig(cfg), nil
}

// NewNetworkFromConfig builds the filter of a parsed config.
func NewNetworkFromConfig(cfg *NetworkConfig) *Network {
	n := &Network{cfg: cfg, grpc: newGRPCConn(cfg.GRPC)}
	cleanupWith(n.grpc, n)
	return n
}

// Field numbers of the network ExtAuthz.
const (
	netGRPC        = 2
	netFailOpen    = 3
	netAPIVersion  = 5
	netEnabledMeta = 6
	netTLSSession  = 8
)

// ParseNetwork checks a network ExtAuthz's wire bytes; every field the
// filter does not honour is an error naming it. stat_prefix only names
// Envoy's statistics (mast-proxy keeps no per-filter ones) and is accepted.
func ParseNetwork(b []byte) (*NetworkConfig, error) {
	c, err := pbwire.Decode(wireTable, wireNetworkExtAuthz, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDecode, err)
	}
	if err := c.CheckFields("", "stat_prefix", "grpc_service", "failure_mode_allow", "transport_api_version",
		"filter_enabled_metadata", "include_tls_session"); err != nil {
		return nil, err
	}
	if v := c.I32(netAPIVersion); v != 0 && v != apiVersionV3 {
		return nil, fmt.Errorf("transport_api_version %s: only V3 is supported", apiVersion(v))
	}
	if !c.Has(netGRPC) {
		return nil, errors.New("grpc_service: required")
	}
	cfg := &NetworkConfig{FailOpen: c.Bool(netFailOpen), IncludeTLSSession: c.Bool(netTLSSession)}
	if cfg.GRPC, cfg.Timeout, err = parseGRPC(c.Sub(netGRPC)); err != nil {
		return nil, err
	}
	if cfg.Enabled, err = parseMetadataMatcher(c.Sub(netEnabledMeta)); err != nil {
		return nil, fmt.Errorf("filter_enabled_metadata.%w", err)
	}
	return cfg, nil
}

// OnConnect checks a selected connection.
func (n *Network) OnConnect(c *filter.Conn) filter.Status {
	ctx := context.Background() // the check is bounded by its timeout
	if !n.cfg.Enabled.matches(c.Meta) {
		return filter.Continue
	}
	cctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	resp, err := n.check(cctx, c)
	cancel()
	switch {
	case err != nil:
		if c.Services != nil && c.Services.Logger != nil {
			c.Services.Logger.Debug("ext_authz check of a connection failed", "filter", NetworkName, "error", err)
		}
		if n.cfg.FailOpen && ctx.Err() == nil {
			return filter.Continue
		}
		return filter.Stop
	case resp.Sub(respStatus).I32(statusCode) != 0:
		return filter.Stop
	}
	for _, m := range flatMeta(resp.Sub(respDynamicMetadata)) {
		c.AddMeta(NetworkName, m[0], m[1])
	}
	return filter.Continue
}

// check calls Authorization/Check with the connection's attributes and
// returns the decoded CheckResponse.
func (n *Network) check(ctx context.Context, c *filter.Conn) (*pbwire.Msg, error) {
	req, err := networkCheckRequest(c, n.cfg.IncludeTLSSession)
	if err != nil {
		return nil, err
	}
	raw, err := n.grpc.invoke(ctx, c.Services, req)
	if err != nil {
		return nil, err
	}
	resp, err := pbwire.Decode(wireTable, wireCheckResponse, raw)
	if err != nil {
		return nil, fmt.Errorf("decode CheckResponse: %w", err)
	}
	return resp, nil
}
