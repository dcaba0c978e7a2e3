package runbook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
)

// Options say which runbook to run, and how.
type Options struct {
	App     string
	Runbook string
	// Values are the parameters as given (strings from --set are converted).
	Values map[string]any
	// DryRun checks everything and returns the plan; nothing changes and
	// nothing is recorded.
	DryRun bool
	// Events, when set, receives each step as it starts and ends.
	Events func(Event)
	// Generator makes generated parameter values; random when nil.
	Generator pkgspec.Generator
}

// Event reports a step starting or (Done) ending.
type Event struct {
	Step  int // from 1
	Of    int
	Name  string
	Done  bool
	Err   error
	Start time.Time
}

// UnknownRunbookError means the app's package has no runbook of that name.
type UnknownRunbookError struct {
	App, Package, Runbook string
	Known                 []string
}

func (e *UnknownRunbookError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("package %s (app %s) has no runbooks, so none called %q", e.Package, e.App, e.Runbook)
	}
	return fmt.Sprintf("package %s (app %s) has no runbook %q; its runbooks are %s", e.Package, e.App, e.Runbook, strings.Join(e.Known, ", "))
}

// NotExecutableError means the runbook is a document to read, not steps to run.
type NotExecutableError struct {
	Runbook, File string
}

func (e *NotExecutableError) Error() string {
	return fmt.Sprintf("runbook %s is a document to read (%s in the package), not steps berth runs", e.Runbook, e.File)
}

// CheckError means a precondition of the runbook does not hold; nothing ran.
type CheckError struct {
	Runbook string
	Message string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("runbook %s cannot run: %s", e.Runbook, e.Message)
}

// PreflightError means a step could not run as things are; nothing ran.
type PreflightError struct {
	Step int
	Name string
	Err  error
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("step %d (%s) cannot run: %v; nothing was changed", e.Step, e.Name, e.Err)
}

func (e *PreflightError) Unwrap() error { return e.Err }

