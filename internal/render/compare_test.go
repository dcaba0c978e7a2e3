package render

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
)

// mirror is the offline copy of upstream chart repositories (see its README).
const mirror = "/work/shared/charts"

var helmOnce struct {
	sync.Once
	path string
	err  error
}

// helmCLI returns the helm command line at the version berth's go.mod
// requires, building it into the user's cache (berth/tools) the first time.
func helmCLI(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "helm.sh/helm/v4").Output()
		if err != nil {
			helmOnce.err = fmt.Errorf("the version of helm.sh/helm/v4 in go.mod: %w", err)
			return
		}
		version := strings.TrimSpace(string(out))
		cache, err := os.UserCacheDir()
		if err != nil {
			helmOnce.err = err
			return
		}
		dir := filepath.Join(cache, "berth", "tools")
		bin := filepath.Join(dir, "helm-"+version)
		helmOnce.path = bin
		if _, err := os.Stat(bin); err == nil {
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			helmOnce.err = err
			return
		}
		tmp, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			helmOnce.err = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", "helm.sh/helm/v4/cmd/helm@"+version)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmOnce.err = fmt.Errorf("building helm %s: %v\n%s", version, err, out)
			return
		}
		helmOnce.err = os.Rename(filepath.Join(tmp, "helm"), bin)
	})
	if helmOnce.err != nil {
		t.Fatal(helmOnce.err)
	}
	return helmOnce.path
}

// mirrorChart is one chart version of the mirror.
type mirrorChart struct {
	name, version, digest, archive string
}

// mirrorCharts lists every chart version of every index.yaml in the mirror.
func mirrorCharts(t testing.TB) []mirrorChart {
	t.Helper()
	var out []mirrorChart
	err := filepath.WalkDir(mirror, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "index.yaml" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var idx struct {
			Entries map[string][]struct {
				Version string   `yaml:"version"`
				Digest  string   `yaml:"digest"`
				URLs    []string `yaml:"urls"`
			} `yaml:"entries"`
		}
		if err := yaml.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for name, versions := range idx.Entries {
			for _, v := range versions {
				if len(v.URLs) == 0 {
					return fmt.Errorf("%s: %s %s has no url", p, name, v.Version)
				}
				_, rest, _ := strings.Cut(v.URLs[0], "://")
				out = append(out, mirrorChart{name: name, version: v.Version, digest: "sha256:" + v.Digest, archive: filepath.Join(mirror, rest)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].name+" "+out[i].version < out[j].name+" "+out[j].version
	})
	return out
}

// compareValues returns the values file testdata/compare holds for a chart,
// or "" when it renders with its defaults.
func compareValues(c mirrorChart) string {
	for _, n := range []string{c.name + "-" + c.version + ".yaml", c.name + ".yaml"} {
		p := filepath.Join("testdata", "compare", n)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// renderMirrorChart renders a mirror chart with berth as a package that
// wraps it with the given values.
func renderMirrorChart(t testing.TB, c mirrorChart, archiveBytes []byte, values string, seed []byte) *Result {
	t.Helper()
	return renderMirrorChartAs(t, c, archiveBytes, values, seed, "rel", "ns")
}

// renderMirrorChartAs is renderMirrorChart as app in namespace.
func renderMirrorChartAs(t testing.TB, c mirrorChart, archiveBytes []byte, values string, seed []byte, app, namespace string) *Result {
	t.Helper()
	vals := []byte("{}\n")
	if values != "" {
		var err error
		if vals, err = os.ReadFile(values); err != nil {
			t.Fatal(err)
		}
	}
	files := fstest.MapFS{
		"package.yaml": {Data: fmt.Appendf(nil, "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: %s\nversion: 1.0.0\ndescription: d\ncharts:\n  - {repo: https://charts.example.com, chart: %s, version: %q, digest: %q, values: values.yaml}\n", c.name, c.name, c.version, c.digest)},
		"values.yaml":  {Data: vals},
	}
	if _, err := semver.StrictNewVersion(c.version); err != nil {
		// A package pins repository charts by exact versions, which
		// cert-manager's ("v1.19.1") are not: wrap the archive's files as a
		// chart inside the package instead.
		chartFiles, err := archive.LoadArchiveFiles(bytes.NewReader(archiveBytes))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range chartFiles {
			files["chart/"+f.Name] = &fstest.MapFile{Data: f.Data}
		}
		files["package.yaml"] = &fstest.MapFile{Data: fmt.Appendf(nil, "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: %s\nversion: 1.0.0\ndescription: d\ncharts:\n  - {path: chart, values: values.yaml}\n", c.name)}
	}
	p, err := pkgspec.Load(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Input{Package: p, Files: files, App: app, Namespace: namespace, Config: pkgspec.Config{}, Charts: map[string][]byte{c.name: archiveBytes}, Seed: seed})
	if err != nil {
		t.Fatalf("berth: %v", err)
	}
	return res
}

// TestCompareWithHelm renders every chart version of the mirror with berth
// and with the helm command line, with the same values, release name and
// namespace, and compares the objects after normalising what berth changes
// on purpose: its own labels and annotations, helm's hook annotations (berth
// turns them into stages), namespaces it fills in, and the hooks it does not
// run (test, delete and rollback hooks). Values that differ between two
// renders of the same chart (random passwords and certificates, and checksums
// of them) are masked on both sides.
func TestCompareWithHelm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the helm command line")
	}
	if _, err := os.Stat(mirror); err != nil {
		t.Fatalf("the chart mirror: %v", err)
	}
	helm := helmCLI(t)
	for _, c := range mirrorCharts(t) {
		t.Run(c.name+"@"+c.version, func(t *testing.T) {
			archive, err := os.ReadFile(c.archive)
			if err != nil {
				t.Fatal(err)
			}
			if got := catalog.Digest(archive); got != c.digest {
				t.Fatalf("%s has digest %s, the index says %s", c.archive, got, c.digest)
			}
			values := compareValues(c)
			first := renderMirrorChart(t, c, archive, values, nil)
			second := renderMirrorChart(t, c, archive, values, nil)
			random := randomPaths(normalise(first), normalise(second))

			args := []string{"template", "rel", c.archive, "--namespace", "ns", "--kube-version", DefaultKubeVersion, "--include-crds"}
			if values != "" {
				args = append(args, "--values", values)
			}
			for _, v := range crdAPIVersions(first) {
				args = append(args, "--api-versions", v)
			}
			cmd := exec.Command(helm, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			objs, err := decodeObjects("helm template", out)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := decodeObjectsReference("helm template", out)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ref, objs); diff != "" {
				t.Errorf("decodeObjects differs from the JSON round trip (-round trip +decodeObjects):\n%s", diff)
			}
			for _, o := range append(objs, objectsOf(first)...) {
				checkMarshalYAML(t, o.Object)
			}
			var fromHelm []Object
			for _, o := range objs {
				if runsAsHook(o) {
					fromHelm = append(fromHelm, Object{Object: o})
				}
			}
			want := mask(normalise(&Result{Objects: fromHelm}), random)
			got := mask(normalise(first), random)
			t.Logf("%d objects, %d values random in both", len(got), len(random))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("berth differs from helm template (-helm +berth):\n%s", diff)
			}
		})
	}
}

// runsAsHook says whether berth keeps an object helm template prints: every
// object but the hooks without an install or upgrade event.
func runsAsHook(o *unstructured.Unstructured) bool {
	h, ok := o.GetAnnotations()["helm.sh/hook"]
	if !ok {
		return true
	}
	for _, e := range strings.Split(h, ",") {
		switch strings.TrimSpace(e) {
		case "pre-install", "post-install", "pre-upgrade", "post-upgrade":
			return true
		}
	}
	return false
}

// crdAPIVersions lists the versions of the CRDs in the charts' crds/
// folders, which berth adds to .Capabilities.APIVersions (helm install sees
// them too, as it installs them first; helm template needs --api-versions).
func crdAPIVersions(res *Result) []string {
	var out []string
	for _, o := range res.Objects {
		if o.Object.GetKind() != "CustomResourceDefinition" || !strings.Contains(o.Source, "/crds/") {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object.Object, "spec", "names", "kind")
		versions, _, _ := unstructured.NestedSlice(o.Object.Object, "spec", "versions")
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok {
				out = append(out, fmt.Sprintf("%s/%s", group, m["name"]), fmt.Sprintf("%s/%s/%s", group, m["name"], kind))
			}
		}
	}
	return out
}

