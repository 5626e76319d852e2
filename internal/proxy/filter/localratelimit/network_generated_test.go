package localratelimit

import (
	"errors"
	"time"

	netlocalrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"

	"github.com/mast-mesh/mast/internal/proxy/filter"
)

// The generated decoder of the network filter before pbwire (NewNetwork's
// body after UnmarshalTo, unchanged but for the clock): the oracle of the
// wire decoder's differential tests.
func parseNetworkGenerated(c *netlocalrlv3.LocalRateLimit, now func() time.Time) (*Network, error) {
	if err := filter.CheckFields("", c, "stat_prefix", "token_bucket"); err != nil {
		return nil, err
	}
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	b, err := newBucket(c.GetTokenBucket(), "token_bucket", now)
	if err != nil {
		return nil, err
	}
	return &Network{b: b}, nil
}
