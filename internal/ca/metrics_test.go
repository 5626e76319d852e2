package ca_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mast-mesh/mast/internal/ca/catest"
)

func TestCitadelMetrics(t *testing.T) {
	e := newEnv(t, nil)
	reg := prometheus.NewRegistry()
	if err := e.ca.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	id := e.id("bookinfo", "reviews")
	csr := catest.CSR{Key: catest.ECKey(t), URIs: []string{id.String()}}.Build(t)
	if _, err := e.create(e.client, e.token("bookinfo", "reviews", time.Hour), csr, 3600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(e.client, "not-a-token", csr, 3600); err == nil {
		t.Fatal("bad token accepted")
	}
	if _, err := e.create(e.client, e.token("bookinfo", "reviews", time.Hour), []byte("garbage"), 3600); err == nil {
		t.Fatal("bad CSR accepted")
	}
	for name, want := range map[string]float64{"citadel_server_csr_count": 3, "citadel_server_success_cert_issuance_count": 1,
		"citadel_server_authentication_failure_count": 1, "citadel_server_csr_parsing_err_count": 1} {
		mfs, _ := reg.Gather()
		got := -1.0
		for _, mf := range mfs {
			if mf.GetName() == name {
				got = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "citadel_server_root_cert_expiry_timestamp" {
			found = true
			exp := mf.GetMetric()[0].GetGauge().GetValue()
			if want := float64(e.ca.TrustBundle()[0].NotAfter.Unix()); exp != want {
				t.Errorf("root expiry %v, want %v", exp, want)
			}
		}
	}
	if !found {
		t.Error("citadel_server_root_cert_expiry_timestamp missing")
	}
}
