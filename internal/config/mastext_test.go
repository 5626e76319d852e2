package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseMastAnnotations(t *testing.T) {
	lo, err := ParseLatencyOutlier("true")
	if err != nil || lo != DefaultLatencyOutlier {
		t.Fatalf("true: %+v %v", lo, err)
	}
	lo, err = ParseLatencyOutlier("percentile=99, factor=2,minimumExcess=5ms,requestVolume=7,minimumHosts=4")
	want := LatencyOutlier{Percentile: 99, Factor: 2, MinimumExcess: 5 * time.Millisecond, RequestVolume: 7, MinimumHosts: 4}
	if err != nil || lo != want {
		t.Fatalf("knobs: %+v %v", lo, err)
	}
	ac, err := ParseAdaptiveConcurrency("updateInterval=50ms,maxLimit=10")
	if err != nil || ac.UpdateInterval != 50*time.Millisecond || ac.MaxLimit != 10 || ac.RequestCount != 50 {
		t.Fatalf("adaptive: %+v %v", ac, err)
	}
	for _, bad := range []string{"", "yes", "factor=0.5", "percentile=101", "minimumHosts=1", "speed=3", "factor=2,factor=3", "minimumExcess=-1s"} {
		if _, err := ParseLatencyOutlier(bad); err == nil {
			t.Errorf("latency %q accepted", bad)
		}
	}
	for _, bad := range []string{"updateInterval=0s", "maxLimit=0", "buffer=200", "x=1"} {
		if _, err := ParseAdaptiveConcurrency(bad); err == nil {
			t.Errorf("adaptive %q accepted", bad)
		}
	}
}

func TestValidateMastAnnotations(t *testing.T) {
	docs := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: d
  annotations: {networking.mast.io/latency-outlier: "factor=0", networking.mast.io/adaptive-concurrency: "true"}
spec: {host: a.example.test}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: e
  annotations: {networking.mast.io/latency-outlier: "true", networking.mast.io/hedge-on-per-try-timeout: "true"}
spec: {host: b.example.test}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
  annotations: {networking.mast.io/hedge-on-per-try-timeout: "maybe", networking.mast.io/other: "1"}
spec: {hosts: [a.example.test], http: [{route: [{destination: {host: a.example.test}}]}]}
`
	_, probs := Load("f.yaml", []byte(docs))
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"networking.mast.io/latency-outlier: factor=0: want a number in 1..1000",
		"latency-based ejection needs the DestinationRule's trafficPolicy.outlierDetection",
		"networking.mast.io/hedge-on-per-try-timeout has effect on a VirtualService only",
		`networking.mast.io/hedge-on-per-try-timeout: "maybe": want "true" or "false"`,
		"unknown Mast annotation",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
}

func FuzzMastAnnotations(f *testing.F) {
	for _, s := range []string{"true", "false", "percentile=90,factor=3", "updateInterval=50ms,minRTTInterval=1h", "a=b,,c", "=", "maxLimit=4294967296"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if lo, err := ParseLatencyOutlier(s); err == nil && (lo.Factor < 1 || lo.MinimumHosts < 2 || lo.RequestVolume < 1) {
			t.Fatalf("%q: accepted out of range %+v", s, lo)
		}
		if ac, err := ParseAdaptiveConcurrency(s); err == nil && (ac.UpdateInterval <= 0 || ac.MaxLimit < 1 || ac.MinConcurrency < 1) {
			t.Fatalf("%q: accepted out of range %+v", s, ac)
		}
	})
}
