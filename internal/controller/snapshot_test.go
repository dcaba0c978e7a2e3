package controller

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/workspace"
)

func TestAppDependenciesAndOrder(t *testing.T) {
	tests := map[string]struct {
		apps    []string
		lock    []workspace.LockInstance
		deps    map[string][]string
		order   []string
		errs    map[string]string // app -> part of its error
		wantErr string
	}{
		"shared first": {
			apps: []string{"airflow", "grafana"},
			lock: []workspace.LockInstance{
				{Key: "app:airflow", Dependencies: map[string]string{"postgresql": "app:airflow/postgresql", "redis": "shared:redis"}},
				{Key: "app:airflow/postgresql", Dependencies: map[string]string{"certs": "shared:cert-manager"}},
				{Key: "app:grafana", Dependencies: map[string]string{"cert-manager": "shared:cert-manager"}},
				{Key: "shared:redis"},
				{Key: "shared:cert-manager"},
			},
			deps:  map[string][]string{"airflow": {"cert-manager", "redis"}, "grafana": {"cert-manager"}},
			order: []string{"cert-manager", "grafana", "redis", "airflow"},
		},
		"no lock": {
			apps:  []string{"b", "a"},
			deps:  map[string][]string{},
			order: []string{"a", "b"},
		},
		"missing dependency fails only its user": {
			apps:  []string{"a", "b"},
			lock:  []workspace.LockInstance{{Key: "app:a", Dependencies: map[string]string{"x": "app:gone"}}},
			deps:  map[string][]string{"a": {"gone"}},
			order: []string{"a", "b"},
			errs:  map[string]string{"a": "depends on gone"},
		},
		"cycle": {
			apps:    []string{"a", "b"},
			lock:    []workspace.LockInstance{{Key: "app:a", Dependencies: map[string]string{"b": "app:b"}}, {Key: "app:b", Dependencies: map[string]string{"a": "app:a"}}},
			deps:    map[string][]string{"a": {"b"}, "b": {"a"}},
			wantErr: "apps a, b depend on each other",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			lock := &workspace.Lock{Instances: tt.lock}
			deps := appDependencies(lock)
			if diff := cmp.Diff(tt.deps, deps); diff != "" {
				t.Errorf("dependencies (-want +got):\n%s", diff)
			}
			apps := map[string]*appSpec{}
			for _, n := range tt.apps {
				apps[n] = &appSpec{Name: n}
			}
			for _, inst := range tt.lock {
				if p, ok := strings.CutPrefix(inst.Key, "shared:"); ok {
					apps[p] = &appSpec{Name: p}
				}
			}
			for n, a := range apps {
				a.DependsOn = deps[n]
			}
			ordered, err := dependencyOrder(apps)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range ordered {
				got = append(got, a.Name)
				want := tt.errs[a.Name]
				if (a.Err == nil) != (want == "") || (a.Err != nil && !strings.Contains(a.Err.Error(), want)) {
					t.Errorf("app %s: err %v, want %q", a.Name, a.Err, want)
				}
			}
			if diff := cmp.Diff(tt.order, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStripIgnoredFields(t *testing.T) {
	dep := func(ann string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web"},
			"spec":     map[string]any{"replicas": int64(3), "paused": false},
		}}
		if ann != "" {
			u.SetAnnotations(map[string]string{"berth.dev/ignore-fields": ann})
		}
		return u
	}
	tests := map[string]struct {
		ann     string
		spec    map[string]any
		wantErr string
	}{
		"none":        {"", map[string]any{"replicas": int64(3), "paused": false}, ""},
		"replicas":    {"spec.replicas", map[string]any{"paused": false}, ""},
		"two, spaced": {"spec.replicas, spec.paused", map[string]any{}, ""},
		"name":        {"metadata.name", nil, "identifies the object"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := dep(tt.ann)
			out, err := stripIgnoredFields([]*unstructured.Unstructured{in})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := unstructured.NestedMap(out[0].Object, "spec")
			if diff := cmp.Diff(tt.spec, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if r, _, _ := unstructured.NestedInt64(in.Object, "spec", "replicas"); r != 3 {
				t.Error("the input object was changed")
			}
		})
	}
}
