package agent

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// TestCertWireMatchesIstioAPI: the hand-encoded messages are Istio's
// generated ones on the wire, both ways.
func TestCertWireMatchesIstioAPI(t *testing.T) {
	req := &certRequest{CSR: "-----BEGIN CERTIFICATE REQUEST-----\nx\n", ValiditySeconds: 3600}
	var got securityv1alpha1.IstioCertificateRequest
	if err := proto.Unmarshal(req.marshal(), &got); err != nil {
		t.Fatal(err)
	}
	if got.GetCsr() != req.CSR || got.GetValidityDuration() != 3600 || got.GetMetadata() != nil {
		t.Errorf("Istio's decoder read %v", &got)
	}
	b, err := proto.Marshal(&securityv1alpha1.IstioCertificateResponse{CertChain: []string{"leaf", "intermediate", "root"}})
	if err != nil {
		t.Fatal(err)
	}
	var resp certResponse
	if err := resp.unmarshal(b); err != nil || !slices.Equal(resp.CertChain, []string{"leaf", "intermediate", "root"}) {
		t.Errorf("decoded %q, %v", resp.CertChain, err)
	}
	if err := resp.unmarshal([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Error("a truncated cert_chain was accepted")
	}
}

// FuzzCertResponse: whatever the CA sends, the decoder returns an error or
// exactly what Istio's generated decoder reads.
func FuzzCertResponse(f *testing.F) {
	for _, chain := range [][]string{nil, {"a"}, {"leaf", "root"}} {
		b, _ := proto.Marshal(&securityv1alpha1.IstioCertificateResponse{CertChain: chain})
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x05, 'a'})                   // truncated
	f.Add([]byte{0x10, 0x01, 0x0a, 0x01, 'x'})       // an unknown varint field first
	f.Add([]byte{0xc2, 0x0c, 0x01, 'x', 0x0a, 0x00}) // field 200 (an older layout), then an empty entry
	f.Fuzz(func(t *testing.T, b []byte) {
		var ours certResponse
		err := ours.unmarshal(b)
		var theirs securityv1alpha1.IstioCertificateResponse
		terr := proto.Unmarshal(b, &theirs)
		if err == nil && terr == nil && !slices.Equal(ours.CertChain, theirs.GetCertChain()) {
			t.Fatalf("decoded %q, Istio's decoder %q", ours.CertChain, theirs.GetCertChain())
		}
		if err == nil && terr != nil {
			t.Fatalf("accepted what Istio's decoder refuses (%v)", terr)
		}
	})
}
