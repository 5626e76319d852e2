package ctl

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// meshFlags are the flags that say which mesh a command inspects: the local
// mesh of --state-dir, a bare mastd (--debug-address) and proxy admin
// (--admin-address), or, for commands that read a proxy, the pods of a
// Kubernetes cluster (--kubeconfig, --context, -n).
type meshFlags struct {
	stateDir     string
	debugAddress string
	xdsAddress   string
	adminAddress string
	kube         kubeFlags
	namespace    string
	stops        []func()             // port-forwards to stop when the command ends
	kubeRC       *rest.Config         // the cluster, once a command reached it (kubeClient)
	kubeCS       kubernetes.Interface // its clientset
	istioNS      string               // mastd's namespace on Kubernetes
	cmd          *command             // the command, for its progress messages
}

// step announces a slow step of the command on stderr (see progress).
func (m *meshFlags) step(format string, args ...any) (done func()) {
	if m.cmd == nil || m.cmd.progress == nil {
		return func() {}
	}
	return m.cmd.progress.step(format, args...)
}

func (m *meshFlags) register(c *command, proxy bool) {
	m.cmd = c
	c.StringVar(&m.stateDir, "state-dir", DefaultStateDir(), "state directory of the running local mesh")
	c.StringVar(&m.debugAddress, "debug-address", "", "mastd's monitoring address (HOST:PORT, serving /debug/syncz) instead of the local mesh's")
	c.StringVar(&m.xdsAddress, "xds-address", "", "mastd's xDS address; its monitoring port is assumed to be 15014 on the same host unless --debug-address says")
	m.kube.register(c)
	c.StringVar(&m.istioNS, "istioNamespace", "istio-system", "on Kubernetes: mastd's namespace")
	if proxy {
		c.StringVar(&m.adminAddress, "admin-address", "", "the proxy's admin address (HOST:PORT) instead of looking the proxy up in the local mesh")
		c.StringVar(&m.namespace, "n", "", "on Kubernetes: the proxy's pod namespace (default: the kubeconfig context's, else default)")
	}
}

// debugURL returns mastd's monitoring base URL: --debug-address,
// --xds-address's host, a mastd pod's monitoring port forwarded through the
// API server on Kubernetes (with --kubeconfig or --context, or when no local
// mesh runs and a kubeconfig exists; m.close stops it), or the local mesh's.
func (m *meshFlags) debugURL() (string, error) {
	if m.debugAddress != "" {
		return "http://" + m.debugAddress, nil
	}
	if m.xdsAddress != "" {
		host, _, _ := strings.Cut(m.xdsAddress, ":")
		return "http://" + host + ":15014", nil
	}
	if m.kube.named() {
		return m.kubeMastd(context.Background())
	}
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		if m.kube.exists() {
			return m.kubeMastd(context.Background())
		}
		return "", fmt.Errorf("%w (or name a mastd with --debug-address, or a cluster with --kubeconfig)", err)
	}
	return "http://" + st.MonitoringAddr, nil
}

// proxy is one proxy of the mesh as the CLI addresses it.
type proxy struct {
	Name  string // short name: productpage-v1, istio-ingressgateway
	ID    string // xDS node ID
	Admin string // admin HOST:PORT
	// Labels are the workload's labels when the platform says them (a
	// Kubernetes pod's); nil otherwise.
	Labels map[string]string
}

// findProxy resolves a proxy by short name, "name.namespace" or node ID in
// the local mesh, or by pod name on Kubernetes: with --kubeconfig or
// --context, or when no local mesh runs and a kubeconfig exists. A
// Kubernetes proxy's admin is a port-forward that m.close stops.
func (m *meshFlags) findProxy(name string) (proxy, error) {
	if m.adminAddress != "" {
		return proxy{Name: name, Admin: m.adminAddress}, nil
	}
	if m.kube.named() {
		return m.kubeProxy(context.Background(), name)
	}
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		if m.kube.exists() {
			return m.kubeProxy(context.Background(), name)
		}
		return proxy{}, fmt.Errorf("%w (or name a proxy's admin with --admin-address, or a cluster with --kubeconfig)", err)
	}
	var names []string
	for _, p := range st.Procs {
		if p.Admin == "" {
			continue
		}
		short := strings.TrimSuffix(p.Name, "-sidecar")
		names = append(names, short)
		parts := strings.Split(p.ProxyID, "~")
		podNS := ""
		if len(parts) == 4 {
			podNS = parts[2]
		}
		if name == short || name == p.Name || name == p.ProxyID || (podNS != "" && name == podNS) {
			return proxy{Name: short, ID: p.ProxyID, Admin: p.Admin}, nil
		}
	}
	return proxy{}, fmt.Errorf("no proxy %q in the local mesh; its proxies are: %s", name, strings.Join(names, ", "))
}

// localProxies lists the local mesh's proxies.
func (m *meshFlags) localProxies() []proxy {
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		return nil
	}
	var out []proxy
	for _, p := range st.Procs {
		if p.Admin != "" {
			out = append(out, proxy{Name: strings.TrimSuffix(p.Name, "-sidecar"), ID: p.ProxyID, Admin: p.Admin})
		}
	}
	return out
}

// httpGet fetches url within a few seconds.
func httpGet(url string) ([]byte, error) { return httpDo(http.MethodGet, url) }

// httpPost posts an empty body to url (admin endpoints that change state).
func httpPost(url string) ([]byte, error) { return httpDo(http.MethodPost, url) }

func httpDo(method, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
