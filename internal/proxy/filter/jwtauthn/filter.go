package jwtauthn

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// TypeURL is the filter's typed_config type URL.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"

// Filter is the jwt_authn HTTP filter of one listener.
type Filter struct {
	cfg *Config
	now func() time.Time
}

var _ filter.HTTPFilter = (*Filter)(nil)

// New parses the filter's typed config (the registry's constructor).
func New(_ string, a *anypb.Any) (filter.HTTPFilter, error) {
	c, err := ParseAny(a)
	if err != nil {
		return nil, err
	}
	return &Filter{cfg: c, now: time.Now}, nil
}

// DecodeHeaders verifies the request's tokens: a refused token ends the
// request with Envoy's 401/403 reply; a verified one becomes r.JWT, the
// request principal rbac reads; no token leaves r.JWT nil.
func (f *Filter) DecodeHeaders(_ context.Context, r *filter.Request) filter.Status {
	req := Request{Method: r.Method, Scheme: r.Scheme, Host: r.Authority, Path: r.Path, Headers: r.Headers}
	o := f.cfg.Authenticate(&req, f.now())
	if o.Status != StatusOK {
		code, body, www := f.cfg.Reply(o, &req)
		r.Details = "jwt_authn_access_denied{" + strings.ReplaceAll(o.Status.String(), " ", "_") + "}"
		if www == "" {
			return r.LocalReply(code, body, "")
		}
		return r.LocalReply(code, body, "", headers.Field{Name: "www-authenticate", Value: www})
	}
	if len(o.Identities) > 0 {
		id := &o.Identities[0]
		r.JWT = &filter.JWTResult{
			Principal: id.Principal, Issuer: id.Issuer, Subject: id.Subject,
			Audiences: id.Audiences, Presenter: id.Presenter, Claims: id.Claims,
		}
	}
	return filter.Continue
}
