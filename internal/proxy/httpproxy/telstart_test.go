package httpproxy

import (
	"reflect"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// fillNonZero sets every field of the struct v points to that it can
// (recursively, exported or not through the same package) to a non-zero
// value.
func fillNonZero(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(12345, 678)))
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillNonZero(t, f)
			}
		}
	case reflect.String:
		v.SetString("stale")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		if v.Kind() == reflect.Uint32 || v.Kind() == reflect.Uint64 {
			v.SetUint(7)
		} else {
			v.SetInt(7)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillNonZero(t, v.Index(0))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	default:
		t.Fatalf("fillNonZero: no value for a %s", v.Type())
	}
}

// TestStartTelemetryAfterReset: a request state that carried a request
// whose record had every field set starts the next request's record with
// exactly the fields the request gives it (startTelemetry stores only
// those: the rest must come zero from reset).
func TestStartTelemetryAfterReset(t *testing.T) {
	s := &Server{}
	start := time.Now()
	for _, tc := range []struct {
		minor int
		peer  *tlsPeer
		proto string
	}{
		{1, nil, "HTTP/1.1"},
		{0, &tlsPeer{uris: []string{"spiffe://cluster.local/ns/a/sa/b"}}, "HTTP/1.0"},
		{2, &tlsPeer{}, "HTTP/2"},
	} {
		req := new(dsRequest)
		fillNonZero(t, reflect.ValueOf(&req.tel.rec).Elem())
		req.tel.finish, req.tel.grpc = true, true
		req.reset()
		req.method, req.target, req.minor, req.peer = "POST", "/p?q", tc.minor, tc.peer
		req.remoteAddr, req.localStr = "10.0.0.1:5000", "10.0.0.2:80"
		req.header = headers.List{{Name: "content-type", Value: "text/plain"}}
		s.startTelemetry(req, nil, &xdsparse.HTTPManager{}, start)
		want := telemetry.Record{Start: start, Outbound: true, Method: "POST", Path: "/p?q", Protocol: tc.proto,
			DownstreamRemote: "10.0.0.1:5000", DownstreamLocal: "10.0.0.2:80", RequestHeaders: req.header,
			DownstreamMTLS: tc.peer != nil}
		if tc.peer != nil && len(tc.peer.uris) > 0 {
			want.DownstreamPrincipal = tc.peer.uris[0]
		}
		if !reflect.DeepEqual(req.tel.rec, want) {
			t.Errorf("minor %d: record\n%+v\nwant\n%+v", tc.minor, req.tel.rec, want)
		}
		if req.tel.finish || req.tel.grpc {
			t.Errorf("minor %d: finish %v, grpc %v carried over", tc.minor, req.tel.finish, req.tel.grpc)
		}
	}
}
