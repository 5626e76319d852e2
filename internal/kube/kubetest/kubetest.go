// Package kubetest starts a real etcd and a real kube-apiserver for tests and
// returns a client configuration with cluster-admin rights.
//
// etcd comes from Debian (apt-get install etcd-server); kube-apiserver is built
// from the Go module proxy by scripts/build-kube-apiserver.sh into
// ~/.cache/mast (or $MAST_CACHE). When either is missing, Start skips the test
// and names how to get it. No kubelet, scheduler or controller-manager runs:
// tests create the objects those would (Pods, EndpointSlices, default service
// accounts) themselves.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mast-mesh/mast/internal/testnet"
)

// APIServerVersion is the kube-apiserver release the build script produces.
const APIServerVersion = "v1.32.13"

// BuildScript builds and caches kube-apiserver; its last output line is the binary's path.
const BuildScript = "scripts/build-kube-apiserver.sh"

// Options tune Start. The zero value is what most tests want.
type Options struct {
	// ExtraArgs are appended to kube-apiserver's command line (for example
	// "--enable-admission-plugins=..."); later flags win.
	ExtraArgs []string
	// Output, when set, receives both processes' stdout and stderr
	// (default: kept in a buffer printed with t.Log when the test fails).
	Output *os.File
}

// T is what Start needs of its caller: testing.TB, or a benchmark driver's
// own implementation (bench/controlplane starts istiod against a cluster).
type T interface {
	Helper()
	Skip(args ...any)
	TempDir() string
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Cluster is a running etcd and kube-apiserver. Everything is stopped and
// removed by the test's cleanup.
type Cluster struct {
	// Config authenticates as an admin (group system:masters) with a static token.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// URL is the API server's https URL on loopback.
	URL string
	// Token is the admin bearer token in Config.
	Token string
	// CAPEM is the PEM certificate of the CA that signed the API server's serving certificate.
	CAPEM []byte
	// Kubeconfig is the path of a kubeconfig file with the same credentials,
	// for programs (mastd --kubeconfig) and tools.
	Kubeconfig string
	// Dir is the cluster's scratch directory (certificates, keys, etcd data).
	Dir string
	// ServiceAccountIssuer is the issuer of service-account tokens
	// ("https://kubernetes.default.svc.cluster.local").
	ServiceAccountIssuer string
	// ServiceAccountKey is the private key the API server signs
	// service-account tokens with (PEM, PKCS#8 EC).
	ServiceAccountKey []byte
}

// APIServerPath returns the cached kube-apiserver binary, or an error that says
// how to build it. $KUBE_APISERVER overrides the location.
func APIServerPath() (string, error) {
	if p := os.Getenv("KUBE_APISERVER"); p != "" {
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(cache, "kube-apiserver-"+APIServerVersion)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kube-apiserver %s not found at %s: run %s (about 11 minutes of CPU, cached afterwards)", APIServerVersion, p, BuildScript)
	}
	return p, nil
}

// CacheDir is where heavy test binaries are built and kept: $MAST_CACHE,
// else ~/.cache/mast.
func CacheDir() (string, error) {
	if c := os.Getenv("MAST_CACHE"); c != "" {
		return c, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "mast"), nil
}

// EtcdPath returns the etcd binary, or an error that says how to install it.
func EtcdPath() (string, error) {
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", errors.New("etcd not found in PATH: apt-get install etcd-server (Debian's etcd 3.4)")
	}
	return p, nil
}

// Start runs etcd and kube-apiserver on free loopback ports and waits until
// the API server is ready. It skips the test when either binary is missing.
func Start(t T, opts Options) *Cluster {
	t.Helper()
	apiserver, err := APIServerPath()
	if err != nil {
		t.Skip(err)
	}
	etcd, err := EtcdPath()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	c := &Cluster{Dir: dir, ServiceAccountIssuer: "https://kubernetes.default.svc.cluster.local"}
	var logs lockedBuffer
	var out interface {
		Write([]byte) (int, error)
	} = &logs
	if opts.Output != nil {
		out = opts.Output
	}
	t.Cleanup(func() {
		if t.Failed() && opts.Output == nil {
			t.Logf("etcd and kube-apiserver output:\n%s", logs.String())
		}
	})

	clientPort, peerPort := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	startProcess(t, out, etcd,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster=kubetest=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	)

	caPEM, certPEM, keyPEM := servingCert(t)
	c.CAPEM = caPEM
	saKey, saPub := serviceAccountKey(t)
	c.ServiceAccountKey = saKey
	c.Token = randomHex(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	port := freePort(t)
	c.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + write("apiserver.crt", certPEM),
		"--tls-private-key-file=" + write("apiserver.key", keyPEM),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + write("tokens.csv", []byte(c.Token+",admin,admin,system:masters\n")),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + c.ServiceAccountIssuer,
		"--service-account-key-file=" + write("sa.pub", saPub),
		"--service-account-signing-key-file=" + write("sa.key", saKey),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=0",
	}
	startProcess(t, out, apiserver, append(args, opts.ExtraArgs...)...)

	c.Config = &rest.Config{
		Host:            c.URL,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		QPS:             1000,
		Burst:           2000,
	}
	c.Kubeconfig = write("kubeconfig", kubeconfig(c))
	waitReady(t, c)
	c.Client, err = kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Namespace creates a namespace (with labels) and its "default" service
// account, which the controller-manager would otherwise create.
func (c *Cluster) Namespace(t T, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	_, err = c.Client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/default: %v", name, err)
	}
}

func waitReady(t T, c *Cluster) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b.String())
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kube-apiserver at %s not ready after 2m: %s", c.URL, last)
}

// startProcess runs a child that dies with the test (and with the test
// binary, through Pdeathsig).
func startProcess(t T, out interface{ Write([]byte) (int, error) }, path string, args ...string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

func freePort(t T) int {
	t.Helper()
	return testnet.FreePort(t)
}

func randomHex(t T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// servingCert returns a fresh CA and a serving certificate for 127.0.0.1 and localhost it signed.
func servingCert(t T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// serviceAccountKey returns the service-account token signing key and its public key.
func serviceAccountKey(t T) (keyPEM, pubPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pd})
}

func kubeconfig(c *Cluster) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`, c.URL, base64.StdEncoding.EncodeToString(c.CAPEM), c.Token)
	return b.Bytes()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
