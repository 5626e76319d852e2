package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/inject"
)

// server starts the webhooks over TLS with a certificate from a real mesh
// CA and returns a client that trusts only that CA's root.
func server(t *testing.T) (string, *http.Client) {
	t.Helper()
	authority, err := ca.New(ca.Config{Dir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := authority.ServerTLSConfig("istiod.istio-system.svc", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done, err := Serve(ctx, "127.0.0.1:0", tlsCfg, NewHandler(inject.DefaultConfig(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(authority.TrustBundlePEM())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "istiod.istio-system.svc"}}}
	t.Cleanup(c.CloseIdleConnections)
	return "https://" + addr.String(), c
}

func review(t *testing.T, c *http.Client, url string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	in := admissionv1.AdmissionReview{Request: req}
	in.APIVersion, in.Kind = "admission.k8s.io/v1", "AdmissionReview"
	body, _ := json.Marshal(in)
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.UID != req.UID || out.APIVersion != "admission.k8s.io/v1" {
		t.Fatalf("bad review response %s", data)
	}
	return out.Response
}

const invalidVS = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
 "metadata":{"name":"reviews","uid":"1","resourceVersion":"3","creationTimestamp":"2026-01-01T00:00:00Z",
   "managedFields":[{"manager":"kubectl","operation":"Apply"}]},
 "spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews","subset":"v1"},"weight":50},
   {"destination":{"host":"reviews","subset":"v2"},"weight":20}]}]}}`

func TestValidate(t *testing.T) {
	url, c := server(t)
	req := &admissionv1.AdmissionRequest{
		UID: "u1", Kind: metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
		Namespace: "default", Name: "reviews", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: []byte(invalidVS)},
	}
	resp := review(t, c, url+PathValidate, req)
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "spec.http[0].route: weights sum to 70, want 100") {
		t.Fatalf("invalid VirtualService: allowed=%v result=%+v", resp.Allowed, resp.Result)
	}
	valid := strings.Replace(invalidVS, `"weight":20`, `"weight":50`, 1)
	req.Object.Raw = []byte(valid)
	if resp := review(t, c, url+PathValidate, req); !resp.Allowed {
		t.Fatalf("valid VirtualService refused: %+v", resp.Result)
	}
	unknown := strings.Replace(valid, `"hosts"`, `"hostz"`, 1)
	req.Object.Raw = []byte(unknown)
	if resp := review(t, c, url+PathValidate, req); resp.Allowed || !strings.Contains(resp.Result.Message, `"hostz"`) {
		t.Fatalf("unknown field: %+v", resp.Result)
	}
	req.Operation, req.Object.Raw = admissionv1.Delete, nil
	if resp := review(t, c, url+PathValidate, req); !resp.Allowed {
		t.Fatal("delete refused")
	}
}

func TestInject(t *testing.T) {
	url, c := server(t)
	ctrl := true
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "reviews-v1-5d8c9f-", Labels: map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "5d8c9f"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "reviews-v1-5d8c9f", UID: "x", Controller: &ctrl}}},
		Spec: corev1.PodSpec{ServiceAccountName: "bookinfo-reviews", Containers: []corev1.Container{{Name: "reviews", Image: "reviews"}}},
	}
	pod.APIVersion, pod.Kind = "v1", "Pod"
	raw, _ := json.Marshal(&pod)
	req := &admissionv1.AdmissionRequest{UID: "u2", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Namespace: "bookinfo", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
	resp := review(t, c, url+PathInject, req)
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v", resp)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	json.Unmarshal(patched, &got)
	want := pod.DeepCopy()
	cfg := inject.DefaultConfig()
	if _, err := inject.Pod(&cfg, "bookinfo", "reviews-v1", &want.ObjectMeta, &want.Spec); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(&got)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		t.Errorf("webhook's pod differs from inject.Pod's:\n%s\n%s", a, b)
	}
	if !strings.Contains(string(a), "WORKLOAD_NAME=reviews-v1") {
		t.Error("workload name not derived from the ReplicaSet")
	}

	pod.Annotations = map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"}
	req.Object.Raw, _ = json.Marshal(&pod)
	if resp := review(t, c, url+PathInject, req); resp.Allowed || !strings.Contains(resp.Result.Message, "interceptionMode") {
		t.Errorf("TPROXY pod: %+v", resp.Result)
	}
	pod.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
	req.Object.Raw, _ = json.Marshal(&pod)
	if resp := review(t, c, url+PathInject, req); !resp.Allowed || resp.Patch != nil {
		t.Errorf("opted-out pod patched: %+v", resp)
	}
}

func TestBadRequests(t *testing.T) {
	url, c := server(t)
	for _, body := range []string{``, `{}`, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1"}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1"},"extra":1}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1"}} {}`} {
		resp, err := c.Post(url+PathValidate, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", body, resp.StatusCode)
		}
	}
	resp, err := c.Post(url+PathValidate, "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: status %d", resp.StatusCode)
	}
}

// FuzzDecodeReview feeds arbitrary bodies to the decoder and, when they
// decode, to both webhooks: nothing may panic, and every decoded review
// gets a response with its UID.
func FuzzDecodeReview(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"networking.istio.io","version":"v1","kind":"VirtualService"},"namespace":"default","operation":"CREATE","object":%s}}`, invalidVS)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"default","operation":"CREATE","object":{"metadata":{"annotations":{"proxy.istio.io/config":"holdApplicationUntilProxyStarts: true","traffic.sidecar.istio.io/excludeOutboundPorts":"1,2"}},"spec":{"containers":[{"name":"a","livenessProbe":{"httpGet":{"port":"http"}}}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3","operation":"DELETE"}}`))
	f.Add([]byte(`{"request":null}`))
	h := NewHandler(inject.DefaultConfig(), nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReview(body)
		if err != nil {
			return
		}
		for _, fn := range []func(*admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse{h.validate, h.injectPod} {
			if out := response(r.Request, fn(r.Request)); out.Response.UID != r.Request.UID {
				t.Fatal("response UID differs")
			}
		}
	})
}
