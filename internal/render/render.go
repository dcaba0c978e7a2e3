package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/pkgspec"
)

// DefaultKubeVersion is the Kubernetes version charts see when Input sets none.
const DefaultKubeVersion = "v1.34.0"

// Label names the app an object belongs to.
const (
	LabelApp     = "berth.dev/app"
	LabelPackage = "berth.dev/package"
	// AnnotationStage holds an object's stage when it is not main.
	AnnotationStage = "berth.dev/stage"
	// AnnotationHookEvents keeps the Helm hook events of a hook, such as
	// "pre-install,pre-upgrade", so the deploy engine can run it when they apply.
	AnnotationHookEvents = "berth.dev/hook-events"
	// AnnotationDeletePolicy keeps a hook's Helm delete policy.
	AnnotationDeletePolicy = "berth.dev/hook-delete-policy"
)

// Stage is a step of an app's installation; stages apply in the order below.
type Stage string

// Stages, in apply order.
const (
	// StageCRDs holds custom resource definitions: from charts' crds/ and
	// from templates and manifests.
	StageCRDs Stage = "crds"
	// StagePre holds Helm pre-install and pre-upgrade hooks, by weight.
	StagePre Stage = "pre"
	// StageMain holds the app's objects.
	StageMain Stage = "main"
	// StagePost holds Helm post-install and post-upgrade hooks, by weight.
	StagePost Stage = "post"
)

// Stages lists the stages in apply order.
var Stages = []Stage{StageCRDs, StagePre, StageMain, StagePost}

func (s Stage) String() string { return string(s) }

func (s Stage) order() int { return slices.Index(Stages, s) }

// Dep is what a dependency exports to a package that needs it.
type Dep struct {
	App       string            `json:"app"`
	Namespace string            `json:"namespace"`
	Package   string            `json:"package"`
	Version   string            `json:"version"`
	Outputs   map[string]string `json:"outputs"`
}

// Input is everything one package's rendering depends on.
type Input struct {
	Package *pkgspec.Package
	// Files holds the package's files, rooted at the package's directory.
	Files     fs.FS
	App       string
	Namespace string
	Config    pkgspec.Config
	// Deps maps each dependency's name to its exports.
	Deps map[string]Dep
	// KubeVersion is the Kubernetes version charts see; DefaultKubeVersion when empty.
	KubeVersion string
	// Charts holds the archives of the package's charts from chart
	// repositories, by chart name (see catalog.FetchChart); each must match
	// the digest the package pins.
	Charts map[string][]byte
	// Seed is the app's secret seed: with it, the random functions chart
	// templates call (randAlphaNum, uuidv4, genPrivateKey, genCA,
	// genSignedCert...) derive their values from it, the app and the chart,
	// so the same inputs render the same bytes. Without it they are random,
	// as in helm.
	Seed []byte
	// CertEpoch is when certificates that chart templates generate start
	// being valid; DefaultCertEpoch when zero.
	CertEpoch time.Time
	// APIVersions are the API versions (group/version and
	// group/version/kind) charts see in .Capabilities.APIVersions, such as
	// those the target cluster serves; the built-in ones when empty. The
	// versions of the chart's own CRDs are always added.
	APIVersions []string
}

// Object is one rendered Kubernetes object.
type Object struct {
	Stage  Stage
	Weight int
	// Source is the file the object came from, such as "postgresql/templates/service.yaml".
	Source string
	Object *unstructured.Unstructured
}

// ID names the object as kind/namespace/name.
func (o Object) ID() string {
	if ns := o.Object.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s/%s", o.Object.GetKind(), ns, o.Object.GetName())
	}
	return fmt.Sprintf("%s/%s", o.Object.GetKind(), o.Object.GetName())
}

// Result is a rendered package.
type Result struct {
	// Objects are in apply order: by stage, weight, kind, namespace and name.
	Objects []Object
	// Outputs are the package's exports for its dependants.
	Outputs map[string]string
	// Skipped lists hooks berth does not run (test, delete and rollback hooks).
	Skipped []string
	// Notes is the rendered NOTES.txt of the package's charts (not of their
	// subcharts), for callers to show; empty when they have none.
	Notes string
}

