package ca

import (
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"time"
)

// Issued is the latest workload certificate the CA signed for one identity.
type Issued struct {
	Identity  string    `json:"identity"` // SPIFFE ID
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// issuedLog keeps the latest certificate per identity (bounded by the
// number of identities in the mesh).
type issuedLog struct {
	mu     sync.Mutex
	latest map[string]Issued
}

func (l *issuedLog) record(leaf *x509.Certificate, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest == nil {
		l.latest = map[string]Issued{}
	}
	l.latest[id] = Issued{Identity: id, Serial: leaf.SerialNumber.String(), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
}

// Issued lists the latest certificate signed for each identity, by identity.
func (ca *CA) Issued() []Issued {
	ca.issued.mu.Lock()
	out := make([]Issued, 0, len(ca.issued.latest))
	for _, i := range ca.issued.latest {
		out = append(out, i)
	}
	ca.issued.mu.Unlock()
	slices.SortFunc(out, func(a, b Issued) int { return strings.Compare(a.Identity, b.Identity) })
	return out
}
