package extauthz

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// checkHTTP sends the check to the HTTP service as Envoy does: the
// client's method, path_prefix + the client's path, the selected headers
// plus headers_to_add, an empty body (Content-Length 0) unless
// with_request_body.
func (f *Filter) checkHTTP(ctx context.Context, r *filter.Request, body []byte, partial bool) (outcome, error) {
	if r.Services == nil || r.Services.ClusterHTTP == nil {
		return outcome{}, errors.New("no cluster manager to reach " + f.cfg.HTTP.Cluster)
	}
	res, err := r.Services.ClusterHTTP(ctx, f.cfg.HTTP.Cluster, f.httpCall(r, body, partial), maxAuthzBody)
	if err != nil {
		return outcome{}, err
	}
	return decodeHTTPResponse(f.cfg.HTTP, res.Status, res.Header, res.Body), nil
}

// httpCall builds the authorization request.
func (f *Filter) httpCall(r *filter.Request, body []byte, partial bool) *filter.HTTPCall {
	s := f.cfg.HTTP
	c := &filter.HTTPCall{Method: r.Method, Authority: r.Authority, Path: s.PathPrefix + r.Path, Body: body}
	for _, h := range f.checkHeaders(r, true) {
		switch h.Name {
		case ":authority", ":method", ":path", ":scheme", "content-length", "host":
			continue // from the request line; Content-Length is the check's own
		}
		c.Header = append(c.Header, h)
	}
	if body != nil {
		c.Header.Set(hdrPartialBody, boolString(partial))
	}
	c.Header.Set("content-length", strconv.Itoa(len(body)))
	for _, h := range s.HeadersToAdd {
		c.Header.Set(h[0], h[1])
	}
	return c
}

// decodeHTTPResponse turns an HTTP authorizer's answer into an outcome as
// Envoy does: 5xx is an error; 200 allows, with allowed_upstream_headers
// set and allowed_upstream_headers_to_append appended on the request,
// x-envoy-auth-headers-to-remove removed, allowed_client_headers_on_success
// added to the response; any other status denies with that status, the body
// and allowed_client_headers (all but framing headers when not configured;
// Location and WWW-Authenticate always).
func decodeHTTPResponse(s *HTTPService, status int, h headers.List, body []byte) outcome {
	if status >= 500 || status < 100 {
		return outcome{kind: kindError}
	}
	var out outcome
	valid := func(f headers.Field) bool {
		return headers.ValidName(f.Name) && headers.ValidValue(f.Value) && !strings.HasPrefix(f.Name, ":")
	}
	if status != 200 {
		out.kind, out.status, out.body = kindDenied, status, string(body)
		for _, f := range h {
			f.Name = strings.ToLower(f.Name)
			if !valid(f) {
				continue
			}
			switch f.Name {
			case "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
				"proxy-connection", "host", "date", "server":
				continue
			case "location", "www-authenticate":
			default:
				if s.Client != nil && !s.Client.matches(f.Name) {
					continue
				}
			}
			out.client = append(out.client, f)
		}
		return out
	}
	for _, f := range h {
		f.Name = strings.ToLower(f.Name)
		if !valid(f) {
			continue
		}
		if f.Name == hdrHeadersToRemove {
			for _, n := range strings.Split(f.Value, ",") {
				if n = strings.TrimSpace(n); n != "" {
					out.remove = append(out.remove, n)
				}
			}
			continue
		}
		switch f.Name {
		case "content-length", "transfer-encoding", "connection", "host":
			continue
		}
		if s.Upstream.matches(f.Name) {
			out.mut = append(out.mut, headerMut{name: f.Name, value: f.Value, mode: modeSet})
		}
		if s.UpstreamAppend.matches(f.Name) {
			out.mut = append(out.mut, headerMut{name: f.Name, value: f.Value, mode: modeAppend})
		}
		if s.ClientOnSuccess.matches(f.Name) {
			out.client = append(out.client, f)
		}
		if s.DynamicMetadata.matches(f.Name) {
			out.meta = append(out.meta, [2]string{f.Name, f.Value})
		}
	}
	return out
}
