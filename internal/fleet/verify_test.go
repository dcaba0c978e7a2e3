package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	builtin "berth.dev/berth/catalog"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// smokyCatalog is a directory catalog with package smoky, whose
// verification Job (a template over the app's configuration) fails when
// its config broken is true.
func smokyCatalog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"smoky/channels.yaml": "stable: 1.0.0\n",
		"smoky/1.0.0/package.yaml": `apiVersion: berth.dev/v1alpha1
kind: Package
name: smoky
version: 1.0.0
description: A package with a verification Job.
manifests: [cm.yaml]
config:
  - {name: greeting, type: string, default: hello, description: What the Job says.}
  - {name: broken, type: bool, default: false, description: The Job fails.}
verify:
  job: verify/job.yaml
  timeout: 90s
`,
		"smoky/1.0.0/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: smoky}\ndata: {a: b}\n",
		"smoky/1.0.0/verify/job.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .app.name }}-smoke
  annotations: {greeting: {{ .config.greeting | quote }}}
spec:
  backoffLimit: 0
{{- if .config.broken }}
  activeDeadlineSeconds: 2
{{- end }}
  template:
    spec:
      restartPolicy: Never
{{- if .config.broken }}
      nodeSelector: {berth.dev/nowhere: "true"}
{{- end }}
      containers:
        - {name: smoke, image: busybox}