// normalise keys objects by kind and name and removes what berth changes on
// purpose.
func normalise(res *Result) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range res.Objects {
		u := o.Object.DeepCopy()
		if u.GetNamespace() == "ns" {
			u.SetNamespace("")
		}
		labels := u.GetLabels()
		delete(labels, LabelApp)
		delete(labels, LabelPackage)
		if len(labels) == 0 {
			unstructured.RemoveNestedField(u.Object, "metadata", "labels")
		} else {
			u.SetLabels(labels)
		}
		ann := u.GetAnnotations()
		for k := range ann {
			if strings.HasPrefix(k, "berth.dev/") || strings.HasPrefix(k, "helm.sh/hook") {
				delete(ann, k)
			}
		}
		if len(ann) == 0 {
			unstructured.RemoveNestedField(u.Object, "metadata", "annotations")
		} else {
			u.SetAnnotations(ann)
		}
		key := u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
		out[key] = u.Object
	}
	return out
}

// randomPaths lists the leaves that differ between two renders, as
// "key path" strings.
func randomPaths(a, b map[string]map[string]any) map[string]bool {
	out := map[string]bool{}
	for k, oa := range a {
		diffLeaves(k, oa, b[k], out)
	}
	return out
}

func diffLeaves(prefix string, a, b any, out map[string]bool) {
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if okA && okB {
		for k, v := range ma {
			diffLeaves(prefix+"."+k, v, mb[k], out)
		}
		return
	}
	la, okA := a.([]any)
	lb, okB := b.([]any)
	if okA && okB && len(la) == len(lb) {
		for i := range la {
			diffLeaves(fmt.Sprintf("%s[%d]", prefix, i), la[i], lb[i], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		out[prefix] = true
	}
}

// mask replaces the random leaves of objs.
func mask(objs map[string]map[string]any, random map[string]bool) map[string]map[string]any {
	for k, o := range objs {
		objs[k] = maskValue(k, o, random).(map[string]any)
	}
	return objs
}

func maskValue(prefix string, v any, random map[string]bool) any {
	if random[prefix] {
		return "(random)"
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = maskValue(prefix+"."+k, e, random)
		}
	case []any:
		for i, e := range v {
			v[i] = maskValue(fmt.Sprintf("%s[%d]", prefix, i), e, random)
		}
	}
	return v
}

func digestHex(b []byte) string {
	return strings.TrimPrefix(catalog.Digest(b), "sha256:")
}

func objectsOf(res *Result) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range res.Objects {
		out = append(out, o.Object)
	}
	return out
}

// checkMarshalYAML checks that marshalYAML writes obj as sigs.k8s.io/yaml does.
func checkMarshalYAML(t *testing.T, obj map[string]any) {
	t.Helper()
	want, err := sigsyaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	got, err := marshalYAML(obj)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("marshalYAML differs from sigs.k8s.io/yaml (-sigs +marshalYAML):\n%s", diff)
	}
}
