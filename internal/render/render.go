package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"

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
		got, skipped, err := renderChart(in, c, data, kv)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
		res.Skipped = append(res.Skipped, skipped...)
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
	stampHealthRules(in.Package.Health, objs)
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

func renderChart(in Input, c pkgspec.Chart, data TemplateData, kv *common.KubeVersion) ([]Object, []string, error) {
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
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	vals := map[string]any{}
	if c.Values != "" {
		text, err := fs.ReadFile(in.Files, c.Values)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: values template: %w", where, err)
		}
		out, err := execute(c.Values, string(text), data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: values template %w", where, err)
		}
		if err := yaml.Unmarshal([]byte(out), &vals); err != nil {
			return nil, nil, fmt.Errorf("%s: values template %s does not produce YAML: %w", where, c.Values, err)
		}
		if vals == nil {
			vals = map[string]any{}
		}
	}
	caps := &common.Capabilities{
		KubeVersion: *kv,
		APIVersions: append(slices.Clone(common.DefaultVersionSet), crdVersions(ch)...),
		HelmVersion: common.DefaultCapabilities.HelmVersion,
	}
	if ch.Metadata.KubeVersion != "" && !chartutilCompatible(ch.Metadata.KubeVersion, kv.Version) {
		return nil, nil, fmt.Errorf("%s: the chart needs Kubernetes %s, not %s", where, ch.Metadata.KubeVersion, kv.Version)
	}
	opts := common.ReleaseOptions{Name: in.App, Namespace: in.Namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, opts, caps, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the values do not fit the chart: %w", where, err)
	}
	files, err := engine.Engine{}.Render(ch, rv)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	for k := range files {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(files, k)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: rendered an invalid manifest: %w", where, err)
	}
	var objs []Object
	for _, crd := range ch.CRDObjects() {
		got, err := decodeObjects(crd.Filename, crd.File.Data)
		if err != nil {
			return nil, nil, err
		}
		for _, o := range got {
			objs = append(objs, Object{Stage: StageCRDs, Source: crd.Filename, Object: o})
		}
	}
	for _, m := range manifests {
		got, err := decodeObjects(m.Name, []byte(m.Content))
		if err != nil {
			return nil, nil, err
		}
		for _, o := range got {
			objs = append(objs, Object{Stage: StageMain, Source: m.Name, Object: o})
		}
	}
	var skipped []string
	for _, h := range hooks {
		stage, events := hookStage(h.Events)
		if stage == "" {
			skipped = append(skipped, fmt.Sprintf("%s %s (%s hook)", h.Kind, h.Name, joinEvents(h.Events)))
			continue
		}
		got, err := decodeObjects(h.Path, []byte(h.Manifest))
		if err != nil {
			return nil, nil, err
		}
		for _, o := range got {
			ann := o.GetAnnotations()
			delete(ann, releasev1.HookAnnotation)
			delete(ann, releasev1.HookWeightAnnotation)
			if p, ok := ann[releasev1.HookDeleteAnnotation]; ok {
				delete(ann, releasev1.HookDeleteAnnotation)
				ann[AnnotationDeletePolicy] = p
			}
			ann[AnnotationStage] = string(stage)
			ann[AnnotationHookEvents] = events
			o.SetAnnotations(ann)
			objs = append(objs, Object{Stage: stage, Weight: h.Weight, Source: h.Path, Object: o})
		}
	}
	sort.Strings(skipped)
	return objs, skipped, nil
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

func chartutilCompatible(constraint, version string) bool {
	return chartv2utilIsCompatibleRange(constraint, version)
}

// crdVersions lists the group/versions and group/version/kinds the chart's
// crds/ define, so templates that test .Capabilities.APIVersions see them.
func crdVersions(ch *chart.Chart) []string {
	var out []string
	for _, crd := range ch.CRDObjects() {
		objs, err := decodeObjects(crd.Filename, crd.File.Data)
		if err != nil {
			continue
		}
		for _, o := range objs {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			versions, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
			for _, v := range versions {
				if m, ok := v.(map[string]any); ok {
					if name, ok := m["name"].(string); ok {
						out = append(out, group+"/"+name, group+"/"+name+"/"+kind)
					}
				}
			}
		}
	}
	return out
}

// loadChart loads the chart in dir of fsys, honouring nothing but the files:
// the same files always give the same chart.
func loadChart(fsys fs.FS, dir string) (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if rel == ".helmignore" {
			return nil
		}
		files = append(files, &archive.BufferedFile{Name: rel, Data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(files)
}

// loadArchive loads a chart from a repository's archive after checking it is
// the archive the package pins.
func loadArchive(b []byte, c pkgspec.Chart) (*chart.Chart, error) {
	if b == nil {
		return nil, fmt.Errorf("the archive of %s %s from %s was not fetched", c.Chart, c.Version, c.Repo)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != c.Digest {
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

// decodeObjects parses a multi-document YAML file into objects.
func decodeObjects(source string, b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %w", source, i+1, err)
		}
		if len(doc) == 0 {
			continue
		}
		// A round trip through JSON gives the types the Kubernetes libraries expect.
		js, err := sigsyaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(js, &u.Object); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("%s: document %d has no apiVersion or kind; every object needs both", source, i+1)
		}
		if u.GetName() == "" && u.GetGenerateName() == "" {
			return nil, fmt.Errorf("%s: document %d (%s) has no metadata.name", source, i+1, u.GetKind())
		}
		out = append(out, u)
	}
	return out, nil
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
	for _, o := range r.Objects {
		b, err := sigsyaml.Marshal(o.Object.Object)
		if err != nil {
			return fmt.Errorf("%s: %w", o.ID(), err)
		}
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
