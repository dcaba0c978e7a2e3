package workspace

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const testConfig = "apiVersion: berth.dev/v1alpha1\nkind: Workspace\ncluster: {}\ndefaults: {}\n"

func appFile(name string) string {
	return "apiVersion: berth.dev/v1alpha1\nkind: App\nname: " + name + "\npackage: p\nnamespace: " + name + "\n"
}

func lockYAML(t *testing.T, ins []LockInstance) string {
	t.Helper()
	data, err := yaml.Marshal(Lock{APIVersion: APIVersion, Kind: "Lock", Instances: ins})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestLoadDependenciesAndOrder(t *testing.T) {
	tests := map[string]struct {
		apps    []string
		lock    []LockInstance
		deps    map[string][]string
		order   []string
		errs    map[string]string // app -> part of its error
		wantErr string
	}{
		"shared first, and shared dependencies of components": {
			apps: []string{"airflow", "grafana"},
			lock: []LockInstance{
				{Key: "app:airflow", Dependencies: map[string]string{"postgresql": "app:airflow/postgresql", "redis": "shared:redis"}},
				{Key: "app:airflow/postgresql", Dependencies: map[string]string{"certs": "shared:cert-manager"}},
				{Key: "app:grafana", Dependencies: map[string]string{"cert-manager": "shared:cert-manager"}},
				{Key: "shared:redis"},
				{Key: "shared:cert-manager"},
			},
			deps:  map[string][]string{"airflow": {"cert-manager", "redis"}, "grafana": {"cert-manager"}},
			order: []string{"cert-manager", "grafana", "redis", "airflow"},
		},
		"a shared dependency of a shared dependency": {
			apps: []string{"web"},
			lock: []LockInstance{
				{Key: "app:web", Dependencies: map[string]string{"grafana": "shared:grafana"}},
				{Key: "shared:grafana", Dependencies: map[string]string{"cert-manager": "shared:cert-manager"}},
				{Key: "shared:cert-manager"},
			},
			deps:  map[string][]string{"web": {"grafana"}, "grafana": {"cert-manager"}},
			order: []string{"cert-manager", "grafana", "web"},
		},
		"no lock": {
			apps:  []string{"b", "a"},
			deps:  map[string][]string{},
			order: []string{"a", "b"},
		},
		"missing dependency fails only its user": {
			apps:  []string{"a", "b"},
			lock:  []LockInstance{{Key: "app:a", Dependencies: map[string]string{"x": "app:gone"}}},
			deps:  map[string][]string{"a": {"gone"}},
			order: []string{"a", "b"},
			errs:  map[string]string{"a": "depends on gone"},
		},
		"cycle": {
			apps:    []string{"a", "b"},
			lock:    []LockInstance{{Key: "app:a", Dependencies: map[string]string{"b": "app:b"}}, {Key: "app:b", Dependencies: map[string]string{"a": "app:a"}}},
			deps:    map[string][]string{"a": {"b"}, "b": {"a"}},
			wantErr: "apps a, b depend on each other",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{ConfigFile: {Data: []byte(testConfig)}}
			if tt.lock != nil {
				fsys[LockFile] = &fstest.MapFile{Data: []byte(lockYAML(t, tt.lock))}
			}
			for _, a := range tt.apps {
				fsys["apps/"+a+"/app.yaml"] = &fstest.MapFile{Data: []byte(appFile(a))}
			}
			s, err := Load(fsys)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for n, a := range s.Apps {
				if len(a.DependsOn) > 0 {
					got[n] = a.DependsOn
				}
			}
			if diff := cmp.Diff(tt.deps, got); diff != "" {
				t.Errorf("dependencies (-want +got):\n%s", diff)
			}
			ordered, err := s.Order()
			if tt.wantErr != "" {
				var ce *CycleError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a CycleError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range ordered {
				names = append(names, a.Name)
				want := tt.errs[a.Name]
				if (a.Err == nil) != (want == "") || (a.Err != nil && !strings.Contains(a.Err.Error(), want)) {
					t.Errorf("app %s: err %v, want %q", a.Name, a.Err, want)
				}
			}
			if diff := cmp.Diff(tt.order, names); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOrderOfNamedAppsIncludesWhatTheyDependOn(t *testing.T) {
	fsys := fstest.MapFS{
		ConfigFile: {Data: []byte(testConfig)},
		LockFile: {Data: []byte(lockYAML(t, []LockInstance{
			{Key: "app:a", Dependencies: map[string]string{"s": "shared:s"}}, {Key: "app:b"}, {Key: "shared:s"},
		}))},
		"apps/a/app.yaml": {Data: []byte(appFile("a"))},
		"apps/b/app.yaml": {Data: []byte(appFile("b"))},
	}
	s, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	ordered, err := s.Order("a")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range ordered {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{"s", "a"}, names); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if _, err := s.Order("nope"); !errors.Is(err, ErrAppNotFound) {
		t.Errorf("Order(nope) = %v, want ErrAppNotFound", err)
	}
	if got := s.Dependants("s"); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("Dependants(s) = %v", got)
	}
}

// The controller and the CLI read a workspace with Load: a typo is an error
// for both, naming the file and the field.
func TestLoadIsStrictAndNamesTheFile(t *testing.T) {
	tests := map[string]struct {
		files   map[string]string
		wantErr string // a workspace error
		appErr  string // the error of app "a"
	}{
		"no berth.yaml":           {files: map[string]string{}, wantErr: "berth.yaml: missing"},
		"unknown field in config": {files: map[string]string{ConfigFile: testConfig + "catalogz: []\n"}, wantErr: `berth.yaml: error unmarshaling JSON: while decoding JSON: json: unknown field "catalogz"`},
		"mirror without location": {files: map[string]string{ConfigFile: testConfig + "mirrors:\n- upstream: https://charts.jetstack.io\n"}, wantErr: "berth.yaml: mirrors[0]: location is empty"},
		"mirror of no repository": {files: map[string]string{ConfigFile: testConfig + "mirrors:\n- upstream: charts.jetstack.io\n  location: m\n"}, wantErr: `berth.yaml: mirrors[0]: upstream "charts.jetstack.io" is neither`},
		"typo in a locked chart": {files: map[string]string{ConfigFile: testConfig,
			LockFile: "apiVersion: berth.dev/v1alpha1\nkind: Lock\ninstances: []\ncharts:\n- repo: https://r\n  chart: c\n  version: 1.0.0\n  digets: x\n"}, wantErr: `unknown field "digets"`},
		"wrong kind": {files: map[string]string{ConfigFile: "apiVersion: berth.dev/v1alpha1\nkind: App\n"}, wantErr: "want apiVersion berth.dev/v1alpha1 and kind Workspace"},
		"typo in the lock": {files: map[string]string{ConfigFile: testConfig,
			LockFile: "apiVersion: berth.dev/v1alpha1\nkind: Lock\ninstances:\n- key: app:a\n  versoin: 1.0.0\n"}, wantErr: `berth.lock: error unmarshaling JSON: while decoding JSON: json: unknown field "versoin"`},
		"malformed key in the lock": {files: map[string]string{ConfigFile: testConfig,
			LockFile: "apiVersion: berth.dev/v1alpha1\nkind: Lock\ninstances:\n- key: apps:a\n"}, wantErr: `berth.lock: instances[0].key: instance key "apps:a" is malformed`},
		"typo in an app": {files: map[string]string{ConfigFile: testConfig, "apps/a/app.yaml": appFile("a") + "channl: stable\n"},
			appErr: `apps/a/app.yaml: error unmarshaling JSON: while decoding JSON: json: unknown field "channl"`},
		"app named after another directory": {files: map[string]string{ConfigFile: testConfig, "apps/a/app.yaml": appFile("b")},
			appErr: `apps/a/app.yaml: name is "b", want "a"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, d := range tt.files {
				fsys[p] = &fstest.MapFile{Data: []byte(d)}
			}
			s, err := Load(fsys)
			if tt.wantErr != "" {
				var ie *InvalidError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want an InvalidError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := s.Apps["a"]
			if a == nil || a.Err == nil || !strings.Contains(a.Err.Error(), tt.appErr) {
				t.Fatalf("app a = %+v, want error %q", a, tt.appErr)
			}
		})
	}
}

func TestInstanceKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"app:a", "app:a/postgresql", "shared:cert-manager"} {
		k, err := ParseInstanceKey(s)
		if err != nil {
			t.Fatal(err)
		}
		if k.String() != s {
			t.Errorf("ParseInstanceKey(%q).String() = %q", s, k.String())
		}
	}
	for _, bad := range []string{"", "app:", "app:a/", "app:a/b/c", "shared:", "shared:a/b", "apps:a"} {
		if _, err := ParseInstanceKey(bad); err == nil {
			t.Errorf("ParseInstanceKey(%q) accepted it", bad)
		}
	}
}

// A commit read through TreeFS is the workspace Load reads from the working
// tree at that commit; an uncommitted change is not in it.
func TestCommitFSReadsWhatTheWorkingTreeHeldAtTheCommit(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	objs := []*unstructured.Unstructured{obj("v1", "ConfigMap", "web", "a"), obj("apps/v1", "Deployment", "web", "b")}
	err := w.Change(ctx, "add web", []string{"apps/web", "rendered/web"}, func() error {
		if err := w.WriteApp(&App{Name: "web", Package: "p", Namespace: "web"}); err != nil {
			return err
		}
		_, err := w.WriteRendered(ctx, "web", objs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Uncommitted: not deployed.
	if err := w.WriteApp(&App{Name: "web", Package: "p", Namespace: "other"}); err != nil {
		t.Fatal(err)
	}
	tfs, rev, err := CommitFS(w.Root, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if rev != gitOut(t, w.Root, "rev-parse", "HEAD") {
		t.Errorf("CommitFS revision %s, HEAD is %s", rev, gitOut(t, w.Root, "rev-parse", "HEAD"))
	}
	snap, err := Load(tfs)
	if err != nil {
		t.Fatal(err)
	}
	if a := snap.Apps["web"]; a == nil || a.Namespace != "web" || a.Err != nil {
		t.Fatalf("app web at HEAD = %+v, want namespace web", a)
	}
	got, err := ReadRenderedFS(tfs, AppRenderedDir("web"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := w.ReadRendered("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !cmp.Equal(got, want) {
		t.Errorf("objects at HEAD:\n%v\nin the working tree:\n%v", got, want)
	}
	if err := fstest.TestFS(tfs, "berth.yaml", "apps/web/app.yaml"); err != nil {
		t.Errorf("TreeFS is not a correct fs.FS: %v", err)
	}
}
