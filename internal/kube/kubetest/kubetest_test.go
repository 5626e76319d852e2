package kubetest_test

import (
	"context"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mast-mesh/mast/internal/kube/kubetest"
)

// TestCluster starts the real etcd and kube-apiserver and checks what the
// other tiers rely on: admin access, the default service account, a
// non-loopback EndpointSlice accepted, a loopback one refused, and
// service-account tokens issued and reviewed with an audience.
func TestCluster(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()
	c.Namespace(t, "demo", map[string]string{"istio-injection": "enabled"})

	slice := func(name, ip string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
		}
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices("demo").Create(ctx, slice("web-a", "10.10.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("non-loopback EndpointSlice refused: %v", err)
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices("demo").Create(ctx, slice("web-b", "127.0.0.2"), metav1.CreateOptions{}); err == nil {
		t.Fatal("loopback EndpointSlice accepted; the tiers assume the API server refuses it")
	}

	tr, err := c.Client.CoreV1().ServiceAccounts("demo").CreateToken(ctx, "default",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{"istio-ca"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	rv, err := c.Client.AuthenticationV1().TokenReviews().Create(ctx,
		&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tr.Status.Token, Audiences: []string{"istio-ca"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token review: %v", err)
	}
	if !rv.Status.Authenticated || rv.Status.User.Username != "system:serviceaccount:demo:default" {
		t.Fatalf("token review = %+v, want authenticated system:serviceaccount:demo:default", rv.Status)
	}
	rv, err = c.Client.AuthenticationV1().TokenReviews().Create(ctx,
		&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: tr.Status.Token, Audiences: []string{"other"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token review: %v", err)
	}
	if rv.Status.Authenticated {
		t.Fatal("token for audience istio-ca authenticated for audience other")
	}
	if _, err := c.Client.CoreV1().Pods("demo").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod with the default service account: %v", err)
	}
}
