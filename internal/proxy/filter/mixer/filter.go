// Package mixer is mast-proxy's Mixer client (Istio 1.4's "mixer" HTTP
// filter, istio.mixer.v1.config.client.HttpClientConfig): it checks each
// request with the Mixer (with a cache keyed by exactly the attributes the
// Mixer's answer referenced, honouring valid_duration and
// valid_use_count), asks for the quotas of the destination service's
// QuotaSpecs, reports requests in asynchronous batches, forwards the
// proxy's own attributes to the destination (x-istio-attributes), and maps
// a refusal to Istio's HTTP status with its message.
package mixer

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Name and TypeURL identify the filter (Istio 1.4's).
const (
	Name    = "mixer"
	TypeURL = "type.googleapis.com/istio.mixer.v1.config.client.HttpClientConfig"
	// ForwardHeader carries forwarded attributes (a base64 istio.mixer.v1.Attributes).
	ForwardHeader = "x-istio-attributes"
	// CheckTimeout bounds a Check call: then the fail policy decides.
	CheckTimeout = 2 * time.Second
	// MaxForwardHeader bounds a forwarded attributes header.
	MaxForwardHeader = 16 << 10
)

// Filter is one configured Mixer client.
type Filter struct {
	*client
	ignoreForwarded bool
	forward         string // the x-istio-attributes value to send, "" for none
	svc             *service
	fwdSeen         forwardedCache
}

// forwardedCache keeps decoded x-istio-attributes values: each source
// workload's proxy sends one value, so a request's Check and its Report
// (and the next requests from that workload) decode it once. At most
// maxForwardedCached values are kept; others are decoded each time.
type forwardedCache struct {
	m sync.Map // string -> map[string]any (read-only once stored)
	n atomic.Int32
}

const maxForwardedCached = 256

// get returns v decoded, nil when it does not decode.
func (c *forwardedCache) get(v string) map[string]any {
	if m, ok := c.m.Load(v); ok {
		return m.(map[string]any)
	}
	m, err := decodeForwarded(v)
	if err != nil {
		return nil
	}
	if c.n.Load() < maxForwardedCached {
		if _, loaded := c.m.LoadOrStore(v, m); !loaded {
			c.n.Add(1)
		}
	}
	return m
}

type service struct {
	check, report bool
	static        map[string]any
	quotas        map[string]int64 // quota name -> charge
}

var (
	_ filter.HTTPFilter     = (*Filter)(nil)
	_ filter.ResponseFilter = (*Filter)(nil)
)

// New parses an HttpClientConfig; fields mast-proxy does not carry out
// are errors naming them.
func New(_ string, a *anypb.Any) (filter.HTTPFilter, error) {
	var c clientpb.HttpClientConfig
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("typed_config: %v", err)
	}
	cl, err := newClient(c.GetTransport())
	if err != nil {
		return nil, err
	}
	f := &Filter{client: cl, ignoreForwarded: c.GetIgnoreForwardedAttributes()}
	if fa := c.GetForwardAttributes(); len(fa.GetAttributes()) > 0 {
		b, err := proto.Marshal(fa)
		if err != nil {
			return nil, fmt.Errorf("forward_attributes: %v", err)
		}
		f.forward = base64.StdEncoding.EncodeToString(b)
	}
	global, err := attrs(c.GetMixerAttributes(), "mixer_attributes")
	if err != nil {
		return nil, err
	}
	name := c.GetDefaultDestinationService()
	sc, ok := c.GetServiceConfigs()[name]
	if !ok {
		return nil, fmt.Errorf("default_destination_service: %q is not in service_configs", name)
	}
	for n, s := range c.GetServiceConfigs() {
		if n != name {
			// Routes do not name their destination service (per-route
			// config) yet: only the default one can be carried out.
			return nil, fmt.Errorf("service_configs[%q]: only default_destination_service's config is supported", n)
		}
		if len(s.GetHttpApiSpec()) > 0 {
			return nil, fmt.Errorf("service_configs[%q].http_api_spec: not supported", n)
		}
		if s.GetNetworkFailPolicy() != nil {
			return nil, fmt.Errorf("service_configs[%q].network_fail_policy: not supported (use transport.network_fail_policy)", n)
		}
		if s.GetForwardAttributes() != nil {
			return nil, fmt.Errorf("service_configs[%q].forward_attributes: not supported (use forward_attributes)", n)
		}
	}
	svcStatic, err := attrs(sc.GetMixerAttributes(), fmt.Sprintf("service_configs[%q].mixer_attributes", name))
	if err != nil {
		return nil, err
	}
	for k, v := range svcStatic {
		global[k] = v
	}
	quotas, err := quotaCharges(sc.GetQuotaSpec(), fmt.Sprintf("service_configs[%q].quota_spec", name))
	if err != nil {
		return nil, err
	}
	svc := &service{check: !sc.GetDisableCheckCalls(), report: !sc.GetDisableReportCalls(), static: global, quotas: quotas}
	f.svc = svc
	return f, nil
}

