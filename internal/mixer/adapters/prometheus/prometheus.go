// Package prometheus is Mixer's prometheus adapter: metric instances
// become Prometheus counters, gauges and histograms that mastd exports on
// its monitoring port (/metrics).
package prometheus

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	prom "github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// MetricParams is one entry of params.metrics.
type MetricParams struct {
	Name         string   `json:"name"`
	Namespace    string   `json:"namespace"`
	InstanceName string   `json:"instanceName"`
	Description  string   `json:"description"`
	Kind         string   `json:"kind"`
	LabelNames   []string `json:"labelNames"`
	Buckets      *struct {
		ExplicitBuckets *struct {
			Bounds []float64 `json:"bounds"`
		} `json:"explicitBuckets"`
		LinearBuckets *struct {
			NumFiniteBuckets int     `json:"numFiniteBuckets"`
			Width            float64 `json:"width"`
			Offset           float64 `json:"offset"`
		} `json:"linearBuckets"`
		ExponentialBuckets *struct {
			NumFiniteBuckets int     `json:"numFiniteBuckets"`
			GrowthFactor     float64 `json:"growthFactor"`
			Scale            float64 `json:"scale"`
		} `json:"exponentialBuckets"`
	} `json:"buckets"`
}

// Params are the adapter's params.
type Params struct {
	Metrics                 []MetricParams `json:"metrics"`
	MetricsExpirationPolicy *struct {
		MetricsExpiryDuration       adapter.Duration `json:"metricsExpiryDuration"`
		ExpiryCheckIntervalDuration adapter.Duration `json:"expiryCheckIntervalDuration"`
	} `json:"metricsExpirationPolicy"`
}

// Info describes the adapter.
var Info = &adapter.Info{Name: "prometheus", Templates: []string{"metric"}, Validate: validate, New: New}

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func parse(params *structpb.Struct) (*Params, error) {
	var p Params
	if err := adapter.Decode(params, &p); err != nil {
		return nil, err
	}
	if p.MetricsExpirationPolicy != nil {
		return nil, fmt.Errorf("params.metricsExpirationPolicy: not supported (series are kept until the handler changes)")
	}
	for i, m := range p.Metrics {
		f := fmt.Sprintf("params.metrics[%d]", i)
		if !nameRE.MatchString(m.Name) {
			return nil, fmt.Errorf("%s.name: %q is not a Prometheus metric name", f, m.Name)
		}
		if m.InstanceName == "" {
			return nil, fmt.Errorf("%s.instance_name: required", f)
		}
		switch m.Kind {
		case "COUNTER", "GAUGE":
		case "DISTRIBUTION":
			if m.Buckets == nil {
				return nil, fmt.Errorf("%s.buckets: required for DISTRIBUTION", f)
			}
		default:
			return nil, fmt.Errorf("%s.kind: %q: want COUNTER, GAUGE or DISTRIBUTION", f, m.Kind)
		}
		for j, l := range m.LabelNames {
			if !nameRE.MatchString(l) {
				return nil, fmt.Errorf("%s.label_names[%d]: %q is not a Prometheus label name", f, j, l)
			}
		}
	}
	return &p, nil
}

func validate(params *structpb.Struct) error { _, err := parse(params); return err }

type metric struct {
	p       MetricParams
	counter *prom.CounterVec
	gauge   *prom.GaugeVec
	hist    *prom.HistogramVec
}

// Handler records metric instances.
type Handler struct {
	reg     prom.Registerer
	byInst  map[string][]*metric
	created []prom.Collector
}

var _ adapter.Reporter = (*Handler)(nil)

// New registers the handler's metrics with env.Metrics.
func New(env adapter.Env, _ string, params *structpb.Struct) (adapter.Handler, error) {
	p, err := parse(params)
	if err != nil {
		return nil, err
	}
	if env.Metrics == nil {
		env.Metrics = prom.NewRegistry()
	}
	h := &Handler{reg: env.Metrics, byInst: map[string][]*metric{}}
	for i, mp := range p.Metrics {
		ns := mp.Namespace
		if ns == "" {
			ns = "istio"
		}
		m := &metric{p: mp}
		var c prom.Collector
		switch mp.Kind {
		case "COUNTER":
			m.counter = prom.NewCounterVec(prom.CounterOpts{Namespace: ns, Name: mp.Name, Help: mp.Description}, mp.LabelNames)
			c = m.counter
		case "GAUGE":
			m.gauge = prom.NewGaugeVec(prom.GaugeOpts{Namespace: ns, Name: mp.Name, Help: mp.Description}, mp.LabelNames)
			c = m.gauge
		case "DISTRIBUTION":
			m.hist = prom.NewHistogramVec(prom.HistogramOpts{Namespace: ns, Name: mp.Name, Help: mp.Description, Buckets: buckets(mp)}, mp.LabelNames)
			c = m.hist
		}
		if err := h.reg.Register(c); err != nil {
			h.Close()
			return nil, fmt.Errorf("params.metrics[%d].name: %v", i, err)
		}
		h.created = append(h.created, c)
		h.byInst[mp.InstanceName] = append(h.byInst[mp.InstanceName], m)
	}
	return h, nil
}

func buckets(mp MetricParams) []float64 {
	b := mp.Buckets
	switch {
	case b.ExplicitBuckets != nil:
		return b.ExplicitBuckets.Bounds
	case b.LinearBuckets != nil:
		return prom.LinearBuckets(b.LinearBuckets.Offset, b.LinearBuckets.Width, b.LinearBuckets.NumFiniteBuckets)
	case b.ExponentialBuckets != nil:
		return prom.ExponentialBuckets(b.ExponentialBuckets.Scale, b.ExponentialBuckets.GrowthFactor, b.ExponentialBuckets.NumFiniteBuckets)
	}
	return prom.DefBuckets
}

// HandleReport implements adapter.Reporter.
func (h *Handler) HandleReport(_ context.Context, insts []*template.Instance) error {
	for _, in := range insts {
		for _, m := range h.byInst[in.Name] {
			dims := in.Map("dimensions")
			labels := make([]string, len(m.p.LabelNames))
			for i, l := range m.p.LabelNames {
				labels[i] = dims[l]
			}
			v, err := number(in.Fields["value"])
			if err != nil {
				return fmt.Errorf("instance %s: value: %w", in.Name, err)
			}
			switch {
			case m.counter != nil:
				m.counter.WithLabelValues(labels...).Add(v)
			case m.gauge != nil:
				m.gauge.WithLabelValues(labels...).Set(v)
			case m.hist != nil:
				m.hist.WithLabelValues(labels...).Observe(v)
			}
		}
	}
	return nil
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	f, err := strconv.ParseFloat(attribute.String(v), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", attribute.String(v))
	}
	return f, nil
}

// Close unregisters the metrics.
func (h *Handler) Close() error {
	for _, c := range h.created {
		h.reg.Unregister(c)
	}
	return nil
}
