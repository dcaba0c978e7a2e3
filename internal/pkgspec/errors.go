package pkgspec

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a package.yaml: where it is, what is wrong, and
// how to fix it.
type FieldError struct {
	File  string
	Line  int    // 0 when unknown
	Field string // a path such as config[2].default
	Msg   string // what is wrong
	Fix   string // what to do, may be empty
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// ValidationError holds every problem found in one package.yaml.
type ValidationError struct {
	Errors []*FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return "invalid package: " + e.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid package: %d problems:", len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// ValueError is a configuration value that breaks the schema. It never carries
// the value of a secret parameter.
type ValueError struct {
	Param string
	Msg   string
	Fix   string
}

func (e *ValueError) Error() string {
	s := fmt.Sprintf("config %q: %s", e.Param, e.Msg)
	if e.Param == "" {
		s = "config: " + e.Msg
	}
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// ConfigError holds every problem found in a configuration.
type ConfigError struct {
	Package string
	Errors  []*ValueError
}

func (e *ConfigError) Error() string {
	if len(e.Errors) == 1 {
		return fmt.Sprintf("invalid configuration for %s: %s", e.Package, e.Errors[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration for %s: %d problems:", e.Package, len(e.Errors))
	for _, ve := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(ve.Error())
	}
	return b.String()
}
