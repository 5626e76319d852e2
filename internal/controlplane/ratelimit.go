package controlplane

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/quota"
	"github.com/mast-mesh/mast/internal/ratelimit"
)

// RateLimitConfig configures mastd's rate-limit service
// (envoy.service.ratelimit.v3.RateLimitService, --components ratelimit).
type RateLimitConfig struct {
	Enabled bool
	// Addr is where the gRPC service listens (8081, plaintext; loopback by
	// default: anyone who reaches it can spend quota).
	Addr string
	// Advertise is the address generated proxy configuration dials; ""
	// means the bound address.
	Advertise string
	// RedisURL, when set, keeps counters in Redis so that several mastd
	// share each limit; otherwise they live in this mastd's memory.
	RedisURL      string
	RedisPoolSize int
}

func (c *RateLimitConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "ratelimit-addr", "127.0.0.1:8081", "address of the rate-limit gRPC service (envoy.service.ratelimit.v3) for RateLimit resources")
	fs.StringVar(&c.Advertise, "ratelimit-advertise", "", "address proxies dial for the rate-limit service (default: the bound --ratelimit-addr)")
	fs.StringVar(&c.RedisURL, "ratelimit-redis", "", "redis://host:port/db keeping global rate-limit counters, shared by every mastd using it (default: in memory)")
	fs.IntVar(&c.RedisPoolSize, "ratelimit-redis-pool-size", 0, "Redis connection pool size (default: go-redis's)")
}

// rateLimitServer is the running service.
type rateLimitServer struct {
	svc    *ratelimit.Service
	engine quota.Engine
	gs     *grpc.Server
	lis    net.Listener
	once   sync.Once
}

func newRateLimit(cfg RateLimitConfig, log *slog.Logger) (*rateLimitServer, error) {
	var engine quota.Engine = quota.NewMemory(nil)
	if cfg.RedisURL != "" {
		r, err := quota.NewRedis(quota.RedisOptions{URL: cfg.RedisURL, PoolSize: cfg.RedisPoolSize})
		if err != nil {
			return nil, fmt.Errorf("ratelimit: --ratelimit-redis: %w", err)
		}
		engine = r
	}
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		engine.Close()
		return nil, fmt.Errorf("ratelimit listener: %w", err)
	}
	s := &rateLimitServer{svc: ratelimit.NewService(engine, log), engine: engine, gs: grpc.NewServer(), lis: lis}
	s.svc.Register(s.gs)
	return s, nil
}

// stop ends Serve and closes the counters' engine; it runs once, both on
// shutdown (before mastd waits for its servers) and on an early return.
func (s *rateLimitServer) stop() {
	s.once.Do(func() {
		s.gs.GracefulStop()
		s.lis.Close()
		s.engine.Close()
	})
}