// Render renders one package. Errors name the chart and file at fault.
func Render(in Input) (*Result, error) {
	if in.Package == nil {
		return nil, errors.New("render: no package")
	}
	if in.App == "" || in.Namespace == "" {
		return nil, errors.New("render: the app name and namespace are required")
	}
	kube := in.KubeVersion
	if kube == "" {
		kube = DefaultKubeVersion
	}
	kv, err := common.ParseKubeVersion(kube)
	if err != nil {
		return nil, fmt.Errorf("render: Kubernetes version %q: %w", kube, err)
	}
	data := templateData(in)
	res := &Result{}
	outputs, err := Outputs(in.Package, data)
	if err != nil {
		return nil, err
	}
	res.Outputs = outputs

	var objs []Object
	for _, c := range in.Package.Charts {
		got, err := renderChart(in, c, data, kv)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got.objects...)
		res.Skipped = append(res.Skipped, got.skipped...)
		if got.notes != "" {
			if res.Notes != "" {
				res.Notes += "\n"
			}
			res.Notes += got.notes
		}
	}
	for _, m := range in.Package.Manifests {
		b, err := fs.ReadFile(in.Files, m)
		if err != nil {
			return nil, fmt.Errorf("%s: manifest %s: %w", in.Package.File, m, err)
		}
		got, err := decodeObjects(m, b)
		if err != nil {
			return nil, err
		}
		for _, o := range got {
			objs = append(objs, Object{Stage: StageMain, Source: m, Object: o})
		}
	}
	finish(in, objs)
	res.Objects = objs
	return res, nil
}

// TemplateData is what values and output templates see.
type TemplateData map[string]any

func templateData(in Input) TemplateData {
	deps := map[string]any{}
	for name, d := range in.Deps {
		outs := map[string]any{}
		for k, v := range d.Outputs {
			outs[k] = v
		}
		deps[name] = map[string]any{"app": d.App, "namespace": d.Namespace, "package": d.Package, "version": d.Version, "outputs": outs}
	}
	cfg := map[string]any{}
	for k, v := range in.Config {
		cfg[k] = v
	}
	return TemplateData{
		"app":     map[string]any{"name": in.App, "namespace": in.Namespace},
		"package": map[string]any{"name": in.Package.Name, "version": in.Package.Version},
		"config":  cfg,
		"deps":    deps,
	}
}

// OutputData returns the data output templates of pkg see for an app, without
// dependencies: enough to compute the outputs of a shared dependency.
func OutputData(pkg *pkgspec.Package, app, namespace string, cfg pkgspec.Config) TemplateData {
	return templateData(Input{Package: pkg, App: app, Namespace: namespace, Config: cfg})
}

// Outputs evaluates the package's output templates.
func Outputs(pkg *pkgspec.Package, data TemplateData) (map[string]string, error) {
	out := map[string]string{}
	for i, o := range pkg.Outputs {
		s, err := execute(fmt.Sprintf("%s: outputs[%d] (%s)", pkg.File, i, o.Name), o.Value, data)
		if err != nil {
			return nil, err
		}
		out[o.Name] = strings.TrimSpace(s)
	}
	return out, nil
}

