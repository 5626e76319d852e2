package dashboard

import (
	"bytes"
	"testing"
)

// FuzzParseStats: mastd scrapes every connected proxy's stats page; any
// answer parses or is refused, never a panic.
func FuzzParseStats(f *testing.F) {
	f.Add([]byte(`# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",source_workload="productpage-v1",destination_workload="reviews-v2",response_code="200",connection_security_policy="mutual_tls"} 42
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="destination",le="5"} 3
istio_request_duration_milliseconds_bucket{reporter="destination",le="+Inf"} 4
istio_request_duration_milliseconds_sum{reporter="destination"} 12
istio_request_duration_milliseconds_count{reporter="destination"} 4
`))
	f.Add([]byte("istio_requests_total{reporter=\"source\"} NaN\nistio_requests_total -1\n"))
	f.Add([]byte("# TYPE x histogram\nx_bucket{le=\"oops\"} 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStats(bytes.NewReader(b))
	})
}
