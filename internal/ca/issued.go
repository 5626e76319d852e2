package ca

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// issuedFile is the CA directory's append-only log of issued workload
// certificates ("SERIAL-HEX NOT-AFTER-UNIX SPIFFE-ID" per line), so that a
// revocation after a restart still finds the serials to put in the CRL.
// Expired lines are dropped when the CA starts.
const issuedFile = "issued.log"

// Issued is the latest workload certificate the CA signed for one identity.
type Issued struct {
	Identity  string    `json:"identity"` // SPIFFE ID
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// issuedLog keeps the latest certificate per identity (for the dashboard)
// and every unexpired one (for the CRL), bounded by the identities in the
// mesh times the certificates one identity holds within MaxTTL.
type issuedLog struct {
	mu     sync.Mutex
	latest map[string]Issued
	live   map[string][]liveCert
	file   string // "" when not persisted
}

type liveCert struct {
	serial   *big.Int
	notAfter time.Time
}

func (l *issuedLog) record(leaf *x509.Certificate, id string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest == nil {
		l.latest = map[string]Issued{}
	}
	l.latest[id] = Issued{Identity: id, Serial: leaf.SerialNumber.String(), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
	l.add(id, liveCert{leaf.SerialNumber, leaf.NotAfter}, now)
	if l.file == "" {
		return nil
	}
	f, err := os.OpenFile(l.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ca: issued log: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s %d %s\n", leaf.SerialNumber.Text(16), leaf.NotAfter.Unix(), id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ca: issued log: %w", err)
	}
	return nil
}

// add records c for id and drops id's expired certificates. l.mu is held.
func (l *issuedLog) add(id string, c liveCert, now time.Time) {
	if l.live == nil {
		l.live = map[string][]liveCert{}
	}
	certs := slices.DeleteFunc(l.live[id], func(c liveCert) bool { return !now.Before(c.notAfter) })
	l.live[id] = append(certs, c)
}

// load reads dir's issued log, keeps its unexpired certificates and
// rewrites it without the expired ones.
func (l *issuedLog) load(dir string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file = filepath.Join(dir, issuedFile)
	f, err := os.Open(l.file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ca: issued log: %w", err)
	}
	defer f.Close()
	var kept strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return fmt.Errorf("ca: %s:%d: want SERIAL NOT-AFTER ID", l.file, n)
		}
		serial, ok := new(big.Int).SetString(fields[0], 16)
		unix, err := strconv.ParseInt(fields[1], 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("ca: %s:%d: bad serial or time", l.file, n)
		}
		if notAfter := time.Unix(unix, 0); now.Before(notAfter) {
			l.add(fields[2], liveCert{serial, notAfter}, now)
			kept.WriteString(sc.Text() + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ca: issued log: %w", err)
	}
	return writeFileAtomic(l.file, []byte(kept.String()), 0o600)
}

// serialsOf returns the unexpired certificates of the given identities.
func (l *issuedLog) serialsOf(ids []string, now time.Time) []liveCert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []liveCert
	for _, id := range ids {
		for _, c := range l.live[id] {
			if now.Before(c.notAfter) {
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, func(a, b liveCert) int { return a.serial.Cmp(b.serial) })
	return out
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
