package ctl

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// The config_dump sections of `proxy-config secret` and `bootstrap`.
const (
	secretsDumpType   = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
	bootstrapDumpType = "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
)

// dumpSecret is one entry of the SecretsConfigDump (Envoy's and
// mast-proxy's; keys are read in either snake_case or camelCase).
type dumpSecret struct {
	Name        string `json:"name"`
	VersionInfo string `json:"versionInfo"`
	LastUpdated string `json:"lastUpdated"`
	Secret      struct {
		TLSCertificate *struct {
			CertificateChain dataSource `json:"certificateChain"`
		} `json:"tlsCertificate"`
		ValidationContext *struct {
			TrustedCA dataSource `json:"trustedCa"`
		} `json:"validationContext"`
	} `json:"secret"`
	warming bool
}

type dataSource struct {
	InlineBytes  []byte `json:"inlineBytes"`
	InlineString string `json:"inlineString"`
	Filename     string `json:"filename"`
}

func (d dataSource) bytes() []byte {
	if len(d.InlineBytes) > 0 {
		return d.InlineBytes
	}
	return []byte(d.InlineString)
}

// dumpBootstrap is the part of the BootstrapConfigDump the table shows.
type dumpBootstrap struct {
	Node struct {
		ID       string         `json:"id"`
		Cluster  string         `json:"cluster"`
		Metadata map[string]any `json:"metadata"`
		Locality *struct {
			Region  string `json:"region"`
			Zone    string `json:"zone"`
			SubZone string `json:"subZone"`
		} `json:"locality"`
	} `json:"node"`
	Admin struct {
		Address socketAddress `json:"address"`
	} `json:"admin"`
	DynamicResources struct {
		AdsConfig struct {
			APIType      string `json:"apiType"`
			GrpcServices []struct {
				EnvoyGrpc *struct {
					ClusterName string `json:"clusterName"`
				} `json:"envoyGrpc"`
				GoogleGrpc *struct {
					TargetURI string `json:"targetUri"`
				} `json:"googleGrpc"`
			} `json:"grpcServices"`
		} `json:"adsConfig"`
	} `json:"dynamicResources"`
	StaticResources struct {
		Clusters []struct {
			Name           string `json:"name"`
			LoadAssignment struct {
				Endpoints []struct {
					LBEndpoints []struct {
						Endpoint struct {
							Address socketAddress `json:"address"`
						} `json:"endpoint"`
					} `json:"lbEndpoints"`
				} `json:"endpoints"`
			} `json:"loadAssignment"`
			TransportSocket *struct {
				Name string `json:"name"`
			} `json:"transportSocket"`
		} `json:"clusters"`
	} `json:"staticResources"`
}

// parseSecretsSection adds the secrets of a SecretsConfigDump to d.
func (d *configDump) parseSecretsSection(raw json.RawMessage) error {
	var sec struct {
		Active  []dumpSecret `json:"dynamicActiveSecrets"`
		Warming []dumpSecret `json:"dynamicWarmingSecrets"`
		Static  []dumpSecret `json:"staticSecrets"`
	}
	if err := json.Unmarshal(camelKeys(raw), &sec); err != nil {
		return fmt.Errorf("config_dump secrets: %w", err)
	}
	d.Secrets = append(d.Secrets, sec.Static...)
	d.Secrets = append(d.Secrets, sec.Active...)
	for _, s := range sec.Warming {
		s.warming = true
		d.Secrets = append(d.Secrets, s)
	}
	return nil
}

func (d *configDump) parseBootstrapSection(raw json.RawMessage) error {
	var sec struct {
		Bootstrap dumpBootstrap `json:"bootstrap"`
	}
	if err := json.Unmarshal(camelKeys(raw), &sec); err != nil {
		return fmt.Errorf("config_dump bootstrap: %w", err)
	}
	d.Bootstrap = &sec.Bootstrap
	return nil
}

// camelKeys rewrites the object keys of a JSON document from Envoy's
// snake_case (its config_dump) to protobuf's JSON camelCase (mast-proxy's
// resources, istioctl's output), so that one set of struct tags reads both.
// Keys starting with "@" and the keys of metadata maps are kept.
func camelKeys(raw json.RawMessage) json.RawMessage {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var walk func(v any, keep bool) any
	walk = func(v any, keep bool) any {
		switch t := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, e := range t {
				nk := k
				if !keep {
					nk = camel(k)
				}
				out[nk] = walk(e, nk == "metadata" || nk == "fields")
			}
			return out
		case []any:
			for i := range t {
				t[i] = walk(t[i], false)
			}
		}
		return v
	}
	b, err := json.Marshal(walk(v, false))
	if err != nil {
		return raw
	}
	return b
}

