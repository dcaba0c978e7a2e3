package deploy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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
			out, err := StripIgnoredFields([]*unstructured.Unstructured{in})
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

func TestPhasesGroupByAnnotationInOrderUnannotatedLast(t *testing.T) {
	obj := func(name, phase string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}}}
		if phase != "" {
			u.SetAnnotations(map[string]string{AnnotationPhase: phase})
		}
		return u
	}
	in := []*unstructured.Unstructured{obj("main", "10"), obj("none", ""), obj("crds", "2"), obj("pre", "3"), obj("main2", "10")}
	var got [][]string
	for _, ph := range Phases(in) {
		var names []string
		for _, o := range ph {
			names = append(names, o.GetName())
		}
		got = append(got, names)
	}
	want := [][]string{{"crds"}, {"pre"}, {"main", "main2"}, {"none"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
}
