// Package identity ties mastd's CA to Kubernetes: workloads prove who they
// are with projected service-account tokens checked through the TokenReview
// API (TokenReviewer, a ca.Authenticator); the CA's roots and keys live in
// the istio-ca-secret Secret (SecretStore, a ca.Store); and the mesh's
// trust bundle is published as the istio-ca-root-cert ConfigMap in every
// namespace (RootCertPublisher).
package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/ca"
)

// DefaultAudience is the audience of the tokens the injector projects into
// every sidecar (Istio's).
const DefaultAudience = "istio-ca"

// maxTokenLen bounds a bearer token sent on to the API server.
const maxTokenLen = 16 << 10

// TokenReviewer authenticates Kubernetes service-account tokens with the
// TokenReview API. A token proves spiffe://TD/ns/NS/sa/SA for the service
// account it was issued to, only when the API server says it is valid for
// Audience (so a token meant for another service cannot be replayed here)
// and, for pod-bound tokens, only while the pod exists.
type TokenReviewer struct {
	Client      kubernetes.Interface
	TrustDomain spiffeid.TrustDomain
	// Audience the token must carry; DefaultAudience when empty.
	Audience string
}

var _ ca.Authenticator = (*TokenReviewer)(nil)

// Authenticate implements ca.Authenticator.
func (r *TokenReviewer) Authenticate(ctx context.Context, bearer string) (spiffeid.ID, error) {
	if len(bearer) > maxTokenLen {
		return spiffeid.ID{}, fmt.Errorf("kubernetes token: %d bytes exceeds %d", len(bearer), maxTokenLen)
	}
	if strings.Count(bearer, ".") != 2 {
		return spiffeid.ID{}, errors.New("kubernetes token: not a JWT")
	}
	aud := r.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	tr, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: bearer, Audiences: []string{aud}},
	}, metav1.CreateOptions{})
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("kubernetes token: TokenReview: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		msg := st.Error
		if msg == "" {
			msg = "not authenticated"
		}
		return spiffeid.ID{}, fmt.Errorf("kubernetes token: refused by the API server: %s", msg)
	}
	// An API server that ignores spec.audiences (an old one, or a webhook
	// authenticator) returns none: fail closed.
	if !slices.Contains(st.Audiences, aud) {
		return spiffeid.ID{}, fmt.Errorf("kubernetes token: not valid for audience %q (token audiences %q)", aud, st.Audiences)
	}
	ns, sa, err := serviceAccount(st.User.Username)
	if err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromSegments(r.TrustDomain, "ns", ns, "sa", sa)
}

// serviceAccount parses system:serviceaccount:NS:SA.
func serviceAccount(user string) (ns, sa string, err error) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", fmt.Errorf("kubernetes token: user %q is not a service account", user)
	}
	ns, sa, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", fmt.Errorf("kubernetes token: malformed service account user %q", user)
	}
	return ns, sa, nil
}
