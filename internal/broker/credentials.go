package broker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// Issuer is the mesh CA as the broker uses it (implemented by *ca.CA).
type Issuer interface {
	IssueWorkloadCertificate(id spiffeid.ID, pub crypto.PublicKey, ttl time.Duration) ([]byte, *x509.Certificate, error)
	TrustBundlePEM() []byte
}

// credentials are what a binding returns: how to reach the service through
// the mesh and, for a consumer outside it, a client certificate.
type credentials struct {
	URI      string `json:"uri"`
	Host     string `json:"host"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
	// Ports are all the service's ports.
	Ports []portObj `json:"ports"`
	// SPIFFEID is the identity the service's workloads present; a client
	// outside the mesh verifies the server against ServerSPIFFEIDs.
	SPIFFEID        string   `json:"spiffe_id,omitempty"`
	ServerSPIFFEIDs []string `json:"server_spiffe_ids,omitempty"`
	// Addresses are the workloads' sidecar addresses (IP:PORT of Port),
	// where a client outside the mesh connects with mTLS.
	Addresses []string `json:"addresses"`
	// ALPN is what such a client offers so that a PERMISSIVE sidecar
	// terminates its mTLS (Istio's protocols, then HTTP's).
	ALPN []string `json:"alpn,omitempty"`
	// The client identity and certificate (absent when the binding asked
	// for none).
	ClientSPIFFEID    string `json:"client_spiffe_id,omitempty"`
	ClientCertificate string `json:"client_certificate,omitempty"`
	ClientKey         string `json:"client_key,omitempty"`
	CACertificate     string `json:"ca_certificate,omitempty"`
	ExpiresAt         string `json:"expires_at,omitempty"`
}

type portObj struct {
	Name     string `json:"name"`
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol"`
}

// endpointObj is the specification's Endpoint object.
type endpointObj struct {
	Host     string   `json:"host"`
	Ports    []string `json:"ports"`
	Protocol string   `json:"protocol,omitempty"`
}

// timeFormat is the specification's yyyy-mm-ddThh:mm:ss.sZ.
const timeFormat = "2006-01-02T15:04:05.0Z"

// serviceCredentials describes how to reach the exported service from the
// current configuration.
func serviceCredentials(snap *config.Snapshot, ref ServiceRef, td, domainSuffix string) (*credentials, []endpointObj, error) {
	reg := serviceentry.Build(snap, serviceentry.Options{TrustDomain: td, DomainSuffix: domainSuffix})
	var svc *registry.Service
	for _, s := range reg.Services {
		if s.Hostname == ref.Host && s.Namespace == ref.Namespace {
			svc = s
		}
	}
	if svc == nil || len(svc.Ports) == 0 {
		return nil, nil, fmt.Errorf("service %s (ServiceEntry %s/%s) is no longer in the mesh", ref.Host, ref.Namespace, ref.Name)
	}
	first := svc.Ports[0]
	c := &credentials{
		Host: svc.Hostname, Port: first.Number, Protocol: protocolName(first.Protocol),
		URI:       fmt.Sprintf("%s://%s:%d", uriScheme(first.Protocol), svc.Hostname, first.Number),
		Addresses: []string{},
		ALPN:      []string{"istio-http/1.1", "istio", "http/1.1"},
	}
	if !first.Protocol.IsHTTP() {
		c.ALPN = []string{"istio-peer-exchange", "istio"}
	}
	ids := map[string]bool{}
	for _, sa := range svc.ServiceAccounts {
		if strings.HasPrefix(sa, "spiffe://") {
			ids[sa] = true
		}
	}
	hosts := map[string][]string{}
	for _, p := range svc.Ports {
		c.Ports = append(c.Ports, portObj{Name: p.Name, Number: p.Number, Protocol: protocolName(p.Protocol)})
		for _, e := range reg.EndpointsFor(svc.Hostname, p.Number) {
			if e.ServiceAccount != "" {
				ids[e.ServiceAccount] = true
			}
			port := strconv.Itoa(int(e.Port))
			if !slices.Contains(hosts[e.Address], port) {
				hosts[e.Address] = append(hosts[e.Address], port)
			}
			if p.Number == first.Number {
				c.Addresses = append(c.Addresses, fmt.Sprintf("%s:%d", e.Address, e.Port))
			}
		}
	}
	for id := range ids {
		c.ServerSPIFFEIDs = append(c.ServerSPIFFEIDs, id)
	}
	slices.Sort(c.ServerSPIFFEIDs)
	if len(c.ServerSPIFFEIDs) > 0 {
		c.SPIFFEID = c.ServerSPIFFEIDs[0]
	}
	eps := []endpointObj{{Host: svc.Hostname, Ports: portStrings(svc.Ports), Protocol: "tcp"}}
	addrs := make([]string, 0, len(hosts))
	for a := range hosts {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		eps = append(eps, endpointObj{Host: a, Ports: hosts[a], Protocol: "tcp"})
	}
	return c, eps, nil
}

func portStrings(ps []registry.Port) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strconv.Itoa(int(p.Number))
	}
	return out
}

func protocolName(p registry.Protocol) string {
	if p == registry.Unknown {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

func uriScheme(p registry.Protocol) string {
	switch p {
	case registry.HTTP, registry.HTTP2:
		return "http"
	case registry.GRPC:
		return "grpc"
	case registry.HTTPS:
		return "https"
	}
	return "tcp"
}

// issueClientCertificate creates a key pair and has the CA sign it for id.
func issueClientCertificate(iss Issuer, id spiffeid.ID, ttl time.Duration) (certPEM, keyPEM string, leaf *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	chain, leaf, err := iss.IssueWorkloadCertificate(id, key.Public(), ttl)
	if err != nil {
		return "", "", nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	return string(chain), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), leaf, nil
}