func execute(name, text string, data TemplateData) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(pkgspec.TemplateFuncs()).Parse(text)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w; check the names it uses against .app, .package, .config and .deps", err)
	}
	return b.String(), nil
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
		if err := yaml.Unmarshal([]byte(out), &vals); err != nil {
			return nil, fmt.Errorf("%s: values template %s does not produce YAML: %w", where, c.Values, err)
		}
		if vals == nil {
			vals = map[string]any{}
		}
	}
	out, err := renderHelm(ch, vals, helmOptions{
		release: common.ReleaseOptions{Name: in.App, Namespace: in.Namespace, Revision: 1, IsInstall: true},
		kube:    kv, apiVersions: in.APIVersions, seed: in.Seed, scope: in.Namespace + "/" + in.App + "/" + name, epoch: in.CertEpoch,
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
	epoch       time.Time
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
		e.CustomTemplateFuncs = newSeeded(o.seed, o.scope, o.epoch).funcs()
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

// finish sets namespaces and labels, moves CRDs to their stage and sorts.
func finish(in Input, objs []Object) {
	clusterKinds := map[string]bool{}
	for k := range clusterScoped {
		clusterKinds[k] = true
	}
	for _, o := range objs {
		if o.Object.GetKind() == "CustomResourceDefinition" {
			if scope, _, _ := unstructured.NestedString(o.Object.Object, "spec", "scope"); scope == "Cluster" {
				group, _, _ := unstructured.NestedString(o.Object.Object, "spec", "group")
				kind, _, _ := unstructured.NestedString(o.Object.Object, "spec", "names", "kind")
				clusterKinds[group+"/"+kind] = true
			}
		}
	}
	for i := range objs {
		o := objs[i].Object
		gk := o.GroupVersionKind().Group + "/" + o.GetKind()
		if !clusterKinds[gk] && o.GetNamespace() == "" {
			o.SetNamespace(in.Namespace)
		}
		if clusterKinds[gk] {
			o.SetNamespace("")
		}
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelApp] = in.App
		labels[LabelPackage] = in.Package.Name
		o.SetLabels(labels)
		if o.GetKind() == "CustomResourceDefinition" && objs[i].Stage == StageMain {
			objs[i].Stage = StageCRDs
		}
	}
	kindOrder := func(k string) int {
		if i := slices.Index(releaseutil.InstallOrder, k); i >= 0 {
			return i
		}
		return len(releaseutil.InstallOrder)
	}
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.Stage != b.Stage {
			return a.Stage.order() < b.Stage.order()
		}
		if a.Weight != b.Weight {
			return a.Weight < b.Weight
		}
		if ka, kb := kindOrder(a.Object.GetKind()), kindOrder(b.Object.GetKind()); ka != kb {
			return ka < kb
		}
		if a.Object.GetKind() != b.Object.GetKind() {
			return a.Object.GetKind() < b.Object.GetKind()
		}
		if a.Object.GetNamespace() != b.Object.GetNamespace() {
			return a.Object.GetNamespace() < b.Object.GetNamespace()
		}
		if a.Object.GetName() != b.Object.GetName() {
			return a.Object.GetName() < b.Object.GetName()
		}
		return a.Source < b.Source
	})
}

// clusterScoped lists the built-in kinds without a namespace, as group/kind.
var clusterScoped = map[string]bool{
	"/Namespace": true, "/Node": true, "/PersistentVolume": true, "/ComponentStatus": true,
	"rbac.authorization.k8s.io/ClusterRole": true, "rbac.authorization.k8s.io/ClusterRoleBinding": true,
	"apiextensions.k8s.io/CustomResourceDefinition": true, "storage.k8s.io/StorageClass": true,
	"storage.k8s.io/CSIDriver": true, "storage.k8s.io/VolumeAttachment": true,
	"scheduling.k8s.io/PriorityClass": true, "networking.k8s.io/IngressClass": true,
	"admissionregistration.k8s.io/MutatingWebhookConfiguration":     true,
	"admissionregistration.k8s.io/ValidatingWebhookConfiguration":   true,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicy":        true,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding": true,
	"apiregistration.k8s.io/APIService":                             true, "node.k8s.io/RuntimeClass": true,
	"certificates.k8s.io/CertificateSigningRequest": true, "flowcontrol.apiserver.k8s.io/FlowSchema": true,
	"flowcontrol.apiserver.k8s.io/PriorityLevelConfiguration": true,
}

// YAML writes the objects as one YAML stream, each preceded by comments naming
// its source and stage.
func (r *Result) YAML(w io.Writer) error {
	docs := make([][]byte, len(r.Objects))
	err := parallel(len(r.Objects), func(i int) error {
		b, err := marshalYAML(r.Objects[i].Object.Object)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Objects[i].ID(), err)
		}
		docs[i] = b
		return nil
	})
	if err != nil {
		return err
	}
	for i, o := range r.Objects {
		b := docs[i]
		stage := string(o.Stage)
		if o.Weight != 0 {
			stage += " (weight " + strconv.Itoa(o.Weight) + ")"
		}
		if _, err := fmt.Fprintf(w, "---\n# Source: %s\n# Stage: %s\n%s", o.Source, stage, b); err != nil {
			return err
		}
	}
	return nil
}
