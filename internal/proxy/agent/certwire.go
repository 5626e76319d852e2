package agent

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The CA's API is Istio's IstioCertificateService (istio.io/api
// security/v1alpha1, ca.proto). mast-proxy speaks it with the two messages
// below, encoded with protowire: the generated package links the legacy
// github.com/golang/protobuf (jsonpb, ptypes/struct) into the proxy, and
// the proxy sends neither the request's metadata nor anything else.

// createCertificate is the service's one method.
const createCertificate = "/istio.v1.auth.IstioCertificateService/CreateCertificate"

// certRequest is IstioCertificateRequest: csr = 1, validity_duration = 3
// (seconds; metadata = 4 is not sent).
type certRequest struct {
	CSR             string
	ValiditySeconds int64
}

// certResponse is IstioCertificateResponse: repeated cert_chain = 1.
type certResponse struct {
	CertChain []string
}

func (r *certRequest) marshal() []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, r.CSR)
	if r.ValiditySeconds != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.ValiditySeconds))
	}
	return b
}

// unmarshal decodes a response from the CA; unknown fields are skipped, as
// protobuf requires.
func (r *certResponse) unmarshal(b []byte) error {
	r.CertChain = nil
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("IstioCertificateResponse: %w", protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("IstioCertificateResponse: field number %d out of range", num)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("IstioCertificateResponse.cert_chain: %w", protowire.ParseError(n))
			}
			if !utf8.Valid(v) {
				return fmt.Errorf("IstioCertificateResponse.cert_chain: invalid UTF-8")
			}
			r.CertChain = append(r.CertChain, string(v))
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("IstioCertificateResponse field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}