func camel(k string) string {
	if !strings.Contains(k, "_") || strings.HasPrefix(k, "@") {
		return k
	}
	var b strings.Builder
	up := false
	for _, r := range k {
		if r == '_' {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// secretRow is one row of istioctl's secret table.
type secretRow struct {
	name, typ, status, serial, notAfter, notBefore string
	valid                                          bool
}

func secretRowOf(s dumpSecret, now time.Time) secretRow {
	r := secretRow{name: s.Name, typ: "Cert Chain", status: "ACTIVE", serial: "-", notAfter: "-", notBefore: "-"}
	if s.warming {
		r.status = "WARMING"
	}
	var data []byte
	switch {
	case s.Secret.TLSCertificate != nil:
		data = s.Secret.TLSCertificate.CertificateChain.bytes()
	case s.Secret.ValidationContext != nil:
		r.typ = "CA"
		data = s.Secret.ValidationContext.TrustedCA.bytes()
	case s.Name == "ROOTCA" || strings.HasSuffix(s.Name, "-cacert"):
		r.typ = "CA"
	}
	if c := firstCert(data); c != nil {
		r.valid = !now.Before(c.NotBefore) && now.Before(c.NotAfter)
		r.serial = c.SerialNumber.String()
		r.notAfter = c.NotAfter.UTC().Format(time.RFC3339)
		r.notBefore = c.NotBefore.UTC().Format(time.RFC3339)
	}
	return r
}

func firstCert(pemData []byte) *x509.Certificate {
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
		if b == nil {
			return nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			return c
		}
	}
}

// writeSecrets prints istioctl's secret table; VALID CERT is judged at now.
func writeSecrets(w io.Writer, d *configDump, f proxyConfigFilter, now time.Time) {
	if len(d.Secrets) == 0 {
		fmt.Fprintln(w, "No secret items to show.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 5, 5, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE NAME\tTYPE\tSTATUS\tVALID CERT\tSERIAL NUMBER\tNOT AFTER\tNOT BEFORE")
	for _, s := range d.Secrets {
		if f.name != "" && s.Name != f.name {
			continue
		}
		r := secretRowOf(s, now)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", r.name, r.typ, r.status, r.valid, r.serial, r.notAfter, r.notBefore)
	}
	tw.Flush()
}

// writeBootstrap prints the bootstrap's summary: node, xDS server, admin.
func writeBootstrap(w io.Writer, d *configDump) {
	b := d.Bootstrap
	if b == nil {
		fmt.Fprintln(w, "No bootstrap to show (the proxy's config_dump has none).")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE ID:\t%s\n", b.Node.ID)
	fmt.Fprintf(tw, "CLUSTER:\t%s\n", dash(b.Node.Cluster))
	if l := b.Node.Locality; l != nil && (l.Region != "" || l.Zone != "" || l.SubZone != "") {
		fmt.Fprintf(tw, "LOCALITY:\t%s/%s/%s\n", l.Region, l.Zone, l.SubZone)
	}
	if v, ok := b.Node.Metadata["ISTIO_VERSION"].(string); ok {
		fmt.Fprintf(tw, "ISTIO VERSION:\t%s\n", v)
	}
	ads := b.DynamicResources.AdsConfig
	xds := "-"
	for _, g := range ads.GrpcServices {
		switch {
		case g.GoogleGrpc != nil:
			xds = g.GoogleGrpc.TargetURI
		case g.EnvoyGrpc != nil:
			xds = g.EnvoyGrpc.ClusterName
			for _, c := range b.StaticResources.Clusters {
				if c.Name != xds {
					continue
				}
				for _, e := range c.LoadAssignment.Endpoints {
					for _, lb := range e.LBEndpoints {
						a := lb.Endpoint.Address.SocketAddress
						xds = fmt.Sprintf("%s:%d", a.Address, a.PortValue)
					}
				}
				if c.TransportSocket != nil {
					xds += " (mTLS)"
				} else {
					xds += " (plaintext)"
				}
			}
		}
	}
	if ads.APIType == "" {
		ads.APIType = "GRPC"
	}
	fmt.Fprintf(tw, "XDS SERVER:\t%s, %s\n", xds, ads.APIType)
	a := b.Admin.Address.SocketAddress
	fmt.Fprintf(tw, "ADMIN:\t%s:%d\n", a.Address, a.PortValue)
	keys := make([]string, 0, len(b.Node.Metadata))
	for k := range b.Node.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		label := ""
		if i == 0 {
			label = "METADATA:"
		}
		v, err := json.Marshal(b.Node.Metadata[k])
		if s, ok := b.Node.Metadata[k].(string); ok {
			v, err = []byte(s), nil
		}
		if err == nil {
			fmt.Fprintf(tw, "%s\t%s=%s\n", label, k, v)
		}
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
