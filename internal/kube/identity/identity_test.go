package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/mast-mesh/mast/internal/ca"
)

const jwtish = "a.b.c"

func reviewer(status authnv1.TokenReviewStatus, gotAud *[]string) *TokenReviewer {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		*gotAud = tr.Spec.Audiences
		tr.Status = status
		return true, tr, nil
	})
	return &TokenReviewer{Client: c, TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local")}
}

// TestTokenReviewer: the unit tier with a fake API server; the real one is
// exercised in test/kube.
func TestTokenReviewer(t *testing.T) {
	ok := authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"istio-ca"},
		User: authnv1.UserInfo{Username: "system:serviceaccount:bookinfo:bookinfo-reviews"}}
	var aud []string
	id, err := reviewer(ok, &aud).Authenticate(context.Background(), jwtish)
	if err != nil || id.String() != "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews" {
		t.Fatalf("id %v err %v", id, err)
	}
	if len(aud) != 1 || aud[0] != "istio-ca" {
		t.Errorf("review asked for audiences %q", aud)
	}
	for name, st := range map[string]authnv1.TokenReviewStatus{
		"unauthenticated": {Authenticated: false, Error: "token has expired"},
		"no audience":     {Authenticated: true, User: ok.User},
		"other audience":  {Authenticated: true, Audiences: []string{"api"}, User: ok.User},
		"a user":          {Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "alice"}},
		"malformed":       {Authenticated: true, Audiences: []string{"istio-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:ns"}},
	} {
		if id, err := reviewer(st, &aud).Authenticate(context.Background(), jwtish); err == nil {
			t.Errorf("%s: accepted as %v", name, id)
		}
	}
	if _, err := reviewer(ok, &aud).Authenticate(context.Background(), "not-a-jwt"); err == nil {
		t.Error("non-JWT accepted")
	}
}

func TestSecretStore(t *testing.T) {
	c := fake.NewClientset()
	s := &SecretStore{Client: c, Namespace: "istio-system"}
	dir := t.TempDir()
	a, err := ca.New(ca.Config{Store: s, TrustDomain: "cluster.local", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := c.CoreV1().Secrets("istio-system").Get(context.Background(), CASecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != CASecretType || len(sec.Data[keyCert]) == 0 || len(sec.Data[keyKey]) == 0 || len(sec.Data[keyState]) == 0 {
		t.Fatalf("secret %s type %q keys %d", sec.Name, sec.Type, len(sec.Data))
	}
	// A second mastd loads the same root.
	b, err := ca.New(ca.Config{Store: s, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.TrustBundlePEM()) != string(b.TrustBundlePEM()) {
		t.Error("second CA has another root")
	}
	// An Istio istio-ca-secret (only ca-cert.pem and ca-key.pem) is adopted.
	istio := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: CASecretName, Namespace: "istio-system"},
		Type: CASecretType, Data: map[string][]byte{keyCert: sec.Data[keyCert], keyKey: sec.Data[keyKey]}})
	d, err := ca.New(ca.Config{Store: &SecretStore{Client: istio, Namespace: "istio-system"}, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if string(d.TrustBundlePEM()) != string(sec.Data[keyCert]) {
		t.Error("Istio's root not adopted")
	}
}

func TestRootCertPublisher(t *testing.T) {
	c := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo"}},
	)
	bundle := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	p := &RootCertPublisher{Client: c, Bundle: func() []byte { return []byte(bundle) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(ns string) {
		t.Helper()
		for range 500 {
			cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, RootCertConfigMap, metav1.GetOptions{})
			if err == nil && cm.Data[RootCertKey] == bundle {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no %s in namespace %s", RootCertConfigMap, ns)
	}
	wait("default")
	wait("bookinfo")
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("late")
	cm, _ := c.CoreV1().ConfigMaps("bookinfo").Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	cm.Data[RootCertKey] = "tampered"
	if _, err := c.CoreV1().ConfigMaps("bookinfo").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("bookinfo")
	if !strings.Contains(bundle, "BEGIN") {
		t.Fatal("unreachable")
	}
}