// StepError means a step failed; the run stopped there. The run's record
// (returned with it) says what state things are in and how to go on.
type StepError struct {
	Step   int
	Name   string
	Record string // the record's path in the workspace
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: %v", e.Step, e.Name, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Find returns the app's runbook called name.
func Find(inst *lifecycle.InstalledApp, name string) (pkgspec.Runbook, error) {
	rb, ok := inst.Package.Runbook(name)
	if !ok {
		return rb, &UnknownRunbookError{App: inst.App.Name, Package: inst.Package.Name, Runbook: name, Known: inst.Package.RunbookNames()}
	}
	return rb, nil
}

// Run runs a runbook against an installed app. Everything that can be known
// before a change is checked first: the runbook exists and has steps, the
// parameters satisfy their types and bounds, every template renders, and the
// checks hold; any failure there returns an error and changes nothing. Then
// the steps run in order; the first that fails stops the run. Every run that
// started is recorded as a committed file (Record.Path) and returned, with a
// *StepError when a step failed.
func Run(ctx context.Context, env *lifecycle.Env, opts Options) (*Record, error) {
	inst, err := env.Installed(ctx, opts.App)
	if err != nil {
		return nil, err
	}
	rb, err := Find(inst, opts.Runbook)
	if err != nil {
		return nil, err
	}
	if !rb.Executable() {
		return nil, &NotExecutableError{Runbook: rb.Name, File: rb.File}
	}
	params, err := rb.CheckParams(opts.Values, opts.Generator)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	id := newID(now, randomHex(2))
	data := map[string]any{
		"params": map[string]any(params),
		"config": map[string]any(inst.Config),
		"app":    map[string]any{"name": inst.App.Name, "namespace": inst.App.Namespace},
		"run":    map[string]any{"id": id},
	}
	steps, err := prepare(rb, inst.Files, data)
	if err != nil {
		return nil, err
	}
	k, err := newKube(env)
	if err != nil {
		return nil, err
	}
	if err := k.checks(ctx, rb, inst.App.Namespace, data); err != nil {
		return nil, err
	}
	rec := &Record{
		APIVersion: "berth.dev/v1alpha1", Kind: "RunbookRun", ID: id,
		App: inst.App.Name, Package: inst.Package.Name, Version: inst.Package.Version, Runbook: rb.Name,
		Who: who(ctx, env.WS), Started: now, Parameters: shownParams(rb, params),
	}
	r := &run{env: env, k: k, inst: inst, rec: rec}
	for i, s := range steps {
		if s.preflight == nil {
			continue
		}
		if err := s.preflight(ctx, r); err != nil {
			return nil, &PreflightError{Step: i + 1, Name: s.name, Err: err}
		}
	}
	if opts.DryRun {
		rec.Status = Planned
		for _, s := range steps {
			rec.Steps = append(rec.Steps, StepRecord{Name: s.name, Action: s.action, Status: Planned, Detail: s.plan(ctx, r)})
		}
		return rec, nil
	}
	var failed *StepError
	for i, s := range steps {
		sr := StepRecord{Name: s.name, Action: s.action, Status: NotRun}
		if failed != nil {
			rec.Steps = append(rec.Steps, sr)
			continue
		}
		sr.Started = time.Now().UTC().Truncate(time.Second)
		emit(opts.Events, Event{Step: i + 1, Of: len(steps), Name: s.name, Start: sr.Started})
		out := s.exec(ctx, r)
		sr.Finished = time.Now().UTC().Truncate(time.Second)
		sr.Detail, sr.Commits = out.detail, out.commits
		rec.Commits = append(rec.Commits, out.commits...)
		sr.Status = Succeeded
		if out.err != nil {
			sr.Status, sr.Error = Failed, out.err.Error()
			rec.State, rec.Next = stateAfter(rec, i, out), out.next
			failed = &StepError{Step: i + 1, Name: s.name, Record: rec.Path(), Err: out.err}
		}
		emit(opts.Events, Event{Step: i + 1, Of: len(steps), Name: s.name, Done: true, Err: out.err, Start: sr.Started})
		rec.Steps = append(rec.Steps, sr)
	}
	for _, undo := range r.cleanup {
		if err := undo(context.WithoutCancel(ctx)); err != nil {
			rec.State = strings.TrimSpace(rec.State + " " + err.Error() + ": delete it by hand.")
			if failed == nil {
				failed = &StepError{Step: len(steps), Name: "clean up", Record: rec.Path(), Err: err}
			}
		}
	}
	rec.Finished = time.Now().UTC().Truncate(time.Second)
	rec.Status = Succeeded
	if failed != nil {
		rec.Status = Failed
	}
	// The record is written even when ctx ended: a run that changed things is
	// never left unrecorded.
	if _, err := commit(context.WithoutCancel(ctx), env.WS, rec); err != nil {
		return rec, errors.Join(errOrNil(failed), err)
	}
	if failed != nil {
		return rec, failed
	}
	return rec, nil
}

func errOrNil(e *StepError) error {
	if e == nil {
		return nil
	}
	return e
}

// stateAfter says what state things are in after step i failed: what the
// steps before it did, then what the failed step left.
func stateAfter(rec *Record, i int, out result) string {
	var done []string
	for _, s := range rec.Steps[:i] {
		done = append(done, s.Name)
	}
	var b strings.Builder
	if len(done) > 0 {
		fmt.Fprintf(&b, "Steps done: %s. ", strings.Join(done, "; "))
	}
	if len(rec.Commits) > 0 {
		fmt.Fprintf(&b, "Commits made: %s. ", strings.Join(short(rec.Commits), ", "))
	}
	b.WriteString(out.state)
	return strings.TrimSpace(b.String())
}

func short(commits []string) []string {
	out := make([]string, len(commits))
	for i, c := range commits {
		out[i] = c[:min(8, len(c))]
	}
	return out
}

func emit(f func(Event), ev Event) {
	if f != nil {
		f(ev)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// shownParams are the parameters as recorded: secret values never are.
func shownParams(rb pkgspec.Runbook, params pkgspec.Config) map[string]string {
	out := map[string]string{}
	for _, q := range rb.Parameters {
		v, ok := params[q.Name]
		if !ok {
			continue
		}
		if q.IsSecret() {
			out[q.Name] = "(secret)"
			continue
		}
		out[q.Name] = fmt.Sprint(v)
	}
	return out
}

// render executes one template of the runbook over the run's data.
func render(field, text string, data map[string]any) (string, error) {
	t, err := template.New(field).Option("missingkey=error").Funcs(template.FuncMap{
		"quote": func(v any) string { return fmt.Sprintf("%q", fmt.Sprint(v)) },
	}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return b.String(), nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
