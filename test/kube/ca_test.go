package kube_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
	"github.com/mast-mesh/mast/internal/kube/identity"
	"github.com/mast-mesh/mast/internal/kube/kubetest"
)

// testCAOnKubernetes runs the CA's Kubernetes paths against the real API
// server, the way mastd wires them (controlplane.kubeCA): its state in the
// istio-ca-secret Secret, Istio's plug-in cacerts Secret as the volume
// mastd mounts, and the istio-ca-root-cert ConfigMap in every namespace.
func testCAOnKubernetes(t *testing.T, c *kubetest.Cluster) {
	ctx := context.Background()
	secretStore := func(ns string) *identity.SecretStore {
		return &identity.SecretStore{Client: c.Client, Namespace: ns}
	}
	var mesh *ca.CA // the CA whose root the publisher spreads, below

	t.Run("replicas starting together store one root in istio-ca-secret", func(t *testing.T) {
		c.Namespace(t, "ca-race", nil)
		const replicas = 3
		cas := make([]*ca.CA, replicas)
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cas[i], errs[i] = ca.New(ca.Config{Store: secretStore("ca-race"), TrustDomain: "cluster.local"})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
		sec, err := c.Client.CoreV1().Secrets("ca-race").Get(ctx, identity.CASecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sec.Type != identity.CASecretType || len(sec.Data["ca-key.pem"]) == 0 || len(sec.Data["mast-ca-state.json"]) == 0 {
			t.Fatalf("secret type %q, keys %v", sec.Type, keys(sec.Data))
		}
		stored := parseCert(t, sec.Data["ca-cert.pem"])
		for i, a := range cas {
			if roots := a.TrustBundle(); len(roots) != 1 || !roots[0].Equal(stored) {
				t.Fatalf("replica %d trusts %d roots, not the stored one", i, len(roots))
			}
		}
		// A certificate one replica signs verifies under another's bundle.
		verifyIssued(t, cas[0], cas[replicas-1].TrustBundle())
		mesh = cas[0]
	})

	t.Run("replicas follow each other's revocations and rotations through istio-ca-secret", func(t *testing.T) {
		c.Namespace(t, "ca-shared", nil)
		a, err := ca.New(ca.Config{Store: secretStore("ca-shared"), TrustDomain: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := ca.New(ca.Config{Store: secretStore("ca-shared"), TrustDomain: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		// b watches the Secret as mastd does (controlplane.startKube).
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go secretStore("ca-shared").Watch(wctx, func() { b.Reload() })
		id := func(sa string) string { return "spiffe://cluster.local/ns/default/sa/" + sa }
		revoked := func(x *ca.CA) map[string]bool {
			m := map[string]bool{}
			for _, r := range x.Revoked() {
				m[r.ID] = true
			}
			return m
		}
		woken := b.RevocationChanged()
		if err := a.Revoke(spiffeid.RequireFromString(id("one")), "test"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "b sees a's revocation", func() error {
			if !revoked(b)[id("one")] {
				return fmt.Errorf("b's revocations: %v", revoked(b))
			}
			return nil
		})
		select {
		case <-woken:
		default:
			t.Error("b's revocation watch (which pushes the CRL) was not woken")
		}
		// Changes made on both, each on top of the other's.
		stop()
		if err := a.Revoke(spiffeid.RequireFromString(id("two")), "test"); err != nil {
			t.Fatal(err)
		}
		if err := b.Revoke(spiffeid.RequireFromString(id("three")), "test"); err != nil {
			t.Fatalf("b's revocation after a's, unseen: %v", err)
		}
		if _, err := a.Reload(); err != nil {
			t.Fatal(err)
		}
		for _, x := range []*ca.CA{a, b} {
			if r := revoked(x); !r[id("one")] || !r[id("two")] || !r[id("three")] {
				t.Fatalf("revocations after both changed: %v, want one, two and three", r)
			}
		}
		if _, err := a.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour}); err == nil {
			t.Fatal("b started a second rotation during a's")
		}
		if ra, rb := a.TrustBundle(), b.TrustBundle(); len(ra) != 2 || len(rb) != 2 || !ra[1].Equal(rb[1]) {
			t.Fatalf("after a's rotation: a trusts %d roots, b %d, want both a's new root", len(ra), len(rb))
		}
	})

	t.Run("Istio's istio-ca-secret is adopted", func(t *testing.T) {
		c.Namespace(t, "ca-adopt", nil)
		now := time.Now()
		root := catest.NewRoot(t, "cluster.local", now, 365*24*time.Hour)
		dir := t.TempDir()
		certPEM := readFile(t, catest.WritePEM(t, dir, "ca-cert.pem", root.Cert))
		keyPEM := readFile(t, catest.WriteKey(t, dir, "ca-key.pem", root.Key))
		if _, err := c.Client.CoreV1().Secrets("ca-adopt").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: identity.CASecretName}, Type: identity.CASecretType,
			Data: map[string][]byte{"ca-cert.pem": certPEM, "ca-key.pem": keyPEM},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		a, err := ca.New(ca.Config{Store: secretStore("ca-adopt"), TrustDomain: "cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		if roots := a.TrustBundle(); len(roots) != 1 || !roots[0].Equal(root.Cert) {
			t.Fatalf("trusts %d roots, not Istio's", len(roots))
		}
		verifyIssued(t, a, []*x509.Certificate{root.Cert})
		sec, err := c.Client.CoreV1().Secrets("ca-adopt").Get(ctx, identity.CASecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sec.Data["ca-cert.pem"], certPEM) || !bytes.Equal(sec.Data["ca-key.pem"], keyPEM) || len(sec.Data["mast-ca-state.json"]) == 0 {
			t.Fatalf("adopted secret: keys %v, Istio's root kept %v", keys(sec.Data), bytes.Equal(sec.Data["ca-cert.pem"], certPEM))
		}
	})

	t.Run("a plug-in cacerts Secret signs", func(t *testing.T) {
		c.Namespace(t, "ca-plugin", nil)
		now := time.Now()
		root := catest.NewRoot(t, "Operator Root", now, 5*365*24*time.Hour)
		inter := catest.NewIntermediate(t, "Operator Intermediate", root, now, 365*24*time.Hour)
		src := t.TempDir()
		data := map[string][]byte{
			"ca-cert.pem":    readFile(t, catest.WritePEM(t, src, "ca-cert.pem", inter.Cert)),
			"ca-key.pem":     readFile(t, catest.WriteKey(t, src, "ca-key.pem", inter.Key)),
			"cert-chain.pem": readFile(t, catest.WritePEM(t, src, "cert-chain.pem", inter.Cert, root.Cert)),
			"root-cert.pem":  readFile(t, catest.WritePEM(t, src, "root-cert.pem", root.Cert)),
		}
		// Istio's documented command: kubectl create secret generic cacerts
		// -n istio-system --from-file=... (an Opaque Secret).
		if _, err := c.Client.CoreV1().Secrets("ca-plugin").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "cacerts"}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The kubelet's Secret volume (the chart mounts cacerts at
		// /etc/cacerts, mastd's --plugin-ca-dir): the keys as files.
		got, err := c.Client.CoreV1().Secrets("ca-plugin").Get(ctx, "cacerts", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vol := t.TempDir()
		for k, v := range got.Data {
			writeFile(t, filepath.Join(vol, k), string(v))
		}
		a, err := ca.New(ca.Config{Store: secretStore("ca-plugin"), TrustDomain: "cluster.local",
			PluginCert: filepath.Join(vol, "ca-cert.pem"), PluginKey: filepath.Join(vol, "ca-key.pem"),
			PluginChain: filepath.Join(vol, "cert-chain.pem"), PluginRoot: filepath.Join(vol, "root-cert.pem")})
		if err != nil {
			t.Fatal(err)
		}
		if roots := a.TrustBundle(); len(roots) != 1 || !roots[0].Equal(root.Cert) {
			t.Fatalf("trusts %d roots, not the plug-in root", len(roots))
		}
		chain := verifyIssued(t, a, []*x509.Certificate{root.Cert})
		if len(chain) != 3 || !chain[1].Equal(inter.Cert) {
			t.Fatalf("workload chain of %d, want leaf, the plug-in intermediate, the root", len(chain))
		}
		// No self-signed root was made beside the plug-in CA.
		if sec, err := c.Client.CoreV1().Secrets("ca-plugin").Get(ctx, identity.CASecretName, metav1.GetOptions{}); err == nil && len(sec.Data["ca-cert.pem"]) != 0 {
			t.Fatalf("istio-ca-secret holds a root beside the plug-in CA: %v", keys(sec.Data))
		} else if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	})
	if mesh == nil {
		t.FailNow()
	}

	t.Run("istio-ca-root-cert in every namespace", func(t *testing.T) {
		bundle := string(mesh.TrustBundlePEM())
		var logs lockedWriter
		p := &identity.RootCertPublisher{Client: c.Client, Bundle: mesh.TrustBundlePEM,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(pctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		published := func(ns string) {
			t.Helper()
			eventually(t, time.Minute, "istio-ca-root-cert in "+ns, func() error {
				cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, identity.RootCertConfigMap, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if len(cm.Data) != 1 || cm.Data[identity.RootCertKey] != bundle || cm.Labels["istio.io/config"] != "true" {
					return fmt.Errorf("data keys %v, labels %v", len(cm.Data), cm.Labels)
				}
				return nil
			})
		}
		nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range nss.Items { // kube-system, kube-public, default, istio-system, ...
			published(ns.Name)
		}
		c.Namespace(t, "late", nil)
		published("late")
		cms := c.Client.CoreV1().ConfigMaps("late")
		cm, err := cms.Get(ctx, identity.RootCertConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data = map[string]string{identity.RootCertKey: "tampered", "extra": "x"}
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		published("late")
		if err := cms.Delete(ctx, identity.RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		published("late")

		// A terminating namespace (no namespace controller runs here, so
		// it stays Terminating): the API server refuses to create in it,
		// and the publisher must take that as done, not retry and warn.
		c.Namespace(t, "going", nil)
		published("going")
		if err := c.Client.CoreV1().Namespaces().Delete(ctx, "going", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Client.CoreV1().ConfigMaps("going").Delete(ctx, identity.RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// A deletion queued after it, in a live namespace: once it is
		// published again, the terminating namespace was handled before.
		if err := cms.Delete(ctx, identity.RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		published("late")
		if strings.Contains(logs.String(), "going") {
			t.Fatalf("publisher warned about the terminating namespace:\n%s", logs.String())
		}
		if _, err := c.Client.CoreV1().ConfigMaps("going").Get(ctx, identity.RootCertConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("istio-ca-root-cert in the terminating namespace: %v", err)
		}
	})
}

// verifyIssued has a issue a workload certificate and verifies its chain
// against roots; it returns the verified chain, leaf first.
func verifyIssued(t *testing.T, a *ca.CA, roots []*x509.Certificate) []*x509.Certificate {
	t.Helper()
	id, err := a.WorkloadID("bookinfo", "reviews")
	if err != nil {
		t.Fatal(err)
	}
	key := catest.ECKey(t)
	chainPEM, leaf, err := a.IssueWorkloadCertificate(id, key.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if cert, err := x509.ParseCertificate(b.Bytes); err == nil && !cert.Equal(leaf) {
			inter.AddCert(cert)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatalf("workload certificate does not verify: %v", err)
	}
	return chains[0]
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		t.Fatalf("no PEM certificate in %q", pemBytes)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
