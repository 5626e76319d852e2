package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// sidecarAdminPort is the injected proxy's admin port inside its pod. It
// listens on the pod's loopback only, so the CLI reaches it the way
// istioctl proxy-config does: through the API server's pods/portforward.
const sidecarAdminPort = 15000

// podProxy is the proxy a pod with an injected sidecar runs, and whether it
// has one. Its ID is the node ID the sidecar (or, with `proxy router`, a
// gateway) sends.
func podProxy(p *corev1.Pod) (proxy, bool) {
	i := slices.IndexFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == proxyContainer })
	if i < 0 {
		return proxy{}, false
	}
	kind := "sidecar"
	if slices.Contains(p.Spec.Containers[i].Args, "router") {
		kind = "router"
	}
	return proxy{Name: p.Name, Labels: p.Labels,
		ID: kind + "~" + p.Status.PodIP + "~" + p.Name + "." + p.Namespace + "~" + p.Namespace + ".svc.cluster.local"}, true
}

// kubeNamespace is the namespace a proxy name without one is looked up in:
// --namespace, else the kubeconfig context's, else "default".
func (m *meshFlags) kubeNamespace() string {
	if m.namespace != "" {
		return m.namespace
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if m.kube.kubeconfig != "" {
		rules.ExplicitPath = m.kube.kubeconfig
	}
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: m.kube.kubecontext}).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// kubeClient returns the cluster's client configuration and clientset,
// loaded once per command (proxy-status PROXY reaches mastd and the proxy).
func (m *meshFlags) kubeClient() (*rest.Config, kubernetes.Interface, error) {
	if m.kubeRC == nil {
		rc, err := m.kube.restConfig()
		if err != nil {
			return nil, nil, err
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, nil, err
		}
		m.kubeRC, m.kubeCS = rc, client
	}
	return m.kubeRC, m.kubeCS, nil
}

// kubeProxy finds the pod NAME or NAME.NAMESPACE names and forwards a local
// loopback port to its sidecar's admin port through the API server, for as
// long as the command runs (m.close stops it).
func (m *meshFlags) kubeProxy(ctx context.Context, name string) (proxy, error) {
	rc, client, err := m.kubeClient()
	if err != nil {
		return proxy{}, err
	}
	podName, ns := name, m.kubeNamespace()
	if before, after, ok := strings.Cut(name, "."); ok && m.namespace == "" {
		podName, ns = before, after
	}
	pod, err := client.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return proxy{}, fmt.Errorf("no pod %s in namespace %s (name a pod as POD or POD.NAMESPACE, or pass -n)", podName, ns)
	}
	if err != nil {
		return proxy{}, fmt.Errorf("pod %s/%s: %w", ns, podName, err)
	}
	p, ok := podProxy(pod)
	if !ok {
		return proxy{}, fmt.Errorf("pod %s/%s has no %s container: it is not in the mesh", ns, podName, proxyContainer)
	}
	if pod.Status.Phase != corev1.PodRunning {
		return proxy{}, fmt.Errorf("pod %s/%s is %s, not Running", ns, podName, pod.Status.Phase)
	}
	local, err := m.forward(rc, client, pod, sidecarAdminPort)
	if err != nil {
		return proxy{}, fmt.Errorf("forwarding to %s/%s's admin port %d: %w", ns, podName, sidecarAdminPort, err)
	}
	p.Admin = local
	return p, nil
}

// mastdMonitoringPort is mastd's monitoring port (/debug/syncz, /ui/) in its
// pod when the container does not name one http-monitoring.
const mastdMonitoringPort = 15014

// kubeMastd forwards a local loopback port to a running mastd pod's
// monitoring port (in --istioNamespace, labelled as Mast's chart labels
// it) and returns its base URL, as istioctl reaches istiod.
func (m *meshFlags) kubeMastd(ctx context.Context) (string, error) {
	rc, client, err := m.kubeClient()
	if err != nil {
		return "", err
	}
	pods, err := client.CoreV1().Pods(m.istioNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=mastd"})
	if err != nil {
		return "", fmt.Errorf("listing mastd's pods in %s: %w", m.istioNS, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		port := mastdMonitoringPort
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == "http-monitoring" {
					port = int(p.ContainerPort)
				}
			}
		}
		local, err := m.forward(rc, client, pod, port)
		if err != nil {
			return "", fmt.Errorf("forwarding to %s/%s's monitoring port %d: %w", pod.Namespace, pod.Name, port, err)
		}
		return "http://" + local, nil
	}
	return "", fmt.Errorf("no running mastd pod (app.kubernetes.io/name=mastd) in namespace %s (is Mast installed there? --istioNamespace names another)", m.istioNS)
}

// forward starts a port-forward from a free loopback port to the pod's
// port, as `kubectl port-forward` does (WebSockets first, SPDY when the API
// server does not upgrade to them), and returns the local HOST:PORT.
func (m *meshFlags) forward(rc *rest.Config, client kubernetes.Interface, pod *corev1.Pod, port int) (string, error) {
	defer m.step("Forwarding a local port to %s/%s's port %d through the API server", pod.Namespace, pod.Name, port)()
	url := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(rc)
	if err != nil {
		return "", err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	ws, err := portforward.NewSPDYOverWebsocketDialer(url, rc)
	if err != nil {
		return "", err
	}
	dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var errOut strings.Builder
	fw, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, ready, io.Discard, &errOut)
	if err != nil {
		cancel()
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New("the port-forward ended before it was ready")
		}
		return "", err
	}
	m.stops = append(m.stops, func() { cancel(); <-done })
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		return "", fmt.Errorf("the port-forward has no local port: %v", err)
	}
	return "127.0.0.1:" + strconv.Itoa(int(ports[0].Local)), nil
}

// close stops the port-forwards the command started.
func (m *meshFlags) close() {
	for _, stop := range m.stops {
		stop()
	}
	m.stops = nil
}
