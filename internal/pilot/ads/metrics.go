package ads

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are Istio's Pilot xDS metrics, under Istio's names.
type metrics struct {
	connected prometheus.Gauge
	pushes    *prometheus.CounterVec
	pushTime  *prometheus.HistogramVec
	rejects   *prometheus.CounterVec
	sendTime  prometheus.Histogram
	// convergence is Istio's pilot_proxy_convergence_time.
	convergence prometheus.Histogram
}

// pushBuckets span sub-millisecond sends to slow pushes (seconds).
var pushBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 3, 5, 10, 20, 30}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	return &metrics{
		connected: register(reg, log, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds",
			Help: "Number of endpoints connected to this pilot using XDS.",
		})),
		pushes: register(reg, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes",
			Help: "xDS responses sent by Pilot, by type (cds, eds, lds, rds, ...).",
		}, []string{"type"})),
		pushTime: register(reg, log, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_push_time",
			Help:    "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
			Buckets: pushBuckets,
		}, []string{"type"})),
		rejects: register(reg, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects",
			Help: "Total number of XDS responses from pilot rejected by proxy.",
		}, []string{"type"})),
		sendTime: register(reg, log, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_xds_send_time",
			Help:    "Total time in seconds Pilot takes to send generated configuration.",
			Buckets: pushBuckets,
		})),
		convergence: register(reg, log, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_convergence_time",
			Help:    "Delay in seconds between config change and a proxy receiving all required configuration.",
			Buckets: []float64{.1, .5, 1, 3, 5, 10, 20, 30},
		})),
	}
}

// register registers c, reusing an identical collector already registered
// (a second Server on the same registry shares the series). Any other
// failure is logged and c works unregistered.
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		log.Warn("xds: metric not registered", "err", err)
	}
	return c
}
