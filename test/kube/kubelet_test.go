package kube_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/test/netns"
)

// No kubelet, container runtime or controller manager runs here, so this
// file plays them, through the real API server: the ReplicaSet controller
// (pods created from a Deployment's template, which the API server sends to
// Mast's injection webhook), the kubelet (each pod a network namespace on a
// bridge, its injected containers run as processes in it, its status and
// projected volumes written as the kubelet writes them) and the EndpointSlice
// controller (one slice per Service, with ready/terminating conditions).
// Container images cannot run here: the test maps each image to a local
// program (mast-proxy for Mast's proxy image, this test binary running the
// Bookinfo stand-in for Istio's Bookinfo images).

// nodeName is the node every pod is bound to.
const nodeName = "kubelet-played-by-the-test"

// podNetwork is the node: a bridge in a namespace of its own that every
// pod's eth0 is plugged into, and a veth from the host's namespace (where
// the API server, mastd and the test run) onto the same bridge. Pods reach
// mastd at hostIP; their default route points there too, so that
// connections to cluster IPs get as far as the capture rules.
type podNetwork struct {
	node   *netns.Namespace
	prefix string // "10.79.N."
	hostIP string
	// secondHostIP is another address of the host on the same link, for a
	// second mastd replica.
	secondHostIP string
	next         int
}

