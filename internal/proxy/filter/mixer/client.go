package mixer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// client is what the HTTP and TCP Mixer filters share: where the Mixer is,
// the fail policy, the check cache and the report batcher.
type client struct {
	checkTarget, reportTarget string
	failOpen                  bool
	useCache                  bool
	dict                      *attribute.Dictionary
	enc                       *attribute.Encoder
	cache                     *checkCache
	reports                   *batcher
	// prefetch is Istio's quota cache (prefetch.go), nil when
	// transport.disable_quota_cache (mastd's default: exact quotas).
	prefetch *quotaPools
	fetchIDs atomic.Uint64
	idPfx    string
}

// newClient reads a TransportConfig; fields mast-proxy does not carry out
// are errors naming them.
func newClient(t *clientpb.TransportConfig) (*client, error) {
	if t.GetCheckCluster() == "" {
		return nil, fmt.Errorf("transport.check_cluster: required (the Mixer's host:port)")
	}
	if t.GetAttributesForMixerProxy() != nil {
		return nil, fmt.Errorf("transport.attributes_for_mixer_proxy: not supported")
	}
	if p := t.GetNetworkFailPolicy(); p.GetMaxRetry() != 0 || p.GetBaseRetryWait() != nil || p.GetMaxRetryWait() != nil {
		return nil, fmt.Errorf("transport.network_fail_policy: retries are not supported")
	}
	dict := attribute.GlobalDictionary()
	c := &client{checkTarget: t.GetCheckCluster(), reportTarget: t.GetReportCluster(), dict: dict, enc: attribute.NewEncoder(dict),
		failOpen: t.GetNetworkFailPolicy().GetPolicy() == clientpb.NetworkFailPolicy_FAIL_OPEN, useCache: !t.GetDisableCheckCache(),
		cache: newCheckCache(10000)}
	if c.reportTarget == "" {
		c.reportTarget = c.checkTarget
	}
	maxEntries, maxTime := int(t.GetReportBatchMaxEntries()), t.GetReportBatchMaxTime().AsDuration()
	if t.GetDisableReportBatch() || maxEntries <= 0 {
		maxEntries = 1
	}
	if maxTime <= 0 {
		maxTime = time.Second
	}
	c.reports = &batcher{max: maxEntries, wait: maxTime, enc: c.enc, dict: dict}
	if !t.GetDisableQuotaCache() {
		c.prefetch = newQuotaPools(c.failOpen)
		c.idPfx = "prefetch-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	}
	return c, nil
}

// quotaCharges sums a service's QuotaSpecs into quota name -> charge;
// field names the specs for errors.
func quotaCharges(specs []*clientpb.QuotaSpec, field string) (map[string]int64, error) {
	out := map[string]int64{}
	for i, qs := range specs {
		for j, r := range qs.GetRules() {
			if len(r.GetMatch()) > 0 {
				return nil, fmt.Errorf("%s[%d].rules[%d].match: not supported", field, i, j)
			}
			for _, q := range r.GetQuotas() {
				if q.GetCharge() > 0 {
					out[q.GetQuota()] += int64(q.GetCharge())
				}
			}
		}
	}
	return out, nil
}

var errNoClient = errors.New("mixer client not available")

// check asks the Mixer about b, or the cache when no quota is asked for
// and a cached answer holds; quotas are charged with dedup as the Mixer's
// deduplication ID. It returns the answer's code (OK: proceed) and
// message, or an error when the Mixer could not answer (the fail policy
// decides then).
func (c *client) check(ctx context.Context, dial func(string) (rpc.Conn, error), b *reqBag,
	quotas map[string]int64, dedup string, now time.Time) (rpc.Code, string, error) {
	if len(quotas) == 0 && c.useCache {
		if code, msg, ok := c.cache.lookup(b, now); ok {
			return rpc.Code(code), msg, nil
		}
	}
	if len(quotas) > 0 && c.prefetch != nil && c.useCache {
		if code, msg, ok := c.fromPools(dial, b, quotas, now); ok {
			return code, msg, nil
		}
	}
	if dial == nil {
		return 0, "", errNoClient
	}
	conn, err := dial(c.checkTarget)
	if err != nil {
		return 0, "", err
	}
	req := &mixerpb.CheckRequest{Attributes: c.enc.Encode(b), GlobalWordCount: uint32(c.dict.Len())}
	if len(quotas) > 0 {
		req.Quotas = make(map[string]*mixerpb.CheckRequest_QuotaParams, len(quotas))
		for q, n := range quotas {
			req.Quotas[q] = &mixerpb.CheckRequest_QuotaParams{Amount: n}
		}
		req.DeduplicationId = dedup
	}
	cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	resp := new(mixerpb.CheckResponse)
	if err := call(cctx, conn, checkMethod, req, resp); err != nil {
		return 0, "", err
	}
	pre := resp.GetPrecondition()
	code := rpc.Code(pre.GetStatus().GetCode())
	if c.useCache {
		c.cache.insert(b, pre.GetReferencedAttributes(), c.dict, int32(code), pre.GetStatus().GetMessage(),
			pre.GetValidDuration().AsDuration(), pre.GetValidUseCount(), now)
	}
	if code != rpc.OK {
		return code, pre.GetStatus().GetMessage(), nil
	}
	if c.prefetch != nil {
		// The next requests with these quota attributes use pools.
		for q := range quotas {
			if res := resp.GetQuotas()[q]; res != nil {
				c.prefetch.ensure(q, b, res.GetReferencedAttributes(), c.dict)
			}
		}
	}
	for q, n := range quotas {
		res := resp.GetQuotas()[q]
		if res == nil {
			continue // the Mixer has no quota of that name: not limited
		}
		if rc := rpc.Code(res.GetStatus().GetCode()); rc != rpc.OK {
			return rc, res.GetStatus().GetMessage(), nil
		}
		if res.GetGrantedAmount() < n {
			return rpc.ResourceExhausted, "Quota is exhausted for: " + q, nil
		}
	}
	return rpc.OK, "", nil
}

// fromPools answers a quota'd request without the Mixer when the check
// cache holds its Check's answer and every quota has a pool for it (Istio
// consulted its quota cache only behind the check cache); ok false sends
// the request to the Mixer.
func (c *client) fromPools(dial func(string) (rpc.Conn, error), b *reqBag, quotas map[string]int64,
	now time.Time) (rpc.Code, string, bool) {
	for q := range quotas {
		if c.prefetch.lookup(q, b) == nil {
			return 0, "", false
		}
	}
	code, msg, ok := c.cache.lookup(b, now)
	if !ok {
		return 0, "", false
	}
	if code != int32(rpc.OK) {
		return rpc.Code(code), msg, true
	}
	for q, n := range quotas {
		if !c.prefetch.lookup(q, b).check(n, now, c.fetcher(dial, q, b)) {
			return rpc.ResourceExhausted, "Quota is exhausted for: " + q, true
		}
	}
	return rpc.OK, "", true
}

// fetcher asks the Mixer for amounts of quota q in the background, with
// the attributes of b (encoded when the pool asks) and best effort.
func (c *client) fetcher(dial func(string) (rpc.Conn, error), q string, b *reqBag) fetchFunc {
	return func(amount int64, done func(int64, time.Duration, error)) {
		req := &mixerpb.CheckRequest{Attributes: c.enc.Encode(b), GlobalWordCount: uint32(c.dict.Len()),
			DeduplicationId: c.idPfx + strconv.FormatUint(c.fetchIDs.Add(1), 10),
			Quotas:          map[string]*mixerpb.CheckRequest_QuotaParams{q: {Amount: amount, BestEffort: true}}}
		go func() {
			if dial == nil {
				done(0, 0, errNoClient)
				return
			}
			conn, err := dial(c.checkTarget)
			if err != nil {
				done(0, 0, err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
			defer cancel()
			resp := new(mixerpb.CheckResponse)
			if err := call(ctx, conn, checkMethod, req, resp); err != nil {
				done(0, 0, err)
				return
			}
			res := resp.GetQuotas()[q]
			if resp.GetPrecondition().GetStatus().GetCode() != int32(rpc.OK) || res.GetStatus().GetCode() != int32(rpc.OK) {
				done(0, 0, nil)
				return
			}
			valid := res.GetValidDuration().AsDuration()
			if valid <= 0 {
				valid = time.Second
			}
			done(res.GetGrantedAmount(), valid, nil)
		}()
	}
}

// report queues b's attributes for the next batch sent to the Mixer.
func (c *client) report(b attribute.Bag, svcs *filter.Services) {
	c.reports.add(c.enc.Encode(b), func() (rpc.Conn, error) { return svcs.RPC(c.reportTarget) }, svcs.Logger)
}

// The Mixer's methods. mast-proxy calls them through its own gRPC client
// (internal/proxy/rpc) with the messages marshalled here, so it links the
// generated messages but not grpc-go (mastd serves them with mixergrpc).
const (
	checkMethod  = "/istio.mixer.v1.Mixer/Check"
	reportMethod = "/istio.mixer.v1.Mixer/Report"
)

// call makes one unary call of method on conn.
func call(ctx context.Context, conn rpc.Conn, method string, req, resp proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("mixer: encoding the %s request: %w", method, err)
	}
	out, err := conn.Invoke(ctx, method, b)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("mixer: decoding the %s response: %w", method, err)
	}
	return nil
}
