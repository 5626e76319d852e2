package kube_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// failover is what TestKubernetesBookinfo's mastd failover case needs of
// the running mesh.
type failover struct {
	top      *testing.T // the whole test: pods started here run until it ends
	k        *kubelet
	m        *kubeMesh
	client   *http.Client // the sleep pod's, anonymous
	first    *mastdProc   // the replica every proxy is connected to, and the leader
	mastdBin string
	dir      string
	webhook  string // the second replica's webhook address behind the Service
	// meshConfig is the first replica's --mesh-config file.
	meshConfig string
	reviews    corev1.PodTemplateSpec
}

// leases are the Leases mastd's leader-only writers are elected with: the
// status writer, and the istio-ca-root-cert publisher with the webhook
// caBundle patcher.
var leases = []string{"mast-status-leader", "mast-namespace-controller"}

// testMastdFailover: a second mastd replica joins (same CA through the
// istio-ca-secret Secret, the second address of istiod's name, its webhooks
// behind the same Service address); while the sleep pod sends a steady
// stream of productpage requests through the sidecars, the first replica
// (the one every proxy is connected to, and the leader) is SIGKILLed. No
// request may fail; every proxy reconnects to the survivor and acknowledges
// its configuration; the survivor takes both Leases and does the leader's
// work (status, caBundle, istio-ca-root-cert), its CA signs a new pod's
// certificate under the same root, and a routing change made after the kill
// reaches every proxy.
func testMastdFailover(t *testing.T, f failover) {
	ctx := context.Background()
	c := f.k.c.Client
	holders := func() []string {
		var out []string
		for _, name := range leases {
			l, err := c.CoordinationV1().Leases("istio-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil || l.Spec.HolderIdentity == nil {
				out = append(out, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			out = append(out, *l.Spec.HolderIdentity)
		}
		return out
	}
	if got := holders(); got[0] != "mastd-a" || got[1] != "mastd-a" {
		t.Fatalf("Lease holders %v before the second replica, want mastd-a", got)
	}
	before, err := localmesh.Syncz(ctx, "http://"+f.first.monitor)
	if err != nil {
		t.Fatal(err)
	}
	proxies := len(before)
	second := startMastd(t, f.mastdBin, f.k.c.Kubeconfig, f.dir+"/ca-b", f.k.net.secondHostIP+":15012", f.webhook,
		"--kube-identity", "mastd-b", "--mesh-config", f.meshConfig)
	if st, err := localmesh.Syncz(ctx, "http://"+second.monitor); err != nil || len(st) != 0 {
		t.Fatalf("second replica: %d proxies connected (%v), want none before the kill", len(st), err)
	}
	if got := holders(); got[0] != "mastd-a" || got[1] != "mastd-a" {
		t.Fatalf("Lease holders %v after the second replica started, want still mastd-a", got)
	}
	root := rootCert(t, c, "bookinfo")

	// Steady traffic: two clients, each sending productpage requests one
	// after another through the sleep pod's sidecar (four sidecars per
	// page: sleep, productpage, reviews, ratings; details too).
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := getPage(f.client); err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopTraffic()
	progress := func(n int64, what string) {
		t.Helper()
		eventually(t, time.Minute, what, func() error {
			if got := ok.Load() + failed.Load(); got < n {
				return fmt.Errorf("%d requests so far, want %d", got, n)
			}
			return nil
		})
	}
	progress(20, "traffic before the kill")
	f.first.kill()
	atKill := ok.Load() + failed.Load()
	t.Logf("first replica killed after %d requests", atKill)

	// Every proxy reconnects to the survivor and acknowledges its config.
	waitConverged(t, second.monitor, proxies, "")
	t.Logf("all %d proxies reconnected to the second replica and acknowledged, after %d requests", proxies, ok.Load()+failed.Load())
	eventually(t, time.Minute, "the second replica to hold both Leases", func() error {
		if got := holders(); got[0] != "mastd-b" || got[1] != "mastd-b" {
			return fmt.Errorf("Lease holders %v", got)
		}
		return nil
	})
	f.m.monitor = second.monitor

	t.Run("a routing change after the kill reaches every proxy", func(t *testing.T) {
		// The validation webhook (the survivor's, behind the Service) and
		// the push: every page now shows reviews-v3.
		f.m.apply(networking + "virtual-service-reviews-v3.yaml")
		if got := f.m.versions(f.client, 20); got["reviews-v3"] != 20 {
			t.Fatalf("got %v, want all 20 on reviews-v3", got)
		}
	})
	t.Run("the survivor writes status", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(f.k.c.Config)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "status of the VirtualService changed after the kill", func() error {
			vs, err := dyn.Resource(virtualServices).Namespace("bookinfo").Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return reconciledAt(vs.Object, vs.GetGeneration())
		})
	})
	t.Run("the survivor patches the caBundle back", func(t *testing.T) {
		v := c.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		cfg, err := v.Get(ctx, "mast-validator-istio-system", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Webhooks[0].ClientConfig.CABundle = nil
		if _, err := v.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "caBundle patched again", func() error {
			cfg, err := v.Get(ctx, "mast-validator-istio-system", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := string(cfg.Webhooks[0].ClientConfig.CABundle); got != root {
				return fmt.Errorf("caBundle %q", got)
			}
			return nil
		})
	})
	t.Run("the survivor publishes istio-ca-root-cert in a new namespace", func(t *testing.T) {
		f.k.c.Namespace(t, "after-failover", nil)
		eventually(t, time.Minute, "istio-ca-root-cert in after-failover", func() error {
			if got := rootCertOrErr(c, "after-failover"); got != root {
				return fmt.Errorf("root %q, want the mesh's", got)
			}
			return nil
		})
	})
	t.Run("the survivor's CA signs a new pod under the same root", func(t *testing.T) {
		// A third reviews-v3 replica is the only pod whose sidecar asks for
		// its certificate after the kill; under STRICT mTLS the client's
		// sidecar (certificate from the first replica) must accept it.
		scale(t, f.k.c, "reviews-v3", 2)
		ver := f.m.pushVersion()
		fresh := f.k.run(f.top, f.k.createPod(t, "bookinfo", "reviews-v3", f.reviews))
		waitConverged(t, second.monitor, proxies+1, ver)
		eventually(t, time.Minute, "the new reviews-v3 replica to serve", func() error {
			for range 20 {
				if pod, err := reviewsPod(f.client); err != nil {
					return err
				} else if pod == fresh.pod.Name {
					return nil
				}
			}
			return fmt.Errorf("20 reviews requests, none answered by %s", fresh.pod.Name)
		})
	})

	progress(ok.Load()+failed.Load()+20, "traffic after the failover")
	stopTraffic()
	total := ok.Load() + failed.Load()
	t.Logf("steady traffic: %d productpage requests, %d after the kill, %d failed", total, total-atKill, failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed across the kill of a mastd replica; first: %s", n, total, failures[0])
	}
}

// getPage fetches productpage once and checks it carries a reviews answer.
func getPage(c *http.Client) error {
	resp, err := c.Get("http://productpage:9080/productpage")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !instanceRE.Match(b) {
		return fmt.Errorf("productpage: %s: %.200s", resp.Status, b)
	}
	return nil
}

// reviewsPod calls reviews once and returns the pod that answered.
func reviewsPod(c *http.Client) (string, error) {
	resp, err := c.Get("http://reviews:9080/reviews/0")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sm := podnameRE.FindStringSubmatch(string(b))
	if resp.StatusCode != 200 || sm == nil {
		return "", fmt.Errorf("reviews: %s: %.200s", resp.Status, b)
	}
	return sm[1], nil
}

// rootCert is the istio-ca-root-cert ConfigMap's root in namespace ns.
func rootCert(t *testing.T, c kubernetes.Interface, ns string) string {
	t.Helper()
	root := rootCertOrErr(c, ns)
	if root == "" {
		t.Fatalf("no istio-ca-root-cert in %s", ns)
	}
	return root
}

// rootCertOrErr is the istio-ca-root-cert ConfigMap's root in namespace
// ns, "" when there is none.
func rootCertOrErr(c kubernetes.Interface, ns string) string {
	cm, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), "istio-ca-root-cert", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return cm.Data["root-cert.pem"]
}

var virtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// reconciledAt checks a resource's status: Reconciled True for generation.
func reconciledAt(obj map[string]any, generation int64) error {
	st, _ := obj["status"].(map[string]any)
	if st == nil {
		return fmt.Errorf("no status")
	}
	if g, _ := st["observedGeneration"].(int64); g != generation {
		return fmt.Errorf("observedGeneration %v, want %d", st["observedGeneration"], generation)
	}
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Reconciled" && m["status"] == "True" {
			return nil
		}
	}
	return fmt.Errorf("no Reconciled True condition: %v", conds)
}