// attrs turns an (uncompressed) Attributes message into bag values.
func attrs(a *mixerpb.Attributes, field string) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range a.GetAttributes() {
		switch x := v.GetValue().(type) {
		case *mixerpb.Attributes_AttributeValue_StringValue:
			out[k] = x.StringValue
		case *mixerpb.Attributes_AttributeValue_Int64Value:
			out[k] = x.Int64Value
		case *mixerpb.Attributes_AttributeValue_DoubleValue:
			out[k] = x.DoubleValue
		case *mixerpb.Attributes_AttributeValue_BoolValue:
			out[k] = x.BoolValue
		case *mixerpb.Attributes_AttributeValue_BytesValue:
			out[k] = attribute.NormalizeIP(x.BytesValue)
		case *mixerpb.Attributes_AttributeValue_TimestampValue:
			out[k] = x.TimestampValue.AsTime()
		case *mixerpb.Attributes_AttributeValue_DurationValue:
			out[k] = x.DurationValue.AsDuration()
		case *mixerpb.Attributes_AttributeValue_StringMapValue:
			out[k] = x.StringMapValue.GetEntries()
		default:
			return nil, fmt.Errorf("%s[%q]: no value", field, k)
		}
	}
	return out, nil
}

// decodeForwarded reads an x-istio-attributes value; only source.*
// attributes are taken (a peer speaks for itself).
func decodeForwarded(v string) (map[string]any, error) {
	if len(v) > MaxForwardHeader {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", ForwardHeader, len(v), MaxForwardHeader)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", ForwardHeader, err)
	}
	var a mixerpb.Attributes
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %v", ForwardHeader, err)
	}
	m, err := attrs(&a, ForwardHeader)
	if err != nil {
		return nil, err
	}
	for k := range m {
		if len(k) < 7 || k[:7] != "source." {
			delete(m, k)
		}
	}
	return m, nil
}

