package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/ignore"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/pkgspec"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// loadChart loads the chart in dir of fsys as helm loads a chart directory:
// the files its .helmignore (and helm's default rule, dot files in
// templates/) exclude are left out, so the same files always give the chart
// helm would package.
func loadChart(fsys fs.FS, dir string) (*chart.Chart, error) {
	rules := ignore.Empty()
	if b, err := fs.ReadFile(fsys, path.Join(dir, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.Parse(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("%s: %w", ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if rel == "" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rules.Ignore(rel, fi) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: rel, Data: bytes.TrimPrefix(b, utf8BOM)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(files)
}

// loadArchive loads a chart from a repository's archive after checking it is
// the archive the package pins, if it pins one.
func loadArchive(b []byte, c pkgspec.Chart) (*chart.Chart, error) {
	if b == nil {
		return nil, fmt.Errorf("the archive of %s %s from %s was not fetched", c.Chart, c.Version, c.Repo)
	}
	// The fetcher checked the archive against the lock; a pin is checked
	// here again because a caller may hand over archives of its own.
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); c.Digest != "" && got != c.Digest {
		return nil, fmt.Errorf("the archive of %s %s has digest %s, but the package pins %s", c.Chart, c.Version, got, c.Digest)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if ch.Metadata.Version != c.Version {
		return nil, fmt.Errorf("the archive holds %s %s, not version %s", ch.Metadata.Name, ch.Metadata.Version, c.Version)
	}
	return ch, nil
}

// checkDependencies refuses a chart whose Chart.yaml declares a dependency
// that its charts/ folder does not hold, as helm install and helm template do.
func checkDependencies(ch *chart.Chart) error {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, d := range ch.Metadata.Dependencies {
		if d != nil && !have[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("the dependencies %s of chart %s are declared in its Chart.yaml but missing from its charts/ folder; vendor them there (helm dependency build does)", strings.Join(missing, ", "), ch.Name())
	}
	return nil
}

// chartResult is one rendered chart.
type chartResult struct {
	objects []Object
	skipped []string
	notes   string
}

func renderChart(in Input, c pkgspec.Chart, data TemplateData, kv *common.KubeVersion) (*chartResult, error) {
	name := c.ChartName()
	where := fmt.Sprintf("%s: chart %s", in.Package.File, name)
	var ch *chart.Chart
	var err error
	if c.Path != "" {
		ch, err = loadChart(in.Files, c.Path)
	} else {
		ch, err = loadArchive(in.Charts[name], c)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	vals := map[string]any{}
	if c.Values != "" {
		text, err := fs.ReadFile(in.Files, c.Values)
		if err != nil {
			return nil, fmt.Errorf("%s: values template: %w", where, err)
		}
		out, err := execute(c.Values, string(text), data)
		if err != nil {
			return nil, fmt.Errorf("%s: values template %w", where, err)
		}
		// Read as helm reads a values file (JSON semantics: every number
		// is a float64), so the chart sees the types it sees under helm.
		vals, err = common.ReadValues([]byte(out))
		if err != nil {
			return nil, fmt.Errorf("%s: values template %s does not produce YAML: %w", where, c.Values, err)
		}
	}
	out, err := renderHelm(ch, vals, helmOptions{
		release: common.ReleaseOptions{Name: in.App, Namespace: in.Namespace, Revision: 1, IsInstall: true},
		kube:    kv, apiVersions: in.APIVersions, seed: in.Seed, scope: in.Namespace + "/" + in.App + "/" + name, now: in.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	docs, err := decodeRendered(out.files)
	if err != nil {
		return nil, fmt.Errorf("%s: rendered an invalid manifest: %w", where, err)
	}
	res := &chartResult{notes: out.notes, objects: out.crds}
	for _, d := range docs {
		o := d.obj
		ann := o.GetAnnotations()
		hook, ok := ann[releasev1.HookAnnotation]
		if !ok {
			res.objects = append(res.objects, Object{Stage: StageMain, Source: d.path, Object: o})
			continue
		}
		evs, known := hookEvents(hook)
		if !known {
			// Helm ignores a hook with an event it does not know.
			res.skipped = append(res.skipped, fmt.Sprintf("%s %s (unknown hook %q)", o.GetKind(), o.GetName(), hook))
			continue
		}
		stage, events := hookStage(evs)
		if stage == "" {
			res.skipped = append(res.skipped, fmt.Sprintf("%s %s (%s hook)", o.GetKind(), o.GetName(), joinEvents(evs)))
			continue
		}
		weight, err := strconv.Atoi(ann[releasev1.HookWeightAnnotation])
		if err != nil {
			weight = 0 // as helm
		}
		delete(ann, releasev1.HookAnnotation)
		delete(ann, releasev1.HookWeightAnnotation)
		if p, ok := ann[releasev1.HookDeleteAnnotation]; ok {
			delete(ann, releasev1.HookDeleteAnnotation)
			ann[AnnotationDeletePolicy] = p
		}
		if weight != 0 {
			ann[AnnotationHookWeight] = strconv.Itoa(weight)
		}
		ann[AnnotationStage] = string(stage)
		ann[AnnotationHookEvents] = events
		o.SetAnnotations(ann)
		res.objects = append(res.objects, Object{Stage: stage, Weight: weight, Source: d.path, Object: o})
	}
	sort.Strings(res.skipped)
	return res, nil
}

// helmOptions are what renderHelm needs besides the chart and values.
type helmOptions struct {
	release     common.ReleaseOptions
	kube        *common.KubeVersion
	apiVersions []string
	seed        []byte
	scope       string
	now         time.Time
}

// helmOutput is a chart rendered by helm's engine.
type helmOutput struct {
	// files are the rendered templates, without NOTES.txt.
	files map[string]string
	// notes is the top chart's rendered NOTES.txt.
	notes string
	// crds are the objects of the crds/ folders of the chart and its enabled
	// subcharts.
	crds []Object
}

// renderHelm renders a chart as helm install (and helm template) does: it
// refuses missing dependencies, drops the subcharts that conditions and tags
// disable, imports values, validates against the schema and runs the engine.
// The chart's dependencies are changed in place.
func renderHelm(ch *chart.Chart, vals map[string]any, o helmOptions) (*helmOutput, error) {
	if err := checkDependencies(ch); err != nil {
		return nil, err
	}
	if ch.Metadata.KubeVersion != "" && !chartutilCompatible(ch.Metadata.KubeVersion, o.kube.Version) {
		return nil, fmt.Errorf("the chart needs Kubernetes %s, not %s", ch.Metadata.KubeVersion, o.kube.Version)
	}
	if err := chartv2util.ProcessDependencies(ch, vals); err != nil {
		return nil, fmt.Errorf("processing the chart's dependencies: %w", err)
	}
	out := &helmOutput{}
	crdFiles := ch.CRDObjects()
	decoded := make([][]*unstructured.Unstructured, len(crdFiles))
	err := parallel(len(crdFiles), func(i int) error {
		// Helm writes CRDs followed by a newline too.
		data := crdFiles[i].File.Data
		var err error
		decoded[i], err = decodeObjects(crdFiles[i].Filename, append(data[:len(data):len(data)], '\n'))
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, got := range decoded {
		for _, obj := range got {
			ann := obj.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann[AnnotationChartCRD] = "true"
			obj.SetAnnotations(ann)
			out.crds = append(out.crds, Object{Stage: StageCRDs, Source: crdFiles[i].Filename, Object: obj})
		}
	}
	versions := common.DefaultVersionSet
	if len(o.apiVersions) > 0 {
		versions = common.VersionSet(o.apiVersions)
	}
	caps := &common.Capabilities{
		KubeVersion: *o.kube,
		APIVersions: append(slices.Clone(versions), crdVersions(out.crds)...),
		HelmVersion: common.DefaultCapabilities.HelmVersion,
	}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, o.release, caps, false)
	if err != nil {
		return nil, fmt.Errorf("the values do not fit the chart: %w", err)
	}
	e := engine.Engine{}
	if o.seed != nil {
		e.CustomTemplateFuncs = newSeeded(o.seed, o.scope, o.now).funcs()
	}
	if out.files, err = e.Render(ch, rv); err != nil {
		return nil, err
	}
	for k, v := range out.files {
		if strings.HasSuffix(k, "NOTES.txt") {
			if k == path.Join(ch.Name(), "templates", "NOTES.txt") {
				out.notes = v
			}
			delete(out.files, k)
		}
	}
	return out, nil
}

// renderedDoc is one object of a rendered template.
type renderedDoc struct {
	path string
	obj  *unstructured.Unstructured
}

// decodeRendered decodes the rendered templates as helm's SortManifests
// reads them, in the order of their paths and, within a file, of its
// documents: partials (files named _*) and blank files are left out, and
// files are split where helm splits them. Each document is decoded with the
// newline helm writes after it (SortManifests trims it), so a block scalar at
// the end of a template keeps its final line break, as in what helm applies.
func decodeRendered(files map[string]string) ([]renderedDoc, error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	type doc struct {
		path string
		n    int
		text string
	}
	var all []doc
	for _, p := range paths {
		content := files[p]
		if strings.HasPrefix(path.Base(p), "_") || strings.TrimSpace(content) == "" {
			continue
		}
		entries := releaseutil.SplitManifests(content)
		for i := range len(entries) {
			all = append(all, doc{path: p, n: i + 1, text: entries[fmt.Sprintf("manifest-%d", i)]})
		}
	}
	decoded := make([][]*unstructured.Unstructured, len(all))
	err := parallel(len(all), func(i int) error {
		var err error
		decoded[i], err = decodeObjectsFrom(all[i].path, all[i].n, []byte(all[i].text+"\n"))
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []renderedDoc
	for i, objs := range decoded {
		for _, o := range objs {
			out = append(out, renderedDoc{path: all[i].path, obj: o})
		}
	}
	return out, nil
}

// hookEvents parses a helm.sh/hook annotation as helm does; known is false
// when it names an event helm does not know.
func hookEvents(annotation string) (evs []releasev1.HookEvent, known bool) {
	for e := range strings.SplitSeq(annotation, ",") {
		switch e := strings.ToLower(strings.TrimSpace(e)); e {
		case "test-success": // Helm 2's name of test hooks
			evs = append(evs, releasev1.HookTest)
		case string(releasev1.HookPreInstall), string(releasev1.HookPostInstall), string(releasev1.HookPreDelete),
			string(releasev1.HookPostDelete), string(releasev1.HookPreUpgrade), string(releasev1.HookPostUpgrade),
			string(releasev1.HookPreRollback), string(releasev1.HookPostRollback), string(releasev1.HookTest):
			evs = append(evs, releasev1.HookEvent(e))
		default:
			return nil, false
		}
	}
	return evs, true
}

func joinEvents(evs []releasev1.HookEvent) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = string(e)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// hookStage maps Helm hook events to a stage: install and upgrade hooks run;
// test, delete and rollback hooks have no stage.
func hookStage(evs []releasev1.HookEvent) (Stage, string) {
	var keep []releasev1.HookEvent
	stage := Stage("")
	for _, e := range evs {
		switch e {
		case releasev1.HookPreInstall, releasev1.HookPreUpgrade:
			stage = StagePre
			keep = append(keep, e)
		case releasev1.HookPostInstall, releasev1.HookPostUpgrade:
			if stage == "" {
				stage = StagePost
			}
			keep = append(keep, e)
		case releasev1.HookPreDelete, releasev1.HookPostDelete:
			// Kept with the app's objects (in the post stage) but applied
			// by no deploy: the engine runs them when the app is deleted.
			if stage == "" {
				stage = StagePost
			}
			keep = append(keep, e)
		}
	}
	return stage, joinEvents(keep)
}

// crdVersions lists the group/versions and group/version/kinds the CRDs
// define, so templates that test .Capabilities.APIVersions see them.
func crdVersions(crds []Object) []string {
	var out []string
	for _, crd := range crds {
		o := crd.Object
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		// Not NestedSlice: it copies the versions with their schemas.
		spec, _ := o.Object["spec"].(map[string]any)
		versions, _ := spec["versions"].([]any)
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok {
				if name, ok := m["name"].(string); ok {
					out = append(out, group+"/"+name, group+"/"+name+"/"+kind)
				}
			}
		}
	}
	return out
}
