// Package wizard asks a user, in the terminal, for the configuration of a package:
// one typed question per parameter, checked as it is answered against the
// parameter's type and bounds and against the package's CEL rules, with
// conditional questions asked only while their condition holds.
package wizard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/charmbracelet/huh"

	"berth.dev/berth/internal/pkgspec"
)

// Options configures Ask.
type Options struct {
	In  io.Reader
	Out io.Writer
	// Accessible asks line by line without cursor movement (screen readers,
	// dumb terminals).
	Accessible bool
	// All asks every parameter, defaults prefilled; otherwise only required
	// parameters that have no value are asked.
	All bool
}

// ErrAborted means the user quit the wizard.
var ErrAborted = errors.New("configuration cancelled; nothing was changed")

// Ask asks for the parameters of pkg that still need an answer, given the values
// already set (from --set or --values), and returns the answers. Generated
// parameters are never asked; a parameter whose `when` condition is false is not
// asked. The answers together with given pass pkg.Configure, or Ask keeps asking.
func Ask(ctx context.Context, pkg *pkgspec.Package, given map[string]any, opts Options) (map[string]any, error) {
	if opts.Accessible {
		// Each question reads with a scanner of its own; handing out one line per
		// read keeps one question from swallowing the next one's answer.
		opts.In = &lineReader{r: bufio.NewReader(opts.In)}
	}
	w := &wizard{pkg: pkg, given: given, answers: map[string]any{}, opts: opts}
	for _, p := range pkg.Config {
		if err := w.maybeAsk(ctx, p); err != nil {
			return nil, err
		}
	}
	// A rule may still fail, e.g. over values given on the command line; show its
	// message and ask again for the parameters it reads.
	for range 5 {
		errs := w.check(nil)
		if len(errs) == 0 {
			return w.answers, nil
		}
		var ask []pkgspec.Param
		for _, e := range errs {
			fmt.Fprintf(opts.Out, "✗ %s\n", describe(e))
			for _, name := range strings.Split(e.Param, ", ") {
				if p, ok := pkg.Param(name); ok && p.Generate == nil && !slices.ContainsFunc(ask, func(q pkgspec.Param) bool { return q.Name == name }) {
					ask = append(ask, p)
				}
			}
		}
		if len(ask) == 0 {
			break // nothing the user could answer would fix it
		}
		for _, p := range ask {
			if _, err := w.ask(ctx, p); err != nil {
				return nil, err
			}
		}
	}
	return nil, &pkgspec.ConfigError{Package: pkg.Name, Errors: w.check(nil)}
}

type wizard struct {
	pkg     *pkgspec.Package
	given   map[string]any
	answers map[string]any
	opts    Options
}

func (w *wizard) known(name string) bool {
	_, a := w.answers[name]
	_, g := w.given[name]
	return a || g
}

// values merges what is known, the defaults of the rest, and extra.
func (w *wizard) values(extra map[string]any) map[string]any {
	v := map[string]any{}
	for _, p := range w.pkg.Config {
		if p.Default != nil {
			v[p.Name] = p.Default
		}
	}
	for k, x := range w.given {
		v[k] = x
	}
	for k, x := range w.answers {
		v[k] = x
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// check configures the package with the known values plus extra and returns its
// value errors; generated values come from a fixed seed so checks are repeatable.
func (w *wizard) check(extra map[string]any) []*pkgspec.ValueError {
	_, err := w.pkg.Configure(pkgspec.ConfigureOptions{
		Values:    w.values(extra),
		Generator: pkgspec.SeededGenerator([]byte("berth wizard: check values only"), w.pkg.Name),
	})
	var cerr *pkgspec.ConfigError
	if errors.As(err, &cerr) {
		return cerr.Errors
	}
	return nil
}

func (w *wizard) maybeAsk(ctx context.Context, p pkgspec.Param) error {
	if w.known(p.Name) || p.Generate != nil {
		return nil
	}
	if !w.opts.All && (!p.Required || p.Default != nil) {
		return nil
	}
	if p.When != "" {
		active, err := w.pkg.Active(p, pkgspec.Config(w.values(nil)))
		if err != nil || !active {
			return err
		}
	}
	_, err := w.ask(ctx, p)
	return err
}

// validate reports the problem with value v for parameter p: its own type and
// bounds, or a rule over p whose other parameters are already answered.
func (w *wizard) validate(p pkgspec.Param, v any) error {
	for _, e := range w.check(map[string]any{p.Name: v}) {
		if e.Param == p.Name && !isRule(e) {
			return errors.New(describe(e))
		}
		names := strings.Split(e.Param, ", ")
		if isRule(e) && slices.Contains(names, p.Name) {
			ready := true
			for _, n := range names {
				if n != p.Name && !w.known(n) {
					ready = false
				}
			}
			if ready {
				return errors.New(e.Msg)
			}
		}
	}
	return nil
}

// isRule tells a failed cross-field rule from a problem with one value.
func isRule(e *pkgspec.ValueError) bool { return strings.HasPrefix(e.Fix, "rule: ") }

func describe(e *pkgspec.ValueError) string {
	msg := e.Msg
	if e.Param != "" && !isRule(e) {
		msg = e.Param + " " + msg
	}
	return msg
}

// ask puts one question and records the answer.
func (w *wizard) ask(ctx context.Context, p pkgspec.Param) (any, error) {
	title := p.Name
	if p.Required {
		title += " *"
	}
	desc := p.Description
	var field huh.Field
	var result func() any
	switch p.Type {
	case pkgspec.TypeBool:
		b, _ := w.values(nil)[p.Name].(bool)
		field = huh.NewConfirm().Title(title).Description(desc).Value(&b).
			Validate(func(v bool) error { return w.validate(p, v) })
		result = func() any { return b }
	case pkgspec.TypeEnum:
		s := fmt.Sprint(w.values(nil)[p.Name])
		field = huh.NewSelect[string]().Title(title).Description(desc).Options(huh.NewOptions(p.Values...)...).Value(&s).
			Validate(func(v string) error { return w.validate(p, v) })
		result = func() any { return s }
	default:
		var s string
		if d, ok := w.values(nil)[p.Name]; ok && !p.IsSecret() {
			s = fmt.Sprint(d)
		}
		in := huh.NewInput().Title(title).Description(desc).Value(&s).
			Validate(func(v string) error { return w.validate(p, strings.TrimSpace(v)) })
		if p.IsSecret() {
			in = in.EchoMode(huh.EchoModePassword)
		}
		field = in
		result = func() any { return strings.TrimSpace(s) }
	}
	form := huh.NewForm(huh.NewGroup(field)).
		WithInput(w.opts.In).WithOutput(w.opts.Out).
		WithAccessible(w.opts.Accessible).WithShowHelp(false)
	if err := form.RunWithContext(ctx); err != nil {
		if errors.Is(err, huh.ErrUserAborted) || errors.Is(err, context.Canceled) {
			return nil, ErrAborted
		}
		return nil, fmt.Errorf("asking for %s: %w", p.Name, err)
	}
	v := result()
	w.answers[p.Name] = v
	return v, nil
}

// lineReader returns at most one line per Read.
type lineReader struct {
	r *bufio.Reader
}

func (l *lineReader) Read(p []byte) (int, error) {
	line, err := l.r.ReadSlice('\n')
	n := copy(p, line)
	if n < len(line) {
		return n, bufio.ErrBufferFull
	}
	if err != nil && n > 0 && err != bufio.ErrBufferFull {
		return n, nil // deliver the last unterminated line; the error comes next time
	}
	if err == bufio.ErrBufferFull {
		err = nil
	}
	return n, err
}
