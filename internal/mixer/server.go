package mixer

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb/mixergrpc"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/expr"
)

// Service serves istio.mixer.v1.Mixer against the current Runtime, which
// Update replaces when the configuration changes.
type Service struct {
	mixergrpc.UnimplementedMixerServer
	opts Options
	log  *slog.Logger
	dict *attribute.Dictionary

	mu      sync.Mutex // serialises Update
	rt      atomic.Pointer[Runtime]
	lastKey string
}

var _ mixergrpc.MixerServer = (*Service)(nil)

// NewService returns a service with an empty configuration.
func NewService(opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Env.Logger == nil {
		opts.Env.Logger = log
	}
	s := &Service{opts: opts, log: log, dict: attribute.GlobalDictionary()}
	s.rt.Store(&Runtime{configNS: "istio-system"})
	return s
}

// Register adds the service to a gRPC server.
func (s *Service) Register(gs *grpc.Server) { mixergrpc.RegisterMixerServer(gs, s) }

// Runtime returns the runtime in force.
func (s *Service) Runtime() *Runtime { return s.rt.Load() }

// Update compiles the Mixer resources of snap when they changed, swaps
// the runtime in and closes the one it replaces. Problems are logged.
func (s *Service) Update(snap *config.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := mixerKey(snap)
	if key == s.lastKey && s.rt.Load().handlers != nil {
		return
	}
	s.lastKey = key
	opts := s.opts
	// Each runtime registers its metric adapters' series in a registry of
	// its own, so the next one can register the same names before this
	// one is closed; Gather serves the one in force.
	reg := prometheus.NewRegistry()
	opts.Env.Metrics = reg
	rt := Compile(snap, opts)
	rt.metrics = reg
	for _, p := range rt.Problems {
		s.log.Warn("mixer configuration left out", "problem", p.Error())
	}
	old := s.rt.Swap(rt)
	if old != nil {
		if err := old.Close(); err != nil {
			s.log.Warn("closing handlers", "err", err)
		}
	}
	s.log.Info("mixer configuration", "rules", len(rt.rules), "handlers", len(rt.handlers), "instances", len(rt.instances), "problems", len(rt.Problems))
}

// mixerKey identifies the Mixer resources of a snapshot (their sources and
// versions), so unrelated changes do not rebuild handlers and their state.
func mixerKey(snap *config.Snapshot) string {
	var b []byte
	for _, k := range config.MixerKinds() {
		for _, r := range snap.List(k) {
			b = append(b, r.Key().String()...)
			b = append(b, '@')
			b = append(b, r.Source.String()...)
			b = append(b, ' ')
			if r.Spec != nil {
				b = append(b, r.Spec.ProtoReflect().Descriptor().FullName()...)
				b = append(b, fmtProto(r)...)
			}
			b = append(b, '\n')
		}
	}
	return string(b)
}

// Gather implements prometheus.Gatherer: the metric adapters' series of
// the runtime in force.
func (s *Service) Gather() ([]*dto.MetricFamily, error) {
	if rt := s.rt.Load(); rt != nil && rt.metrics != nil {
		return rt.metrics.Gather()
	}
	return nil, nil
}

// Close closes the runtime in force.
func (s *Service) Close() error {
	if rt := s.rt.Swap(&Runtime{}); rt != nil {
		return rt.Close()
	}
	return nil
}

// Check implements mixergrpc.MixerServer.
func (s *Service) Check(ctx context.Context, req *mixerpb.CheckRequest) (*mixerpb.CheckResponse, error) {
	bag, err := attribute.Decode(req.GetAttributes(), s.dict, int(req.GetGlobalWordCount()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "attributes: %v", err)
	}
	var quotas map[string]QuotaRequest
	if len(req.GetQuotas()) > 0 {
		quotas = make(map[string]QuotaRequest, len(req.GetQuotas()))
		for n, q := range req.GetQuotas() {
			quotas[n] = QuotaRequest{Amount: q.GetAmount(), BestEffort: q.GetBestEffort()}
		}
	}
	out := s.rt.Load().Check(ctx, bag, quotas, req.GetDeduplicationId(), s.log)
	resp := &mixerpb.CheckResponse{Precondition: &mixerpb.CheckResponse_PreconditionResult{
		Status:               &rpcstatus.Status{Code: int32(out.Status.Code), Message: out.Status.Message},
		ValidDuration:        durationpb.New(out.ValidDuration),
		ValidUseCount:        out.ValidUseCount,
		ReferencedAttributes: s.encodeRefs(out.Refs),
	}}
	if len(out.Quotas) > 0 {
		resp.Quotas = make(map[string]*mixerpb.CheckResponse_QuotaResult, len(out.Quotas))
		for n, q := range out.Quotas {
			resp.Quotas[n] = &mixerpb.CheckResponse_QuotaResult{
				ValidDuration:        durationpb.New(q.ValidDuration),
				GrantedAmount:        q.Granted,
				Status:               &rpcstatus.Status{Code: int32(q.Status.Code), Message: q.Status.Message},
				ReferencedAttributes: s.encodeRefs(q.Refs),
			}
		}
	}
	return resp, nil
}

// encodeRefs writes referenced attributes with the global word list.
func (s *Service) encodeRefs(refs []expr.Ref) *mixerpb.ReferencedAttributes {
	ra := &mixerpb.ReferencedAttributes{}
	words := attribute.NewWords(s.dict)
	idx := words.Index
	for _, r := range refs {
		m := &mixerpb.ReferencedAttributes_AttributeMatch{Name: idx(r.Name), Condition: mixerpb.ReferencedAttributes_EXACT}
		if !r.Present {
			m.Condition = mixerpb.ReferencedAttributes_ABSENCE
		}
		if r.IsKey {
			m.MapKey = idx(r.Key)
		}
		ra.AttributeMatches = append(ra.AttributeMatches, m)
	}
	ra.Words = words.Local
	return ra
}

// Report implements mixergrpc.MixerServer.
func (s *Service) Report(ctx context.Context, req *mixerpb.ReportRequest) (*mixerpb.ReportResponse, error) {
	var bags []attribute.Bag
	var prev attribute.MapBag
	for i, ca := range req.GetAttributes() {
		if len(ca.GetWords()) == 0 && len(req.GetDefaultWords()) > 0 {
			ca = &mixerpb.CompressedAttributes{Words: req.GetDefaultWords(), Strings: ca.Strings, Int64S: ca.Int64S,
				Doubles: ca.Doubles, Bools: ca.Bools, Timestamps: ca.Timestamps, Durations: ca.Durations, Bytes: ca.Bytes, StringMaps: ca.StringMaps}
		}
		bag, err := attribute.Decode(ca, s.dict, int(req.GetGlobalWordCount()))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "attributes[%d]: %v", i, err)
		}
		if req.GetRepeatedAttributesSemantics() == mixerpb.ReportRequest_DELTA_ENCODING && prev != nil {
			merged := maps.Clone(prev)
			maps.Copy(merged, bag)
			bag = merged
		}
		prev = bag
		bags = append(bags, bag)
	}
	s.rt.Load().Report(ctx, bags, s.log)
	return &mixerpb.ReportResponse{}, nil
}

func fmtProto(r config.Resource) string {
	b, err := protoMarshal(r.Spec)
	if err != nil {
		return ""
	}
	return string(b)
}
