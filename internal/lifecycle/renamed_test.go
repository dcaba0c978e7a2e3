package lifecycle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// TestUpgradeCarriesRenamedSettings: memcached 1.6.1 renames maxMemory to
// memory and password to authPassword. An upgrade carries the value the user
// chose and the password generated at install over to the new names, so the
// cluster keeps both; a downgrade carries them back.
func TestUpgradeCarriesRenamedSettings(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, testcluster.Config(t))
	cs := testcluster.Clientset(t)
	name := testcluster.UniqueName(t, 20)
	if _, err := env.Install(ctx, InstallOptions{Package: "memcached", Name: name, Namespace: name, Values: map[string]any{"maxMemory": "128Mi"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	deployed := func() (memory, password string) {
		t.Helper()
		if _, err := env.Deploy(ctx, DeployOptions{Apps: []string{name}, Timeout: 2 * time.Minute}); err != nil {
			t.Fatalf("deploy: %v", err)
		}
		cm, err := cs.CoreV1().ConfigMaps(name).Get(ctx, name+"-settings", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := cs.CoreV1().Secrets(name).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data["memory"], string(s.Data["password"])
	}
	memory, password := deployed()
	if memory != "128Mi" || len(password) != 24 {
		t.Fatalf("1.6.0 deployed memory %q and a password of %d characters, want 128Mi and a generated one of 24", memory, len(password))
	}

	res, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{name}, To: "1.6.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Rename{
		{App: name, Package: "memcached", Version: "1.6.1", From: "maxMemory", To: "memory"},
		{App: name, Package: "memcached", Version: "1.6.1", From: "password", To: "authPassword"},
	}
	if diff := cmp.Diff(want, res.Renamed); diff != "" {
		t.Errorf("renamed settings (-want +got):\n%s", diff)
	}
	a, err := env.WS.App(name)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"memory": "128Mi"}, a.Values); diff != "" {
		t.Errorf("app.yaml values after the upgrade (-want +got):\n%s", diff)
	}
	s, err := env.readSecrets(name)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"authPassword": password}, s.Values); diff != "" {
		t.Error("secrets.yaml does not hold the generated password under its new name authPassword")
	}
	if msg := git(t, env.WS.Root, "log", "-1", "--format=%B"); !strings.Contains(msg, "maxMemory -> memory") || !strings.Contains(msg, "password -> authPassword") || strings.Contains(msg, password) {
		t.Errorf("commit message does not name the renamed settings (or shows the password):\n%s", msg)
	}
	if got, gotPassword := deployed(); got != "128Mi" || gotPassword != password {
		t.Errorf("1.6.1 deployed memory %q (want 128Mi) and the same password: %v", got, gotPassword == password)
	}

	res, err = env.Upgrade(ctx, UpgradeOptions{Apps: []string{name}, To: "1.6.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Renamed) != 2 || res.Renamed[0].From != "authPassword" || res.Renamed[0].To != "password" || res.Renamed[1].From != "memory" || res.Renamed[1].To != "maxMemory" {
		t.Errorf("downgrade renamed %+v, want authPassword -> password and memory -> maxMemory", res.Renamed)
	}
	if got, gotPassword := deployed(); got != "128Mi" || gotPassword != password {
		t.Errorf("back on 1.6.0 deployed memory %q (want 128Mi) and the same password: %v", got, gotPassword == password)
	}
}

// TestUpgradeRenameConflicts: a renamed setting whose new name the user set
// too, or whose old name is in the user's values.yaml (which berth never
// edits), stops the upgrade with an error naming both and changes nothing.
// A channel switch carries renamed settings as an upgrade does.
func TestUpgradeRenameConflicts(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	root := env.WS.Root
	if _, err := env.Install(ctx, InstallOptions{Package: "memcached", Name: "mc", Values: map[string]any{"maxMemory": "128Mi"}}); err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(root, workspace.AppDir("mc"), workspace.ValuesFile)
	tests := map[string]struct {
		values string
		want   []string
	}{
		"new name set by the user": {"memory: 1Gi\n", []string{"memcached 1.6.1 renames the parameter maxMemory to memory", "sets both", "apps/mc/values.yaml", "nothing was changed"}},
		"old name in values.yaml":  {"maxMemory: 1Gi\n", []string{"apps/mc/values.yaml sets maxMemory, which memcached 1.6.1 renames to memory", "rename the key there to memory"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(values, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			git(t, root, "add", "-A")
			git(t, root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "my overrides")
			head := git(t, root, "rev-parse", "HEAD")
			_, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"mc"}, To: "1.6.1"})
			if err == nil {
				t.Fatal("upgrade succeeded, want it refused")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			var ce *RenameConflictError
			if strings.HasPrefix(tc.values, "memory") != errors.As(err, &ce) {
				t.Errorf("error %T, want a *RenameConflictError only for a conflict", err)
			}
			if git(t, root, "rev-parse", "HEAD") != head || git(t, root, "status", "--porcelain", "--untracked-files=all") != "" {
				t.Error("a refused upgrade changed the workspace")
			}
			if v := lockedAt(t, env, "mc"); v != "1.6.0" {
				t.Errorf("mc at %s after a refused upgrade", v)
			}
		})
	}
	git(t, root, "rm", "-q", values)
	git(t, root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "no overrides")
	res, err := env.Config(ctx, ConfigOptions{App: "mc", Channel: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Renamed) != 2 || lockedAt(t, env, "mc") != "1.6.1" {
		t.Errorf("config --channel latest renamed %+v, at %s; want both settings carried to 1.6.1", res.Renamed, lockedAt(t, env, "mc"))
	}
	if a, _ := env.WS.App("mc"); a.Values["memory"] != "128Mi" || a.Values["maxMemory"] != nil {
		t.Errorf("app.yaml values %v, want memory: 128Mi only", a.Values)
	}
}

