// Package h2spectest runs h2spec (github.com/summerwind/h2spec, an HTTP/2
// conformance client nobody here wrote) against a server under test and
// compares its cases with the same run against a reference server.
package h2spectest

import (
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Install is the command that installs the version the tests expect.
const Install = "go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"

// Bin returns h2spec's path (PATH, then GOPATH/bin), or skips the test.
func Bin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gp)), "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("h2spec not installed: " + Install + " (.ci/run does)")
	return ""
}

// junit is the part of h2spec's JUnit report the comparison needs.
type junit struct {
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

// Run runs every h2spec case against addr (over TLS, certificate not
// checked, when useTLS) with a 2 s timeout per case, and returns the
// names ("section / case") of the cases that passed and failed.
func Run(t testing.TB, bin, addr string, useTLS bool) (pass, fail map[string]bool) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	args := []string{"-h", host, "-p", port, "-j", report, "-o", "2"}
	if useTLS {
		args = append(args, "-t", "-k")
	}
	out, _ := exec.Command(bin, args...).CombinedOutput() // exits non-zero when a case fails
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec %v: no report: %v\n%s", args, err, out)
	}
	var r junit
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	pass, fail = map[string]bool{}, map[string]bool{}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			name := s.Name + " / " + c.Name
			switch {
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

// Worse returns, sorted, the cases the reference passed that the server
// under test failed in every one of up to three runs (the first is pass;
// again runs h2spec once more). A case fails when the awaited frame does
// not come within 2 s, which a loaded machine can cause by stalling the
// server that long; a regression fails every time. Cases that passed on a
// later run are logged.
func Worse(t testing.TB, ref, pass map[string]bool, again func() map[string]bool) []string {
	t.Helper()
	worse := missing(ref, pass)
	for run := 2; run <= 3 && len(worse) > 0; run++ {
		still := missing(toSet(worse), again())
		if len(still) < len(worse) {
			t.Logf("h2spec run %d passed what run 1 failed (slow, not failing): %s", run, strings.Join(missing(toSet(worse), toSet(still)), ", "))
		}
		worse = still
	}
	return worse
}

// missing returns, sorted, the names in want that got lacks.
func missing(want, got map[string]bool) []string {
	var out []string
	for name := range want {
		if !got[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func toSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
