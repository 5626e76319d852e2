// Package adminguard protects the local admin and debug HTTP endpoints of
// mastd (15014 /debug/*) and mast-proxy (15000) from the attackers that can
// reach a loopback port without being the operator: a web page in the
// user's browser (cross-origin requests, DNS rebinding) and, for endpoints
// that change state, other local users (a bearer token read from a file
// that only the operator can read, or, over TLS, the verified client
// certificate of an admin identity).
//
// ReadOnly checks Host and refuses cross-site browser requests; Mutating
// adds POST-only, no cross-origin Origin, and the token when one is set.
package adminguard

import (
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
)

// Options configures the guard. The zero value checks Host and origin only.
type Options struct {
	// Hosts are extra names accepted in the Host header besides IP
	// literals and "localhost" (e.g. "mastd.istio-system.svc"). A DNS
	// rebinding attack reaches the port under the attacker's own name,
	// which is not in this list.
	Hosts []string
	// TokenFile, when set, holds the bearer token that Mutating requires
	// ("Authorization: Bearer <token>"). It is read at every request, so it
	// may be replaced. When Mutating's token is required and the file is
	// missing or empty, every mutating request is refused (fail closed).
	TokenFile string
	// RequireToken makes Mutating refuse every request when TokenFile is
	// empty, instead of relying on the loopback bind alone.
	RequireToken bool
	// AdminIdentities are the identities (SPIFFE IDs) whose TLS client
	// certificate, verified by VerifyClient, authenticates a mutating
	// request instead of the token (istiod's admin identities on 15014).
	AdminIdentities []string
	// VerifyClient verifies a TLS client's certificate chain (leaf first)
	// now and returns its identity; required for AdminIdentities.
	VerifyClient func(chain []*x509.Certificate) (string, error)
}

// CheckHost accepts a Host header (with or without port) that is an IP
// literal, "localhost", or one of opts.Hosts.
func (o Options) CheckHost(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return errors.New("missing Host header")
	}
	if net.ParseIP(host) != nil || host == "localhost" {
		return nil
	}
	for _, h := range o.Hosts {
		if strings.EqualFold(h, host) {
			return nil
		}
	}
	return fmt.Errorf("host %q is not an IP address, localhost or a configured name (DNS rebinding?)", r.Host)
}

// CheckCrossSite refuses requests a browser marks as coming from another
// site (Sec-Fetch-Site: cross-site or same-site).
func CheckCrossSite(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
		return nil
	default:
		return fmt.Errorf("Sec-Fetch-Site %q: cross-origin requests are refused", site)
	}
}

// CheckOrigin refuses a request whose Origin header names another origin
// than the one requested (scheme-less comparison of host:port), and any
// browser request marked cross-site.
func CheckOrigin(r *http.Request) error {
	if err := CheckCrossSite(r); err != nil {
		return err
	}
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return nil
	}
	if len(origins) > 1 {
		return errors.New("several Origin headers")
	}
	u, err := url.Parse(origins[0])
	if err != nil || u.Host == "" {
		return fmt.Errorf("Origin %q: cross-origin requests are refused", origins[0])
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("Origin %q is not %q: cross-origin requests are refused", origins[0], r.Host)
	}
	return nil
}

// authenticate accepts a verified client certificate of an admin identity
// or the bearer token. It returns the status of a refusal: 403 when a valid
// certificate names an identity that is not an admin one, else 401.
func (o Options) authenticate(r *http.Request) (int, error) {
	var certErr error
	status := http.StatusUnauthorized
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && o.VerifyClient != nil && len(o.AdminIdentities) > 0 {
		id, err := o.VerifyClient(r.TLS.PeerCertificates)
		switch {
		case err != nil:
			certErr = fmt.Errorf("client certificate: %w", err)
		case slices.Contains(o.AdminIdentities, id):
			return 0, nil
		default:
			certErr = fmt.Errorf("client certificate identity %s is not an admin identity", id)
			status = http.StatusForbidden
		}
	}
	if err := o.checkToken(r); err != nil {
		if certErr != nil {
			return status, fmt.Errorf("%w; no valid token either (%v)", certErr, err)
		}
		return http.StatusUnauthorized, err
	}
	return 0, nil
}

// checkToken compares the request's bearer token with the file's.
func (o Options) checkToken(r *http.Request) error {
	if o.TokenFile == "" {
		if o.RequireToken {
			return errors.New("this endpoint needs an admin token and none is configured")
		}
		return nil
	}
	data, err := os.ReadFile(o.TokenFile)
	want := strings.TrimSpace(string(data))
	if err != nil || want == "" {
		return errors.New("the admin token file is missing or empty: refusing")
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errors.New(`send "Authorization: Bearer <token>" with the admin token`)
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		return errors.New("wrong admin token")
	}
	return nil
}

// ReadOnly wraps h with the Host and cross-site checks.
func (o Options) ReadOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := o.CheckHost(r); err != nil {
			http.Error(w, err.Error(), http.StatusMisdirectedRequest)
			return
		}
		if err := CheckCrossSite(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// CheckMutating checks a request to an endpoint that changes state: POST
// only, Host, no cross-origin Origin or Sec-Fetch-Site, and the bearer token
// when one is configured (or an admin identity's client certificate). On refusal it returns the HTTP status to answer.
func (o Options) CheckMutating(r *http.Request) (int, error) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, errors.New("use POST")
	}
	if err := o.CheckHost(r); err != nil {
		return http.StatusMisdirectedRequest, err
	}
	if err := CheckOrigin(r); err != nil {
		return http.StatusForbidden, err
	}
	return o.authenticate(r)
}

// Mutating wraps h, an endpoint that changes state, with CheckMutating.
func (o Options) Mutating(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, err := o.CheckMutating(r); err != nil {
			switch code {
			case http.StatusMethodNotAllowed:
				w.Header().Set("Allow", http.MethodPost)
			case http.StatusUnauthorized:
				w.Header().Set("WWW-Authenticate", "Bearer")
			}
			http.Error(w, err.Error(), code)
			return
		}
		h.ServeHTTP(w, r)
	})
}
