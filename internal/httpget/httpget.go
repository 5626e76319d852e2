// Package httpget fetches a document another server publishes (a JWKS, a
// Eureka registry, a Mixer list) with a bound on its size, so that a
// misbehaving server cannot make mastd read without end.
package httpget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrTooLarge is returned (wrapped) for a document over the bound.
var ErrTooLarge = errors.New("document too large")

// Get fetches url with the Accept header accept (none when empty) and
// returns its body; a status other than 200, a read error or a body of more
// than max bytes is an error naming the URL.
func Get(ctx context.Context, c *http.Client, url, accept string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("GET %s: %w (more than %d bytes)", url, ErrTooLarge, max)
	}
	return b, nil
}
