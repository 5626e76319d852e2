package ca

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/mast-mesh/mast/internal/ca/catest"
)

// BenchmarkSignCSR measures one CreateCertificate without the transport:
// token verification, CSR parsing and checks, signing and PEM encoding.
func BenchmarkSignCSR(b *testing.B) {
	c, err := New(Config{Dir: b.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		b.Fatal(err)
	}
	id, _ := c.WorkloadID("default", "reviews")
	tok, err := c.IssueToken(id, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	req := &securityv1alpha1.IstioCertificateRequest{Csr: string(catest.CSR{URIs: []string{id.String()}}.Build(b))}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.createCertificate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
