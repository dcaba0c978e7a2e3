package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"helm.sh/helm/v4/pkg/chart/common"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/apply"
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
	// AnnotationHookWeight keeps a hook's Helm weight (when not 0): the engine
	// runs the hooks of an event lowest weight first.
	AnnotationHookWeight = apply.AnnotationHookWeight
	// AnnotationChartCRD marks a CRD of a chart's crds/ folder, which, as in
	// Helm, is never deleted with the app.
	AnnotationChartCRD = apply.AnnotationChartCRD
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
	// Now is the present for the certificates that chart templates
	// generate with Seed: they are valid at Now (see the docs of render);
	// the current time when zero.
	Now time.Time
	// APIVersions are the API versions (group/version and
	// group/version/kind) charts see in .Capabilities.APIVersions, such as
	// those the target cluster serves; the built-in ones when empty. The
	// versions of the chart's own CRDs are always added.
	APIVersions []string
	// Monitoring says whether the package's alerts and dashboards are
	// rendered (see Monitoring); nothing when zero.
	Monitoring Monitoring
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
	// PackageNotes are the package's own notes (package.yaml notes:), with
	// secret parameters replaced by pkgspec.SecretPlaceholder.
	PackageNotes string
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
	if res.PackageNotes, err = packageNotes(in); err != nil {
		return nil, err
	}

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
	mon, err := monitoringObjects(in)
	if err != nil {
		return nil, err
	}
	objs = append(objs, mon...)
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

// packageNotes renders the package's notes over the template data with
// every secret parameter hidden.
func packageNotes(in Input) (string, error) {
	if in.Package.Notes == "" {
		return "", nil
	}
	hidden := in
	hidden.Config = pkgspec.Config{}
	for k, v := range in.Config {
		if p, ok := in.Package.Param(k); ok && p.IsSecret() {
			v = pkgspec.SecretPlaceholder
		}
		hidden.Config[k] = v
	}
	s, err := execute(in.Package.File+": notes", in.Package.Notes, templateData(hidden))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(s), nil
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
