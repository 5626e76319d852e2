package ctl

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/buildinfo"
	"github.com/mast-mesh/mast/internal/localmesh"
)

// BugReport runs `mast bug-report`: a tarball of what a maintainer needs to
// understand the local mesh's state, with secrets removed.
func BugReport(args []string, stdout, stderr io.Writer) int {
	c := newCommand("bug-report", "[--dir DIR] [flags]",
		"Collects the local mesh's state into DIR/bug-report.tar.gz: mastd's /debug/syncz, /debug/configz and\n"+
			"/debug/registryz, every proxy's config_dump, stats and clusters, the tail of every process's log, the\n"+
			"configuration directory and `mast analyze`'s findings. Secrets are removed before anything is written:\n"+
			"PEM private keys, JWTs and bearer tokens, and JSON values under keys naming keys, tokens, passwords or\n"+
			"credentials (the state directory's CA, tokens and broker credentials are never read).",
		"mast bug-report",
		"mast bug-report --dir /tmp")
	var m meshFlags
	m.register(c, false)
	dir := c.String("dir", ".", "directory to write bug-report.tar.gz into")
	logBytes := c.Int("log-bytes", 4<<20, "bytes kept from the end of each process's log")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) != 0 {
		return c.usageError(stderr, "unexpected argument %q", c.args[0])
	}
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "mast bug-report: %v\n", err)
		return ExitFailure
	}
	out := filepath.Join(*dir, "bug-report.tar.gz")
	files, problems := collectBugReport(st, *logBytes, stderr)
	if err := writeTarball(out, files); err != nil {
		fmt.Fprintf(stderr, "mast bug-report: %v\n", err)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "Wrote %s (%d files, secrets removed).\n", out, len(files))
	for _, p := range problems {
		fmt.Fprintf(stdout, "  not included: %s\n", p)
	}
	return ExitOK
}

type reportFile struct {
	name string
	data []byte
}

// collectBugReport gathers the report's files, redacted.
func collectBugReport(st *localmesh.RunState, logBytes int, progress io.Writer) ([]reportFile, []string) {
	var files []reportFile
	var problems []string
	add := func(name string, data []byte) { files = append(files, reportFile{name, redact(name, data)}) }
	fmt.Fprintln(progress, "Collecting mastd's debug pages...")
	add("version.txt", []byte("client version: "+buildinfo.Version()+"\n"))
	for _, page := range []string{"syncz", "configz", "registryz"} {
		b, err := httpGet("http://" + st.MonitoringAddr + "/debug/" + page)
		if err != nil {
			problems = append(problems, "mastd /debug/"+page+": "+err.Error())
			continue
		}
		add("mastd/"+page+".json", b)
	}
	for _, p := range st.Procs {
		if p.Admin == "" {
			continue
		}
		name := strings.TrimSuffix(p.Name, "-sidecar")
		fmt.Fprintf(progress, "Collecting %s's configuration...\n", name)
		for _, page := range []struct{ path, file string }{{"/config_dump", "config_dump.json"}, {"/stats", "stats.txt"}, {"/clusters", "clusters.txt"}} {
			b, err := httpGet("http://" + p.Admin + page.path)
			if err != nil {
				problems = append(problems, name+" "+page.path+": "+err.Error())
				continue
			}
			add("proxies/"+name+"/"+page.file, b)
		}
	}
	for _, p := range st.Procs {
		if p.Log == "" {
			continue
		}
		b, err := tailFile(p.Log, logBytes)
		if err != nil {
			problems = append(problems, "log of "+p.Name+": "+err.Error())
			continue
		}
		add("logs/"+p.Name+".log", b)
	}
	filepath.WalkDir(st.ConfigDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			rel, _ := filepath.Rel(st.ConfigDir, path)
			add("config/"+filepath.ToSlash(rel), b)
		}
		return nil
	})
	var a bytes.Buffer
	Analyze([]string{st.ConfigDir}, &a, &a)
	add("analyze.txt", a.Bytes())
	return files, problems
}

func tailFile(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > int64(n) {
		f.Seek(fi.Size()-int64(n), io.SeekStart)
	}
	return io.ReadAll(f)
}

func writeTarball(path string, files []reportFile) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	now := time.Now()
	for _, rf := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "bug-report/" + rf.name, Mode: 0o600, Size: int64(len(rf.data)), ModTime: now}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(rf.data); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := gz.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var (
	pemKeyRE  = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`)
	jwtRE     = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	bearerRE  = regexp.MustCompile(`(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`)
	secretKey = regexp.MustCompile(`(?i)private_?key|password|passwd|token|secret|credential|api_?key|inline_bytes|inline_string`)
	// base64 of "-----BEGIN" starts "LS0tLS1CRUdJT"; a key in a config
	// dump's inline_bytes looks like that.
	b64PEMRE = regexp.MustCompile(`LS0tLS1CRUdJT[A-Za-z0-9+/=]+`)
)

// redact removes secrets from one file: JSON values under secret-like keys
// (keeping certificates, which are public), then PEM private keys, JWTs,
// bearer/basic credentials and base64-encoded PEM private keys in any text.
func redact(name string, data []byte) []byte {
	if strings.HasSuffix(name, ".json") {
		var v any
		if json.Unmarshal(data, &v) == nil {
			if b, err := json.MarshalIndent(redactJSON(v, ""), "", "  "); err == nil {
				data = b
			}
		}
	}
	data = pemKeyRE.ReplaceAll(data, []byte("[REDACTED PRIVATE KEY]"))
	data = jwtRE.ReplaceAll(data, []byte("[REDACTED JWT]"))
	data = bearerRE.ReplaceAll(data, []byte("$1 [REDACTED]"))
	data = b64PEMRE.ReplaceAllFunc(data, func(m []byte) []byte {
		dec, err := base64.StdEncoding.DecodeString(string(m))
		if err != nil || bytes.Contains(dec, []byte("PRIVATE KEY")) || !bytes.Contains(dec, []byte("CERTIFICATE")) {
			return []byte("[REDACTED PEM]")
		}
		return m // a certificate
	})
	return data
}

func redactJSON(v any, key string) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = redactJSON(x, k)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = redactJSON(x, key)
		}
		return t
	case string:
		if secretKey.MatchString(key) && !strings.Contains(t, "-----BEGIN CERTIFICATE") && t != "" {
			return "[REDACTED]"
		}
	}
	return v
}
