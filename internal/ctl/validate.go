package ctl

import (
	"fmt"
	"io"
	"strings"

	"github.com/mast-mesh/mast/internal/config"
)

// pathList is a repeatable flag whose values may also be comma-separated lists.
type pathList []string

func (p *pathList) String() string { return strings.Join(*p, ",") }

func (p *pathList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*p = append(*p, s)
		}
	}
	return nil
}

// Validate runs `mast validate -f FILE_OR_DIR...`: it loads every file (YAML
// or JSON; directories are walked for .yaml, .yml and .json), validates each
// resource and the set as a whole, prints every problem sorted by file and
// line, then a one-line summary. It returns 1 when there is any error, 2 on a
// usage error, 0 otherwise (warnings alone do not fail).
func Validate(args []string, stdout, stderr io.Writer) int {
	var paths pathList
	c := newCommand("validate", "-f FILE_OR_DIR [-f FILE_OR_DIR]...",
		"Checks configuration files (Istio YAML or JSON; directories are walked for .yaml, .yml and .json)\n"+
			"one by one and as a set, and prints every error and warning with its file, line, resource and field.\n"+
			"Exit codes: 0 valid (warnings alone do not fail), 1 errors, 2 usage.",
		"mast validate -f samples/bookinfo/networking/virtual-service-all-v1.yaml",
		"mast validate -f samples/bookinfo/config -f my-routes.yaml")
	c.Var(&paths, "f", "file or directory to validate (repeatable, or a comma-separated list)")
	c.Var(&paths, "filename", "same as -f")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	for _, a := range c.args {
		_ = paths.Set(a)
	}
	if len(paths) == 0 {
		return c.usageError(stderr, "-f FILE_OR_DIR is required")
	}
	rs, probs := config.LoadPaths(paths...)
	for _, p := range probs {
		fmt.Fprintln(stdout, p.String())
	}
	errs, warns := len(probs.Errors()), len(probs.Warnings())
	verdict := "ok"
	if errs > 0 {
		verdict = "invalid"
	}
	fmt.Fprintf(stdout, "%s: %s, %s, %s\n", verdict, plural(len(rs), "valid resource"), plural(errs, "error"), plural(warns, "warning"))
	if errs > 0 {
		return 1
	}
	return 0
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