func newPodNetwork(t *testing.T) *podNetwork {
	t.Helper()
	node := netns.NewNamespace(t, "node")
	addrs, _ := exec.Command("ip", "-4", "addr").Output()
	var n podNetwork
	for {
		var b [2]byte
		_, _ = rand.Read(b[:])
		n.prefix = fmt.Sprintf("10.79.%d.", b[0])
		if !strings.Contains(string(addrs), n.prefix) {
			break
		}
	}
	n.node, n.hostIP, n.secondHostIP = node, n.prefix+"1", n.prefix+"254"
	var b [3]byte
	_, _ = rand.Read(b[:])
	hostIf := "mk" + hex.EncodeToString(b[:])
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("link", "add", hostIf, "type", "veth", "peer", "name", "up0", "netns", node.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	run("addr", "add", n.hostIP+"/24", "dev", hostIf)
	run("addr", "add", n.secondHostIP+"/24", "dev", hostIf)
	run("link", "set", hostIf, "up")
	for _, args := range [][]string{{"link", "add", "br0", "type", "bridge"}, {"link", "set", "br0", "up"},
		{"link", "set", "up0", "master", "br0"}, {"link", "set", "up0", "up"}} {
		if out, err := node.Exec(context.Background(), "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	return &n
}

// add plugs a new pod namespace into the bridge and returns it with its IP.
func (n *podNetwork) add(t *testing.T) (*netns.Namespace, string) {
	t.Helper()
	ns := netns.NewNamespace(t, "pod")
	n.next++
	ip := n.prefix + strconv.Itoa(n.next+1)
	peer := fmt.Sprintf("p%d", n.next)
	if out, err := exec.Command("ip", "link", "add", "eth0", "netns", ns.Name, "type", "veth", "peer", "name", peer, "netns", n.node.Name).CombinedOutput(); err != nil {
		t.Fatalf("pod veth: %v: %s", err, out)
	}
	ctx := context.Background()
	for _, args := range [][]string{{"addr", "add", ip + "/24", "dev", "eth0"}, {"link", "set", "eth0", "up"}, {"route", "add", "default", "via", n.hostIP}} {
		if out, err := ns.Exec(ctx, "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	for _, args := range [][]string{{"link", "set", peer, "master", "br0"}, {"link", "set", peer, "up"}} {
		if out, err := n.node.Exec(ctx, "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	return ns, ip
}

// kubelet runs pods and keeps their Services' EndpointSlices.
type kubelet struct {
	c                *kubetest.Cluster
	net              *podNetwork
	dir              string // shared directory for pod volumes
	proxyBin, appBin string
	// hosts is the DNS the pods see (written as each pod's /etc/hosts,
	// which `ip netns exec` mounts): Service names to cluster IPs, and
	// istiod's name to the host addresses where mastd replicas run.
	hosts map[string][]string

	mu    sync.Mutex
	eps   map[string]map[string]endpoint // service -> pod -> endpoint
	pods  map[string]*podRun
	count int
	// hostPods are pods on the node's network (hostNetwork: true), by
	// NAMESPACE/NAME: mastd's, played by the mastd the test runs on the host.
	hostPods map[string]bool
}

type endpoint struct {
	ip                 string
	uid                types.UID
	ready, terminating bool
}

// podRun is a running pod: its namespace and container processes.
type podRun struct {
	pod   *corev1.Pod
	ns    *netns.Namespace
	ip    string
	procs []*containerProc
}

type containerProc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedWriter
	done chan struct{}
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// createPod creates a pod from a Deployment's template as the ReplicaSet
// controller does (pod-template-hash label, the ReplicaSet as controlling
// owner); the API server sends it through the injection webhook.
func (k *kubelet) createPod(t *testing.T, ns, deploy string, tmpl corev1.PodTemplateSpec) *corev1.Pod {
	t.Helper()
	const hash = "7d4b9c5f6"
	k.mu.Lock()
	k.count++
	n := k.count
	k.mu.Unlock()
	pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	pod.Name = fmt.Sprintf("%s-%s-%05d", deploy, hash, n)
	pod.Namespace = ns
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels["pod-template-hash"] = hash
	// Bound to the one node at creation, as the scheduler would bind it:
	// the API server deletes a bound pod gracefully (Terminating until
	// the kubelet confirms), an unbound one at once.
	pod.Spec.NodeName = nodeName
	controller := true
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: deploy + "-" + hash,
		UID: types.UID(fmt.Sprintf("0f4e5c6a-1b2c-4d3e-8f90-%012d", len(deploy))), Controller: &controller}}
	got, err := k.c.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	return got
}

// run starts pod as the kubelet does: its network, status, volumes, init
// containers to completion, then its containers; once its proxy is ready
// it is marked Ready and enters its Services' EndpointSlices.
func (k *kubelet) run(t *testing.T, pod *corev1.Pod) *podRun {
	t.Helper()
	ns, ip := k.net.add(t)
	r := &podRun{pod: pod, ns: ns, ip: ip}
	k.mu.Lock()
	k.pods[pod.Name] = r
	k.mu.Unlock()
	k.writeEtc(t, ns, ip, pod.Name)

	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: k.net.hostIP,
		HostIPs: []corev1.HostIP{{IP: k.net.hostIP}}, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionFalse}}}
	k.updateStatus(t, pod)

	vols := k.volumes(t, pod)
	for _, c := range pod.Spec.InitContainers {
		p := k.start(t, r, c, vols)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			t.Fatalf("init container %s of %s did not finish", c.Name, pod.Name)
		}
		if !p.cmd.ProcessState.Success() {
			t.Fatalf("init container %s of %s: %v\n%s", c.Name, pod.Name, p.cmd.ProcessState, p.out)
		}
	}
	for _, c := range pod.Spec.Containers {
		if p := k.start(t, r, c, vols); p != nil {
			r.procs = append(r.procs, p)
		}
	}
	// Readiness: the sidecar's admin /ready, from inside the pod.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, ns, network, addr)
	}}}
	eventually(t, time.Minute, pod.Name+" ready", func() error {
		for _, p := range r.procs {
			select {
			case <-p.done:
				return fmt.Errorf("container %s exited: %v\n%s", p.name, p.cmd.ProcessState, p.out)
			default:
			}
		}
		resp, err := hc.Get("http://127.0.0.1:15000/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/ready: %s", resp.Status)
		}
		return nil
	})
	pod.Status.Conditions[1].Status = corev1.ConditionTrue
	k.updateStatus(t, pod)
	k.setEndpoint(t, pod, &endpoint{ip: ip, uid: pod.UID, ready: true})
	return r
}

