package admin

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// Redacted replaces every private key in the admin's output, as Envoy's
// config_dump does.
const Redacted = "[redacted]"

// The config_dump section types this file renders.
const (
	BootstrapDumpType = "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
	SecretsDumpType   = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
	secretType        = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Secret is one SDS secret the proxy holds (or waits for), as Envoy's
// SecretsConfigDump lists it: the agent's workload certificate ("default")
// and trust bundle ("ROOTCA"), and the credentials its TLS contexts name
// ("kubernetes://NAME", from --credentials-dir). The private key is never
// part of it.
type Secret struct {
	Name        string
	Version     string
	LastUpdated time.Time
	// Chain is the certificate chain the proxy presents under this name
	// (leaf first); CA are the certificates it verifies peers with. A secret
	// with neither is warming: named by the configuration but not available.
	Chain, CA []*x509.Certificate
}

// Warming reports whether the secret is named but not available.
func (s Secret) Warming() bool { return len(s.Chain) == 0 && len(s.CA) == 0 }

// Bootstrap is the proxy's effective start-up configuration, the part of
// Envoy's bootstrap that mast-proxy has: its node, where it fetches xDS and
// where its admin listens.
type Bootstrap struct {
	Node *xdswire.Node
	// XDSAddress is the control plane's address (host:port); XDSTLS is
	// true when xDS runs over mTLS with the workload certificate, XDSDelta
	// when it is incremental.
	XDSAddress       string
	XDSTLS, XDSDelta bool
	AdminAddress     string
	// Started is when the proxy started (last_updated).
	Started time.Time
}

// The JSON below is protojson's rendering of Envoy's messages (Secret,
// Node, ConfigSource, Address), written out because mast-proxy does not link
// their generated types; TestSectionsAreProtojsons compares them.

// secretJSON is a tls.v3.Secret with its "@type", as config_dump shows it.
func secretJSON(s Secret) []byte {
	m := map[string]any{"@type": secretType, "name": s.Name}
	switch {
	case len(s.Chain) > 0:
		m["tlsCertificate"] = map[string]any{
			"certificateChain": map[string]any{"inlineBytes": pemOf(s.Chain)},
			"privateKey":       map[string]any{"inlineString": Redacted},
		}
	case len(s.CA) > 0:
		m["validationContext"] = map[string]any{"trustedCa": map[string]any{"inlineBytes": pemOf(s.CA)}}
	}
	b, _ := json.Marshal(m)
	return b
}

// nodeJSON is a core.v3.Node.
func nodeJSON(n *xdswire.Node) []byte {
	if n == nil {
		return []byte("{}")
	}
	m := map[string]any{}
	str := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	str("id", n.ID)
	str("cluster", n.Cluster)
	if n.Metadata != nil {
		m["metadata"] = json.RawMessage(protoJSON(n.Metadata))
	}
	if l := n.Locality; l != (xdswire.Locality{}) {
		lm := map[string]string{}
		for k, v := range map[string]string{"region": l.Region, "zone": l.Zone, "subZone": l.SubZone} {
			if v != "" {
				lm[k] = v
			}
		}
		m["locality"] = lm
	}
	str("userAgentName", n.UserAgentName)
	str("userAgentVersion", n.UserAgentVersion)
	if len(n.ClientFeatures) > 0 {
		m["clientFeatures"] = n.ClientFeatures
	}
	b, _ := json.Marshal(m)
	return b
}

// secretsSection renders Envoy's SecretsConfigDump: private keys are
// "[redacted]" (mast-proxy never has them in this struct in the first place).
func secretsSection(secrets []Secret) []byte {
	var active, warming []json.RawMessage
	for _, s := range secrets {
		entry := map[string]any{"name": s.Name, "secret": json.RawMessage(secretJSON(s))}
		if s.Version != "" {
			entry["version_info"] = s.Version
		}
		if !s.LastUpdated.IsZero() {
			entry["last_updated"] = s.LastUpdated.UTC().Format(time.RFC3339Nano)
		}
		b, _ := json.Marshal(entry)
		if s.Warming() {
			warming = append(warming, b)
		} else {
			active = append(active, b)
		}
	}
	sec := map[string]any{"@type": SecretsDumpType}
	if len(active) > 0 {
		sec["dynamic_active_secrets"] = active
	}
	if len(warming) > 0 {
		sec["dynamic_warming_secrets"] = warming
	}
	b, _ := json.Marshal(sec)
	return b
}

// bootstrapSection renders Envoy's BootstrapConfigDump for b, in the shape
// Istio's bootstrap has: ADS over the static cluster "xds-grpc".
func bootstrapSection(b Bootstrap) []byte {
	const xdsCluster = "xds-grpc"
	apiType := "GRPC"
	if b.XDSDelta {
		apiType = "DELTA_GRPC"
	}
	ads := map[string]any{"ads": map[string]any{}, "resourceApiVersion": "V3"}
	cluster := bootstrapCluster(xdsCluster, b)
	adsCfg := map[string]any{"apiType": apiType, "transportApiVersion": "V3",
		"grpcServices": []any{map[string]any{"envoyGrpc": map[string]any{"clusterName": xdsCluster}}}}
	boot := map[string]any{
		"node":  json.RawMessage(nodeJSON(b.Node)),
		"admin": map[string]any{"address": socketAddress(b.AdminAddress)},
		"dynamicResources": map[string]any{
			"adsConfig": adsCfg,
			"cdsConfig": ads,
			"ldsConfig": ads,
		},
		"staticResources": map[string]any{"clusters": []any{cluster}},
	}
	sec := map[string]any{"@type": BootstrapDumpType, "bootstrap": boot}
	if !b.Started.IsZero() {
		sec["last_updated"] = b.Started.UTC().Format(time.RFC3339Nano)
	}
	out, _ := json.Marshal(sec)
	return out
}

// bootstrapCluster is the static xDS cluster in protojson's shape, written
// out because mast-proxy does not link envoy.config.cluster.v3 (the wire
// decoder reads CDS): STRICT_DNS to the xDS address, with the TLS context
// Istio's bootstrap has when xDS runs over mTLS.
func bootstrapCluster(name string, b Bootstrap) map[string]any {
	c := map[string]any{"name": name, "type": "STRICT_DNS",
		"loadAssignment": map[string]any{"clusterName": name, "endpoints": []any{map[string]any{"lbEndpoints": []any{
			map[string]any{"endpoint": map[string]any{"address": socketAddress(b.XDSAddress)}}}}}}}
	if b.XDSTLS {
		c["transportSocket"] = map[string]any{"name": "envoy.transport_sockets.tls", "typedConfig": map[string]any{
			"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
			"commonTlsContext": map[string]any{
				"tlsCertificateSdsSecretConfigs":   []any{map[string]any{"name": "default"}},
				"validationContextSdsSecretConfig": map[string]any{"name": "ROOTCA"},
			}}}
	}
	return c
}

// socketAddress is a core.v3.Address holding a SocketAddress.
func socketAddress(hostPort string) map[string]any {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		host = hostPort
	}
	p, _ := strconv.ParseUint(port, 10, 32)
	// port_value is a oneof member: shown even when 0.
	sa := map[string]any{"portValue": p}
	if host != "" {
		sa["address"] = host
	}
	return map[string]any{"socketAddress": sa}
}

func pemOf(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func protoJSON(m proto.Message) []byte {
	b, err := protojson.Marshal(m)
	if err != nil {
		return []byte(fmt.Sprintf("%q", err.Error()))
	}
	return b
}
