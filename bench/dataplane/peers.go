package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Pinned versions of the Go-installed tools.
const (
	FortioModule = "fortio.org/fortio@v1.63.0"
	CaddyModule  = "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9"
)

// Tools are the binaries a run uses and their versions.
type Tools struct {
	Fortio, Caddy, Nginx, HAProxy, Mastd, MastProxy string
	Versions                                        map[string]string
	// Missing names the peers that could not be installed, with why.
	Missing map[Peer]string
}

// Install finds or installs everything a run needs: fortio and Caddy with
// go install into cacheDir/bin (kept between runs), nginx and HAProxy from
// Debian with apt-get when they are not on PATH, and mastd and mast-proxy
// built from repoDir into workDir/build (always, so the working tree is
// what is measured; with rev set, the tree of that git revision, exported
// with git archive into workDir/src, so a busy working tree does not get in
// the way; in the run's own directory, so two runs from different trees
// never swap each other's binaries). A peer that cannot be installed is reported in Missing
// and left out; fortio and Mast are required.
func Install(ctx context.Context, cacheDir, workDir, repoDir, rev string, peers []Peer, log *slog.Logger) (Tools, error) {
	t := Tools{Versions: map[string]string{}, Missing: map[Peer]string{}}
	bin := filepath.Join(cacheDir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return t, err
	}
	var err error
	if t.Fortio, err = goInstall(ctx, bin, "fortio", FortioModule, log); err != nil {
		return t, err
	}
	t.Versions["fortio"] = FortioModule
	build := filepath.Join(workDir, "build")
	src := repoDir
	t.Versions["mast"] = strings.TrimSpace(output(ctx, "git", "-C", repoDir, "describe", "--always", "--dirty")) + " (working tree)"
	if rev != "" {
		src = filepath.Join(workDir, "src")
		if err := os.RemoveAll(src); err != nil {
			return t, err
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			return t, err
		}
		sh := fmt.Sprintf("git -C %q archive %q | tar -x -C %q", repoDir, rev, src)
		if out, err := exec.CommandContext(ctx, "sh", "-c", sh).CombinedOutput(); err != nil {
			return t, fmt.Errorf("%s: %w\n%s", sh, err, out)
		}
		t.Versions["mast"] = strings.TrimSpace(output(ctx, "git", "-C", repoDir, "rev-parse", "--short", rev)) + " (git archive " + rev + ")"
	}
	log.Info("building mastd and mast-proxy", "src", src)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", build+"/", "./cmd/mastd", "./cmd/mast-proxy")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return t, fmt.Errorf("go build ./cmd/mastd ./cmd/mast-proxy in %s: %w\n%s", src, err, out)
	}
	t.Mastd, t.MastProxy = filepath.Join(build, "mastd"), filepath.Join(build, "mast-proxy")
	for _, p := range peers {
		switch p {
		case Caddy:
			if t.Caddy, err = goInstall(ctx, bin, "caddy", CaddyModule, log); err != nil {
				t.Missing[p] = err.Error()
				continue
			}
			t.Versions["caddy"] = CaddyModule
		case Nginx, NginxH2Up:
			if t.Nginx, err = aptInstall(ctx, "nginx", "nginx", log); err != nil {
				t.Missing[p] = err.Error()
				continue
			}
			t.Versions["nginx"] = strings.TrimPrefix(firstLine(output(ctx, t.Nginx, "-v")), "nginx version: ")
		case HAProxy:
			if t.HAProxy, err = aptInstall(ctx, "haproxy", "haproxy", log); err != nil {
				t.Missing[p] = err.Error()
				continue
			}
			t.Versions["haproxy"] = firstLine(output(ctx, t.HAProxy, "-v"))
		}
	}
	return t, nil
}

func goInstall(ctx context.Context, bin, name, module string, log *slog.Logger) (string, error) {
	path := filepath.Join(bin, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	log.Info("installing", "module", module, "into", bin)
	cmd := exec.CommandContext(ctx, "go", "install", module)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=", "GOTOOLCHAIN=local")
	cmd.Dir = os.TempDir() // outside the module, so go.mod is not consulted
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %w\n%s", module, err, tail(out, 2000))
	}
	return path, nil
}

func aptInstall(ctx context.Context, program, pkg string, log *slog.Logger) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, program); fileExists(p) {
			return p, nil
		}
	}
	apt := func(args ...string) ([]byte, string, error) {
		argv := append([]string{"apt-get"}, args...)
		if os.Geteuid() != 0 {
			argv = append([]string{"sudo", "-n"}, argv...)
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		return out, strings.Join(argv, " "), err
	}
	log.Info("installing", "package", pkg, "with", "apt-get")
	if out, what, err := apt("install", "-y", "-q", pkg); err != nil {
		// The package lists may be missing on a fresh machine.
		if uout, uwhat, uerr := apt("update", "-q"); uerr != nil {
			return "", fmt.Errorf("%s: %w\n%s\n%s: %v\n%s", what, err, tail(out, 1000), uwhat, uerr, tail(uout, 1000))
		}
		if out, what, err := apt("install", "-y", "-q", pkg); err != nil {
			return "", fmt.Errorf("%s: %w\n%s", what, err, tail(out, 2000))
		}
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		if p := filepath.Join(dir, program); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s installed but %s not found", pkg, program)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// output runs a command and returns its stdout and stderr ("" on failure).
func output(ctx context.Context, name string, args ...string) string {
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
