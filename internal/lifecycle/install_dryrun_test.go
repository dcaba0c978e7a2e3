package lifecycle

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestInstallDryRunShowsThePlanAndCommitsNothing: a dry run resolves the
// app's components, names the files it would commit and the objects it
// would render, and leaves HEAD and the work tree as they were; the
// install after it commits the same files.
func TestInstallDryRunShowsThePlanAndCommitsNothing(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	root := env.WS.Root
	head := git(t, root, "rev-parse", "HEAD")
	opts := InstallOptions{Package: "airflow", Name: "flow", Values: map[string]any{"adminPassword": "correct horse battery staple"}, DryRun: true}
	dry, err := env.Install(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if git(t, root, "rev-parse", "HEAD") != head || git(t, root, "status", "--porcelain", "--untracked-files=all") != "" {
		t.Fatal("a dry run changed the workspace")
	}
	if _, err := env.WS.App("flow"); err == nil {
		t.Error("a dry run left apps/flow/app.yaml behind")
	}
	var deps []string
	for _, d := range dry.Dependencies {
		if d.Shared != "" || d.Version == "" {
			t.Errorf("dependency %+v: want a private component with a version", d)
		}
		deps = append(deps, d.Name+" "+d.Package)
	}
	if !slices.Equal(deps, []string{"postgresql postgresql", "redis redis"}) {
		t.Errorf("dependencies = %v, want postgresql and redis", deps)
	}
	if dry.Preview == nil {
		t.Fatal("a dry run returned no preview")
	}
	var files []string
	for _, f := range dry.Preview.Files {
		if f.Status != "A" && f.Path != "berth.lock" {
			t.Errorf("file %s %s: a new app only adds files (and changes the lock)", f.Status, f.Path)
		}
		files = append(files, f.Path)
	}
	for _, want := range []string{"berth.lock", "apps/flow/app.yaml", "apps/flow/secrets.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("the preview's files %v lack %s", files, want)
		}
	}
	if strings.Contains(dry.Preview.Diff, "correct horse battery staple") {
		t.Error("the preview's diff holds a secret value")
	}
	kinds := map[string]int{}
	for _, o := range dry.Objects {
		if o.App != "flow" {
			t.Errorf("object %+v of another app", o)
		}
		kinds[o.Kind]++
	}
	for _, k := range []string{"StatefulSet", "Secret", "Service"} {
		if kinds[k] == 0 {
			t.Errorf("the dry run's objects %v have no %s", kinds, k)
		}
	}

	opts.DryRun = false
	res, err := env.Install(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Preview != nil || res.Summary != dry.Summary {
		t.Errorf("install = %+v, want the dry run's summary %q and no preview", res, dry.Summary)
	}
	committed := strings.Fields(git(t, root, "diff", "--name-only", head, "HEAD"))
	slices.Sort(files)
	if !slices.Equal(committed, files) {
		t.Errorf("the install committed %v, the dry run said %v", committed, files)
	}
}
