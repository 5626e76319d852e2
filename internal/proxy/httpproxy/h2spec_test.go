package httpproxy

import (
	"encoding/xml"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// h2specRun runs h2spec against addr (h2c) and returns the cases that
// passed and failed.
func h2specRun(t *testing.T, bin, addr string) (pass, fail map[string]bool) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	out, _ := exec.Command(bin, "-h", host, "-p", port, "-j", report, "-o", "2").CombinedOutput()
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec: no report: %v\n%s", err, out)
	}
	var r struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string    `xml:"classname,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	pass, fail = map[string]bool{}, map[string]bool{}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			switch name := s.Name + " / " + c.Name; {
			case c.Skipped != nil:
			case c.Failure != nil || c.Error != nil:
				fail[name] = true
			default:
				pass[name] = true
			}
		}
	}
	return pass, fail
}

// TestH2specParity runs h2spec (h2c) against the proxy's HTTP/2 server and
// against Go's: every case Go's server passes must pass.
func TestH2specParity(t *testing.T) {
	bin, err := exec.LookPath("h2spec")
	if err != nil {
		if gp, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			bin = filepath.Join(strings.TrimSpace(string(gp)), "bin", "h2spec")
			_, err = os.Stat(bin)
		}
	}
	if err != nil {
		t.Skip("h2spec not installed: go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible (.ci/run does)")
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("content-type", "text/plain")
		io.WriteString(w, strings.Repeat("mast h2spec body\n", 64))
	})
	backend, _ := recordingBackend(t, false, app)
	p := startTestProxy(t, backend, proxyOpts{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goSrv := &http.Server{Handler: h2c.NewHandler(app, &http2.Server{}), ErrorLog: log.New(io.Discard, "", 0)}
	go goSrv.Serve(ln)
	t.Cleanup(func() { goSrv.Close() })
	goPass, _ := h2specRun(t, bin, ln.Addr().String())
	pass, fail := h2specRun(t, bin, p.addr)
	t.Logf("h2spec: proxy %d passed, %d failed; Go's server %d passed", len(pass), len(fail), len(goPass))
	var failed []string
	for name := range fail {
		failed = append(failed, name)
	}
	sort.Strings(failed)
	t.Logf("failing on the proxy (and on Go's server unless listed below):\n  %s", strings.Join(failed, "\n  "))
	var worse []string
	for name := range goPass {
		if !pass[name] {
			worse = append(worse, name)
		}
	}
	sort.Strings(worse)
	if len(worse) > 0 {
		t.Errorf("%d cases Go's server passes fail on the proxy:\n  %s", len(worse), strings.Join(worse, "\n  "))
	}
}
