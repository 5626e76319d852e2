package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/mast-mesh/mast/internal/ca"
)

// The CA Secret (Istio's istio-ca-secret, type istio.io/ca-root). Istio
// keeps its self-signed root in ca-cert.pem and ca-key.pem; Mast writes
// those two for the current root too (so tools that read them work) and its
// whole state (both roots during a rotation, the bootstrap token key,
// revocations) in mast-ca-state.json.
const (
	CASecretName = "istio-ca-secret"
	CASecretType = "istio.io/ca-root"
	keyCert      = "ca-cert.pem"
	keyKey       = "ca-key.pem"
	keyState     = "mast-ca-state.json"
)

// SecretStore keeps the CA state in a Secret. An Istio istio-ca-secret
// without Mast's state is adopted: its root keeps signing. Saves are
// conditional on the Secret being as this store last read or wrote it
// (its resourceVersion), so a replica never overwrites state another
// replica stored meanwhile: creating one that appeared since reports
// ca.ErrCreatedElsewhere, replacing one changed since ca.ErrStale (the CA
// then reloads it and makes its change again on top).
type SecretStore struct {
	Client    kubernetes.Interface
	Namespace string
	// Name defaults to CASecretName.
	Name string
	// Timeout bounds each API call (10 s when zero).
	Timeout time.Duration

	mu      sync.Mutex
	exists  bool   // the Secret existed when last loaded or saved
	version string // its resourceVersion then
}

var _ ca.Store = (*SecretStore)(nil)

func (s *SecretStore) name() string {
	if s.Name == "" {
		return CASecretName
	}
	return s.Name
}

func (s *SecretStore) ctx() (context.Context, context.CancelFunc) {
	t := s.Timeout
	if t == 0 {
		t = 10 * time.Second
	}
	return context.WithTimeout(context.Background(), t)
}

// String names the Secret, for error messages.
func (s *SecretStore) String() string { return "secret " + s.Namespace + "/" + s.name() }

// Load implements ca.Store.
func (s *SecretStore) Load() (ca.State, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.seen(false, "")
		return ca.State{}, false, nil
	}
	if err != nil {
		return ca.State{}, false, fmt.Errorf("ca store: %s: %w", s, err)
	}
	s.seen(true, sec.ResourceVersion)
	if data, ok := sec.Data[keyState]; ok {
		var st ca.State
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			return ca.State{}, false, fmt.Errorf("ca store: %s: %s: %w", s, keyState, err)
		}
		return st, true, nil
	}
	cert, key := sec.Data[keyCert], sec.Data[keyKey]
	if len(cert) == 0 || len(key) == 0 {
		return ca.State{}, false, fmt.Errorf("ca store: %s has neither %s nor %s and %s", s, keyState, keyCert, keyKey)
	}
	block, _ := pem.Decode(cert)
	if block == nil {
		return ca.State{}, false, fmt.Errorf("ca store: %s: %s: no PEM certificate", s, keyCert)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ca.State{}, false, fmt.Errorf("ca store: %s: %s: %w", s, keyCert, err)
	}
	// Istio's root: adopt it; the CA adds a token key and saves.
	return ca.State{Roots: []ca.RootState{{CertPEM: cert, KeyPEM: key, ActiveFrom: c.NotBefore}}}, true, nil
}

// Save implements ca.Store: it creates the Secret or replaces its data.
func (s *SecretStore) Save(st ca.State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("ca store: %w", err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.name(), Namespace: s.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "mastd"}},
		Type: CASecretType,
		Data: map[string][]byte{keyState: data},
	}
	// The active (last) root, in Istio's keys.
	if n := len(st.Roots); n > 0 {
		sec.Data[keyCert], sec.Data[keyKey] = st.Roots[n-1].CertPEM, st.Roots[n-1].KeyPEM
	}
	ctx, cancel := s.ctx()
	defer cancel()
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exists {
		created, err := secrets.Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ca store: create %s: %w", s, errors.Join(ca.ErrCreatedElsewhere, err))
		} else if err != nil {
			return fmt.Errorf("ca store: create %s: %w", s, err)
		}
		s.exists, s.version = true, created.ResourceVersion
		return nil
	}
	cur, err := secrets.Get(ctx, s.name(), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("ca store: %s: %w", s, err)
	}
	if cur.Type != CASecretType {
		return fmt.Errorf("ca store: %s has type %q, want %q", s, cur.Type, CASecretType)
	}
	cur.Data = sec.Data
	cur.ResourceVersion = s.version // only if nobody changed it since
	updated, err := secrets.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("ca store: %s: %w", s, errors.Join(ca.ErrStale, err))
	} else if err != nil {
		return fmt.Errorf("ca store: update %s: %w", s, err)
	}
	s.version = updated.ResourceVersion
	return nil
}

func (s *SecretStore) seen(exists bool, version string) {
	s.mu.Lock()
	s.exists, s.version = exists, version
	s.mu.Unlock()
}

// Watch calls changed whenever the Secret is added or updated by anyone
// (this replica's own saves included: the CA's reload finds nothing new
// then), until ctx ends. Replicas sharing the CA call ca.CA.Reload from it,
// so a rotation, revocation or token binding made on one is in force on all.
func (s *SecretStore) Watch(ctx context.Context, changed func()) error {
	f := informers.NewSharedInformerFactoryWithOptions(s.Client, 10*time.Minute,
		informers.WithNamespace(s.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name()).String()
		}))
	if _, err := f.Core().V1().Secrets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(old, cur any) { changed() },
	}); err != nil {
		return fmt.Errorf("ca store: watch %s: %w", s, err)
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}
