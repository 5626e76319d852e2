package http1

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// sidecarHeads are a request and a response head as the server sidecar
// of a mesh sees them: capitalised names from the client, the client
// sidecar's additions, peer metadata of a few hundred bytes.
var sidecarHeads = map[string]string{
	"request": "POST /echo HTTP/1.1\r\nHost: server\r\nUser-Agent: fortio.org/fortio-1.63.7\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Length: 1024\r\nx-forwarded-proto: http\r\nx-request-id: 8a3c4c3e-1d0b-4c4e-9c1f-1f9a1b7d2e11\r\n" +
		"x-envoy-expected-rq-timeout-ms: 15000\r\nx-envoy-attempt-count: 1\r\nx-envoy-peer-metadata-id: sidecar~10.0.0.1~client-1.default~default.svc.cluster.local\r\n" +
		"x-envoy-peer-metadata: " + strings.Repeat("ChoKDkFQUF9DT05UQUlORVJTEggaBmNsaWVudAoaCgpDTFVTVEVSX0lEEgwaCkt1YmVybmV0ZXM", 5) + "\r\n\r\n",
	"response": "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\nDate: Mon, 07 Dec 2026 01:57:00 GMT\r\n" +
		"x-envoy-upstream-service-time: 1\r\nserver: envoy\r\n\r\n",
}

// BenchmarkReadHead parses one head per iteration from a reused reader.
func BenchmarkReadHead(b *testing.B) {
	for _, kind := range []string{"request", "response"} {
		b.Run(kind, func(b *testing.B) {
			in := []byte(sidecarHeads[kind])
			src := bytes.NewReader(in)
			br := bufio.NewReaderSize(src, 4096)
			r := NewReader(br, Limits{})
			var h Head
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(in)
				br.Reset(src)
				var err error
				if kind == "request" {
					err = r.ReadRequest(&h)
				} else {
					err = r.ReadResponse(&h)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