`,
	}
	testcluster.WriteFiles(t, dir, files)
	return dir
}

// TestAPackageVerificationGatesPromotion promotes an app whose package
// defines a verification Job from dev (the test cluster) to prod (never
// reached): the package's Job, rendered over the app's configuration, runs
// in dev and a failing one refuses; a stage's own Job replaces it.
func TestAPackageVerificationGatesPromotion(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: home, Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.OpenRefs(t.TempDir(), ws.Root, []catalog.Ref{{Name: "test", Type: catalog.TypeDir, URL: smokyCatalog(t)}})
	if err != nil {
		t.Fatal(err)
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, ClusterOf: func(name string) (*rest.Config, error) {
		if name == "dev" {
			return testcluster.Config(t), nil
		}
		return &rest.Config{Host: "https://127.0.0.1:1"}, nil // nothing listens there
	}}
	cfg := ws.Config
	cfg.Clusters = []workspace.ClusterEntry{{Name: "dev"}, {Name: "prod"}}
	cfg.Environments = []workspace.Environment{{Name: "dev", Clusters: []string{"dev"}}, {Name: "prod", Clusters: []string{"prod"}}}
	commitFile(t, ws, workspace.ConfigFile, cfg)
	ws.Config = cfg

	app := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1.DeleteOptions{})
	})
	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "smoky", Name: app, Values: map[string]any{"broken": true, "greeting": "hi from dev"}}); err != nil {
		t.Fatal(err)
	}
	deployDev := func() {
		t.Helper()
		if _, err := env.ForCluster("dev").Deploy(ctx, lifecycle.DeployOptions{Timeout: 2 * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	deployDev()
	opts := PromoteOptions{App: app, To: "prod", Now: func() time.Time { return time.Now().Add(time.Hour) }}

	// The package's Job fails: refused, naming the Job and where it comes from.
	head := run(t, ws.Root, "git", "rev-parse", "HEAD")
	_, err = Promote(ctx, env, opts)
	var re *RefusedError
	if !errors.As(err, &re) || re.Cluster != "dev" || !strings.Contains(err.Error(), "verification job "+app+"/"+app+"-smoke-") || !strings.Contains(err.Error(), "package smoky 1.0.0's verify.job") {
		t.Fatalf("promotion with the package's failing verification: %v", err)
	}
	if run(t, ws.Root, "git", "rev-parse", "HEAD") != head {
		t.Fatal("a refused promotion committed")
	}
	jobs, err := testcluster.Clientset(t).BatchV1().Jobs(app).List(ctx, metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 || jobs.Items[0].Annotations["greeting"] != "hi from dev" {
		t.Fatalf("the package's Job in dev: %+v, %v; want one, rendered with the app's greeting", jobs, err)
	}

	// The stage's own Job wins over the package's.
	commitFile(t, ws, "verify/smoke.yaml", map[string]any{
		"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]any{"name": "user-smoke"},
		"spec": map[string]any{"backoffLimit": 0, "template": map[string]any{"spec": map[string]any{
			"restartPolicy": "Never", "containers": []any{map[string]any{"name": "smoke", "image": "busybox"}}}}},
	})
	withUser := cfg
	withUser.Environments = []workspace.Environment{{Name: "dev", Clusters: []string{"dev"}, Verify: &workspace.Verification{Job: "verify/smoke.yaml"}}, {Name: "prod", Clusters: []string{"prod"}}}
	commitFile(t, ws, workspace.ConfigFile, withUser)
	ws.Config = withUser
	res, err := Promote(ctx, env, opts)
	if err != nil {
		t.Fatalf("promotion with the stage's own verification: %v", err)
	}
	if len(res.Evidence) != 1 || !strings.Contains(res.Evidence[0].Verification, "job "+app+"/user-smoke-") {
		t.Errorf("evidence = %+v, want the stage's Job", res.Evidence)
	}

	// Without it, the package's Job verifies a fixed configuration.
	commitFile(t, ws, workspace.ConfigFile, cfg)
	ws.Config = cfg
	if _, err := env.Config(ctx, lifecycle.ConfigOptions{App: app, Values: map[string]any{"broken": false}}); err != nil {
		t.Fatal(err)
	}
	deployDev()
	res, err = Promote(ctx, env, opts)
	if err != nil {
		t.Fatalf("promotion with the package's passing verification: %v", err)
	}
	if len(res.Evidence) != 1 || !strings.Contains(res.Evidence[0].Verification, "job "+app+"/"+app+"-smoke-") {
		t.Errorf("evidence = %+v, want the package's Job", res.Evidence)
	}
}

// TestPostgresqlVerificationRendersAJobThatReadsItsPasswordFromTheSecret
// renders the built-in postgresql packages' verification Job with their
// defaults: a Job in the app's namespace that connects to the app's Service
// as its user, its password read from the app's Secret and never written.
func TestPostgresqlVerificationRendersAJobThatReadsItsPasswordFromTheSecret(t *testing.T) {
	for _, version := range []string{"16.7.25", "16.7.26"} {
		t.Run(version, func(t *testing.T) {
			dir := "postgresql/" + version
			pkg, err := pkgspec.Load(builtin.FS, dir, "")
			if err != nil {
				t.Fatal(err)
			}
			if pkg.Verify == nil {
				t.Fatal("the package defines no verification")
			}
			files, err := fs.Sub(builtin.FS, dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := pkg.Configure(pkgspec.ConfigureOptions{Generator: pkgspec.SeededGenerator([]byte("a seed of the test, long enough"), "pg")})
			if err != nil {
				t.Fatal(err)
			}
			password := cfg["password"]
			for _, q := range pkg.Config {
				if q.IsSecret() {
					delete(cfg, q.Name)
				}
			}
			v, err := packageVerification(&lifecycle.InstalledApp{App: &workspace.App{Name: "db", Namespace: "shop"}, Package: pkg, Files: files, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if v.job.Namespace != "shop" || v.job.Name != "db-verify" || v.timeout != 5*time.Minute {
				t.Errorf("job %s/%s, timeout %s", v.job.Namespace, v.job.Name, v.timeout)
			}
			env := map[string]string{}
			c := v.job.Spec.Template.Spec.Containers[0]
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					env[e.Name] = "secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				}
			}
			want := map[string]string{"PGHOST": "db.shop.svc", "PGPORT": "5432", "PGUSER": "app", "PGDATABASE": "app", "PGPASSWORD": "secret db/password"}
			if diff := cmp.Diff(want, env); diff != "" {
				t.Errorf("the Job's environment (-want +got):\n%s", diff)
			}
			if s := fmt.Sprint(v.job); password == nil || strings.Contains(s, fmt.Sprint(password)) {
				t.Error("the Job holds the generated password")
			}
		})
	}
}
