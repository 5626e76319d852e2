package dataplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/rpc/grpchealth"
)

// AppProber is one application probe the sidecar runs for the kubelet,
// as Istio's injector records it in ISTIO_KUBE_APP_PROBERS: the kubelet
// asks the sidecar's /app-health/CONTAINER/{livez,readyz,startupz} on
// 15020, and the sidecar probes the application from inside the pod (past
// the capture rules, which would otherwise demand mTLS of the kubelet).
type AppProber struct {
	HTTPGet *struct {
		Path        string `json:"path,omitempty"`
		Port        int    `json:"port"`
		Host        string `json:"host,omitempty"`
		Scheme      string `json:"scheme,omitempty"`
		HTTPHeaders []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"httpHeaders,omitempty"`
	} `json:"httpGet,omitempty"`
	TCPSocket *struct {
		Port int    `json:"port"`
		Host string `json:"host,omitempty"`
	} `json:"tcpSocket,omitempty"`
	GRPC *struct {
		Port    int     `json:"port"`
		Service *string `json:"service,omitempty"`
	} `json:"grpc,omitempty"`
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// ParseAppProbers decodes ISTIO_KUBE_APP_PROBERS: a JSON object from
// /app-health/ paths to probes. Every probe must have exactly one action
// with a port in 1-65535.
func ParseAppProbers(js string) (map[string]AppProber, error) {
	if strings.TrimSpace(js) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	var m map[string]AppProber
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for path, p := range m {
		if !strings.HasPrefix(path, "/app-health/") {
			return nil, fmt.Errorf("%q: path must start with /app-health/", path)
		}
		n, port := 0, 0
		if p.HTTPGet != nil {
			n, port = n+1, p.HTTPGet.Port
			if s := strings.ToUpper(p.HTTPGet.Scheme); s != "" && s != "HTTP" && s != "HTTPS" {
				return nil, fmt.Errorf("%q: httpGet.scheme %q: want HTTP or HTTPS", path, p.HTTPGet.Scheme)
			}
		}
		if p.TCPSocket != nil {
			n, port = n+1, p.TCPSocket.Port
		}
		if p.GRPC != nil {
			n, port = n+1, p.GRPC.Port
		}
		if n != 1 {
			return nil, fmt.Errorf("%q: want exactly one of httpGet, tcpSocket, grpc", path)
		}
		if port < 1 || port > 65535 {
			return nil, fmt.Errorf("%q: port %d: want 1-65535", path, port)
		}
		if p.TimeoutSeconds < 0 {
			return nil, fmt.Errorf("%q: negative timeoutSeconds", path)
		}
	}
	return m, nil
}

// appHealthHandler runs the probe registered for the request's path against
// the application at host (the pod's IP) and answers 200 when it passes.
func appHealthHandler(probers map[string]AppProber, host string) http.HandlerFunc {
	insecureTLS := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} // as the kubelet
	plain := &http.Transport{DisableKeepAlives: true}
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := probers[r.URL.Path]
		if !ok {
			http.Error(w, "no probe registered for "+r.URL.Path, http.StatusNotFound)
			return
		}
		timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		code, err := runProbe(ctx, p, host, plain, insecureTLS)
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(code)
	}
}

func runProbe(ctx context.Context, p AppProber, host string, plain, insecureTLS *http.Transport) (int, error) {
	switch {
	case p.HTTPGet != nil:
		h := p.HTTPGet
		if h.Host != "" {
			host = h.Host
		}
		scheme, tr := "http", plain
		if strings.EqualFold(h.Scheme, "HTTPS") {
			scheme, tr = "https", insecureTLS
		}
		path := h.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(h.Port))+path, nil)
		if err != nil {
			return http.StatusInternalServerError, err
		}
		req.Header.Set("User-Agent", "kube-probe/mast")
		for _, hd := range h.HTTPHeaders {
			if strings.EqualFold(hd.Name, "Host") {
				req.Host = hd.Value
				continue
			}
			req.Header.Add(hd.Name, hd.Value)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return http.StatusServiceUnavailable, err
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return http.StatusOK, nil
		}
		return resp.StatusCode, fmt.Errorf("application answered %d", resp.StatusCode)
	case p.TCPSocket != nil:
		if p.TCPSocket.Host != "" {
			host = p.TCPSocket.Host
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p.TCPSocket.Port)))
		if err != nil {
			return http.StatusServiceUnavailable, err
		}
		c.Close()
		return http.StatusOK, nil
	default:
		var svc string
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		err := grpchealth.Probe(ctx, net.JoinHostPort(host, strconv.Itoa(p.GRPC.Port)), svc, "")
		var ns *grpchealth.NotServingError
		switch {
		case errors.As(err, &ns):
			return http.StatusServiceUnavailable, fmt.Errorf("gRPC health: %s", ns.Status)
		case err != nil:
			return http.StatusServiceUnavailable, err
		}
		return http.StatusOK, nil
	}
}
