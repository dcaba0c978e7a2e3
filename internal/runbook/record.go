package runbook

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/gitcmd"
	"berth.dev/berth/internal/workspace"
)

// RunsDir is the workspace directory that holds the run records, one
// directory per app; uninstalling an app keeps its records.
const RunsDir = "runs"

// Status of a run or a step.
type Status string

// Statuses.
const (
	Succeeded Status = "Succeeded"
	Failed    Status = "Failed"
	// NotRun is a step after a failed one.
	NotRun Status = "NotRun"
	// Planned is every step of a dry run.
	Planned Status = "Planned"
)

func (s Status) String() string { return string(s) }

// Record is one run of a runbook, as committed to the workspace.
type Record struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	ID         string    `json:"id"`
	App        string    `json:"app"`
	Package    string    `json:"package"`
	Version    string    `json:"version"`
	Runbook    string    `json:"runbook"`
	Who        string    `json:"who"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitempty"`
	// Parameters are the run's values; secret ones are recorded as "(secret)".
	Parameters map[string]string `json:"parameters,omitempty"`
	Status     Status            `json:"status"`
	Steps      []StepRecord      `json:"steps"`
	// Commits are the workspace commits the run's steps made, in order.
	Commits []string `json:"commits,omitempty"`
	// State and Next, on a failed run: what state things are in, and how to
	// go on.
	State string `json:"state,omitempty"`
	Next  string `json:"next,omitempty"`
}

// StepRecord is what one step did.
type StepRecord struct {
	Name     string    `json:"name"`
	Action   string    `json:"action"`
	Status   Status    `json:"status"`
	Started  time.Time `json:"started,omitempty"`
	Finished time.Time `json:"finished,omitempty"`
	// Detail says what the step did or would do (the plan, in a dry run).
	Detail  []string `json:"detail,omitempty"`
	Commits []string `json:"commits,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Path is the record's file in the workspace.
func (r *Record) Path() string {
	return path.Join(RunsDir, r.App, r.ID+"-"+r.Runbook+".yaml")
}

// newID names a run after when it started, with a random suffix so that two
// runs in one second differ; it is usable in object names.
func newID(now time.Time, suffix string) string {
	return now.UTC().Format("20060102-150405") + "-" + suffix
}

// commit writes the record and commits it.
func commit(ctx context.Context, ws *workspace.Workspace, r *Record) (string, error) {
	data, err := yaml.Marshal(r)
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("runbook %s %s: %s", r.App, r.Runbook, strings.ToLower(string(r.Status)))
	err = ws.Change(ctx, msg, []string{r.Path()}, func() error {
		return ws.WriteFile(r.Path(), data)
	})
	if err != nil {
		return "", fmt.Errorf("recording the run in %s: %w", r.Path(), err)
	}
	out, err := gitcmd.Run(ctx, ws.Root, nil, "rev-parse", "HEAD")
	return strings.TrimSpace(string(out)), err
}

// Records lists an app's run records, oldest first.
func Records(ws *workspace.Workspace, app string) ([]*Record, error) {
	entries, err := readDir(ws, path.Join(RunsDir, app))
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, name := range entries {
		data, err := ws.ReadFile(path.Join(RunsDir, app, name))
		if err != nil {
			return nil, err
		}
		var r Record
		if err := yaml.UnmarshalStrict(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(RunsDir, app, name), err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// who is the person a change is made for (the console's signed-in person),
// else the workspace's git identity, as its commits record it.
func who(ctx context.Context, ws *workspace.Workspace) string {
	// A run started from the console is the signed-in person's.
	if a, ok := workspace.AuthorOf(ctx); ok {
		if a.Email != "" {
			return a.Name + " <" + a.Email + ">"
		}
		return a.Name
	}
	name, _ := gitcmd.Run(ctx, ws.Root, nil, "config", "user.name")
	email, _ := gitcmd.Run(ctx, ws.Root, nil, "config", "user.email")
	n, e := strings.TrimSpace(string(name)), strings.TrimSpace(string(email))
	switch {
	case n != "" && e != "":
		return n + " <" + e + ">"
	case n != "":
		return n
	}
	return e
}

// readDir lists the record files of a workspace directory, sorted (oldest
// first: their names start with the time of the run); none when it is missing.
func readDir(ws *workspace.Workspace, rel string) ([]string, error) {
	entries, err := os.ReadDir(ws.Abs(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
