package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/inject"
)

// Paths of the two webhooks (Istio's).
const (
	PathValidate = "/validate"
	PathInject   = "/inject"
)

// Handler serves both webhooks. The injection values can be replaced while
// it runs (SetInjectConfig), e.g. when the istio-sidecar-injector ConfigMap
// changes.
type Handler struct {
	log          *slog.Logger
	inject       atomic.Pointer[inject.Config]
	proxyConfigs atomic.Pointer[func() []inject.ProxyConfigRule]
	mux          *http.ServeMux
}

// NewHandler returns the webhooks' HTTP handler.
func NewHandler(cfg inject.Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{log: log, mux: http.NewServeMux()}
	h.inject.Store(&cfg)
	h.mux.HandleFunc(PathValidate, h.serve(h.validate))
	h.mux.HandleFunc(PathInject, h.serve(h.injectPod))
	h.mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return h
}

// SetInjectConfig replaces the injection values for later requests.
func (h *Handler) SetInjectConfig(cfg inject.Config) { h.inject.Store(&cfg) }

// SetProxyConfigs gives the handler the mesh's current ProxyConfig
// resources, asked for on each injection.
func (h *Handler) SetProxyConfigs(f func() []inject.ProxyConfigRule) { h.proxyConfigs.Store(&f) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// serve decodes the review, runs f and writes its response. A body that is
// not an AdmissionReview is a 400: there is no request UID to answer.
func (h *Handler) serve(f func(*admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxReviewBytes+1))
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		review, err := DecodeReview(body)
		if err != nil {
			h.log.Warn("bad admission request", "path", r.URL.Path, "error", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := json.Marshal(response(review.Request, f(review.Request)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}
}

func deny(code int32, format string, args ...any) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReasonBadRequest,
		Message: fmt.Sprintf(format, args...),
	}}
}

// validate checks an Istio resource with internal/config, as `mast
// validate` does: errors refuse it (each naming its field), warnings go
// back to kubectl.
func (h *Handler) validate(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect || len(req.Object.Raw) == 0 {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	obj, err := withNamespace(req.Object.Raw, req.Namespace, req.Name)
	if err != nil {
		return deny(http.StatusBadRequest, "configuration is invalid: %v", err)
	}
	name := fmt.Sprintf("%s/%s/%s", req.Kind.Kind, req.Namespace, req.Name)
	_, probs := config.Load(name, obj)
	var errs, warns []string
	for _, p := range probs {
		msg := p.Message
		if p.Field != "" {
			msg = p.Field + ": " + msg
		}
		if p.Severity == config.Error {
			errs = append(errs, msg)
		} else {
			warns = append(warns, msg)
		}
	}
	if len(errs) > 0 {
		h.log.Info("configuration refused", "resource", name, "errors", len(errs))
		r := deny(http.StatusBadRequest, "configuration is invalid: %s", strings.Join(errs, "; "))
		r.Warnings = warns
		return r
	}
	return &admissionv1.AdmissionResponse{Allowed: true, Warnings: warns}
}

// withNamespace sets metadata.namespace (and metadata.name, when the object
// has only generateName) from the request, as the API server will.
func withNamespace(raw []byte, ns, name string) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	if s, _ := md["namespace"].(string); s == "" && ns != "" {
		md["namespace"] = ns
	}
	if s, _ := md["name"].(string); s == "" {
		if name == "" {
			name, _ = md["generateName"].(string)
			name += "generated"
		}
		md["name"] = name
	}
	return json.Marshal(obj)
}

// injectPod adds the sidecar to a pod being created.
func (h *Handler) injectPod(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, "sidecar injection: pod: %v", err)
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	after := pod.DeepCopy()
	cfg := *h.inject.Load()
	if f := h.proxyConfigs.Load(); f != nil {
		cfg.ProxyConfigs = (*f)()
	}
	res, err := inject.Pod(&cfg, ns, workloadName(&pod), &after.ObjectMeta, &after.Spec)
	if err != nil {
		return deny(http.StatusBadRequest, "sidecar injection: %v", err)
	}
	if !res.Injected {
		h.log.Debug("pod not injected", "namespace", ns, "pod", pod.Name+pod.GenerateName, "reason", res.Reason)
		return &admissionv1.AdmissionResponse{Allowed: true, Warnings: res.Warnings}
	}
	ops, err := inject.Patch(&pod, after)
	if err != nil {
		return deny(http.StatusInternalServerError, "sidecar injection: %v", err)
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return deny(http.StatusInternalServerError, "sidecar injection: %v", err)
	}
	pt := admissionv1.PatchTypeJSONPatch
	h.log.Debug("pod injected", "namespace", ns, "pod", pod.Name+pod.GenerateName)
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt, Warnings: res.Warnings}
}

// workloadName is the pod's workload as Istio names it: the controller's
// name, without the ReplicaSet's pod-template-hash suffix (the Deployment),
// else the pod's name or generateName.
func workloadName(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		name := o.Name
		if o.Kind == "ReplicaSet" {
			if h := p.Labels["pod-template-hash"]; h != "" {
				name = strings.TrimSuffix(name, "-"+h)
			}
		}
		return name
	}
	if p.Name != "" {
		return p.Name
	}
	return strings.TrimSuffix(p.GenerateName, "-")
}

// Serve serves h over TLS on addr until ctx ends. tlsCfg comes from the
// mesh CA (ca.ServerTLSConfig) so that its root is the webhooks' caBundle.
func Serve(ctx context.Context, addr string, tlsCfg *tls.Config, h http.Handler, log *slog.Logger) (net.Addr, <-chan error, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() {
		err := srv.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr(), done, nil
}