// writeEtc prepares a pod's directory and the files `ip netns exec` mounts
// over /etc in its namespace: hosts (the DNS the pod sees: Service names to
// cluster IPs, istiod to the host where mastd runs) and resolv.conf.
func (k *kubelet) writeEtc(t *testing.T, ns *netns.Namespace, ip, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(k.dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n" + ip + " " + name + "\n")
	for _, h := range slices.Sorted(maps.Keys(k.hosts)) {
		for _, ip := range k.hosts[h] {
			fmt.Fprintf(&hosts, "%s %s\n", ip, h)
		}
	}
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// No kube-dns either: names resolve from hosts, and any DNS query is
	// refused at once rather than sent towards the host's nameserver,
	// unreachable from the pod.
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (k *kubelet) updateStatus(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	got, err := k.c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("pod %s status: %v", pod.Name, err)
	}
	pod.ResourceVersion = got.ResourceVersion
}

// volumes writes the pod's volumes into directories, as the kubelet mounts
// them: emptyDir, configMap (waiting for it to exist, as a pod waits for
// istio-ca-root-cert) and projected service-account tokens (TokenRequest
// bound to the pod, with the volume's audience).
func (k *kubelet) volumes(t *testing.T, pod *corev1.Pod) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	writeCM := func(dir, name string) {
		var cm *corev1.ConfigMap
		eventually(t, time.Minute, "ConfigMap "+pod.Namespace+"/"+name, func() (err error) {
			cm, err = k.c.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
			return err
		})
		for key, v := range cm.Data {
			writeFile(t, filepath.Join(dir, key), v)
		}
	}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(k.dir, pod.Name, v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out[v.Name] = dir
		switch {
		case v.EmptyDir != nil:
			_ = os.Chmod(dir, 0o777)
		case v.ConfigMap != nil:
			writeCM(dir, v.ConfigMap.Name)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ServiceAccountToken != nil:
					tr, err := k.c.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
						Spec: authnv1.TokenRequestSpec{Audiences: []string{s.ServiceAccountToken.Audience}, ExpirationSeconds: s.ServiceAccountToken.ExpirationSeconds,
							BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
					}, metav1.CreateOptions{})
					if err != nil {
						t.Fatalf("token for pod %s: %v", pod.Name, err)
					}
					writeFile(t, filepath.Join(dir, s.ServiceAccountToken.Path), tr.Status.Token)
				case s.ConfigMap != nil:
					writeCM(dir, s.ConfigMap.Name)
				case s.DownwardAPI != nil:
					for _, it := range s.DownwardAPI.Items {
						switch {
						case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.namespace":
							writeFile(t, filepath.Join(dir, it.Path), pod.Namespace)
						case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.name":
							writeFile(t, filepath.Join(dir, it.Path), pod.Name)
						default:
							t.Fatalf("pod %s volume %s: downward API item %+v not played by this kubelet", pod.Name, v.Name, it)
						}
					}
				default:
					t.Fatalf("pod %s volume %s: projected source %+v not played by this kubelet", pod.Name, v.Name, s)
				}
			}
		default:
			t.Fatalf("pod %s volume %s: kind not played by this kubelet", pod.Name, v.Name)
		}
	}
	return out
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

var bookinfoImage = regexp.MustCompile(`examples-bookinfo-(productpage|details|reviews|ratings)-(v[0-9]+)`)

