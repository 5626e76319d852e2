package controlplane

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// xdsAuthorizer binds an xDS stream's node to its caller. On the TLS port
// (15012) the caller must present a workload certificate issued by the CA,
// and the node's namespace and service account must be the certificate's
// (spiffe://TD/ns/NS/sa/SA): a proxy cannot claim another namespace's node
// ID and receive what that namespace may see (Sidecar scoping, exported
// services and policies are chosen by the node's namespace). The plaintext
// port is for loopback only and takes nodes as they come.
func xdsAuthorizer(authority *ca.CA) func(context.Context, *model.Proxy) error {
	return func(ctx context.Context, p *model.Proxy) error {
		pr, ok := peer.FromContext(ctx)
		if !ok {
			return status.Error(codes.Unauthenticated, "xds: no peer")
		}
		if _, isTLS := pr.AuthInfo.(credentials.TLSInfo); !isTLS {
			return nil // the plaintext listener (loopback)
		}
		if authority == nil {
			return status.Error(codes.Unauthenticated, "xds: no CA to verify client certificates with")
		}
		id, err := authority.PeerID(ctx)
		if err != nil {
			return status.Errorf(codes.Unauthenticated, "xds over TLS needs a workload certificate from this CA: %v", status.Convert(err).Message())
		}
		seg := strings.Split(id.Path(), "/") // "", "ns", NS, "sa", SA
		ns, sa := seg[2], seg[4]             // checked by the CA: /ns/<ns>/sa/<sa>
		if p.Namespace != ns {
			return status.Errorf(codes.PermissionDenied, "xds: node %q claims namespace %q but its certificate is %s", p.ID, p.Namespace, id)
		}
		switch p.ServiceAccount {
		case "":
			p.ServiceAccount = sa
		case sa, id.String():
		default:
			return status.Errorf(codes.PermissionDenied, "xds: node %q claims service account %q but its certificate is %s", p.ID, p.ServiceAccount, id)
		}
		return nil
	}
}

// tlsPeer reports whether the stream came over TLS, where xdsAuthorizer has
// bound the node's namespace and service account to its certificate.
func tlsPeer(ctx context.Context) bool {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, isTLS := pr.AuthInfo.(credentials.TLSInfo)
	return isTLS
}
