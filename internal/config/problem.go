package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Severity says whether a Problem rejects the configuration (Error) or only
// points at something suspicious (Warning).
type Severity int

// The severities of a Problem.
const (
	Error Severity = iota
	Warning
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// Problem is one finding about configuration: where it is (file and line),
// which resource and field it concerns, and what is wrong.
type Problem struct {
	Severity Severity
	Source   Source // file and line of the offending field (or of the document)
	Resource Key    // zero when the document could not be identified
	Field    string // field path such as "spec.http[0].route"; empty for the whole resource
	Message  string
}

// String formats the problem as
// "file:line: error: VirtualService/default/reviews: spec.http[0].route: message".
func (p Problem) String() string {
	var b strings.Builder
	b.Grow(len(p.Source.File) + len(p.Field) + len(p.Message) + 64)
	b.WriteString(p.Source.String())
	b.WriteString(": ")
	b.WriteString(p.Severity.String())
	b.WriteString(": ")
	if p.Resource != (Key{}) {
		b.WriteString(p.Resource.String())
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is a list of problems. As an error it reports every problem, one
// per line; a nil or empty Problems is not meant to be returned as an error.
type Problems []Problem

// Error implements error.
func (ps Problems) Error() string {
	switch len(ps) {
	case 0:
		return "no problems"
	case 1:
		return ps[0].String()
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Errors returns the problems of severity Error.
func (ps Problems) Errors() Problems { return ps.filter(Error) }

// Warnings returns the problems of severity Warning.
func (ps Problems) Warnings() Problems { return ps.filter(Warning) }

// HasErrors reports whether any problem is an Error.
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

func (ps Problems) filter(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Sort orders problems by file, line, severity (errors first), resource,
// field and message, so that output is stable.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		if a.Source.Line != b.Source.Line {
			return a.Source.Line < b.Source.Line
		}
		if a.Severity != b.Severity {
			return a.Severity < b.Severity
		}
		if ka, kb := a.Resource.String(), b.Resource.String(); ka != kb {
			return ka < kb
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
}

// problemf builds a Problem for resource r at field, taking the line from the
// resource's recorded positions when known.
func problemf(sev Severity, r *Resource, field, format string, args ...any) Problem {
	src := r.Source
	if line := r.Positions.Line(field); line > 0 {
		src.Line = line
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return Problem{Severity: sev, Source: src, Resource: r.Key(), Field: field, Message: msg}
}