// program maps a container image to the local program standing in for it.
// "" means the container runs nothing here (the test itself is the client).
func (k *kubelet) program(pod *corev1.Pod, c corev1.Container) (bin string, args, env []string) {
	switch m := bookinfoImage.FindStringSubmatch(c.Image); {
	case strings.Contains(c.Image, "mast-proxy"):
		return k.proxyBin, nil, nil
	case m != nil:
		port := "9080"
		if len(c.Ports) > 0 {
			port = strconv.Itoa(int(c.Ports[0].ContainerPort))
		}
		return k.appBin, []string{"--service", m[1], "--version", m[2], "--addr", ":" + port, "--instance", pod.Name, "--log-level", "warn"},
			[]string{bookinfoAppEnv + "=1"}
	}
	return "", nil, nil
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// start runs one container in the pod's namespace (through `ip netns exec`,
// which mounts the pod's /etc/hosts), as its securityContext's user, with
// its env resolved (fieldRefs, $(VAR) references) and its volume mount
// paths replaced by the directories the volumes were written to.
func (k *kubelet) start(t *testing.T, r *podRun, c corev1.Container, vols map[string]string) *containerProc {
	t.Helper()
	bin, args, extraEnv := k.program(r.pod, c)
	if bin == "" {
		return nil
	}
	if len(c.Command) > 0 {
		t.Fatalf("container %s: a command replacing the image's entrypoint is not played by this kubelet", c.Name)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = vols[m.Name]
	}
	paths := slices.SortedFunc(maps.Keys(mounts), func(a, b string) int { return len(b) - len(a) })
	rewrite := func(s string) string {
		for _, p := range paths {
			if s == p || strings.HasPrefix(s, p+"/") {
				return mounts[p] + strings.TrimPrefix(s, p)
			}
		}
		return s
	}
	envMap := map[string]string{"HOSTNAME": r.pod.Name}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + r.pod.Name}
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			if f.FieldRef == nil {
				t.Fatalf("container %s env %s: only fieldRef is played by this kubelet", c.Name, e.Name)
			}
			switch f.FieldRef.FieldPath {
			case "metadata.name":
				v = r.pod.Name
			case "metadata.namespace":
				v = r.pod.Namespace
			case "status.podIP":
				v = r.ip
			case "status.hostIP":
				v = k.net.hostIP
			case "spec.serviceAccountName":
				v = r.pod.Spec.ServiceAccountName
			default:
				t.Fatalf("container %s env %s: fieldRef %s not played by this kubelet", c.Name, e.Name, f.FieldRef.FieldPath)
			}
		} else {
			v = varRef.ReplaceAllStringFunc(v, func(m string) string { return envMap[m[2:len(m)-1]] })
		}
		envMap[e.Name] = v
		env = append(env, e.Name+"="+rewrite(v))
	}
	for _, a := range c.Args {
		a = varRef.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := envMap[m[2:len(m)-1]]; ok {
				return v
			}
			return m
		})
		args = append(args, rewrite(a))
	}
	argv := []string{"netns", "exec", r.ns.Name}
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser != 0 {
		gid := *sc.RunAsUser
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
		argv = append(argv, "setpriv", fmt.Sprintf("--reuid=%d", *sc.RunAsUser), fmt.Sprintf("--regid=%d", gid), "--clear-groups")
	}
	argv = append(argv, bin)
	argv = append(argv, args...)
	p := &containerProc{name: r.pod.Name + "/" + c.Name, cmd: exec.Command("ip", argv...), out: &lockedWriter{}, done: make(chan struct{})}
	p.cmd.Env = append(env, extraEnv...)
	p.cmd.Dir = filepath.Join(k.dir, r.pod.Name)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", p.name, p.out)
		}
	})
	return p
}

