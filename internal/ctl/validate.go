package ctl

import (
	"flag"
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
	fs := flag.NewFlagSet("mast validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&paths, "f", "file or directory to validate (repeatable, or a comma-separated list)")
	fs.Var(&paths, "filename", "same as -f")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mast validate -f FILE_OR_DIR [-f FILE_OR_DIR]...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, a := range fs.Args() {
		_ = paths.Set(a)
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
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
