package lifecycle

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/testcluster"
)

// embeddedEnv is newEnv over the real built-in catalog (catalog.Embedded, not
// the fixture catalog this binary reads as builtin), counting the writes its
// cluster client makes. Charts come from the offline mirror that
// testcluster.Main sets in BERTH_CHART_MIRROR.
func embeddedEnv(t *testing.T) (*Env, *countingTransport) {
	t.Helper()
	cfg := testcluster.Config(t)
	counter := &countingTransport{}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter }
	env := newEnv(t, cfg)
	env.Catalogs = catalog.NewSet([]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}},
		map[string]catalog.Source{catalog.BuiltinName: catalog.Embedded()})
	return env, counter
}

// deployHealthy deploys app (and what it depends on) and fails unless every
// app ends ready.
func deployHealthy(t *testing.T, env *Env, app string) *DeployResult {
	t.Helper()
	res, err := env.Deploy(context.Background(), DeployOptions{Apps: []string{app}, Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatalf("deploy %s: %v", app, err)
	}
	for _, a := range res.Apps {
		if a.State != deploy.StateReady {
			t.Fatalf("deploy %s: app %s is %s: %s", app, a.App, a.State, a.Error)
		}
	}
	return res
}

// TestCatalogPackagesOnTheCluster installs each package of the built-in
// catalog from the chart mirror at its older version, deploys it to healthy,
// deploys it again without a single write, upgrades it to its newer version,
// healthy again, and uninstalls it with its data, leaving nothing of it.
func TestCatalogPackagesOnTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	for _, tc := range []struct{ pkg, from, to string }{
		{"postgresql", "16.7.25", "16.7.26"},
		{"redis", "22.0.3", "22.0.4"},
		{"airflow", "1.17.0", "1.18.0"},
		{"grafana", "10.5.7", "10.5.8"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			ctx := context.Background()
			env, counter := embeddedEnv(t)
			name := testcluster.UniqueName(t, 20)
			t.Cleanup(func() {
				_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1DeleteOptions)
			})
			installed, err := env.Install(ctx, InstallOptions{Package: tc.pkg + "@" + tc.from, Name: name, Namespace: name})
			if err != nil {
				t.Fatal(err)
			}
			// The package's notes say how to read the generated password.
			if want := "kubectl -n " + name + " get secret " + name; !strings.Contains(installed.Notes, want) {
				t.Errorf("install notes %q do not say %q", installed.Notes, want)
			}
			res := deployHealthy(t, env, name)
			created := 0
			for _, a := range res.Apps {
				created += a.Actions["create"]
			}
			if created == 0 {
				t.Fatalf("the first deploy created nothing: %+v", res.Apps)
			}

			before := counter.writes.Load()
			res = deployHealthy(t, env, name)
			if writes := counter.writes.Load() - before; writes != 0 {
				t.Errorf("the second deploy of an unchanged workspace made %d writes, want 0 (%+v)", writes, res.Apps)
			}

			up, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{name}, To: tc.to})
			if err != nil {
				t.Fatalf("upgrade %s -> %s: %v", tc.from, tc.to, err)
			}
			if !up.Committed || len(up.Changes) == 0 || up.Changes[0].To != tc.to {
				t.Fatalf("upgrade = %+v, want %s committed", up, tc.to)
			}
			deployHealthy(t, env, name)
			lock, err := env.WS.Lock()
			if err != nil {
				t.Fatal(err)
			}
			if in, _ := lock.Get("app:" + name); in.Version != tc.to {
				t.Errorf("berth.lock has %s at %q, want %s", name, in.Version, tc.to)
			}

			un, err := env.Uninstall(ctx, UninstallOptions{App: name, DeleteData: true, Timeout: 3 * time.Minute})
			if err != nil {
				t.Fatalf("uninstall: %v", err)
			}
			assertGone(t, dynamic.NewForConfigOrDie(testcluster.Config(t)), name, un, false)
		})
	}
}

// TestCatalogPostgreSQLBreakingUpgrade: package 15.5.38 (PostgreSQL 16)
// deploys to healthy, and the upgrade to 16.x (PostgreSQL 17) is refused
// without AllowBreaking, with the package's note, changing nothing.
func TestCatalogPostgreSQLBreakingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	ctx := context.Background()
	env, _ := embeddedEnv(t)
	name := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1DeleteOptions)
	})
	if _, err := env.Install(ctx, InstallOptions{Package: "postgresql@15.5.38", Name: name, Namespace: name}); err != nil {
		t.Fatal(err)
	}
	deployHealthy(t, env, name)
	s, err := testcluster.Clientset(t).CoreV1().Secrets(name).Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(s.Data["password"]) != 32 || len(s.Data["postgres-password"]) != 32 {
		t.Fatalf("the database's Secret: %v; want generated passwords under password and postgres-password", err)
	}

	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	_, err = env.Upgrade(ctx, UpgradeOptions{Apps: []string{name}, To: "16.7.26"})
	var be *BreakingError
	if !errors.As(err, &be) {
		t.Fatalf("upgrade 15.5.38 -> 16.7.26: %v, want a BreakingError", err)
	}
	for _, want := range []string{"postgresql 15.5.38 -> 16.7.26", "PostgreSQL 17 cannot start on a data directory written by PostgreSQL 16", "pg_dumpall"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if git(t, env.WS.Root, "rev-parse", "HEAD") != head || git(t, env.WS.Root, "status", "--porcelain") != "" {
		t.Error("a refused upgrade changed the workspace")
	}
	// Allowed, it goes through (the user has dumped the data first).
	if _, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{name}, To: "16.7.26", AllowBreaking: true, DryRun: true}); err != nil {
		t.Errorf("upgrade with AllowBreaking: %v", err)
	}
}
