// Package kube_test runs Mast's Kubernetes pieces against a real
// kube-apiserver and etcd (internal/kube/kubetest): the API server itself
// calls the admission webhooks, reviews tokens and checks the install.
package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	admv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/inject"
	"github.com/mast-mesh/mast/internal/kube/identity"
	"github.com/mast-mesh/mast/internal/kube/install"
	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/internal/kube/webhook"
)

const bookinfo = "../../../shared/compat/istio/bookinfo/platform/kube/bookinfo.yaml"

// TestKubernetes shares one API server: install dry run, the CRDs, both
// webhooks called by the API server, TokenReview identities, and the CA's
// Secret and ConfigMap paths.
func TestKubernetes(t *testing.T) {
	bi, err := os.ReadFile(bookinfo)
	if err != nil {
		t.Skipf("Istio's Bookinfo corpus is absent (%v); it lives in ../shared/compat/istio", err)
	}
	c := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()

	// mast install --dry-run=server: everything accepted, nothing stored.
	chart, err := install.LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Render(chart, install.Options{Namespace: "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := install.NewClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	c.Namespace(t, "istio-system", nil)
	var out bytes.Buffer
	if err := cl.Apply(ctx, objs, true, &out); err != nil {
		t.Fatalf("install --dry-run=server: %v\n%s", err, out.String())
	}
	if _, err := c.Client.AppsV1().Deployments("istio-system").Get(ctx, "mastd", metav1.GetOptions{}); err == nil {
		t.Error("dry run stored the Deployment")
	}
	// The CRDs for real (applied twice: idempotent), then the webhooks.
	var crds []install.Object
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	for range 2 {
		if err := cl.Apply(ctx, crds, false, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.WaitEstablished(ctx, crds); err != nil {
		t.Fatal(err)
	}

	authority, err := ca.New(ca.Config{Dir: t.TempDir(), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := authority.ServerTLSConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	addr, done, err := webhook.Serve(wctx, "127.0.0.1:0", tlsCfg, webhook.NewHandler(inject.DefaultConfig(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	url := "https://" + addr.String()
	fail, none := admv1.Fail, admv1.SideEffectClassNone
	if _, err := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mast-validator"},
		Webhooks: []admv1.ValidatingWebhook{{
			Name: "validation.istio.io", ClientConfig: admv1.WebhookClientConfig{URL: ptr(url + webhook.PathValidate), CABundle: authority.TrustBundlePEM()},
			Rules: []admv1.RuleWithOperations{{Operations: []admv1.OperationType{admv1.Create, admv1.Update},
				Rule: admv1.Rule{APIGroups: []string{"networking.istio.io", "security.istio.io"}, APIVersions: []string{"*"}, Resources: []string{"*"}}}},
			FailurePolicy: &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mast-sidecar-injector"},
		Webhooks: []admv1.MutatingWebhook{{
			Name: "namespace.sidecar-injector.istio.io", ClientConfig: admv1.WebhookClientConfig{URL: ptr(url + webhook.PathInject), CABundle: authority.TrustBundlePEM()},
			Rules: []admv1.RuleWithOperations{{Operations: []admv1.OperationType{admv1.Create},
				Rule: admv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio-injection": "enabled"}},
			FailurePolicy:     &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("invalid VirtualService refused with the validator's message", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		vs := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 20
`), &vs.Object); err != nil {
			t.Fatal(err)
		}
		res := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("default")
		_, err = res.Create(ctx, vs, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "spec.http[0].route: weights sum to 70, want 100") {
			t.Fatalf("invalid VirtualService: %v", err)
		}
		vs.Object["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)["route"].([]any)[1].(map[string]any)["weight"] = int64(50)
		if _, err := res.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
			t.Fatalf("valid VirtualService refused: %v", err)
		}
	})

	t.Run("Bookinfo pods injected as mast kube-inject does", func(t *testing.T) {
		c.Namespace(t, "bookinfo", map[string]string{"istio-injection": "enabled"})
		cfg := inject.DefaultConfig()
		var injected bytes.Buffer
		if _, err := inject.Manifest(&cfg, "bookinfo", bytes.NewReader(bi), &injected); err != nil {
			t.Fatal(err)
		}
		want := map[string]corev1.PodTemplateSpec{}
		for _, doc := range strings.Split(injected.String(), "\n---\n") {
			var d struct {
				Kind     string
				Metadata metav1.ObjectMeta
				Spec     struct{ Template corev1.PodTemplateSpec }
			}
			if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
				t.Fatal(err)
			}
			if d.Kind == "Deployment" {
				want[d.Metadata.Name] = d.Spec.Template
			}
		}
		// No controller manager runs: create each Deployment's pod as the
		// ReplicaSet controller would, from the original template.
		n := 0
		for _, doc := range strings.Split(string(bi), "\n---\n") {
			var d struct {
				Kind     string
				Metadata metav1.ObjectMeta
				Spec     struct{ Template corev1.PodTemplateSpec }
			}
			if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
				t.Fatal(err)
			}
			switch d.Kind {
			case "ServiceAccount":
				if _, err := c.Client.CoreV1().ServiceAccounts("bookinfo").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: d.Metadata.Name}}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				continue
			case "Deployment":
			default:
				continue
			}
			// As the ReplicaSet controller makes it: a pod-template-hash
			// label and its ReplicaSet as controlling owner (the webhook
			// names the workload after it, as Istio's does).
			const hash = "7d4b9c5f6"
			pod := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
			pod.Name = d.Metadata.Name + "-" + hash + "-x2k4p"
			if pod.Labels == nil {
				pod.Labels = map[string]string{}
			}
			pod.Labels["pod-template-hash"] = hash
			controller := true
			pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
				Name: d.Metadata.Name + "-" + hash, UID: types.UID(fmt.Sprintf("0f4e5c6a-1b2c-4d3e-8f90-%012d", n)), Controller: &controller}}
			got, err := c.Client.CoreV1().Pods("bookinfo").Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: %v", d.Metadata.Name, err)
			}
			w := want[d.Metadata.Name]
			// The one expected difference: the ReplicaSet's label is among
			// the pod's labels, which kube-inject of the Deployment cannot see.
			for i := range got.Spec.Containers {
				for j, a := range got.Spec.Containers[i].Args {
					got.Spec.Containers[i].Args[j] = strings.Replace(a, "pod-template-hash="+hash+",", "", 1)
				}
			}
			if !sameContainers(got.Spec.InitContainers, w.Spec.InitContainers) || !sameContainers(got.Spec.Containers, w.Spec.Containers) {
				t.Errorf("%s: injected pod differs from mast kube-inject:\n%s\n%s", d.Metadata.Name, dump(got.Spec.Containers), dump(w.Spec.Containers))
			}
			if got.Annotations[inject.AnnotationStatus] == "" || got.Labels["security.istio.io/tlsMode"] != "istio" {
				t.Errorf("%s: not marked injected", d.Metadata.Name)
			}
			n++
		}
		if n != 6 {
			t.Errorf("%d Bookinfo pods, want 6", n)
		}
	})

	t.Run("TokenReview: a token proves only its own service account", func(t *testing.T) {
		c.Namespace(t, "tenant", nil)
		for _, sa := range []string{"a", "b"} {
			if _, err := c.Client.CoreV1().ServiceAccounts("tenant").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		token := func(sa, aud string) string {
			tr, err := c.Client.CoreV1().ServiceAccounts("tenant").CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{aud}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tr.Status.Token
		}
		r := &identity.TokenReviewer{Client: c.Client, TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local")}
		id, err := r.Authenticate(ctx, token("b", "istio-ca"))
		if err != nil || id.String() != "spiffe://cluster.local/ns/tenant/sa/b" {
			t.Fatalf("b's token: %v %v", id, err)
		}
		// A CSR for a's identity with b's token: the CA compares the CSR's
		// identity with the one the token proved, b's.
		if id.String() == "spiffe://cluster.local/ns/tenant/sa/a" {
			t.Fatal("b's token proved a")
		}
		if _, err := r.Authenticate(ctx, token("a", "https://kubernetes.default.svc.cluster.local")); err == nil {
			t.Error("a token for another audience was accepted")
		}
	})
	t.Run("the CA's Secret and ConfigMap paths", func(t *testing.T) { testCAOnKubernetes(t, c) })
}

func sameContainers(a, b []corev1.Container) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Image != b[i].Image || strings.Join(a[i].Args, " ") != strings.Join(b[i].Args, " ") ||
			len(a[i].Env) != len(b[i].Env) {
			return false
		}
	}
	return true
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func ptr[T any](v T) *T { return &v }