// HTTPStatus maps a google.rpc code as Istio's Mixer filter did.
func HTTPStatus(c rpc.Code) int {
	switch c {
	case rpc.OK:
		return http.StatusOK
	case rpc.Canceled:
		return 499
	case rpc.InvalidArgument, rpc.FailedPrecondition, rpc.OutOfRange:
		return http.StatusBadRequest
	case rpc.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case rpc.NotFound:
		return http.StatusNotFound
	case rpc.AlreadyExists, rpc.Aborted:
		return http.StatusConflict
	case rpc.PermissionDenied:
		return http.StatusForbidden
	case rpc.ResourceExhausted:
		return http.StatusTooManyRequests
	case rpc.Unimplemented:
		return http.StatusNotImplemented
	case rpc.Unavailable:
		return http.StatusServiceUnavailable
	case rpc.Unauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// statusName is google.rpc.Code's name as Istio printed it.
func statusName(c rpc.Code) string {
	switch c {
	case rpc.Canceled:
		return "CANCELLED"
	case rpc.Unknown:
		return "UNKNOWN"
	case rpc.InvalidArgument:
		return "INVALID_ARGUMENT"
	case rpc.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case rpc.NotFound:
		return "NOT_FOUND"
	case rpc.AlreadyExists:
		return "ALREADY_EXISTS"
	case rpc.PermissionDenied:
		return "PERMISSION_DENIED"
	case rpc.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case rpc.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case rpc.Aborted:
		return "ABORTED"
	case rpc.OutOfRange:
		return "OUT_OF_RANGE"
	case rpc.Unimplemented:
		return "UNIMPLEMENTED"
	case rpc.Internal:
		return "INTERNAL"
	case rpc.Unavailable:
		return "UNAVAILABLE"
	case rpc.DataLoss:
		return "DATA_LOSS"
	case rpc.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return "OK"
}

func (f *Filter) deny(r *filter.Request, code rpc.Code, message string) filter.Status {
	r.AddMeta(Name, "status", statusName(code))
	return r.LocalReply(HTTPStatus(code), statusName(code)+":"+message, "UAEX", headers.Field{Name: "content-type", Value: "text/plain"})
}

// DecodeHeaders implements filter.HTTPFilter.
func (f *Filter) DecodeHeaders(ctx context.Context, r *filter.Request) filter.Status {
	var fwd map[string]any
	if r.Headers != nil {
		if v, ok := r.Headers.Get(ForwardHeader); ok {
			r.Headers.Del(ForwardHeader)
			// Only a mesh peer (verified by mTLS) may speak for its source.
			if !f.ignoreForwarded && r.Conn != nil && r.Conn.Principal != "" {
				fwd = f.fwdSeen.get(v)
				if fwd != nil && f.svc.report {
					r.AddMeta(Name, forwardedMeta, v) // for the Report
				}
			}
		}
		if f.forward != "" {
			r.Headers.Set(ForwardHeader, f.forward)
		}
	}
	if !f.svc.check || (r.Services == nil || r.Services.RPC == nil) && f.failOpen {
		return filter.Continue
	}
	now := time.Now()
	bag := &reqBag{r: r, static: f.svc.static, fwd: fwd, now: requestTime(r, now)}
	var dial func(string) (rpc.Conn, error)
	if r.Services != nil {
		dial = r.Services.RPC
	}
	var dedup string
	if len(f.svc.quotas) > 0 {
		dedup, _ = r.Header("x-request-id")
	}
	code, msg, err := f.check(ctx, dial, bag, f.svc.quotas, dedup, now)
	switch {
	case err != nil && ctx.Err() != nil:
		return filter.Stop
	case err != nil:
		return f.unreachable(r, err)
	case code != rpc.OK:
		return f.deny(r, code, msg)
	}
	return filter.Continue
}

// unreachable applies the fail policy when the Mixer cannot answer.
func (f *Filter) unreachable(r *filter.Request, err error) filter.Status {
	if f.failOpen {
		r.AddMeta(Name, "fail_open", err.Error())
		return filter.Continue
	}
	return f.deny(r, rpc.Unavailable, "mixer unreachable: "+err.Error())
}

// forwardedMeta is the request metadata key under which DecodeHeaders keeps
// the source attributes a verified peer forwarded, so that the request's
// Report carries them too (source.labels, source.workload.name, ...).
const forwardedMeta = "forwarded_attributes"

// requestTime is request.time: when the request head arrived.
func requestTime(r *filter.Request, now time.Time) time.Time {
	if r.Start.IsZero() {
		return now
	}
	return r.Start
}

// EncodeHeaders implements filter.ResponseFilter: the request is reported
// (asynchronously, in batches).
func (f *Filter) EncodeHeaders(r *filter.Request, status int, h *headers.List) {
	if !f.svc.report || r.Services == nil || r.Services.RPC == nil {
		return
	}
	rh := map[string]string{}
	if h != nil {
		for _, x := range *h {
			rh[x.Name] = x.Value
		}
	}
	var fwd map[string]any
	for _, m := range r.Meta {
		if m.Filter == Name && m.Key == forwardedMeta {
			fwd = f.fwdSeen.get(m.Value)
		}
	}
	now := time.Now()
	bag := &reqBag{r: r, static: f.svc.static, fwd: fwd, now: requestTime(r, now), resp: now, code: int64(status), respHdr: rh}
	f.report(bag, r.Services)
}
