package webhook

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	admv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCABundlePatcher: the named configurations get the bundle in every
// webhook, an edit is put back, a rotated bundle reaches them on resync,
// and a configuration with another name is left alone.
func TestCABundlePatcher(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(
		&admv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "mast-validator-istio-system"},
			Webhooks: []admv1.ValidatingWebhook{{Name: "a"}, {Name: "b"}}},
		&admv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"},
			Webhooks: []admv1.ValidatingWebhook{{Name: "c", ClientConfig: admv1.WebhookClientConfig{CABundle: []byte("theirs")}}}},
		&admv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "mast-sidecar-injector-istio-system"},
			Webhooks: []admv1.MutatingWebhook{{Name: "d"}, {Name: "e"}}},
	)
	var bundle atomic.Value
	bundle.Store([]byte("root-1"))
	p := &CABundlePatcher{Client: client, Validating: []string{"mast-validator-istio-system"}, Mutating: []string{"mast-sidecar-injector-istio-system"},
		Bundle: func() []byte { return bundle.Load().([]byte) }, Resync: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	vapi, mapi := client.AdmissionregistrationV1().ValidatingWebhookConfigurations(), client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	want := func(bundleWant string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := func() error {
				v, err := vapi.Get(ctx, "mast-validator-istio-system", metav1.GetOptions{})
				if err != nil {
					return err
				}
				m, err := mapi.Get(ctx, "mast-sidecar-injector-istio-system", metav1.GetOptions{})
				if err != nil {
					return err
				}
				var got []string
				for _, w := range v.Webhooks {
					got = append(got, string(w.ClientConfig.CABundle))
				}
				for _, w := range m.Webhooks {
					got = append(got, string(w.ClientConfig.CABundle))
				}
				for _, g := range got {
					if g != bundleWant {
						return fmt.Errorf("caBundles %q, want all %q", got, bundleWant)
					}
				}
				return nil
			}()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	want("root-1")

	// Someone overwrites one webhook's caBundle: put back.
	m, err := mapi.Get(ctx, "mast-sidecar-injector-istio-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Webhooks[1].ClientConfig.CABundle = []byte("stale")
	if _, err := mapi.Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want("root-1")

	// The root rotates: the next resync patches.
	bundle.Store([]byte("root-2"))
	want("root-2")

	other, err := vapi.Get(ctx, "someone-else", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(other.Webhooks[0].ClientConfig.CABundle); got != "theirs" {
		t.Errorf("a configuration of another name was patched: %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
