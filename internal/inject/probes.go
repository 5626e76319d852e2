package inject

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// EnvAppProbers is the sidecar environment variable that carries the
// original application probes, keyed by their /app-health/ path (Istio's
// ISTIO_KUBE_APP_PROBERS; mast-proxy serves them on StatusPort).
const EnvAppProbers = "ISTIO_KUBE_APP_PROBERS"

// Prober is one original application probe, as ISTIO_KUBE_APP_PROBERS
// holds it: the action with named ports resolved, and its timeout.
type Prober struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// rewriteProbes points every HTTP, TCP and gRPC probe of the application
// containers at the sidecar's /app-health/CONTAINER/{livez,readyz,startupz}
// on StatusPort, as Istio does, so that probes keep working when mTLS is
// STRICT and inbound traffic is captured. It returns the original probes by
// path (nil when none was rewritten). Exec probes are left alone.
func rewriteProbes(spec *corev1.PodSpec) (map[string]Prober, error) {
	probers := map[string]Prober{}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, p := range []struct {
			probe **corev1.Probe
			kind  string
		}{{&c.LivenessProbe, "livez"}, {&c.ReadinessProbe, "readyz"}, {&c.StartupProbe, "startupz"}} {
			pr := *p.probe
			if pr == nil {
				continue
			}
			path := fmt.Sprintf("/app-health/%s/%s", c.Name, p.kind)
			orig := Prober{TimeoutSeconds: pr.TimeoutSeconds}
			switch {
			case pr.HTTPGet != nil:
				h := pr.HTTPGet.DeepCopy()
				port, err := resolvePort(c, h.Port)
				if err != nil {
					return nil, fmt.Errorf("container %q %s probe: %w", c.Name, p.kind, err)
				}
				h.Port = port
				if h.Scheme == "" {
					h.Scheme = corev1.URISchemeHTTP
				}
				orig.HTTPGet = h
			case pr.TCPSocket != nil:
				t := pr.TCPSocket.DeepCopy()
				port, err := resolvePort(c, t.Port)
				if err != nil {
					return nil, fmt.Errorf("container %q %s probe: %w", c.Name, p.kind, err)
				}
				t.Port = port
				orig.TCPSocket = t
			case pr.GRPC != nil:
				orig.GRPC = pr.GRPC.DeepCopy()
			default:
				continue // exec probes run inside the container: nothing to rewrite
			}
			probers[path] = orig
			np := pr.DeepCopy()
			np.HTTPGet = &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP}
			if pr.HTTPGet != nil {
				np.HTTPGet.HTTPHeaders = slices.Clone(pr.HTTPGet.HTTPHeaders)
			}
			np.TCPSocket, np.GRPC = nil, nil
			*p.probe = np
		}
	}
	if len(probers) == 0 {
		return nil, nil
	}
	return probers, nil
}

// resolvePort turns a named container port into its number.
func resolvePort(c *corev1.Container, p intstr.IntOrString) (intstr.IntOrString, error) {
	if p.Type == intstr.Int {
		return p, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return intstr.FromInt32(cp.ContainerPort), nil
		}
	}
	return p, fmt.Errorf("port %q is not a named port of the container", p.StrVal)
}

// marshalProbers encodes probers for EnvAppProbers (keys sorted).
func marshalProbers(probers map[string]Prober) (string, error) {
	b, err := json.Marshal(probers)
	if err != nil {
		return "", fmt.Errorf("app probers: %w", err)
	}
	return string(b), nil
}
