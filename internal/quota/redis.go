package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared backend: every mastd (or gateway) pointing at the same
// Redis shares each limit. One Lua script reads, decides and writes a key, so
// concurrent clients never grant more than the limit between them. Windows
// follow the Redis server's clock (TIME), so clients with skewed clocks agree.
type Redis struct {
	client *redis.Client
	prefix string
}

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db] (or rediss:// for TLS).
	URL string
	// PoolSize is the connection pool size (redisquota's connectionPoolSize);
	// 0 keeps go-redis's default.
	PoolSize int
	// Prefix is prepended to every key; "" means "mast:quota:".
	Prefix string
	// Timeout bounds dialing, reads and writes; 0 means 1s.
	Timeout time.Duration
}

var _ Engine = (*Redis)(nil)

// NewRedis connects lazily: errors from an unreachable server come from
// Allocate (or Ping).
func NewRedis(opts RedisOptions) (*Redis, error) {
	o, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w", opts.URL, err)
	}
	if opts.PoolSize < 0 {
		return nil, fmt.Errorf("connectionPoolSize: %d is negative", opts.PoolSize)
	}
	if opts.PoolSize > 0 {
		o.PoolSize = opts.PoolSize
	}
	t := opts.Timeout
	if t <= 0 {
		t = time.Second
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = t, t, t
	o.MaxRetries = 0 // an allocation is not idempotent: never resend it
	p := opts.Prefix
	if p == "" {
		p = "mast:quota:"
	}
	return &Redis{client: redis.NewClient(o), prefix: p}, nil
}

// Ping checks that the server answers.
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}

// allocScript allocates in one key. KEYS[1] the counter; ARGV: algorithm
// (0 fixed, 1 rolling), max, window µs, bucket µs, amount, best effort (1/0).
// Returns {granted, remaining, reset µs, valid µs}. A fixed window is a hash
// {w: window index, n: used}; a rolling one a hash {bucket index: count}.
var allocScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local algo = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local bkt = tonumber(ARGV[4])
local amt = tonumber(ARGV[5])
local be = ARGV[6] == '1'
local function grant(used)
  local avail = max - used
  if avail < 0 then avail = 0 end
  if amt <= avail then return amt end
  if be then return avail end
  return 0
end
local function nonneg(v) if v < 0 then return 0 end return v end
if algo == 0 then
  local w = math.floor(now / win)
  local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
  local used = 0
  if cur[1] and tonumber(cur[1]) == w then used = tonumber(cur[2]) or 0 end
  local g = grant(used)
  used = used + g
  local reset = (w + 1) * win - now
  if g > 0 or not cur[1] or tonumber(cur[1]) ~= w then
    redis.call('HSET', KEYS[1], 'w', string.format('%d', w), 'n', used)
    redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + 1)
  end
  return {g, nonneg(max - used), reset, reset}
end
local n = math.floor(win / bkt)
local cur = math.floor(now / bkt)
local all = redis.call('HGETALL', KEYS[1])
local used = 0
local oldest = nil
for i = 1, #all, 2 do
  local idx = tonumber(all[i])
  if idx <= cur - n then
    redis.call('HDEL', KEYS[1], all[i])
  else
    used = used + tonumber(all[i + 1])
    if oldest == nil or idx < oldest then oldest = idx end
  end
end
local g = grant(used)
if g > 0 then
  redis.call('HINCRBY', KEYS[1], string.format('%d', cur), g)
  if oldest == nil then oldest = cur end
  used = used + g
end
if oldest ~= nil then
  redis.call('PEXPIRE', KEYS[1], math.ceil((win + bkt) / 1000) + 1)
end
local reset = 0
if oldest ~= nil then reset = (oldest + n) * bkt - now end
return {g, nonneg(max - used), reset, (cur + n) * bkt - now}
`)

// Allocate implements Engine.
func (r *Redis) Allocate(ctx context.Context, req Request) (Result, error) {
	if err := checkRequest(req); err != nil {
		return Result{}, err
	}
	max, window := req.Limit.Effective(req.Dimensions)
	algo, bkt := 0, int64(0)
	if req.Limit.Algorithm == RollingWindow {
		algo, bkt = 1, req.Limit.bucket(window).Microseconds()
	}
	be := 0
	if req.Behavior == BestEffort {
		be = 1
	}
	// The algorithm is part of the key: the two keep different hashes.
	key := r.prefix + "f:" + Key(req.Limit.Name, req.Dimensions)
	if algo == 1 {
		key = r.prefix + "r:" + Key(req.Limit.Name, req.Dimensions)
	}
	v, err := allocScript.Run(ctx, r.client, []string{key}, algo, max, window.Microseconds(), bkt, req.Amount, be).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("redis quota %q: %w", req.Limit.Name, err)
	}
	if len(v) != 4 {
		return Result{}, errors.New("redis quota: unexpected script reply")
	}
	return Result{
		Granted:       v[0],
		Remaining:     v[1],
		Limit:         max,
		ResetAfter:    time.Duration(v[2]) * time.Microsecond,
		ValidDuration: time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// Close implements Engine.
func (r *Redis) Close() error { return r.client.Close() }
