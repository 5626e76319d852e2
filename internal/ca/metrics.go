package ca

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are Istio's citadel_server_* metrics.
type metrics struct {
	csr, success, authFail, parseErr, signErr prometheus.Counter
}

// RegisterMetrics registers Istio's CA metrics on reg:
// citadel_server_csr_count, citadel_server_success_cert_issuance_count,
// citadel_server_authentication_failure_count,
// citadel_server_csr_parsing_err_count, citadel_server_csr_sign_err_count,
// and citadel_server_root_cert_expiry_timestamp (the earliest expiry of the
// trusted roots, in Unix seconds). Call it once, before serving.
func (ca *CA) RegisterMetrics(reg prometheus.Registerer) error {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		csr:      c("citadel_server_csr_count", "The number of CSRs received by Citadel server."),
		success:  c("citadel_server_success_cert_issuance_count", "The number of certificates issuances that have succeeded."),
		authFail: c("citadel_server_authentication_failure_count", "The number of authentication failures."),
		parseErr: c("citadel_server_csr_parsing_err_count", "The number of errors occurred when parsing the CSR."),
		signErr:  c("citadel_server_csr_sign_err_count", "The number of errors occurred when signing the CSR."),
	}
	expiry := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "citadel_server_root_cert_expiry_timestamp",
		Help: "The unix timestamp, in seconds, when Citadel root cert will expire."}, func() float64 {
		var earliest float64
		for _, c := range ca.TrustBundle() {
			if t := float64(c.NotAfter.Unix()); earliest == 0 || t < earliest {
				earliest = t
			}
		}
		return earliest
	})
	for _, col := range []prometheus.Collector{m.csr, m.success, m.authFail, m.parseErr, m.signErr, expiry} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	ca.metrics.Store(m)
	return nil
}

// countCSR records one CreateCertificate outcome.
func (ca *CA) countCSR(err error) {
	m := ca.metrics.Load()
	if m == nil {
		return
	}
	m.csr.Inc()
	switch {
	case err == nil:
		m.success.Inc()
	case errors.Is(err, ErrUnauthenticated):
		m.authFail.Inc()
	case errors.Is(err, ErrInvalidArgument):
		m.parseErr.Inc()
	case errors.Is(err, ErrPermissionDenied):
	default:
		m.signErr.Inc()
	}
}
