package dataplane

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// LoadResult is one load run's figures.
type LoadResult struct {
	Requests   int64   `json:"requests"` // successful requests (or stream messages)
	Errors     int64   `json:"errors"`
	QPS        float64 `json:"qps"` // achieved rate
	DurationS  float64 `json:"duration_s"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	Connection int     `json:"connections"`
}

// LoadSpec is one run of the load generator.
type LoadSpec struct {
	Proto     Protocol
	Target    Target
	QPS       int // 0: saturation (as fast as responses come back)
	Conns     int
	Duration  time.Duration
	BodySize  int
	Uniform   bool   // fortio -uniform (fixed rate only)
	JSONPath  string // where fortio writes its result
	StreamBin string // the dpbench binary, for gRPC streaming
}

// FortioArgs is the fortio command line of a run (without the fortio
// binary). Histogram resolution is 10 µs: the default 1 ms would hide the
// differences being measured.
func FortioArgs(s LoadSpec) []string {
	args := []string{"load", "-quiet", "-c", strconv.Itoa(s.Conns), "-qps", strconv.Itoa(s.QPS),
		"-t", s.Duration.String(), "-r", "0.00001", "-p", "50,90,99,99.9", "-json", s.JSONPath,
		"-payload-size", strconv.Itoa(s.BodySize)}
	if s.Uniform && s.QPS > 0 {
		args = append(args, "-uniform")
	}
	switch s.Proto {
	case GRPC:
		args = append(args, "-grpc", "-ping")
		if s.Target.Authority != "" {
			args = append(args, "-H", "host:"+s.Target.Authority)
		}
		return append(args, s.Target.Addr)
	case HTTP2:
		args = append(args, "-h2")
	}
	if s.Target.Authority != "" {
		args = append(args, "-H", "Host:"+s.Target.Authority)
	}
	return append(args, "http://"+s.Target.Addr+"/echo")
}

// StreamArgs is the dpbench stream-load command line of a gRPC streaming run.
func StreamArgs(s LoadSpec) []string {
	return []string{StreamLoadCmd, "-addr", s.Target.Addr, "-authority", s.Target.Authority, "-c", strconv.Itoa(s.Conns),
		"-qps", strconv.Itoa(s.QPS), "-t", s.Duration.String(), "-size", strconv.Itoa(s.BodySize)}
}

// fortioResult is the part of fortio's JSON output the harness reads.
type fortioResult struct {
	ActualQPS         float64
	ActualDuration    int64 // ns
	NumThreads        int
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
}

// ParseFortio reads fortio's -json output. Successful calls are those with
// HTTP status 200 or gRPC ping status SERVING; the rest are errors.
func ParseFortio(b []byte) (LoadResult, error) {
	var f fortioResult
	if err := json.Unmarshal(b, &f); err != nil {
		return LoadResult{}, fmt.Errorf("fortio json: %w", err)
	}
	var r LoadResult
	for code, n := range f.RetCodes {
		if code == "200" || code == "SERVING" {
			r.Requests += n
		} else {
			r.Errors += n
		}
	}
	if total := r.Requests + r.Errors; total < f.DurationHistogram.Count {
		r.Errors += f.DurationHistogram.Count - total
	}
	r.QPS = f.ActualQPS
	r.DurationS = float64(f.ActualDuration) / 1e9
	r.Connection = f.NumThreads
	for _, p := range f.DurationHistogram.Percentiles {
		ms := p.Value * 1000
		switch p.Percentile {
		case 50:
			r.P50 = ms
		case 90:
			r.P90 = ms
		case 99:
			r.P99 = ms
		case 99.9:
			r.P999 = ms
		}
	}
	if r.Requests > 0 && r.P50 == 0 && r.P99 == 0 {
		return r, fmt.Errorf("fortio json: no percentiles in DurationHistogram")
	}
	return r, nil
}

// Percentile is the nearest-rank percentile p (0-100] of sorted samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summarize fills r's percentiles from latency samples.
func summarize(r *LoadResult, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	r.P50, r.P90 = ms(Percentile(samples, 50)), ms(Percentile(samples, 90))
	r.P99, r.P999 = ms(Percentile(samples, 99)), ms(Percentile(samples, 99.9))
}