// TestUpgradeCarriesAComponentsRenamedSettings: webcache 1.1.0 moves its
// private memcached from 1.6.0 to 1.6.1, which renames maxMemory: the value
// the user set for the component (under its dependency name) is carried too.
func TestUpgradeCarriesAComponentsRenamedSettings(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	dir := t.TempDir()
	for version, memcached := range map[string]string{"1.0.0": "1.6.0", "1.1.0": "1.6.1"} {
		files := map[string]string{
			"package.yaml": "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: webcache\nversion: " + version + "\ndescription: A web cache with a private memcached.\nmanifests: [cm.yaml]\n" +
				"dependencies:\n  - {package: memcached, version: \"=" + memcached + "\", kind: component}\n",
			"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: webcache}\n",
		}
		for name, text := range files {
			p := filepath.Join(dir, "webcache", version, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "webcache", "channels.yaml"), []byte("stable: 1.0.0\nlatest: 1.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env.Catalogs = catalog.NewSet([]catalog.Ref{{Name: "web", Type: catalog.TypeDir, URL: dir}, {Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}},
		map[string]catalog.Source{"web": catalog.NewDirSource(dir), catalog.BuiltinName: catalog.Builtin()})
	if _, err := env.Install(ctx, InstallOptions{Package: "webcache", Name: "web", Values: map[string]any{"memcached": map[string]any{"maxMemory": "256Mi"}}}); err != nil {
		t.Fatal(err)
	}
	// The component's Secret, as rendered into the workspace.
	password := func() string {
		t.Helper()
		objs, err := env.WS.ReadRendered("web")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() == "Secret" && o.GetName() == "web-memcached" {
				p, _, _ := unstructured.NestedString(o.Object, "stringData", "password")
				return p
			}
		}
		t.Fatal("no Secret web-memcached rendered")
		return ""
	}
	before := password()
	res, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"web"}, To: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if after := password(); len(before) != 24 || after != before {
		t.Error("the component's generated password changed with its parameter's name")
	}
	want := []Rename{
		{App: "web", Component: "memcached", Package: "memcached", Version: "1.6.1", From: "maxMemory", To: "memory"},
		{App: "web", Component: "memcached", Package: "memcached", Version: "1.6.1", From: "password", To: "authPassword"},
	}
	if diff := cmp.Diff(want, res.Renamed); diff != "" {
		t.Errorf("renamed settings (-want +got):\n%s", diff)
	}
	a, err := env.WS.App("web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"memcached": map[string]any{"memory": "256Mi"}}, a.Values); diff != "" {
		t.Errorf("app.yaml values after the upgrade (-want +got):\n%s", diff)
	}
}

// TestCarryFollowsChainedRenames: a renamed to b in one version and b to c in
// the next take a value set as a (plain, secret, or generated and never set)
// to c, into secrets.yaml as c is secret; a user value under the new name
// stops it.
func TestCarryFollowsChainedRenames(t *testing.T) {
	parse := func(version, config string) *pkgspec.Package {
		t.Helper()
		p, err := pkgspec.Parse("chain/package.yaml", []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: chain\nversion: "+version+"\ndescription: d\nmanifests: [m.yaml]\nconfig:\n"+config))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	rn := &renames{
		steps: []renameStep{{version: "1.1.0", names: map[string]string{"a": "b"}}, {version: "1.2.0", names: map[string]string{"b": "c"}}},
		from:  parse("1.0.0", "  - {name: a, type: password, generate: {length: 16}}\n"),
		to:    parse("1.2.0", "  - {name: c, type: password, generate: {length: 16}}\n"),
	}
	gen := pkgspec.SeededGenerator([]byte("0123456789abcdef0123456789abcdef"), "ns/app")
	generated, err := gen.Generate("a", pkgspec.Generate{Length: 16})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		plain, secret, user map[string]any
		wantPlain           map[string]any
		wantSecret          map[string]any
		wantErr             string
	}{
		"set in app.yaml":      {plain: map[string]any{"a": "x"}, secret: map[string]any{}, wantPlain: map[string]any{}, wantSecret: map[string]any{"c": "x"}},
		"set in secrets.yaml":  {plain: map[string]any{}, secret: map[string]any{"a": "x"}, wantPlain: map[string]any{}, wantSecret: map[string]any{"c": "x"}},
		"generated":            {plain: map[string]any{}, secret: map[string]any{}, wantPlain: map[string]any{}, wantSecret: map[string]any{"c": generated}},
		"new name set as well": {plain: map[string]any{"a": "x"}, secret: map[string]any{}, user: map[string]any{"c": "y"}, wantErr: "renames the parameter b to c, and app app sets both (c in apps/app/values.yaml)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := appValues{plain: tc.plain, secret: tc.secret, user: tc.user, generator: gen}
			var err error
			for _, st := range rn.steps {
				for old, to := range st.names {
					if _, err = carry(v, rn, Rename{App: "app", Package: "chain", Version: st.version, From: old, To: to}); err != nil {
						break
					}
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("carry: %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantPlain, v.plain); diff != "" {
				t.Errorf("app.yaml values (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSecret, v.secret); diff != "" {
				t.Errorf("secret values (-want +got):\n%s", diff)
			}
		})
	}
}
