package ctl

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// proxyContainer is the injected sidecar's container name (Istio's).
const proxyContainer = "istio-proxy"

// podLogTail bounds how many of each sidecar's newest log lines `mast why
// --request-id` reads on Kubernetes.
const podLogTail = 100000

// kubeLogs reads the sidecars' access logs on Kubernetes the way a user
// would with `kubectl logs POD -c istio-proxy`: through the API server's
// pods/log subresource (the kubelet keeps each container's stdout, where
// MeshConfig accessLogFile /dev/stdout sends the access log). It needs only
// the get/list rights on pods and pods/log that kubectl logs needs, not a
// connection to mastd or to each proxy's loopback-only admin port.
type kubeLogs struct {
	client    kubernetes.Interface
	namespace string        // "" for every namespace
	since     time.Duration // 0: the newest podLogTail lines
}

// proxies returns every pod with an injected sidecar.
func (k *kubeLogs) proxies(ctx context.Context) ([]proxy, []corev1.Pod, error) {
	pods, err := k.client.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []proxy
	var keep []corev1.Pod
	for _, p := range pods.Items {
		if px, ok := podProxy(&p); ok {
			out = append(out, px)
			keep = append(keep, p)
		}
	}
	return out, keep, nil
}

// read returns the access-log entries keep accepts from every sidecar's
// log, oldest first, and the pods whose logs could not be read.
func (k *kubeLogs) read(ctx context.Context, keep func(*accesslog.Entry) bool) ([]hopEntry, []string, error) {
	proxies, pods, err := k.proxies(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts := &corev1.PodLogOptions{Container: proxyContainer}
	if k.since > 0 {
		secs := int64(k.since/time.Second) + 1
		opts.SinceSeconds = &secs
	} else {
		opts.TailLines = ptrTo(int64(podLogTail))
	}
	var mu sync.Mutex
	var out []hopEntry
	var failed []string
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			entries, err := k.readPod(ctx, &pods[i], proxies[i], opts, keep)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s/%s: %v", pods[i].Namespace, pods[i].Name, err))
			}
			out = append(out, entries...)
		}()
	}
	wg.Wait()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	sort.Strings(failed)
	return out, failed, nil
}

func (k *kubeLogs) readPod(ctx context.Context, pod *corev1.Pod, px proxy, opts *corev1.PodLogOptions, keep func(*accesslog.Entry) bool) ([]hopEntry, error) {
	rc, err := k.client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return scanHops(nil, rc, px, keep)
}

func ptrTo[T any](v T) *T { return &v }

// kubeNote names the pods whose logs could not be read, so a missing hop
// is not taken for a hop that logged nothing.
func kubeNote(failed []string) string {
	if len(failed) == 0 {
		return ""
	}
	return "could not read the sidecar log of " + strings.Join(failed, "; ")
}
