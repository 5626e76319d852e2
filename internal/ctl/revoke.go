package ctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CA is `mast ca revoke ID` and `mast ca revoked`: revoke a workload
// identity at mastd's CA (its /debug/ca/revoke endpoint, authenticated with
// the debug token, or over TLS with an admin client certificate as mastd
// --debug-admin-identities allows) and list the revoked ones.
func CA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("ca", "revoke [--reason TEXT] SPIFFE-ID | revoked",
		"Revoke a workload identity at mastd's CA, or list the revoked ones. A revoked identity gets no\n"+
			"certificate (with a bootstrap token or its current certificate), and its certificate no longer\n"+
			"opens an xDS stream to mastd. Revoking needs mastd's debug token, or with --cert/--key a client\n"+
			"certificate of one of mastd's --debug-admin-identities (sent over TLS, mastd verified against --ca-cert).",
		"mast ca revoke --reason 'key leaked' spiffe://cluster.local/ns/default/sa/reviews",
		"mast ca revoke --cert admin-cert.pem --key admin-key.pem spiffe://cluster.local/ns/default/sa/reviews",
		"mast ca revoked")
	mon := c.String("monitoring-addr", "127.0.0.1:15014", "mastd's metrics and debug address")
	tokenFile := c.String("token-file", filepath.Join(DefaultStateDir(), "ca", "debug-token"),
		"mastd's debug token (mastd --debug-token-file; `mast up` keeps it in its state directory)")
	reason := c.String("reason", "", "why the identity is revoked (recorded)")
	certFile := c.String("cert", "", "PEM client certificate (chain) of an admin identity: authenticates over TLS instead of the token")
	keyFile := c.String("key", "", "PEM private key of --cert")
	caCert := c.String("ca-cert", filepath.Join(DefaultStateDir(), "ca", "root-cert.pem"),
		"PEM roots that verify mastd's serving certificate when --cert is used (the mesh's root)")
	if exit, ok := c.parse(args, stdout, stderr); !ok {
		return exit
	}
	if (*certFile == "") != (*keyFile == "") {
		return c.usageError(stderr, "--cert and --key go together")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	scheme := "http"
	if *certFile != "" {
		tc, err := adminTLS(*certFile, *keyFile, *caCert, *mon)
		if err != nil {
			fmt.Fprintf(stderr, "mast ca: %v\n", err)
			return ExitFailure
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc}
		scheme = "https"
	}
	if len(c.args) == 0 {
		return c.usageError(stderr, "want revoke SPIFFE-ID or revoked")
	}
	verb, rest := c.args[0], c.args[1:]
	var req *http.Request
	switch {
	case verb == "revoke" && len(rest) == 1:
		q := url.Values{"identity": {rest[0]}, "reason": {*reason}}
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+*mon+"/debug/ca/revoke?"+q.Encode(), nil)
		if *certFile == "" {
			tok, err := os.ReadFile(*tokenFile)
			if err != nil {
				fmt.Fprintf(stderr, "mast ca revoke: debug token: %v (or authenticate with --cert/--key)\n", err)
				return ExitFailure
			}
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		}
	case verb == "revoked" && len(rest) == 0:
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+*mon+"/debug/ca/revoked", nil)
	default:
		return c.usageError(stderr, "want revoke SPIFFE-ID or revoked")
	}
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "mast ca %s: %v\n", verb, err)
		return ExitFailure
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "mast ca %s: mastd answered %s: %s\n", verb, resp.Status, strings.TrimSpace(string(body)))
		return ExitFailure
	}
	var list []struct {
		ID     string    `json:"id"`
		At     time.Time `json:"at"`
		Reason string    `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		fmt.Fprintf(stderr, "mast ca %s: %v\n", verb, err)
		return ExitFailure
	}
	if verb == "revoke" {
		fmt.Fprintf(stdout, "revoked %s\n", rest[0])
		return ExitOK
	}
	for _, r := range list {
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", r.ID, r.At.UTC().Format(time.RFC3339), r.Reason)
	}
	return ExitOK
}

// adminTLS is the client side of TLS to mastd's monitoring port: the admin
// certificate and key, and mastd's serving certificate verified against the
// roots in caFile for the host of addr (mastd's certificate names
// 127.0.0.1, localhost, mastd and istiod.istio-system.svc).
func adminTLS(certFile, keyFile, caFile, addr string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	roots, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--monitoring-addr %q: %w", addr, err)
	}
	if host == "" {
		return nil, errors.New("--monitoring-addr needs a host to verify mastd's certificate against")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}
