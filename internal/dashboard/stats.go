package dashboard

import (
	"fmt"
	"io"
	"math"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// The standard metrics the dashboard reads from each proxy's stats.
var (
	requestsTotal   = metrics.RequestCount.Name()    // istio_requests_total
	requestDuration = metrics.RequestDuration.Name() // istio_request_duration_milliseconds
)

// numBuckets is the number of finite buckets of Istio's duration histogram.
const numBuckets = len(metrics.DurationBuckets)

// seriesKey is the part of a standard metric's label set the graph uses.
type seriesKey struct {
	reporter             string
	srcNS, srcWL         string
	dstService           string // destination_service (a hostname)
	dstSvcName, dstSvcNS string
	dstNS, dstWL         string
	code, security       string // response_code, connection_security_policy
}

// series is one label set's cumulative values in one scrape.
type series struct {
	requests float64
	// buckets are cumulative counts of Istio's DurationBuckets (hasHist
	// when the proxy reported the histogram with exactly those bounds).
	buckets [numBuckets]float64
	hcount  float64 // observations in the histogram (its +Inf bucket)
	hasHist bool
}

// maxSeriesPerProxy bounds what one proxy's stats may make mastd keep.
const maxSeriesPerProxy = 20000

// parseStats reads a proxy's /stats/prometheus (Prometheus text format)
// and returns the standard HTTP request metrics by label set. Other
// metrics are ignored; a label set beyond maxSeriesPerProxy is an error.
func parseStats(r io.Reader) (map[seriesKey]*series, error) {
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	out := map[seriesKey]*series{}
	get := func(k seriesKey) (*series, error) {
		s := out[k]
		if s == nil {
			if len(out) >= maxSeriesPerProxy {
				return nil, fmt.Errorf("stats: more than %d standard metric series", maxSeriesPerProxy)
			}
			s = &series{}
			out[k] = s
		}
		return s, nil
	}
	if f := fams[requestsTotal]; f != nil {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			if m.GetCounter() == nil {
				v = m.GetUntyped().GetValue()
			}
			if !validCount(v) {
				continue
			}
			s, err := get(keyOf(m.GetLabel()))
			if err != nil {
				return nil, err
			}
			s.requests += v
		}
	}
	if f := fams[requestDuration]; f != nil {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			b, ok := standardBuckets(h)
			if !ok {
				continue
			}
			s, err := get(keyOf(m.GetLabel()))
			if err != nil {
				return nil, err
			}
			n := float64(h.GetSampleCount())
			if h.SampleCountFloat != nil {
				n = h.GetSampleCountFloat()
			}
			if !validCount(n) {
				continue
			}
			for i := range b {
				s.buckets[i] += b[i]
			}
			s.hcount += n
			s.hasHist = true
		}
	}
	return out, nil
}

func validCount(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// standardBuckets returns h's cumulative counts when its finite bounds are
// Istio's duration buckets.
func standardBuckets(h *dto.Histogram) ([numBuckets]float64, bool) {
	var out [numBuckets]float64
	i := 0
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		if i >= numBuckets || b.GetUpperBound() != metrics.DurationBuckets[i] {
			return out, false
		}
		v := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			v = b.GetCumulativeCountFloat()
		}
		if !validCount(v) {
			return out, false
		}
		out[i] = v
		i++
	}
	return out, i == numBuckets
}

func keyOf(labels []*dto.LabelPair) seriesKey {
	var k seriesKey
	for _, l := range labels {
		k.set(l.GetName(), l.GetValue())
	}
	return k
}

// set keeps label name's value v when the graph uses that label.
func (k *seriesKey) set(name, v string) {
	switch name {
	case "reporter":
		k.reporter = v
	case "source_workload":
		k.srcWL = v
	case "source_workload_namespace":
		k.srcNS = v
	case "destination_service":
		k.dstService = v
	case "destination_service_name":
		k.dstSvcName = v
	case "destination_service_namespace":
		k.dstSvcNS = v
	case "destination_workload":
		k.dstWL = v
	case "destination_workload_namespace":
		k.dstNS = v
	case "response_code":
		k.code = v
	case "connection_security_policy":
		k.security = v
	}
}
