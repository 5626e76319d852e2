// Package redisquota is Mixer's redisquota adapter: memquota's quotas plus
// ROLLING_WINDOW with bucketDuration, counted in Redis so that several
// mastd share one limit (internal/quota's Redis engine).
package redisquota

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/adapters/memquota"
	"github.com/mast-mesh/mast/internal/quota"
)

// Params are redisquota's params.
type Params struct {
	RedisServerURL     string                 `json:"redisServerUrl"`
	ConnectionPoolSize int                    `json:"connectionPoolSize"`
	Quotas             []memquota.QuotaParams `json:"quotas"`
}

// Info describes the adapter.
var Info = &adapter.Info{Name: "redisquota", Templates: []string{"quota"}, Validate: validate, New: New}

func parse(params *structpb.Struct) (*Params, map[string]*quota.Limit, error) {
	var p Params
	if err := adapter.Decode(params, &p, "dimensions"); err != nil {
		return nil, nil, err
	}
	if p.RedisServerURL == "" {
		return nil, nil, fmt.Errorf("params.redisServerUrl: required")
	}
	if p.ConnectionPoolSize < 0 {
		return nil, nil, fmt.Errorf("params.connectionPoolSize: must not be negative")
	}
	for i, q := range p.Quotas {
		if q.ValidDuration <= 0 {
			return nil, nil, fmt.Errorf("params.quotas[%d].validDuration: required", i)
		}
	}
	ls, err := memquota.Limits(p.Quotas, true)
	if err != nil {
		return nil, nil, err
	}
	return &p, ls, nil
}

func validate(params *structpb.Struct) error { _, _, err := parse(params); return err }

// URL turns Istio's redisServerUrl ("host:port") into a redis:// URL.
func URL(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "redis://" + s
}

// New builds a redisquota handler; the connection is made lazily, so an
// unreachable Redis shows as UNAVAILABLE quota answers.
func New(env adapter.Env, _ string, params *structpb.Struct) (adapter.Handler, error) {
	p, ls, err := parse(params)
	if err != nil {
		return nil, err
	}
	eng, err := quota.NewRedis(quota.RedisOptions{URL: URL(p.RedisServerURL), PoolSize: p.ConnectionPoolSize})
	if err != nil {
		return nil, fmt.Errorf("params.redisServerUrl: %v", err)
	}
	return memquota.NewHandler(eng, ls, time.Second, env.Now), nil
}
