package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/mast-mesh/mast/internal/ca/csr"
	"github.com/mast-mesh/mast/internal/ca/token"
)

// Authenticator proves a caller's identity from a bearer token that is not a
// Mast bootstrap token, e.g. a Kubernetes service-account token checked with
// TokenReview. It returns the SPIFFE ID the token proves.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (spiffeid.ID, error)
}

// impersonatedIdentity is the request metadata key Istio's node agent uses
// to ask for another identity's certificate.
const impersonatedIdentity = "ImpersonatedIdentity"

// Register registers Istio's IstioCertificateService (istio.v1.auth) on g.
func (ca *CA) Register(g *grpc.Server) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(g, &service{ca: ca})
}

type service struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	ca *CA
}

// CreateCertificate signs the CSR for the identity the caller proved. The
// response is [leaf, intermediates..., trust bundle]; the last element holds
// every trusted root (two during a rotation), as Istio's CA sends it.
func (s *service) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	chain, id, err := s.ca.createCertificate(ctx, req)
	s.ca.countCSR(err)
	if err != nil {
		s.ca.log.Warn("certificate refused", "identity", id.String(), "error", err)
		return nil, grpcStatus(err)
	}
	s.ca.log.Debug("certificate issued", "identity", id.String())
	return &securityv1alpha1.IstioCertificateResponse{CertChain: chain}, nil
}

// createCertificate returns the PEM chain and the proved identity.
func (ca *CA) createCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) ([]string, spiffeid.ID, error) {
	now := ca.now()
	id, tok, err := ca.authenticate(ctx, now)
	if err != nil {
		return nil, spiffeid.ID{}, err
	}
	if ca.isRevoked(id) {
		return nil, id, refuse(ErrPermissionDenied, "identity %s is revoked", id)
	}
	if v, ok := req.GetMetadata().GetFields()[impersonatedIdentity]; ok && v.GetStringValue() != id.String() {
		return nil, id, refuse(ErrPermissionDenied, "%s may not impersonate %q", id, v.GetStringValue())
	}
	r, err := csr.Parse([]byte(req.GetCsr()))
	if err != nil {
		return nil, id, refuse(ErrInvalidArgument, "%v", err)
	}
	if !r.ID.MemberOf(ca.td) {
		return nil, id, refuse(ErrPermissionDenied, "CSR identity %s is outside trust domain %s", r.ID, ca.td.Name())
	}
	if r.ID != id {
		return nil, id, refuse(ErrPermissionDenied, "CSR asks for %s but the caller proved %s", r.ID, id)
	}
	if tok.raw != "" {
		if err := ca.bindToken(tok.raw, tok.expiry, r.PublicKey); err != nil {
			return nil, id, err
		}
	}
	ttl, err := ca.leafTTL(req.GetValidityDuration())
	if err != nil {
		return nil, id, err
	}
	a := ca.auth.Load()
	der, s, err := a.sign(leafTemplate{
		id: id, ttl: ttl,
		extKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, r.PublicKey, now)
	if err != nil {
		return nil, id, err
	}
	if leaf, err := x509.ParseCertificate(der); err == nil {
		ca.recordIssued(leaf, id.String())
	}
	chain := make([]string, 0, 2+len(s.chainPEM))
	chain = append(chain, string(encodeCert(der)))
	chain = append(chain, s.chainPEM...)
	chain = append(chain, bundlePEM(a.anchorsAt(now)))
	return chain, id, nil
}

// leafTTL turns Istio's validity_duration (seconds) into a lifetime: the
// default when zero, capped at MaxTTL.
func (ca *CA) leafTTL(seconds int64) (time.Duration, error) {
	switch {
	case seconds < 0:
		return 0, refuse(ErrInvalidArgument, "negative validity_duration %d", seconds)
	case seconds == 0:
		return ca.cfg.DefaultTTL, nil
	case seconds >= int64(ca.cfg.MaxTTL/time.Second):
		return ca.cfg.MaxTTL, nil
	}
	return time.Duration(seconds) * time.Second, nil
}

// usedToken is the bootstrap token a request authenticated with, if any.
type usedToken struct {
	raw    string
	expiry time.Time
}

// authenticate returns the identity the caller proved: with a bearer token
// (a bootstrap token, else one of Config.Authenticators), or without one by
// a client certificate that chains to the current trust bundle. For a
// bootstrap token it also returns the token, to bind it to the CSR's key.
func (ca *CA) authenticate(ctx context.Context, now time.Time) (spiffeid.ID, usedToken, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		id, err := ca.authenticatePeer(ctx, now)
		return id, usedToken{}, err
	case 1:
	default:
		return spiffeid.ID{}, usedToken{}, refuse(ErrUnauthenticated, "%d authorization headers, want one", len(vals))
	}
	scheme, bearer, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || bearer == "" {
		return spiffeid.ID{}, usedToken{}, refuse(ErrUnauthenticated, `authorization header is not "Bearer <token>"`)
	}
	a := ca.auth.Load()
	claims, err := token.Verify(bearer, a.tokenKey, ca.td.Name(), now)
	if err == nil {
		if err := ca.checkWorkloadID(claims.Subject); err != nil {
			return spiffeid.ID{}, usedToken{}, refuse(ErrUnauthenticated, "bootstrap token: %v", err)
		}
		return claims.Subject, usedToken{raw: bearer, expiry: claims.Expiry}, nil
	}
	errs := []error{err}
	for _, au := range ca.cfg.Authenticators {
		id, aerr := au.Authenticate(ctx, bearer)
		if aerr == nil {
			if err := ca.checkWorkloadID(id); err != nil {
				return spiffeid.ID{}, usedToken{}, refuse(ErrUnauthenticated, "%v", err)
			}
			return id, usedToken{}, nil
		}
		errs = append(errs, aerr)
	}
	return spiffeid.ID{}, usedToken{}, refuse(ErrUnauthenticated, "%v", errors.Join(errs...))
}

