package packagetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// runOptions tests dir on the shared test cluster.
func runOptions(t *testing.T, dir string) RunOptions {
	t.Helper()
	cfg := testcluster.Config(t)
	return RunOptions{
		Dir:        dir,
		Cluster:    func() (*rest.Config, error) { return rest.CopyConfig(cfg), nil },
		Executable: testcluster.BerthBinary(t),
		Timeout:    3 * time.Minute,
	}
}

func steps(r *Report) map[StepName]Step {
	out := map[StepName]Step{}
	for _, s := range r.Steps {
		out[s.Name] = s
	}
	return out
}

// wantSteps checks each step's status, in order, and that a detail or error
// contains the given text.
func wantSteps(t *testing.T, r *Report, want []Step) {
	t.Helper()
	if len(r.Steps) != len(want) {
		t.Fatalf("report has steps %+v, want %d", r.Steps, len(want))
	}
	for i, w := range want {
		got := r.Steps[i]
		if got.Name != w.Name || got.Status != w.Status || !strings.Contains(got.Detail+got.Error, w.Detail) {
			t.Errorf("step %d = %+v, want %s %s containing %q", i, got, w.Name, w.Status, w.Detail)
		}
	}
}

// TestRunCleanUpgrade: redis 7.4.2 installs to healthy, redeploys without a
// write, uninstalls clean, and 7.4.1 upgrades to it.
func TestRunCleanUpgrade(t *testing.T) {
	dir := filepath.Join("testdata", "catalog", "redis", "7.4.2")
	r, err := Run(context.Background(), runOptions(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Steps {
		t.Logf("%-9s %-7s %7.3fs %s%s", s.Name, s.Status, s.Seconds, s.Detail, s.Error)
	}
	wantSteps(t, r, []Step{
		{Name: StepRender, Status: StatusPassed, Detail: "objects"},
		{Name: StepDryRun, Status: StatusPassed, Detail: "server-side dry run"},
		{Name: StepInstall, Status: StatusPassed, Detail: "healthy"},
		{Name: StepRedeploy, Status: StatusPassed, Detail: "0 writes"},
		{Name: StepUninstall, Status: StatusPassed, Detail: "nothing of the app is left"},
		{Name: StepUpgrade, Status: StatusPassed, Detail: "7.4.1 -> 7.4.2 upgraded and healthy"},
	})
	digest, err := Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() || r.Digest != digest || r.From != "7.4.1" || r.Package != "redis" || r.Version != "7.4.2" || r.Berth == "" {
		t.Errorf("report = %+v, want redis 7.4.2 from 7.4.1 passed with digest %s", r, digest)
	}
}

// TestRunBreakingUpgrade: PostgreSQL 16 -> 17 is breaking; berth must refuse
// it, which is what the package declares.
func TestRunBreakingUpgrade(t *testing.T) {
	o := runOptions(t, filepath.Join("testdata", "catalog", "postgresql", "17.2.0"))
	o.From = "16.4.0"
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	up := steps(r)[StepUpgrade]
	if !r.Passed() || up.Status != StatusPassed || !strings.Contains(up.Detail, "16.4.0 -> 17.2.0 is breaking and berth refuses it") || !strings.Contains(up.Detail, "Dump the databases first") {
		t.Errorf("report = %+v, want every step passed and the upgrade refused as breaking with the package's note", r)
	}
}

// TestRunBrokenPackages: a package fails at the step that finds its problem,
// and the steps that need it are skipped.
func TestRunBrokenPackages(t *testing.T) {
	tests := map[string]struct {
		manifest string
		want     []Step
	}{
		"does not render": {
			manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [broken\n",
			want: []Step{
				{Name: StepRender, Status: StatusFailed, Detail: "m.yaml"},
				{Name: StepDryRun, Status: StatusSkipped}, {Name: StepInstall, Status: StatusSkipped},
				{Name: StepRedeploy, Status: StatusSkipped}, {Name: StepUninstall, Status: StatusSkipped},
				{Name: StepUpgrade, Status: StatusSkipped},
			},
		},
		"the API server refuses it": {
			manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken}\ndata: {\"not a valid key!\": x}\n",
			want: []Step{
				{Name: StepRender, Status: StatusPassed},
				{Name: StepDryRun, Status: StatusFailed, Detail: "not a valid key!"},
				{Name: StepInstall, Status: StatusSkipped}, {Name: StepRedeploy, Status: StatusSkipped},
				{Name: StepUninstall, Status: StatusSkipped}, {Name: StepUpgrade, Status: StatusSkipped},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "broken")
			writeFile(t, filepath.Join(dir, "package.yaml"), "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: broken\nversion: 1.0.0\ndescription: Broken on purpose.\nmanifests: [m.yaml]\n")
			writeFile(t, filepath.Join(dir, "m.yaml"), tc.manifest)
			r, err := Run(context.Background(), runOptions(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if r.Passed() {
				t.Errorf("a broken package passed: %+v", r)
			}
			wantSteps(t, r, tc.want)
		})
	}
}
