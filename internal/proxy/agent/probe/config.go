// Package probe runs a workload's readiness probe from its proxy's agent, as
// istio-agent does for a VM that joined a WorkloadGroup: the probe is the
// group's spec.probe (Istio's ReadinessProbe), run against the local
// application every periodSeconds; a change of health, once the success or
// failure threshold is reached, is reported to the control plane, which marks
// the auto-registered WorkloadEntry healthy or not.
package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is Istio's networking.v1alpha3.ReadinessProbe in its JSON form
// (camelCase names, as `kubectl get workloadgroup -o json` prints
// spec.probe). Exactly one of HTTPGet, TCPSocket, Exec and GRPC is set.
type Config struct {
	InitialDelaySeconds int32      `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      int32      `json:"timeoutSeconds,omitempty"`
	PeriodSeconds       int32      `json:"periodSeconds,omitempty"`
	SuccessThreshold    int32      `json:"successThreshold,omitempty"`
	FailureThreshold    int32      `json:"failureThreshold,omitempty"`
	HTTPGet             *HTTPGet   `json:"httpGet,omitempty"`
	TCPSocket           *TCPSocket `json:"tcpSocket,omitempty"`
	Exec                *Exec      `json:"exec,omitempty"`
	GRPC                *GRPC      `json:"grpc,omitempty"`
}

// HTTPGet is Istio's HTTPHealthCheckConfig: a GET answered with a status in
// [200, 400) passes.
type HTTPGet struct {
	Path        string   `json:"path,omitempty"`
	Port        uint32   `json:"port"`
	Host        string   `json:"host,omitempty"`
	Scheme      string   `json:"scheme,omitempty"`
	HTTPHeaders []Header `json:"httpHeaders,omitempty"`
}

// Header is one request header of an HTTPGet probe.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocket is Istio's TCPHealthCheckConfig: a connection that opens passes.
type TCPSocket struct {
	Host string `json:"host,omitempty"`
	Port uint32 `json:"port"`
}

// Exec is Istio's ExecHealthCheckConfig: a command that exits 0 passes.
type Exec struct {
	Command []string `json:"command"`
}

// GRPC is Istio's GrpcHealthCheckConfig: grpc.health.v1.Health/Check
// answering SERVING passes.
type GRPC struct {
	Port    uint32 `json:"port"`
	Service string `json:"service,omitempty"`
}

// maxConfigSize bounds the probe's JSON (a flag value or file).
const maxConfigSize = 64 << 10

// Parse decodes and validates a probe's JSON. Unknown fields are refused,
// naming them, so that a misspelt threshold is not silently left at its
// default. Istio's validation rules apply (non-negative numbers, a port in
// 1-65535, scheme HTTP or HTTPS, valid header names, a non-empty command).
func Parse(data []byte) (*Config, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("readiness probe: %d bytes, more than %d", len(data), maxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("readiness probe: %w", err)
	}
	if dec.More() {
		return nil, errors.New("readiness probe: data after the JSON object")
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("readiness probe: %w", err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	for _, n := range []struct {
		name string
		v    int32
	}{{"initialDelaySeconds", c.InitialDelaySeconds}, {"timeoutSeconds", c.TimeoutSeconds}, {"periodSeconds", c.PeriodSeconds},
		{"successThreshold", c.SuccessThreshold}, {"failureThreshold", c.FailureThreshold}} {
		if n.v < 0 {
			return fmt.Errorf("%s: %d, must be non-negative", n.name, n.v)
		}
	}
	set := 0
	port := func(field string, p uint32) error {
		set++
		if p < 1 || p > 65535 {
			return fmt.Errorf("%s.port: %d, want 1-65535", field, p)
		}
		return nil
	}
	if h := c.HTTPGet; h != nil {
		if err := port("httpGet", h.Port); err != nil {
			return err
		}
		if h.Scheme != "" && h.Scheme != "HTTP" && h.Scheme != "HTTPS" {
			return fmt.Errorf("httpGet.scheme: %q, want HTTP or HTTPS", h.Scheme)
		}
		for i, hd := range h.HTTPHeaders {
			if !validHeaderName(hd.Name) || strings.ContainsAny(hd.Value, "\r\n\x00") {
				return fmt.Errorf("httpGet.httpHeaders[%d]: invalid header %q", i, hd.Name)
			}
		}
		if strings.ContainsAny(h.Path, " \t\r\n") {
			return fmt.Errorf("httpGet.path: %q contains white space", h.Path)
		}
	}
	if t := c.TCPSocket; t != nil {
		if err := port("tcpSocket", t.Port); err != nil {
			return err
		}
	}
	if g := c.GRPC; g != nil {
		if err := port("grpc", g.Port); err != nil {
			return err
		}
	}
	if e := c.Exec; e != nil {
		set++
		if len(e.Command) == 0 || e.Command[0] == "" {
			return errors.New("exec.command: required")
		}
	}
	if set != 1 {
		return fmt.Errorf("want exactly one of httpGet, tcpSocket, exec, grpc; %d set", set)
	}
	return nil
}

// Timing is a probe's schedule with Istio's defaults filled in: a timeout of
// 1s, a period of 10s, thresholds of 1.
type Timing struct {
	InitialDelay, Timeout, Period time.Duration
	SuccessThreshold              int
	FailureThreshold              int
}

// Timing returns c's schedule with istio-agent's defaults for zero values.
func (c *Config) Timing() Timing {
	or := func(v, def int32) int32 {
		if v == 0 {
			return def
		}
		return v
	}
	return Timing{
		InitialDelay:     time.Duration(c.InitialDelaySeconds) * time.Second,
		Timeout:          time.Duration(or(c.TimeoutSeconds, 1)) * time.Second,
		Period:           time.Duration(or(c.PeriodSeconds, 10)) * time.Second,
		SuccessThreshold: int(or(c.SuccessThreshold, 1)),
		FailureThreshold: int(or(c.FailureThreshold, 1)),
	}
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 5.1).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
