package kube_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mast-mesh/mast/internal/kube/install"
	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/internal/localmesh"
	"github.com/mast-mesh/mast/internal/testnet"
	bookinfoapp "github.com/mast-mesh/mast/samples/bookinfo/app/cli"
	"github.com/mast-mesh/mast/test/netns"
)

// bookinfoAppEnv makes this test binary run the Bookinfo stand-in (the
// program the kubelet runs for Istio's Bookinfo images).
const bookinfoAppEnv = "MAST_KUBE_BOOKINFO_APP"

func TestMain(m *testing.M) {
	if os.Getenv(bookinfoAppEnv) == "1" {
		os.Exit(bookinfoapp.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	os.Exit(m.Run())
}

const networking = "../../../shared/compat/istio/bookinfo/networking/"

// TestKubernetesBookinfo is Bookinfo on Kubernetes through real sidecars.
// The API server, etcd, mastd (--registry kubernetes, its CA backed by
// TokenReview) and every sidecar are the real programs; the kubelet, the
// ReplicaSet and EndpointSlice controllers are played by this test (see
// kubelet_test.go), because none can run here: each pod is a network
// namespace with Istio's capture rules installed by its injected init
// container, its injected mast-proxy running as 1337 with a token the API
// server issued for its service account, and the Bookinfo stand-in as its
// application. mastd patches the webhooks' caBundle itself; the API server
// then calls them: the validation webhook refuses an invalid resource and
// the injection webhook injects every pod. Istio's Bookinfo routing files,
// applied as custom resources, route traffic as in the local mesh; a
// Deployment scaled down leaves its endpoints and the traffic; a replica
// killed outright loses no request (Istio's default retries).
func TestKubernetesBookinfo(t *testing.T) {
	netns.Require(t, "iptables", "iptables-save", "iptables-restore", "setpriv")
	bi, err := os.ReadFile(bookinfo)
	if err != nil {
		t.Skipf("Istio's Bookinfo corpus is absent (%v); it lives in ../shared/compat/istio", err)
	}
	c := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()
	dir := netns.SharedDir(t)
	mastdBin, proxyBin := buildMast(t, dir)
	k := &kubelet{c: c, net: newPodNetwork(t), dir: dir, proxyBin: proxyBin, appBin: netns.CopyExecutable(t, dir),
		hosts: map[string][]string{}, eps: map[string]map[string]endpoint{}, pods: map[string]*podRun{}, hostPods: map[string]bool{}}
	// istiod's name has both replicas' addresses, as a headless Service's
	// DNS would: the second replica starts later (its address refuses
	// connections until then), and proxies reconnect to whichever answers.
	k.hosts["istiod.istio-system.svc"] = []string{k.net.hostIP, k.net.secondHostIP}

	// The CRDs, then mastd, which finds them at start.
	cl, err := install.NewClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := install.LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Render(chart, install.Options{Namespace: "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	var crds []install.Object
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	if err := cl.Apply(ctx, crds, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitEstablished(ctx, crds); err != nil {
		t.Fatal(err)
	}
	c.Namespace(t, "istio-system", nil)
	c.Namespace(t, "bookinfo", map[string]string{"istio-injection": "enabled"})
	// The controller manager's root-ca-cert-publisher: the API server's CA
	// in every namespace, for the service-account volume admission adds.
	if _, err := c.Client.CoreV1().ConfigMaps("bookinfo").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data: map[string]string{"ca.crt": string(c.CAPEM)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The webhook configurations, without caBundle: mastd patches it. The
	// API server calls them at the istiod Service's address, which sends
	// each connection to a live replica (kube-proxy, played by the test).
	webhookA, webhookB := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	url := "https://" + serviceProxy(t, webhookA, webhookB)
	fail, none := admv1.Fail, admv1.SideEffectClassNone
	if _, err := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mast-validator-istio-system"},
		Webhooks: []admv1.ValidatingWebhook{{
			Name: "validation.istio.io", ClientConfig: admv1.WebhookClientConfig{URL: ptr(url + "/validate")},
			Rules: []admv1.RuleWithOperations{{Operations: []admv1.OperationType{admv1.Create, admv1.Update},
				Rule: admv1.Rule{APIGroups: []string{"networking.istio.io", "security.istio.io"}, APIVersions: []string{"*"}, Resources: []string{"*"}}}},
			FailurePolicy: &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mast-sidecar-injector-istio-system"},
		Webhooks: []admv1.MutatingWebhook{{
			Name: "namespace.sidecar-injector.istio.io", ClientConfig: admv1.WebhookClientConfig{URL: ptr(url + "/inject")},
			Rules: []admv1.RuleWithOperations{{Operations: []admv1.OperationType{admv1.Create},
				Rule: admv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio-injection": "enabled"}},
			FailurePolicy:     &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Access logs on the proxies' stdout, as Istio's documentation enables
	// them (meshConfig.accessLogFile): `mast why` reads them with the pod logs.
	meshConfig := filepath.Join(dir, "mesh.yaml")
	writeFile(t, meshConfig, "accessLogFile: /dev/stdout\n")
	k.serveAPI(t)
	mastdA := startMastd(t, mastdBin, c.Kubeconfig, filepath.Join(dir, "ca-a"), k.net.hostIP+":15012", webhookA,
		"--kube-identity", "mastd-a", "--mesh-config", meshConfig)
	monitor := mastdA.monitor

	t.Run("mastd patches the webhooks' caBundle with its root", func(t *testing.T) {
		var root string
		eventually(t, time.Minute, "istio-ca-root-cert in bookinfo", func() error {
			cm, err := c.Client.CoreV1().ConfigMaps("bookinfo").Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
			if err != nil {
				return err
			}
			root = cm.Data["root-cert.pem"]
			return nil
		})
		eventually(t, time.Minute, "caBundle patched", func() error {
			v, err := c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "mast-validator-istio-system", metav1.GetOptions{})
			if err != nil {
				return err
			}
			m, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "mast-sidecar-injector-istio-system", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := string(v.Webhooks[0].ClientConfig.CABundle); got != root {
				return fmt.Errorf("validating caBundle %q, want the root %q", got, root)
			}
			if got := string(m.Webhooks[0].ClientConfig.CABundle); got != root {
				return fmt.Errorf("mutating caBundle %q, want the root %q", got, root)
			}
			return nil
		})
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Run("the API server calls the validation webhook: dry-run create refused", func(t *testing.T) {
		vs := yamlObjects(t, []byte(`apiVersion: networking.istio.io/v1
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
`), "bookinfo")
		err := cl.Apply(ctx, vs, true, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "spec.http[0].route: weights sum to 70, want 100") {
			t.Fatalf("dry-run apply of an invalid VirtualService: %v", err)
		}
	})

	// ProxyConfigs, in force before the pods are created.
	applyProxyConfigs(t, cl, c.Client)
	// Bookinfo's Services, ServiceAccounts and Deployments, unchanged.
	if err := cl.Apply(ctx, yamlObjects(t, bi, "bookinfo"), false, io.Discard); err != nil {
		t.Fatal(err)
	}
	svcs, err := c.Client.CoreV1().Services("bookinfo").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		for _, n := range []string{s.Name, s.Name + ".bookinfo", s.Name + ".bookinfo.svc", s.Name + ".bookinfo.svc.cluster.local"} {
			k.hosts[n] = []string{s.Spec.ClusterIP}
		}
	}
	// Two replicas of reviews-v1, through the scale subresource.
	scale(t, c, "reviews-v1", 2)
	deploys, err := c.Client.AppsV1().Deployments("bookinfo").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := map[string]corev1.PodTemplateSpec{}
	var pods []*corev1.Pod
	for _, d := range deploys.Items {
		tmpl[d.Name] = d.Spec.Template
		for range *d.Spec.Replicas {
			pods = append(pods, k.createPod(t, "bookinfo", d.Name, d.Spec.Template))
		}
	}
	// The client: a pod of its own whose "application" is this test.
	if _, err := c.Client.CoreV1().ServiceAccounts("bookinfo").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sleep"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sleepTmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "sleep"}},
		Spec: corev1.PodSpec{ServiceAccountName: "sleep", Containers: []corev1.Container{{Name: "sleep", Image: "curlimages/curl"}}}}
	pods = append(pods, k.createPod(t, "bookinfo", "sleep", sleepTmpl))
	t.Run("the API server calls the injection webhook: every pod injected", func(t *testing.T) {
		for _, p := range pods {
			var names []string
			for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				names = append(names, c.Name)
			}
			if !strings.Contains(strings.Join(names, ","), "istio-init") || !strings.Contains(strings.Join(names, ","), "istio-proxy") {
				t.Errorf("pod %s not injected: containers %v", p.Name, names)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	var sleep *podRun
	for _, p := range pods {
		r := k.run(t, p)
		if p.Labels["app"] == "sleep" {
			sleep = r
		}
	}
	waitConverged(t, monitor, len(pods), "")

	m := &kubeMesh{t: t, monitor: monitor, cl: cl, client: k.httpClient(sleep, nil)}
	anon := m.client
	var pp *podRun
	for _, r := range k.pods {
		if r.pod.Labels["app"] == "productpage" {
			pp = r
		}
	}
	// From the host, outside the mesh, in plain text: PERMISSIVE (the
	// default) lets it in; STRICT, below, must not.
	fromHost := func() (*http.Response, error) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + pp.ip + ":9080/productpage")
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	t.Run("ProxyConfig through the injection webhook: GOMAXPROCS and environmentVariables", func(t *testing.T) {
		testProxyConfigResources(t, k.pods)
	})
	t.Run("PERMISSIVE: plaintext from outside the mesh is let in", func(t *testing.T) {
		if resp, err := fromHost(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("plaintext request from the host to %s: %v %v", pp.pod.Name, resp, err)
		}
	})
	// Mutual TLS required mesh-wide: every hop needs the certificate each
	// sidecar got from mastd's CA with its pod's service-account token.
	strict := filepath.Join(t.TempDir(), "strict.yaml")
	writeFile(t, strict, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n")
	m.apply(strict)
	t.Run("STRICT: plaintext from outside the mesh is refused", func(t *testing.T) {
		if resp, err := fromHost(); err == nil {
			t.Fatalf("plaintext request from the host to %s answered %s", pp.pod.Name, resp.Status)
		}
	})
	t.Run("without routing rules every version serves", func(t *testing.T) {
		got := m.versions(anon, 60)
		if got["reviews-v1"] == 0 || got["reviews-v2"] == 0 || got["reviews-v3"] == 0 {
			t.Fatalf("got %v, want all three versions", got)
		}
	})
	m.apply(networking + "destination-rule-all.yaml")
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		m.apply(networking + "virtual-service-all-v1.yaml")
		if got := m.versions(anon, 50); got["reviews-v1"] != 50 {
			t.Fatalf("got %v, want all 50 on reviews-v1", got)
		}
	})
	t.Run("virtual-service-reviews-80-20", func(t *testing.T) {
		m.apply(networking + "virtual-service-reviews-80-20.yaml")
		const n = 1000
		within(t, m.versions(anon, n), n, map[string]float64{"reviews-v1": 0.8, "reviews-v2": 0.2})
	})
	t.Run("virtual-service-reviews-test-v2: jason to v2", func(t *testing.T) {
		m.apply(networking+"virtual-service-all-v1.yaml", networking+"virtual-service-reviews-test-v2.yaml")
		jason := m.login(k.httpClient(sleep, nil), "jason")
		if got := m.versions(jason, 30); got["reviews-v2"] != 30 {
			t.Fatalf("jason: got %v, want all on reviews-v2", got)
		}
		if got := m.versions(anon, 30); got["reviews-v1"] != 30 {
			t.Fatalf("anonymous: got %v, want all on reviews-v1", got)
		}
	})
	t.Run("mast why on Kubernetes: a fault named from the sidecars' pod logs", func(t *testing.T) {
		testWhyOnKubernetes(t, m, anon, c.Kubeconfig)
	})
	t.Run("mast get on Kubernetes: the status mastd wrote", func(t *testing.T) {
		testGetOnKubernetes(t, c.Kubeconfig)
	})
	t.Run("mast proxy-config on Kubernetes: a pod's admin through pods/portforward", func(t *testing.T) {
		var productpage *podRun
		k.mu.Lock()
		for _, r := range k.pods {
			if r.pod.Labels["app"] == "productpage" {
				productpage = r
			}
		}
		k.mu.Unlock()
		testProxyConfigOnKubernetes(t, c.Kubeconfig, productpage)
	})
	t.Run("mast proxy-status and version on Kubernetes: mastd's pod through pods/portforward", func(t *testing.T) {
		k.mu.Lock()
		n := len(k.pods)
		k.mu.Unlock()
		testProxyStatusOnKubernetes(t, k, monitor, c.Kubeconfig, n)
	})
	if t.Failed() {
		t.FailNow()
	}

	// reviews-v1's replicas answer reviews directly (all-v1 is in force).
	replicas := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			got[m.reviewsPod(anon)]++
		}
		return got
	}
	var v1 []*podRun
	for _, r := range k.pods {
		if r.pod.Labels["app"] == "reviews" && r.pod.Labels["version"] == "v1" {
			v1 = append(v1, r)
		}
	}
	if len(v1) != 2 {
		t.Fatalf("%d reviews-v1 pods, want 2", len(v1))
	}
	t.Run("scaling reviews-v1 down to one replica is followed", func(t *testing.T) {
		if got := replicas(40); got[v1[0].pod.Name] == 0 || got[v1[1].pod.Name] == 0 {
			t.Fatalf("before: got %v, want both replicas", got)
		}
		// The ReplicaSet controller deletes one pod (graceful); the
		// EndpointSlice controller marks its endpoint terminating at once,
		// while its containers still run.
		scale(t, c, "reviews-v1", 1)
		gone := v1[1]
		if err := c.Client.CoreV1().Pods("bookinfo").Delete(ctx, gone.pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		before := m.pushVersion()
		start := time.Now()
		k.setEndpoint(t, gone.pod, &endpoint{ip: gone.ip, uid: gone.pod.UID, terminating: true})
		waitConverged(t, monitor, len(k.pods), before)
		t.Logf("EndpointSlice update to every proxy's ACK: %v (observed by polling /debug/syncz every 100 ms)", time.Since(start))
		if got := replicas(40); got[v1[0].pod.Name] != 40 {
			t.Fatalf("after: got %v, want all 40 on %s", got, v1[0].pod.Name)
		}
		// The kubelet stops the containers and confirms the deletion.
		gone.kill()
		zero := int64(0)
		if err := c.Client.CoreV1().Pods("bookinfo").Delete(ctx, gone.pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		k.setEndpoint(t, gone.pod, nil)
	})
	top := t
	t.Run("scaling back up and killing one of two replicas loses no request", func(t *testing.T) {
		scale(t, c, "reviews-v1", 2)
		before := m.pushVersion()
		// Run for the rest of the test (a subtest's cleanup would stop it).
		fresh := k.run(top, k.createPod(t, "bookinfo", "reviews-v1", tmpl["reviews-v1"]))
		waitConverged(t, monitor, len(k.pods)-1, before)
		// The version every proxy ACKed may be a push from before the new
		// pod's endpoint was Ready (rehearsal 3 saw all 40 on the old
		// replica once): both replicas must answer within a few rounds.
		for round := 1; ; round++ {
			got := replicas(40)
			if got[v1[0].pod.Name] > 0 && got[fresh.pod.Name] > 0 {
				break
			}
			if round == 5 {
				t.Fatalf("after scaling up: got %v in the fifth round of 40, want %s and %s", got, v1[0].pod.Name, fresh.pod.Name)
			}
			time.Sleep(time.Second)
		}
		// Kill v1[0] between two requests; its endpoint stays Ready in
		// the slice (no kubelet has noticed), so the sidecars still pick
		// it, fail to connect and retry on the other (Istio's default
		// retry policy: connect-failure, previous hosts skipped).
		const retries = "cluster.outbound|9080|v1|reviews.bookinfo.svc.cluster.local.upstream_rq_retry"
		retriesBefore := k.stat(t, sleep, retries)
		got := map[string]int{}
		for i := range 60 {
			if i == 20 {
				v1[0].kill()
			}
			got[m.reviewsPod(anon)]++
		}
		if got[fresh.pod.Name] < 40 || got[v1[0].pod.Name] > 20 {
			t.Fatalf("got %v, want every request after the kill served by %s", got, fresh.pod.Name)
		}
		// The dead replica was picked and the request retried: the client
		// sidecar's retries prove it was not luck.
		if n := k.stat(t, sleep, retries) - retriesBefore; n == 0 {
			t.Errorf("no retry counted by the client sidecar (%s): the killed replica was never picked", retries)
		} else {
			t.Logf("%d requests retried on the live replica after a connect failure", n)
		}
		// The kubelet notices: the dead replica's pod and endpoint go.
		zero := int64(0)
		if err := c.Client.CoreV1().Pods("bookinfo").Delete(ctx, v1[0].pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		before = m.pushVersion()
		k.setEndpoint(t, v1[0].pod, nil)
		waitConverged(t, monitor, len(k.pods)-2, before)
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Run("killing one of two mastd replicas loses no request", func(t *testing.T) {
		testMastdFailover(t, failover{top: top, k: k, m: m, client: anon, first: mastdA, mastdBin: mastdBin, dir: dir, webhook: webhookB,
			meshConfig: meshConfig, reviews: tmpl["reviews-v3"]})
	})
}

// kubeMesh drives traffic from the client pod and applies configuration.
type kubeMesh struct {
	t       *testing.T
	monitor string
	cl      *install.Client
	client  *http.Client
}

// apply server-side applies Istio routing files as custom resources in
// bookinfo and waits until every proxy acknowledged the resulting push.
func (m *kubeMesh) apply(files ...string) {
	m.t.Helper()
	before := m.pushVersion()
	var objs []install.Object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			m.t.Skipf("Istio's Bookinfo corpus is absent: %v", err)
		}
		objs = append(objs, yamlObjects(m.t, b, "bookinfo")...)
	}
	if err := m.cl.Apply(context.Background(), objs, false, io.Discard); err != nil {
		m.t.Fatal(err)
	}
	waitConverged(m.t, m.monitor, 0, before)
	// The objects reach mastd as separate watch events, which may fall
	// into separate pushes: the first push's acknowledgement does not
	// mean the last object is in force. Wait until no newer push follows
	// for a while (many debounce windows; the API server's watch and
	// mastd are on this machine).
	for {
		v := m.pushVersion()
		time.Sleep(500 * time.Millisecond)
		if m.pushVersion() == v {
			break
		}
		waitConverged(m.t, m.monitor, 0, v)
	}
}

func (m *kubeMesh) pushVersion() string {
	m.t.Helper()
	status, err := localmesh.Syncz(context.Background(), "http://"+m.monitor)
	if err != nil {
		m.t.Fatal(err)
	}
	newest := ""
	for _, p := range status {
		for _, ty := range p.Types {
			newest = max(newest, ty.VersionSent)
		}
	}
	return newest
}

var instanceRE = regexp.MustCompile(`reviews-v[123]`)

func (m *kubeMesh) page(client *http.Client) string {
	m.t.Helper()
	resp, err := client.Get("http://productpage:9080/productpage")
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		m.t.Fatalf("GET /productpage: %s\n%s", resp.Status, b)
	}
	return string(b)
}

func (m *kubeMesh) versions(client *http.Client, n int) map[string]int {
	m.t.Helper()
	got := map[string]int{}
	for range n {
		got[instanceRE.FindString(m.page(client))]++
	}
	return got
}

var podnameRE = regexp.MustCompile(`"podname":\s*"([^"]+)"`)

// reviewsPod calls reviews from the client pod and returns the pod that answered.
func (m *kubeMesh) reviewsPod(client *http.Client) string {
	m.t.Helper()
	resp, err := client.Get("http://reviews:9080/reviews/0")
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		m.t.Fatalf("GET reviews: %s\n%s", resp.Status, b)
	}
	sm := podnameRE.FindStringSubmatch(string(b))
	if sm == nil {
		m.t.Fatalf("reviews answered no podname: %s", b)
	}
	return sm[1]
}

func (m *kubeMesh) login(c *http.Client, user string) *http.Client {
	m.t.Helper()
	c.Jar, _ = cookiejar.New(nil)
	resp, err := c.PostForm("http://productpage:9080/login", url.Values{"username": {user}, "passwd": {"x"}})
	if err != nil {
		m.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !strings.Contains(m.page(c), "Signed in as "+user) {
		m.t.Fatalf("login as %s did not take", user)
	}
	return c
}

// httpClient is a client whose connections start inside pod r's network
// namespace (so its capture rules send them through its sidecar), resolving
// names as the pod's DNS would.
func (k *kubelet) httpClient(r *podRun, jar http.CookieJar) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ips, ok := k.hosts[host]; ok {
				host = ips[0]
			}
			return dialIn(ctx, r.ns, network, net.JoinHostPort(host, port))
		},
	}}
}

// waitConverged waits until at least n proxies are connected (n 0: any),
// mastd pushed a version newer than before and every proxy acknowledged all
// it was sent.
func waitConverged(t *testing.T, monitor string, n int, before string) {
	t.Helper()
	eventually(t, time.Minute, "every proxy to acknowledge", func() error {
		status, err := localmesh.Syncz(context.Background(), "http://"+monitor)
		if err != nil {
			return err
		}
		if len(status) < n {
			return fmt.Errorf("%d proxies connected, want %d", len(status), n)
		}
		newer := before == ""
		for _, p := range status {
			if !localmesh.Synced(p) {
				return fmt.Errorf("proxy %s not synced: %+v", p.ID, p.Types)
			}
			for _, ty := range p.Types {
				newer = newer || ty.VersionSent > before
			}
		}
		if !newer {
			return fmt.Errorf("no push newer than %q yet", before)
		}
		return nil
	})
}

// within checks each version's share of n pages against the weights, with
// five binomial standard deviations of tolerance (as TestLocalMeshBookinfo).
func within(t *testing.T, got map[string]int, n int, want map[string]float64) {
	t.Helper()
	for v, frac := range want {
		f := float64(got[v]) / float64(n)
		tol := max(0.02, 5*math.Sqrt(frac*(1-frac)/float64(n)))
		if math.Abs(f-frac) > tol {
			t.Fatalf("over %d pages: got %v; %s fraction %.3f, want %.2f ± %.3f", n, got, v, f, frac, tol)
		}
	}
}

func scale(t *testing.T, c *kubetest.Cluster, deploy string, n int32) {
	t.Helper()
	ctx := context.Background()
	d := c.Client.AppsV1().Deployments("bookinfo")
	if _, err := d.UpdateScale(ctx, deploy, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: deploy, Namespace: "bookinfo"},
		Spec: autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scaling %s to %d: %v", deploy, n, err)
	}
	var got *appsv1.Deployment
	got, err := d.Get(ctx, deploy, metav1.GetOptions{})
	if err != nil || *got.Spec.Replicas != n {
		t.Fatalf("%s after scaling to %d: %v %v", deploy, n, got, err)
	}
}

// yamlObjects decodes a multi-document YAML file into objects in namespace
// ns (unless they set their own or are cluster-scoped kinds without one).
func yamlObjects(t testing.TB, b []byte, ns string) []install.Object {
	t.Helper()
	var out []install.Object
	for _, doc := range strings.Split(string(b), "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetNamespace() == "" {
			u.SetNamespace(ns)
		}
		out = append(out, install.Object{Unstructured: u, Source: "test"})
	}
	return out
}

// buildMast builds mastd and mast-proxy into dir (readable by the proxy's user).
func buildMast(t *testing.T, dir string) (mastd, proxy string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/mast-mesh/mast/cmd/mastd", "github.com/mast-mesh/mast/cmd/mast-proxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "mastd"), filepath.Join(dir, "mast-proxy")
}

// mastdProc is a running mastd.
type mastdProc struct {
	monitor string // its monitoring address (/debug/syncz)
	kill    func() // SIGKILL, then wait for it
}

// startMastd runs mastd against the cluster.
func startMastd(t *testing.T, bin, kubeconfig, caDir, secureXDS, webhookAddr string, extra ...string) *mastdProc {
	t.Helper()
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--registry", "kubernetes", "--kubeconfig", kubeconfig, "--kube-namespace", "istio-system",
		"--ca-dir", caDir, "--secure-xds-addr", secureXDS, "--xds-addr", "127.0.0.1:0", "--monitoring-addr", "127.0.0.1:0",
		"--webhook-addr", webhookAddr, "--webhook-validating-configs", "mast-validator-istio-system",
		"--webhook-injector-configs", "mast-sidecar-injector-istio-system", "--debounce-after", "10ms", "--kube-lease-duration", "2s",
		"--components", "pilot,galley")
	cmd.Args = append(cmd.Args, extra...)
	out := &lockedWriter{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	monitor := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`mastd serving.* monitoring=(\S+)`)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				monitor <- m[1]
			}
		}
	}()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-done
			_ = cmd.Wait()
		})
	}
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			t.Logf("--- mastd %s output:\n%s", secureXDS, out)
		}
	})
	select {
	case addr := <-monitor:
		return &mastdProc{monitor: addr, kill: kill}
	case <-done:
		t.Fatalf("mastd exited:\n%s", out)
	case <-time.After(2 * time.Minute):
		t.Fatalf("mastd did not start:\n%s", out)
	}
	return nil
}

// serviceProxy plays kube-proxy for a Service with the given backends: it
// listens on a free loopback port and sends each connection to the first
// backend that accepts it.
func serviceProxy(t *testing.T, backends ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				for _, b := range backends {
					out, err := net.DialTimeout("tcp", b, 5*time.Second)
					if err != nil {
						continue
					}
					defer out.Close()
					go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
					_, _ = io.Copy(in, out)
					return
				}
			}()
		}
	}()
	return l.Addr().String()
}

func freePort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(testnet.FreePort(t))
}