// PeerID returns the workload SPIFFE ID of the caller's TLS client
// certificate, verified now against the current trust bundle; mastd's xDS
// server on 15012 binds a proxy's node to it. Errors are gRPC statuses.
func (ca *CA) PeerID(ctx context.Context) (spiffeid.ID, error) {
	id, err := ca.authenticatePeer(ctx, ca.now())
	if err != nil {
		return spiffeid.ID{}, grpcStatus(err)
	}
	return id, nil
}

// authenticatePeer accepts the SPIFFE ID of a TLS client certificate,
// re-verified at request time against the current bundle: a connection may
// outlive its certificate or the root that signed it.
func (ca *CA) authenticatePeer(ctx context.Context, now time.Time) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	var certs []*x509.Certificate
	if ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			certs = info.State.PeerCertificates
		}
	}
	if len(certs) == 0 {
		return spiffeid.ID{}, refuse(ErrUnauthenticated,
			`no credentials: send "authorization: Bearer <token>" or a client certificate issued by this CA`)
	}
	return ca.verifyClientChain(certs, now)
}

// VerifyClientCert returns the workload SPIFFE ID of a TLS client's
// certificate chain (leaf first), verified now against the current trust
// bundle and refused when the identity is revoked. mastd's monitoring port
// authenticates admin identities with it.
func (ca *CA) VerifyClientCert(certs []*x509.Certificate) (spiffeid.ID, error) {
	if len(certs) == 0 {
		return spiffeid.ID{}, errors.New("no client certificate")
	}
	return ca.verifyClientChain(certs, ca.now())
}

func (ca *CA) verifyClientChain(certs []*x509.Certificate, now time.Time) (spiffeid.ID, error) {
	bundle := x509bundle.FromX509Authorities(ca.td, ca.auth.Load().rootsAt(now))
	id, _, err := x509svid.Verify(certs, bundle, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, refuse(ErrUnauthenticated, "client certificate: %v", err)
	}
	if err := ca.checkWorkloadID(id); err != nil {
		return spiffeid.ID{}, refuse(ErrUnauthenticated, "client certificate: %v", err)
	}
	if ca.isRevoked(id) {
		return spiffeid.ID{}, refuse(ErrPermissionDenied, "identity %s is revoked", id)
	}
	return id, nil
}