// serveAPI plays the kubelet's API that the API server proxies to: its log
// API for the pods/log subresource (kubectl logs): GET
// /containerLogs/NS/POD/NAME answers the container's output (stdout and
// stderr as they came; the query's tailLines, sinceSeconds and timestamps
// are not played); and its port-forward API for pods/portforward (kubectl
// port-forward), see portForward. It registers the node with the address and
// port the API server dials; with no --kubelet-certificate-authority the API
// server does not verify the kubelet's serving certificate.
func (k *kubelet) serveAPI(t *testing.T) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		run := k.pods[r.PathValue("pod")]
		k.mu.Unlock()
		if run != nil && run.pod.Namespace == r.PathValue("ns") {
			for _, p := range run.procs {
				if p.name == r.PathValue("pod")+"/"+r.PathValue("container") {
					_, _ = io.WriteString(w, p.out.String())
					return
				}
			}
		}
		http.NotFound(w, r)
	})
	mux.HandleFunc("/portForward/{ns}/{pod}", func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		run, host := k.pods[r.PathValue("pod")], k.hostPods[r.PathValue("ns")+"/"+r.PathValue("pod")]
		k.mu.Unlock()
		switch {
		case host:
			portForward(t, w, r, nil)
		case run != nil && run.pod.Namespace == r.PathValue("ns"):
			portForward(t, w, r, run.ns)
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	l, err := net.Listen("tcp", net.JoinHostPort(k.net.hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ctx := context.Background()
	node, err := k.c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: k.net.hostIP}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(l.Addr().(*net.TCPAddr).Port)
	if _, err := k.c.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// kill ends every container of the pod at once (SIGKILL), as a crash or a
// node failure would: the kubelet has not noticed yet, so the pod stays
// Ready and in its EndpointSlices.
func (r *podRun) kill() {
	for _, p := range r.procs {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// setEndpoint records pod's endpoint (nil removes it) in every Service
// selecting it, and writes those Services' EndpointSlices.
func (k *kubelet) setEndpoint(t *testing.T, pod *corev1.Pod, ep *endpoint) {
	t.Helper()
	ctx := context.Background()
	svcs, err := k.c.Client.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		k.mu.Lock()
		m := k.eps[svc.Namespace+"/"+svc.Name]
		if m == nil {
			m = map[string]endpoint{}
			k.eps[svc.Namespace+"/"+svc.Name] = m
		}
		if ep == nil {
			delete(m, pod.Name)
		} else {
			m[pod.Name] = *ep
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: svc.Name + "-kt7x2", Namespace: svc.Namespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{},
		}
		for _, p := range svc.Spec.Ports {
			port := p.TargetPort.IntVal
			if port == 0 {
				port = p.Port
			}
			slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: &p.Name, Port: &port, Protocol: &p.Protocol, AppProtocol: p.AppProtocol})
		}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			e := m[name]
			ready, serving, terminating := e.ready, e.ready || e.terminating, e.terminating
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: svc.Namespace, Name: name, UID: e.uid}})
		}
		k.mu.Unlock()
		api := k.c.Client.DiscoveryV1().EndpointSlices(svc.Namespace)
		cur, err := api.Get(ctx, slice.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = api.Create(ctx, slice, metav1.CreateOptions{})
		case err == nil:
			slice.ResourceVersion = cur.ResourceVersion
			_, err = api.Update(ctx, slice, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("EndpointSlice %s: %v", slice.Name, err)
		}
	}
}

// stat reads one counter from pod r's sidecar admin /stats (inside the pod).
func (k *kubelet) stat(t *testing.T, r *podRun, name string) int {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, r.ns, network, addr)
	}}}
	resp, err := hc.Get("http://127.0.0.1:15000/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// dialIn connects from inside ns on a thread that enters ns and comes back
// afterwards. netns.Namespace.Dial discards its thread instead, and a
// thread's exit would fire the Pdeathsig of processes it once started (the
// API server and etcd of kubetest).
func dialIn(ctx context.Context, ns *netns.Namespace, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer home.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering %s: %w", ns.Name, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
		// Stuck in ns: keep the thread locked so that it dies with this
		// goroutine rather than serve another.
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("leaving %s: %w", ns.Name, serr)
	}
	runtime.UnlockOSThread()
	return c, err
}

// eventually polls f until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
