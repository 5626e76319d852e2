package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
)

// TestMTLSRevocation: revoking a workload identity with mastd's CA pushes a
// CRL to the proxies, which refuse that identity's certificate at the next
// handshake, inbound (the server sidecar refuses the revoked client) and
// outbound (the client sidecar refuses the revoked server), naming the
// identity and serial in their logs; a certificate of another identity
// stays accepted.
func TestMTLSRevocation(t *testing.T) {
	m := startMTLSMesh(t, "", "")
	serverAddr := m.serverIP + ":8080"
	eventually(t, 60*time.Second, "mTLS through the sidecars", func() error {
		code, xfcc, err := m.viaSidecar()
		if err != nil || code != 200 || !strings.Contains(xfcc, "sa/client") {
			return fmt.Errorf("status %d, xfcc %q, %v", code, xfcc, err)
		}
		return nil
	})
	// Another workload of the mesh, with a certificate from the same CA.
	c, err := ca.New(ca.Config{Dir: m.caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherID, _ := c.WorkloadID("default", "other")
	_, leaf, err := c.IssueWorkloadCertificate(otherID, &key.PublicKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}
	if err := tlsRequest(serverAddr, other); err != nil {
		t.Fatalf("another workload's certificate before any revocation: %v", err)
	}

	tok, err := os.ReadFile(filepath.Join(m.caDir, "debug-token"))
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(sa string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+m.monAddr+"/debug/ca/revoke?identity=spiffe://cluster.local/ns/default/sa/"+sa, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("revoke %s: %v %v", sa, resp, err)
		}
		resp.Body.Close()
	}
	// refusal waits for a proxy's WARN line about a revoked peer and
	// returns its serial.
	refusal := func(p *process, peer, sa string) string {
		t.Helper()
		re := regexp.MustCompile(`certificate revoked.* peer=` + peer + ` identity=spiffe://cluster.local/ns/default/sa/` + sa + ` serial=([0-9a-f]+)`)
		var serial string
		eventually(t, 30*time.Second, p.name+" logging the revoked "+sa, func() error {
			m.viaSidecar() // new connections, which the sidecars must refuse
			m := re.FindStringSubmatch(p.Output())
			if m == nil {
				return fmt.Errorf("no line matching %s", re)
			}
			serial = m[1]
			return nil
		})
		return serial
	}

	// crlPushed waits until both sidecars hold a CRL listing n serials'
	// worth of PEM (their config_dump carries the validation contexts).
	crlPushed := func(before map[string]string) {
		t.Helper()
		for _, name := range []string{"server", "client"} {
			out := m.proxies[name].Output()
			i := strings.Index(out, `msg="admin listening" addr=`)
			addr := strings.Fields(out[i+len(`msg="admin listening" addr=`):])[0]
			eventually(t, 30*time.Second, name+" receiving the new CRL", func() error {
				resp, err := http.Get("http://" + addr + "/config_dump")
				if err != nil {
					return err
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				crl := regexp.MustCompile(`"crl":\s*\{[^}]*\}`).FindString(string(b))
				if crl == "" || crl == before[name] {
					return fmt.Errorf("no new crl in its config_dump")
				}
				before[name] = crl
				return nil
			})
		}
	}
	seen := map[string]string{}
	revoke("client")
	crlPushed(seen)
	eventually(t, 30*time.Second, "the revoked client refused by the server sidecar", func() error {
		code, _, err := m.viaSidecar()
		if err == nil && code == 200 {
			return fmt.Errorf("still served")
		}
		return nil
	})
	serial := refusal(m.proxies["server"], "client", "client")
	if !strings.Contains(m.mastd.Output(), serial) {
		t.Errorf("serial %s refused by the server sidecar is not in mastd's revocation list:\n%s", serial, m.mastd.Output())
	}
	if err := tlsRequest(serverAddr, other); err != nil {
		t.Fatalf("another workload refused after the client's revocation: %v", err)
	}

	revoke("server")
	crlPushed(seen)
	refusal(m.proxies["client"], "server", "server")
	if code, _, err := m.viaSidecar(); err == nil && code == 200 {
		t.Fatal("the client sidecar reached a revoked server")
	}
	t.Logf("client's certificate serial %s refused by the server sidecar; the server's refused by the client sidecar", serial)
}
