package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CA is `mast ca revoke ID` and `mast ca revoked`: revoke a workload
// identity at mastd's CA (its /debug/ca/revoke endpoint, authenticated with
// the debug token) and list the revoked ones.
func CA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("ca", "revoke [--reason TEXT] SPIFFE-ID | revoked",
		"Revoke a workload identity at mastd's CA, or list the revoked ones. A revoked identity gets no\n"+
			"certificate (with a bootstrap token or its current certificate), and its certificate no longer\n"+
			"opens an xDS stream to mastd. Revoking needs mastd's debug token.",
		"mast ca revoke --reason 'key leaked' spiffe://cluster.local/ns/default/sa/reviews",
		"mast ca revoked")
	mon := c.String("monitoring-addr", "127.0.0.1:15014", "mastd's metrics and debug address")
	tokenFile := c.String("token-file", filepath.Join(DefaultStateDir(), "ca", "debug-token"),
		"mastd's debug token (mastd --debug-token-file; `mast up` keeps it in its state directory)")
	reason := c.String("reason", "", "why the identity is revoked (recorded)")
	if exit, ok := c.parse(args, stdout, stderr); !ok {
		return exit
	}
	if len(c.args) == 0 {
		return c.usageError(stderr, "want revoke SPIFFE-ID or revoked")
	}
	verb, rest := c.args[0], c.args[1:]
	var req *http.Request
	switch {
	case verb == "revoke" && len(rest) == 1:
		tok, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "mast ca revoke: debug token: %v\n", err)
			return ExitFailure
		}
		q := url.Values{"identity": {rest[0]}, "reason": {*reason}}
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+*mon+"/debug/ca/revoke?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	case verb == "revoked" && len(rest) == 0:
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*mon+"/debug/ca/revoked", nil)
	default:
		return c.usageError(stderr, "want revoke SPIFFE-ID or revoked")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
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
