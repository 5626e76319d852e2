package cli

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c runConfig)
	}{
		{
			name: "productpage defaults as Istio's",
			args: []string{"--service", "productpage"},
			check: func(t *testing.T, c runConfig) {
				p := c.ProductPage
				if p.DetailsURL != "http://details:9080" || p.ReviewsURL != "http://reviews:9080" || p.RatingsURL != "http://ratings:9080" {
					t.Errorf("urls %s %s %s", p.DetailsURL, p.ReviewsURL, p.RatingsURL)
				}
				if p.Timeout != 3*time.Second || p.ReviewsAttempts != 2 || c.Addr != ":9080" || c.Instance != "productpage-v1" {
					t.Errorf("%+v", c)
				}
				if c.LogLevel != slog.LevelInfo || c.ShutdownTimeout != 15*time.Second {
					t.Errorf("log level %v shutdown %v", c.LogLevel, c.ShutdownTimeout)
				}
			},
		},
		{
			name: "productpage from Istio's environment",
			args: []string{"--service", "productpage"},
			env:  map[string]string{"SERVICES_DOMAIN": "default.svc.cluster.local", "DETAILS_HOSTNAME": "details-x", "REVIEWS_HOSTNAME": "rv", "RATINGS_HOSTNAME": "rt"},
			check: func(t *testing.T, c runConfig) {
				p := c.ProductPage
				if p.DetailsURL != "http://details-x.default.svc.cluster.local:9080" || p.ReviewsURL != "http://rv.default.svc.cluster.local:9080" ||
					p.RatingsURL != "http://rt.default.svc.cluster.local:9080" {
					t.Errorf("urls %s %s %s", p.DetailsURL, p.ReviewsURL, p.RatingsURL)
				}
			},
		},
		{
			name: "flags win over the environment",
			args: []string{"--service", "productpage", "--details-url", "http://127.0.0.1:1", "--reviews-url", "http://127.0.0.1:2", "--ratings-url", "http://127.0.0.1:3", "--timeout", "1s", "--reviews-attempts", "3"},
			env:  map[string]string{"DETAILS_HOSTNAME": "ignored"},
			check: func(t *testing.T, c runConfig) {
				p := c.ProductPage
				if p.DetailsURL != "http://127.0.0.1:1" || p.ReviewsURL != "http://127.0.0.1:2" || p.RatingsURL != "http://127.0.0.1:3" || p.Timeout != time.Second || p.ReviewsAttempts != 3 {
					t.Errorf("%+v", p)
				}
			},
		},
		{
			name: "reviews v2",
			args: []string{"--service", "reviews", "--version", "v2", "--instance", "reviews-v2-abc", "--addr", "127.0.0.1:0"},
			check: func(t *testing.T, c runConfig) {
				r := c.Reviews
				if !r.Ratings || r.StarColor != "black" || r.RatingsTimeout != 10*time.Second || r.RatingsURL != "http://ratings:9080" || r.Instance != "reviews-v2-abc" || c.Addr != "127.0.0.1:0" {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "reviews v3",
			args: []string{"--service", "reviews", "--version", "v3"},
			env:  map[string]string{"RATINGS_HOSTNAME": "rt", "RATINGS_SERVICE_PORT": "9999", "CLUSTER_NAME": "c1"},
			check: func(t *testing.T, c runConfig) {
				r := c.Reviews
				if !r.Ratings || r.StarColor != "red" || r.RatingsTimeout != 2500*time.Millisecond || r.RatingsURL != "http://rt:9999" || r.Instance != "reviews-v3" || r.ClusterName != "c1" {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "reviews Istio env STAR_COLOR and ENABLE_RATINGS",
			args: []string{"--service", "reviews", "--version", "v1"},
			env:  map[string]string{"ENABLE_RATINGS": "true", "STAR_COLOR": "red"},
			check: func(t *testing.T, c runConfig) {
				r := c.Reviews
				if !r.Ratings || r.StarColor != "red" || r.RatingsTimeout != 2500*time.Millisecond {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "reviews ratings timeout flag",
			args: []string{"--service", "reviews", "--version", "v2", "--ratings-timeout", "250ms", "--star-color", "blue"},
			check: func(t *testing.T, c runConfig) {
				if c.Reviews.RatingsTimeout != 250*time.Millisecond || c.Reviews.StarColor != "blue" {
					t.Errorf("%+v", c.Reviews)
				}
			},
		},
		{name: "details", args: []string{"--service", "details", "--log-level", "debug"}, check: func(t *testing.T, c runConfig) {
			if c.LogLevel != slog.LevelDebug || c.Instance != "details-v1" {
				t.Errorf("%+v", c)
			}
		}},
		{name: "missing service", args: nil, wantErr: "--service is required"},
		{name: "unknown service", args: []string{"--service", "catalog"}, wantErr: `--service "catalog"`},
		{name: "unknown reviews version", args: []string{"--service", "reviews", "--version", "v4"}, wantErr: `reviews version "v4"`},
		{name: "details v2 is not built", args: []string{"--service", "details", "--version", "v2"}, wantErr: "has only v1"},
		{name: "bad ENABLE_RATINGS", args: []string{"--service", "reviews", "--version", "v2"}, env: map[string]string{"ENABLE_RATINGS": "maybe"}, wantErr: "ENABLE_RATINGS"},
		{name: "bad log level", args: []string{"--service", "details", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad flag", args: []string{"--service", "details", "--nope"}, wantErr: "nope"},
		{name: "stray argument", args: []string{"--service", "details", "extra"}, wantErr: "unexpected arguments"},
		{name: "zero attempts", args: []string{"--service", "productpage", "--reviews-attempts", "0"}, wantErr: "--reviews-attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			c, err := parseConfig(tt.args, getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
