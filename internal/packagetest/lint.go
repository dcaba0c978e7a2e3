package packagetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
)

// Severity says whether a finding fails the lint.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

func (s Severity) String() string { return string(s) }

// Check names one of Lint's checks.
type Check string

// Lint's checks.
const (
	// CheckSchema: package.yaml loads and validates (pkgspec).
	CheckSchema Check = "schema"
	// CheckRender: the package renders with its defaults and with every value
	// of every enum parameter.
	CheckRender Check = "render"
	// CheckUnused: every parameter is used by a values template or an output.
	CheckUnused Check = "unused"
	// CheckHealth: health rules name kinds the package renders or defines.
	CheckHealth Check = "health"
	// CheckUpgrade: upgrade metadata and dependency constraints agree with the
	// versions in the catalog.
	CheckUpgrade Check = "upgrade"
	// CheckCatalog: the catalog can list the package (channels, directory
	// names).
	CheckCatalog Check = "catalog"
)

func (c Check) String() string { return string(c) }

// Finding is one problem Lint found.
type Finding struct {
	Check    Check    `json:"check"`
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	Field    string   `json:"field,omitempty"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.File)
	if f.Line > 0 {
		fmt.Fprintf(&b, ":%d", f.Line)
	}
	fmt.Fprintf(&b, ": %s: ", f.Severity)
	if f.Field != "" {
		b.WriteString(f.Field + ": ")
	}
	b.WriteString(f.Message)
	if f.Fix != "" {
		b.WriteString("; " + f.Fix)
	}
	return b.String()
}

// LintOptions configures Lint.
type LintOptions struct {
	// Dir is the package's directory. When it is CATALOG/NAME/VERSION the
	// catalog's other versions and packages are checked against too.
	Dir string
	// ChartCache is where charts from chart repositories are kept; a package
	// with such charts cannot be rendered without one. They are read through
	// the mirrors of BERTH_CHART_MIRROR, as berth install reads them.
	ChartCache string
	// KubeVersion is the Kubernetes version charts are rendered for.
	KubeVersion string
}

// LintResult lists what Lint found.
type LintResult struct {
	Package  string    `json:"package,omitempty"`
	Version  string    `json:"version,omitempty"`
	Dir      string    `json:"dir"`
	Findings []Finding `json:"findings"`
}

// Errors counts the findings that fail the lint.
func (r *LintResult) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			n++
		}
	}
	return n
}

// Lint checks the package in o.Dir without a cluster. A package.yaml that
// does not validate is reported as findings (and the other checks are not
// run); an error is returned only when the checks could not run.
func Lint(ctx context.Context, o LintOptions) (*LintResult, error) {
	res := &LintResult{Dir: o.Dir, Findings: []Finding{}}
	s, err := open(o.Dir)
	var verr *pkgspec.ValidationError
	if errors.As(err, &verr) {
		for _, fe := range verr.Errors {
			res.Findings = append(res.Findings, Finding{Check: CheckSchema, Severity: SeverityError, File: fe.File, Line: fe.Line, Field: fe.Field, Message: fe.Msg, Fix: fe.Fix})
		}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	res.Package, res.Version = s.pkg.Name, s.pkg.Version
	charts, err := chartFetcher(o.ChartCache)
	if err != nil {
		return nil, err
	}
	l := &linter{s: s, o: o, res: res, charts: charts}
	// A dependency that cannot resolve stops every rendering: report it once.
	if l.dependencies(ctx) {
		kinds := l.renders(ctx)
		l.health(kinds)
	}
	l.unused()
	l.promql()
	if err := l.catalog(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

type linter struct {
	s      *subject
	doc    *yaml.Node // package.yaml, for line numbers
	o      LintOptions
	res    *LintResult
	charts func(context.Context, *pkgspec.Package) (map[string][]byte, error)
}

func (l *linter) add(check Check, sev Severity, field, fix, format string, args ...any) {
	l.res.Findings = append(l.res.Findings, Finding{Check: check, Severity: sev, File: l.s.pkg.File, Line: l.line(field), Field: field, Message: fmt.Sprintf(format, args...), Fix: fix})
}

// line returns the line of package.yaml that field (such as
// "config[1] (mode)" or "dependencies[0].version") is on, or of its nearest
// ancestor; 0 when unknown.
func (l *linter) line(field string) int {
	if l.doc == nil {
		b, err := fs.ReadFile(l.s.files(), pkgspec.FileName)
		var doc yaml.Node
		if err != nil || yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
			return 0
		}
		l.doc = doc.Content[0]
	}
	field, _, _ = strings.Cut(field, " ")
	n, best := l.doc, 0
	for _, part := range strings.Split(field, ".") {
		key, idx, indexed := strings.Cut(strings.TrimSuffix(part, "]"), "[")
		next := mapValue(n, key)
		if next == nil {
			return best
		}
		n, best = next, next.Line
		if indexed {
			i, err := strconv.Atoi(idx)
			if err != nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return best
			}
			n, best = n.Content[i], n.Content[i].Line
		}
	}
	return best
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// renders renders the package with its defaults (and a sample value for each
// required parameter without one), then with every value of every enum
// parameter, and returns the kinds rendered and defined by CRDs.
func (l *linter) renders(ctx context.Context) map[schema.GroupKind]bool {
	kinds := map[schema.GroupKind]bool{}
	base := map[string]any{}
	for _, q := range l.s.pkg.Config {
		if q.Required && q.Default == nil && q.Generate == nil && q.When == "" {
			base[q.Name] = sample(q)
		}
	}
	try := func(field, what string, values map[string]any) {
		res, err := l.s.render(ctx, renderOptions{Values: values, Charts: l.charts, KubeVersion: l.o.KubeVersion})
		var invalid *pkgspec.ConfigError
		if errors.As(err, &invalid) && what != "with its defaults" {
			// The variant is a configuration the package's own rules refuse
			// (ha needs replicas, a mode needs its settings): not one a user
			// can make, so nothing to render.
			return
		}
		if err != nil {
			l.add(CheckRender, SeverityError, field, "fix the values template or the chart so every allowed configuration renders", "the package does not render %s: %v", what, err)
			return
		}
		for _, p := range res.Parts {
			if p.Package != l.s.pkg.Name {
				continue
			}
			for _, o := range p.Result.Objects {
				gvk := o.Object.GroupVersionKind()
				kinds[gvk.GroupKind()] = true
				if gvk.Kind == "CustomResourceDefinition" {
					g, _, _ := nestedString(o.Object.Object, "spec", "group")
					k, _, _ := nestedString(o.Object.Object, "spec", "names", "kind")
					kinds[schema.GroupKind{Group: g, Kind: k}] = true
				}
			}
		}
	}
	if try("config", "with its defaults", base); len(kinds) == 0 {
		return kinds // the variants would fail the same way
	}
	for i, q := range l.s.pkg.Config {
		switch q.Type {
		case pkgspec.TypeEnum:
			for _, v := range q.Values {
				if fmt.Sprint(q.Default) == v {
					continue
				}
				// With a sample for every required parameter the value may
				// turn on (those of inactive ones are ignored), as for bools.
				values := variantSamples(l.s.pkg.Config)
				values[q.Name] = v
				try(fmt.Sprintf("config[%d] (%s)", i, q.Name), fmt.Sprintf("with %s=%s", q.Name, v), values)
			}
		case pkgspec.TypeBool:
			// The other value of a bool, with a sample for every required
			// parameter it may turn on (those of inactive ones are ignored).
			flipped := q.Default != true
			values := variantSamples(l.s.pkg.Config)
			values[q.Name] = flipped
			try(fmt.Sprintf("config[%d] (%s)", i, q.Name), fmt.Sprintf("with %s=%t", q.Name, flipped), values)
		}
	}
	return kinds
}

// variantSamples gives every required parameter without a default or a
// generated value a sample value, whether or not its when: holds.
func variantSamples(params []pkgspec.Param) map[string]any {
	values := map[string]any{}
	for _, r := range params {
		if r.Required && r.Default == nil && r.Generate == nil {
			values[r.Name] = sample(r)
		}
	}
	return values
}

// sample returns a valid-looking value for a required parameter.
func sample(q pkgspec.Param) any {
	switch q.Type {
	case pkgspec.TypeInt:
		if q.Min != nil {
			return q.Min
		}
		return 1
	case pkgspec.TypeBool:
		return false
	case pkgspec.TypeEnum:
		if len(q.Values) > 0 {
			return q.Values[0]
		}
	case pkgspec.TypeDomain:
		return "example.com"
	case pkgspec.TypeSize:
		if q.Min != nil {
			return q.Min
		}
		return "1Gi"
	case pkgspec.TypeDuration:
		if q.Min != nil {
			return q.Min
		}
		return "1h"
	case pkgspec.TypePassword:
		return "a-sample-password-for-lint-0123456789"
	}
	// A string matching the parameter's pattern, when one of a few common
	// shapes does.
	if re, err := regexp.Compile(q.Pattern); q.Pattern != "" && err == nil {
		for _, v := range []string{"sample", "admin@example.com", "example.com", "https://example.com", "sample-1", "a"} {
			if re.MatchString(v) {
				return v
			}
		}
	}
	return "sample"
}

func nestedString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// unused reports parameters that neither a values template nor an output
// reads.
func (l *linter) unused() {
	used := map[string]bool{}
	all := false
	scan := func(name, text string) {
		t, err := template.New(name).Funcs(pkgspec.TemplateFuncs()).Parse(text)
		if err != nil {
			return // the render check reports it
		}
		for _, tt := range t.Templates() {
			if tt.Tree != nil {
				configRefs(tt.Tree.Root, used, &all)
			}
		}
	}
	for i, c := range l.s.pkg.Charts {
		if c.Values == "" {
			continue
		}
		b, err := fs.ReadFile(l.s.files(), c.Values)
		if err != nil {
			l.add(CheckSchema, SeverityError, fmt.Sprintf("charts[%d].values", i), "", "cannot read %s: %v", c.Values, err)
			continue
		}
		scan(c.Values, string(b))
	}
	for _, o := range l.s.pkg.Outputs {
		scan(o.Name, o.Value)
	}
	if all {
		return
	}
	for i, q := range l.s.pkg.Config {
		if !used[q.Name] {
			l.add(CheckUnused, SeverityError, fmt.Sprintf("config[%d] (%s)", i, q.Name), "use it in the values template or an output as .config."+q.Name+", or remove it", "no values template or output uses the parameter")
		}
	}
}

// configRefs records the parameters a template reads: .config.NAME,
// $.config.NAME and index .config "NAME"; a bare .config passed on (toYaml
// .config) uses them all.
func configRefs(n parse.Node, used map[string]bool, all *bool) {
	if n == nil {
		return
	}
	field := func(idents []string) {
		for i, id := range idents {
			if id != "config" {
				continue
			}
			if i+1 < len(idents) {
				used[idents[i+1]] = true
			}
			return
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			configRefs(c, used, all)
		}
	case *parse.ActionNode:
		configRefs(n.Pipe, used, all)
	case *parse.IfNode:
		configRefs(n.Pipe, used, all)
		configRefs(n.List, used, all)
		configRefs(n.ElseList, used, all)
	case *parse.RangeNode:
		configRefs(n.Pipe, used, all)
		configRefs(n.List, used, all)
		configRefs(n.ElseList, used, all)
	case *parse.WithNode:
		configRefs(n.Pipe, used, all)
		configRefs(n.List, used, all)
		configRefs(n.ElseList, used, all)
	case *parse.TemplateNode:
		configRefs(n.Pipe, used, all)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			configRefs(c, used, all)
		}
	case *parse.CommandNode:
		for i, a := range n.Args {
			// index .config "name"
			if id, ok := a.(*parse.IdentifierNode); ok && id.Ident == "index" && i+2 < len(n.Args) {
				if f, ok := n.Args[i+1].(*parse.FieldNode); ok && slices.Equal(f.Ident, []string{"config"}) {
					if s, ok := n.Args[i+2].(*parse.StringNode); ok {
						used[s.Text] = true
						continue
					}
				}
			}
			switch a := a.(type) {
			case *parse.FieldNode:
				if slices.Equal(a.Ident, []string{"config"}) && !isIndexArg(n, i) {
					*all = true
				}
				field(a.Ident)
			case *parse.VariableNode:
				if slices.Equal(a.Ident, []string{"$", "config"}) {
					*all = true
				}
				field(a.Ident)
			case *parse.ChainNode:
				configRefs(a.Node, used, all)
			case *parse.PipeNode:
				configRefs(a, used, all)
			}
		}
	}
}

func isIndexArg(n *parse.CommandNode, i int) bool {
	if i == 0 {
		return false
	}
	id, ok := n.Args[i-1].(*parse.IdentifierNode)
	return ok && id.Ident == "index" && i+1 < len(n.Args)
}

// health reports health rules whose kind the package neither renders nor
// defines with a CRD.
func (l *linter) health(kinds map[schema.GroupKind]bool) {
	for i, h := range l.s.pkg.Health {
		gv, err := schema.ParseGroupVersion(h.APIVersion)
		if err != nil {
			l.add(CheckHealth, SeverityError, fmt.Sprintf("health[%d].apiVersion", i), "use group/version, such as cert-manager.io/v1", "%q is not an API version", h.APIVersion)
			continue
		}
		if !kinds[schema.GroupKind{Group: gv.Group, Kind: h.Kind}] {
			l.add(CheckHealth, SeverityError, fmt.Sprintf("health[%d]", i), "name a kind the package's charts or manifests create (check apiVersion and kind), or remove the rule", "the package neither renders nor defines %s %s, so the rule never applies", h.Kind, h.APIVersion)
		}
	}
}

// catalog checks the package against the catalog it is in: what the
// catalog's index says of it, and its upgrade metadata against its other
// versions.
func (l *linter) catalog(ctx context.Context) error {
	pkg := l.s.pkg
	if !l.s.inCatalog {
		return nil
	}
	e, problems, err := l.s.entry(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		file := filepath.ToSlash(filepath.Join(l.s.root, pkg.Name, "channels.yaml"))
		if p.Version != "" {
			file = pkg.File
		}
		l.res.Findings = append(l.res.Findings, Finding{Check: CheckCatalog, Severity: SeverityError, File: file, Message: p.Reason})
	}
	if e == nil {
		return nil
	}
	return l.upgrade(ctx, e.Versions)
}

// dependencies reports dependencies that no catalog can satisfy, and
// returns whether all can be.
func (l *linter) dependencies(ctx context.Context) bool {
	before := len(l.res.Findings)
	optionalMissing := 0
	for i, d := range l.s.pkg.Dependencies {
		f, err := l.s.set.Find(ctx, d.Package)
		if err != nil && d.Optional {
			// The package does without it; it only never gets it.
			l.add(CheckUpgrade, SeverityWarning, fmt.Sprintf("dependencies[%d].package", i), "add the package to a catalog or fix the name", "the optional dependency %s is in no catalog berth reads, so it is never used", d.Package)
			optionalMissing++
			continue
		}
		if err != nil {
			l.add(CheckUpgrade, SeverityError, fmt.Sprintf("dependencies[%d].package", i), "add the package to the catalog or fix the name", "%s is in no catalog berth reads", d.Package)
			continue
		}
		c, err := semver.NewConstraint(d.Version)
		if err != nil || d.Version == "" {
			continue // pkgspec validates the syntax
		}
		ok := false
		for _, v := range f.Entry.Versions {
			if sv, err := semver.NewVersion(v.Version); err == nil && c.Check(sv) {
				ok = true
			}
		}
		if !ok {
			l.add(CheckUpgrade, SeverityError, fmt.Sprintf("dependencies[%d].version", i), "widen the constraint or add a matching version", "no version of %s matches %q (versions: %s)", d.Package, d.Version, versions(f.Entry.Versions))
		}
	}
	return len(l.res.Findings)-optionalMissing == before
}

// upgrade checks the upgrade metadata against the previous version in the
// catalog: a breaking version needs one to break from, a new major version
// should say what to do, a note outside any boundary is never shown, and
// renamed parameters rename what the previous version has.
func (l *linter) upgrade(ctx context.Context, all []catalog.Version) error {
	pkg := l.s.pkg
	cur, err := semver.NewVersion(pkg.Version)
	if err != nil {
		return nil
	}
	var prev *semver.Version
	prevVersion := ""
	for _, v := range all {
		sv, err := semver.NewVersion(v.Version)
		if err == nil && sv.LessThan(cur) && (prev == nil || sv.GreaterThan(prev)) {
			prev, prevVersion = sv, v.Version
		}
	}
	if err := l.renamed(ctx, prevVersion); err != nil {
		return err
	}
	switch {
	case prev == nil && pkg.Upgrade.Breaking:
		l.add(CheckUpgrade, SeverityWarning, "upgrade.breaking", "remove it, or add the earlier version to the catalog", "the catalog has no earlier version of %s to break from", pkg.Name)
	case prev != nil && prev.Major() != cur.Major() && strings.TrimSpace(pkg.Upgrade.Note) == "":
		l.add(CheckUpgrade, SeverityWarning, "upgrade.note", "say what users must do with their data, e.g. note: dump the database before and restore it after", "%s -> %s is a new major version, which berth treats as breaking, and there is no note telling users what to do", prev, cur)
	case prev != nil && prev.Major() == cur.Major() && !pkg.Upgrade.Breaking && pkg.Upgrade.Note != "":
		l.add(CheckUpgrade, SeverityWarning, "upgrade.note", "set breaking: true if the upgrade from "+prev.String()+" needs action, or remove the note", "the note is never shown: %s -> %s is not a breaking boundary", prev, cur)
	}
	return nil
}

// renamed checks upgrade.renamed against the previous version in the
// catalog (prev; none when empty): each old name is a parameter there, of a
// type whose values the new parameter takes. A parameter of the previous
// version that this one neither has nor renames is reported too: the value
// an app set for it stops the app's upgrade.
func (l *linter) renamed(ctx context.Context, prev string) error {
	pkg := l.s.pkg
	if prev == "" {
		if len(pkg.Upgrade.Renamed) > 0 {
			l.add(CheckUpgrade, SeverityWarning, "upgrade.renamed", "remove it, or add the earlier version to the catalog", "the catalog has no earlier version of %s whose parameters it renames", pkg.Name)
		}
		return nil
	}
	f, err := l.s.set.Find(ctx, pkg.Name)
	if err != nil {
		return err
	}
	old, _, err := l.s.set.Load(ctx, f, prev)
	if err != nil {
		return err
	}
	renamedFrom := map[string]bool{}
	for _, from := range slices.Sorted(maps.Keys(pkg.Upgrade.Renamed)) {
		to := pkg.Upgrade.Renamed[from]
		renamedFrom[from] = true
		field := "upgrade.renamed." + from
		was, ok := old.Param(from)
		if !ok {
			l.add(CheckUpgrade, SeverityError, field, "name a parameter of "+prev+" (its parameters: "+paramNames(old)+")", "%s has no parameter %s to rename", prev, from)
			continue
		}
		is, ok := pkg.Param(to)
		if ok && !pkgspec.CompatibleTypes(was.Type, is.Type) {
			l.add(CheckUpgrade, SeverityError, field, "keep the type, or give the new setting a name of its own and no rename", "%s is of type %s in %s and %s is of type %s here; its values cannot be carried over", from, was.Type, prev, to, is.Type)
		}
	}
	for _, q := range old.Config {
		if _, ok := pkg.Param(q.Name); !ok && !renamedFrom[q.Name] {
			l.add(CheckUpgrade, SeverityWarning, "config", "add it to upgrade.renamed if it has a new name", "%s's parameter %s is neither in this version nor renamed: an app that set it cannot upgrade until the value is removed", prev, q.Name)
		}
	}
	return nil
}

func paramNames(p *pkgspec.Package) string {
	var names []string
	for _, q := range p.Config {
		names = append(names, q.Name)
	}
	return strings.Join(names, ", ")
}

func versions(vs []catalog.Version) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Version
	}
	return strings.Join(out, ", ")
}
