package dataplane

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestAppHealth runs the rewritten probes the way the kubelet would call
// them, against a real HTTP application, a closed port and a gRPC health
// server.
func TestAppHealth(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(http.StatusOK)
		case "/moved":
			w.WriteHeader(http.StatusFound)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer app.Close()
	_, appPort, _ := net.SplitHostPort(app.Listener.Addr().String())

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(gl)
	defer gs.Stop()
	grpcPort := gl.Addr().(*net.TCPAddr).Port

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	hdr := `"httpHeaders":[{"name":"X-Probe","value":"yes"}]`
	probers, err := ParseAppProbers(fmt.Sprintf(`{
"/app-health/app/livez":{"httpGet":{"path":"/healthz","port":%[1]s,"scheme":"HTTP",%[2]s},"timeoutSeconds":1},
"/app-health/app/readyz":{"httpGet":{"path":"/broken","port":%[1]s,%[2]s}},
"/app-health/app/startupz":{"httpGet":{"path":"/moved","port":%[1]s,%[2]s}},
"/app-health/tcp/livez":{"tcpSocket":{"port":%[1]s}},
"/app-health/tcp/readyz":{"tcpSocket":{"port":%[3]d}},
"/app-health/grpc/livez":{"grpc":{"port":%[4]d}},
"/app-health/grpc/readyz":{"grpc":{"port":%[4]d,"service":"down"}}}`, appPort, hdr, closedPort, grpcPort))
	if err != nil {
		t.Fatal(err)
	}
	h := appHealthHandler(probers, "127.0.0.1")
	for path, want := range map[string]int{
		"/app-health/app/livez": 200, "/app-health/app/readyz": 500, "/app-health/app/startupz": 200,
		"/app-health/tcp/livez": 200, "/app-health/tcp/readyz": 503,
		"/app-health/grpc/livez": 200, "/app-health/grpc/readyz": 503,
		"/app-health/other/livez": 404,
	} {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d (%s)", path, rec.Code, want, rec.Body)
		}
	}
}

func TestParseAppProbersErrors(t *testing.T) {
	for _, js := range []string{
		`{"/healthz":{"tcpSocket":{"port":80}}}`,
		`{"/app-health/a/livez":{}}`,
		`{"/app-health/a/livez":{"tcpSocket":{"port":80},"grpc":{"port":80}}}`,
		`{"/app-health/a/livez":{"tcpSocket":{"port":0}}}`,
		`{"/app-health/a/livez":{"tcpSocket":{"port":"http"}}}`,
		`{"/app-health/a/livez":{"httpGet":{"port":80,"scheme":"FTP"}}}`,
		`{"/app-health/a/livez":{"exec":{}}}`,
		`[]`,
	} {
		if _, err := ParseAppProbers(js); err == nil {
			t.Errorf("%s accepted", js)
		}
	}
}

func FuzzParseAppProbers(f *testing.F) {
	f.Add(`{"/app-health/a/livez":{"httpGet":{"path":"/x","port":8080,"scheme":"HTTP"},"timeoutSeconds":1}}`)
	f.Add(`{"/app-health/a/readyz":{"tcpSocket":{"port":` + strconv.Itoa(9080) + `}}}`)
	f.Add(`{"/app-health/a/startupz":{"grpc":{"port":7070,"service":"s"}}}`)
	f.Fuzz(func(t *testing.T, js string) {
		m, err := ParseAppProbers(js)
		if err != nil {
			return
		}
		for path, p := range m {
			if p.HTTPGet == nil && p.TCPSocket == nil && p.GRPC == nil {
				t.Fatalf("%s: accepted without an action", path)
			}
		}
	})
}
