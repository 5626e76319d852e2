package httpproxy

import (
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/mast-mesh/mast/internal/h2spectest"
)

// TestH2specParity runs h2spec (h2c) against the proxy's HTTP/2 server and
// against Go's: every case Go's server passes must pass.
func TestH2specParity(t *testing.T) {
	bin := h2spectest.Bin(t)
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
	goPass, _ := h2spectest.Run(t, bin, ln.Addr().String(), false)
	pass, fail := h2spectest.Run(t, bin, p.addr, false)
	t.Logf("h2spec: proxy %d passed, %d failed; Go's server %d passed", len(pass), len(fail), len(goPass))
	var failed []string
	for name := range fail {
		failed = append(failed, name)
	}
	sort.Strings(failed)
	t.Logf("failing on the proxy (and on Go's server unless listed below):\n  %s", strings.Join(failed, "\n  "))
	worse := h2spectest.Worse(t, goPass, pass, func() map[string]bool {
		again, _ := h2spectest.Run(t, bin, p.addr, false)
		return again
	})
	if len(worse) > 0 {
		t.Errorf("%d cases Go's server passes fail on the proxy:\n  %s", len(worse), strings.Join(worse, "\n  "))
	}
}
