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

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Redacted replaces every private key in the admin's output, as Envoy's
// config_dump does.
const Redacted = "[redacted]"

// The config_dump section types this file renders.
const (
	BootstrapDumpType = "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
	SecretsDumpType   = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
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
	Node *corev3.Node
	// XDSAddress is the control plane's address (host:port); XDSTLS is
	// true when xDS runs over mTLS with the workload certificate, XDSDelta
	// when it is incremental.
	XDSAddress       string
	XDSTLS, XDSDelta bool
	AdminAddress     string
	// Started is when the proxy started (last_updated).
	Started time.Time
}

// secretsSection renders Envoy's SecretsConfigDump: private keys are
// "[redacted]" (mast-proxy never has them in this struct in the first place).
func secretsSection(secrets []Secret) []byte {
	var active, warming []json.RawMessage
	for _, s := range secrets {
		m := &tlsv3.Secret{Name: s.Name}
		switch {
		case len(s.Chain) > 0:
			m.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inlineBytes(pemOf(s.Chain)),
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: Redacted}},
			}}
		case len(s.CA) > 0:
			m.Type = &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inlineBytes(pemOf(s.CA)),
			}}
		}
		entry := map[string]any{"name": s.Name, "secret": json.RawMessage(anyJSON(m))}
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
	apiType := corev3.ApiConfigSource_GRPC
	if b.XDSDelta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	ads := &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	cluster := bootstrapCluster(xdsCluster, b)
	node := b.Node
	if node == nil {
		node = &corev3.Node{}
	}
	adsCfg := &corev3.ApiConfigSource{ApiType: apiType, TransportApiVersion: corev3.ApiVersion_V3,
		GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsCluster}}}}}
	boot := map[string]any{
		"node":  json.RawMessage(protoJSON(node)),
		"admin": map[string]any{"address": json.RawMessage(protoJSON(socketAddress(b.AdminAddress)))},
		"dynamicResources": map[string]any{
			"adsConfig": json.RawMessage(protoJSON(adsCfg)),
			"cdsConfig": json.RawMessage(protoJSON(ads)),
			"ldsConfig": json.RawMessage(protoJSON(ads)),
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
			map[string]any{"endpoint": map[string]any{"address": json.RawMessage(protoJSON(socketAddress(b.XDSAddress)))}}}}}}}
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

func socketAddress(hostPort string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		host = hostPort
	}
	p, _ := strconv.ParseUint(port, 10, 32)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func pemOf(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// anyJSON renders m with its "@type", as config_dump shows resources.
func anyJSON(m proto.Message) []byte {
	a, err := anypb.New(m)
	if err != nil {
		return []byte(fmt.Sprintf("%q", err.Error()))
	}
	return resourceJSON(a)
}

func protoJSON(m proto.Message) []byte {
	b, err := protojson.Marshal(m)
	if err != nil {
		return []byte(fmt.Sprintf("%q", err.Error()))
	}
	return b
}
