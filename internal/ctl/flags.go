package ctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0
	ExitFailure = 1  // the command ran and failed (a network error, invalid input, ...)
	ExitUsage   = 2  // bad flags or arguments
	ExitRunning = 3  // `mast up`: another local mesh holds the state directory
	ExitAnalyze = 79 // `mast analyze` found errors (istioctl's code)
)

// command is one command's flags and help: a usage line, a description and
// examples, printed by `mast CMD --help` and `mast help CMD`.
type command struct {
	*flag.FlagSet
	name     string // "proxy-config cluster"
	usage    string // after "mast NAME "
	about    string
	examples []string
	args     []string  // positional arguments, wherever they stood among the flags
	progress *progress // says on stderr what a slow step is doing (set by parse)
}

func newCommand(name, usage, about string, examples ...string) *command {
	fs := flag.NewFlagSet("mast "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &command{FlagSet: fs, name: name, usage: usage, about: about, examples: examples}
}

// parse parses args. ok is false when the command should stop with exit:
// 0 after --help (printed to stdout), 2 on a usage error (printed to stderr).
func (c *command) parse(args []string, stdout, stderr io.Writer) (exit int, ok bool) {
	c.progress = newProgress(stderr)
	// Flags and arguments may be interspersed, as with istioctl and kubectl.
	var err error
	for {
		if err = c.Parse(args); err != nil || c.NArg() == 0 {
			break
		}
		rest := c.Args()
		if rest[0] == "--" {
			c.args = append(c.args, rest[1:]...)
			break
		}
		c.args = append(c.args, rest[0])
		args = rest[1:]
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.help(stdout)
		return ExitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "mast %s: %v\nRun `mast %s --help` for usage.\n", c.name, err, c.name)
		return ExitUsage, false
	}
	return ExitOK, true
}

// usageError reports a bad argument the flag package cannot see.
func (c *command) usageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "mast %s: %s\nRun `mast %s --help` for usage.\n", c.name, fmt.Sprintf(format, args...), c.name)
	return ExitUsage
}

func (c *command) help(w io.Writer) {
	fmt.Fprintf(w, "Usage: mast %s %s\n\n%s\n", c.name, c.usage, c.about)
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(e, "\n", "\n  "))
		}
	}
	has := false
	c.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprintf(w, "\nFlags:\n")
		c.SetOutput(w)
		c.PrintDefaults()
		c.SetOutput(io.Discard)
	}
}
