package httpproxy

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"strings"
	"sync/atomic"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// xfccHeader carries the downstream client certificate (Envoy's
// x-forwarded-client-cert): how the application, policy and telemetry
// learn the peer's SPIFFE identity.
const xfccHeader = "x-forwarded-client-cert"

// tlsPeer is what a TLS connection tells about its two ends, computed once
// per connection.
type tlsPeer struct {
	by      string // our own certificate's URI SAN
	hash    string // hex SHA-256 of the client's leaf
	subject string
	uris    []string
	dns     []string
	// xfcc is the last XFCC element built (value): a connection's
	// requests all want the one of their connection manager, so it is
	// built once per connection instead of per request (HTTP/2 streams
	// share it, hence atomic).
	xfcc atomic.Pointer[xfccElement]
}

// xfccElement is a tlsPeer's XFCC element for some ClientCertDetails.
type xfccElement struct {
	d xdsparse.ClientCertDetails
	s string
}

// peerOf returns the client certificate details of a TLS connection whose
// client presented a (verified) certificate, nil otherwise.
func peerOf(nc net.Conn) *tlsPeer {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	p := &tlsPeer{hash: hex.EncodeToString(sum[:]), subject: leaf.Subject.String(), dns: leaf.DNSNames}
	for _, u := range leaf.URIs {
		p.uris = append(p.uris, u.String())
	}
	return p
}

// PeerIdentity returns the SPIFFE ID (URI SAN) the downstream connection's
// client certificate carries, "" for plaintext or no certificate.
func PeerIdentity(nc net.Conn) string {
	if p := peerOf(nc); p != nil && len(p.uris) > 0 {
		return p.uris[0]
	}
	return ""
}

// value is the XFCC element for this connection, as Envoy writes it.
func (p *tlsPeer) value(d xdsparse.ClientCertDetails) string {
	if e := p.xfcc.Load(); e != nil && e.d == d {
		return e.s
	}
	s := p.build(d)
	p.xfcc.Store(&xfccElement{d: d, s: s})
	return s
}

// build makes the XFCC element value returns.
func (p *tlsPeer) build(d xdsparse.ClientCertDetails) string {
	var b strings.Builder
	if p.by != "" {
		b.WriteString("By=" + p.by + ";")
	}
	b.WriteString("Hash=" + p.hash)
	if d.Subject {
		b.WriteString(`;Subject="` + strings.ReplaceAll(p.subject, `"`, `\"`) + `"`)
	}
	if d.URI {
		for _, u := range p.uris {
			b.WriteString(";URI=" + u)
		}
	}
	if d.DNS {
		for _, n := range p.dns {
			b.WriteString(";DNS=" + n)
		}
	}
	return b.String()
}

// applyXFCC handles x-forwarded-client-cert as the connection manager's
// forward_client_cert_details says, with Envoy's semantics: only
// ALWAYS_FORWARD_ONLY passes a client's header on a connection without a
// verified client certificate (plaintext, PERMISSIVE, or TLS without a
// client certificate); every other mode strips it there, so that no client
// can claim a caller identity it does not hold. On mTLS, SANITIZE strips,
// FORWARD_ONLY forwards, APPEND_FORWARD appends this hop's element and
// SANITIZE_SET replaces the header with it.
func applyXFCC(h *headers.List, hcm *xdsparse.HTTPManager, p *tlsPeer) {
	mode := hcm.ForwardClientCert
	if mode == xdsparse.FCCAlwaysForwardOnly {
		return
	}
	if mode == xdsparse.FCCSanitize || p == nil {
		h.Del(xfccHeader)
		return
	}
	switch mode {
	case xdsparse.FCCForwardOnly:
	case xdsparse.FCCAppendForward:
		if old, ok := h.Get(xfccHeader); ok && old != "" {
			h.Set(xfccHeader, old+","+p.value(hcm.ClientCertDetails))
			return
		}
		h.Set(xfccHeader, p.value(hcm.ClientCertDetails))
	case xdsparse.FCCSanitizeSet:
		h.Set(xfccHeader, p.value(hcm.ClientCertDetails))
	}
}
