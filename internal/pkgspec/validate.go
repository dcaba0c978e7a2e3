package pkgspec

import (
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

var (
	paramName  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
	sha256Spec = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

type validator struct {
	p    *Package
	errs []*FieldError
}

func (v *validator) add(field string, at []any, fix, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{File: v.p.File, Line: v.p.line(at...), Field: field, Msg: fmt.Sprintf(format, args...), Fix: fix})
}

func (p *Package) validate() error {
	v := &validator{p: p}
	if p.APIVersion != APIVersion {
		v.add("apiVersion", []any{"apiVersion"}, "set apiVersion: "+APIVersion, "is %q, expected %q", p.APIVersion, APIVersion)
	}
	if p.Kind != "Package" {
		v.add("kind", []any{"kind"}, "set kind: Package", "is %q, expected \"Package\"", p.Kind)
	}
	switch {
	case p.Name == "":
		v.add("name", nil, "add name: followed by the package's name, e.g. name: postgresql", "is missing")
	case len(validation.IsDNS1123Label(p.Name)) > 0 || len(p.Name) > 53:
		v.add("name", []any{"name"}, "use lowercase letters, digits and '-', at most 53 characters", "%q is not a valid package name", p.Name)
	}
	switch {
	case p.Version == "":
		v.add("version", nil, "add version: followed by a semantic version, e.g. version: 1.0.0", "is missing")
	default:
		if _, err := semver.StrictNewVersion(p.Version); err != nil {
			v.add("version", []any{"version"}, "use a semantic version such as 1.2.3", "%q is not a semantic version", p.Version)
		}
	}
	if strings.TrimSpace(p.Description) == "" {
		v.add("description", nil, "add a one-line description: it is what 'berth search' shows", "is missing")
	}
	for _, f := range []struct{ name, val string }{{"homepage", p.Homepage}, {"icon", p.Icon}} {
		if f.val != "" && !isHTTPURL(f.val) {
			v.add(f.name, []any{f.name}, "use an http:// or https:// URL", "%q is not a URL", f.val)
		}
	}
	for i, m := range p.Maintainers {
		if m.Name == "" {
			v.add(fmt.Sprintf("maintainers[%d].name", i), []any{"maintainers", i}, "name the person or team", "is missing")
		}
	}
	v.content()
	v.config()
	v.rules()
	v.dependencies()
	v.outputs()
	v.alerts()
	if p.Upgrade.Breaking && strings.TrimSpace(p.Upgrade.Note) == "" {
		v.add("upgrade.note", []any{"upgrade"}, "say what must happen to the data, e.g. note: dump the database before and restore it after", "is missing; a breaking version needs a note")
	}
	v.renamed()
	for i, h := range p.Health {
		at := []any{"health", i}
		if h.APIVersion == "" || h.Kind == "" || h.Condition == "" {
			v.add(fmt.Sprintf("health[%d]", i), at, "set apiVersion, kind and condition, e.g. {apiVersion: cert-manager.io/v1, kind: Certificate, condition: Ready}", "is incomplete")
		}
		if h.Status != "" && h.Status != "True" && h.Status != "False" && h.Status != "Unknown" {
			v.add(fmt.Sprintf("health[%d].status", i), append(at, "status"), "use \"True\", \"False\" or \"Unknown\"", "%q is not a condition status", h.Status)
		}
	}
	v.runbooks()
	v.verify()
	for _, docs := range []struct {
		field string
		list  []Document
	}{{"dashboards", p.Dashboards}} {
		for i, d := range docs.list {
			if d.Name == "" || d.File == "" {
				v.add(fmt.Sprintf("%s[%d]", docs.field, i), []any{docs.field, i}, "set name and file", "is incomplete")
			} else if !localPath(d.File) {
				v.add(fmt.Sprintf("%s[%d].file", docs.field, i), []any{docs.field, i, "file"}, "use a relative path inside the package", "%q leaves the package", d.File)
			}
		}
	}
	if len(v.errs) > 0 {
		return &ValidationError{Errors: v.errs}
	}
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func localPath(p string) bool {
	return p != "" && !path.IsAbs(p) && !strings.Contains(p, "\\") && path.Clean(p) == strings.TrimSuffix(p, "/") && !strings.HasPrefix(path.Clean(p), "..")
}

func (v *validator) content() {
	p := v.p
	if len(p.Charts) == 0 && len(p.Manifests) == 0 {
		v.add("charts", nil, "add charts: (Helm charts) or manifests: (plain YAML files)", "the package has no content")
	}
	names := map[string]bool{}
	for i, c := range p.Charts {
		f := fmt.Sprintf("charts[%d]", i)
		at := []any{"charts", i}
		switch {
		case c.Path != "" && c.Repo != "":
			v.add(f, at, "set path for a chart inside the package, or repo, chart and version (and optionally digest) for a chart from a repository", "has both path and repo")
		case c.Path != "":
			if !localPath(c.Path) {
				v.add(f+".path", append(at, "path"), "use a relative path inside the package", "%q leaves the package", c.Path)
			}
			if c.Chart != "" || c.Version != "" || c.Digest != "" {
				v.add(f, at, "remove chart, version and digest: a chart inside the package carries its own", "chart, version and digest are only for charts from a repository")
			}
		case c.Repo != "":
			u, err := url.Parse(c.Repo)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "oci") {
				v.add(f+".repo", append(at, "repo"), "use an https:// or oci:// chart repository URL", "%q is not a chart repository URL", c.Repo)
			}
			if c.Chart == "" {
				v.add(f+".chart", at, "name the chart in the repository", "is missing")
			}
			if _, err := semver.StrictNewVersion(strings.TrimPrefix(c.Version, "v")); err != nil {
				v.add(f+".version", append(at, "version"), "pin an exact chart version such as 1.2.3", "%q is not an exact version", c.Version)
			}
			// A digest is optional: berth.lock records the archive's digest the
			// first time the chart is resolved and refuses another afterwards.
			if c.Digest != "" && !sha256Spec.MatchString(c.Digest) {
				v.add(f+".digest", append(at, "digest"), "set digest: sha256:<64 hex digits> of the chart archive (sha256sum CHART.tgz)", "%q is not a sha256 digest", c.Digest)
			}
		default:
			v.add(f, at, "set path (a chart directory inside the package) or repo, chart and version (and optionally digest)", "has neither path nor repo")
		}
		if c.Values != "" && !localPath(c.Values) {
			v.add(f+".values", append(at, "values"), "use a relative path inside the package", "%q leaves the package", c.Values)
		}
		n := c.ChartName()
		if names[n] {
			v.add(f+".name", at, "give each chart a distinct name", "a chart named %q is already declared", n)
		}
		names[n] = true
	}
	for i, m := range p.Manifests {
		if !localPath(m) {
			v.add(fmt.Sprintf("manifests[%d]", i), []any{"manifests", i}, "use a relative path inside the package", "%q leaves the package", m)
		}
	}
}

// ChartName returns the chart's name within its package.
func (c Chart) ChartName() string {
	switch {
	case c.Name != "":
		return c.Name
	case c.Path != "":
		return path.Base(c.Path)
	}
	return c.Chart
}

func (v *validator) config() {
	p := v.p
	seen := map[string]bool{}
	p.whens = map[string]*compiledExpr{}
	env, envErr := celEnv()
	for i, q := range p.Config {
		f := fmt.Sprintf("config[%d]", i)
		at := []any{"config", i}
		if q.Name != "" {
			f = fmt.Sprintf("config[%d] (%s)", i, q.Name)
		}
		switch {
		case q.Name == "":
			v.add(f+".name", at, "name the parameter, e.g. name: replicas", "is missing")
		case !paramName.MatchString(q.Name):
			v.add(f+".name", append(at, "name"), "use letters, digits and '_', starting with a letter (CEL rules refer to it as self.NAME)", "%q is not a valid parameter name", q.Name)
		case seen[q.Name]:
			v.add(f+".name", append(at, "name"), "give each parameter a distinct name", "%q is declared twice", q.Name)
		}
		seen[q.Name] = true
		if !q.Type.known() {
			v.add(f+".type", append(at, "type"), "use one of "+typeList(), "%q is not a parameter type", q.Type)
			continue
		}
		if q.Type == TypeEnum && len(q.Values) == 0 {
			v.add(f+".values", at, "list the choices: values: [a, b]", "an enum needs values")
		}
		if q.Type != TypeEnum && len(q.Values) > 0 {
			v.add(f+".values", append(at, "values"), "use type: enum, or remove values", "values are only for enums")
		}
		if q.Pattern != "" {
			if q.Type != TypeString && q.Type != TypePassword && q.Type != TypeDomain {
				v.add(f+".pattern", append(at, "pattern"), "remove it, or use min/max", "pattern applies to string, password and domain parameters only")
			} else if _, err := regexp.Compile(q.Pattern); err != nil {
				v.add(f+".pattern", append(at, "pattern"), "fix the regular expression (Go RE2 syntax)", "%v", err)
			}
		}
		for _, b := range []struct {
			name string
			val  any
		}{{"min", q.Min}, {"max", q.Max}} {
			if b.val == nil {
				continue
			}
			if _, err := bound(q.Type, b.val); err != nil {
				v.add(f+"."+b.name, append(at, b.name), boundFix(q.Type), "%v", err)
			}
		}
		if g := q.Generate; g != nil {
			switch {
			case q.Type != TypeString && q.Type != TypePassword:
				v.add(f+".generate", append(at, "generate"), "use type: password or string", "only string and password values can be generated")
			case q.Default != nil:
				v.add(f+".generate", append(at, "generate"), "remove default or generate", "a parameter cannot have both a default and a generated value")
			case g.Length < 8 || g.Length > 256:
				v.add(f+".generate.length", append(at, "generate", "length"), "use a length between 8 and 256", "%d is out of range", g.Length)
			case g.Charset != "" && g.Charset != Alphanumeric && g.Charset != Hex:
				v.add(f+".generate.charset", append(at, "generate", "charset"), "use alphanumeric or hex", "%q is not a charset", g.Charset)
			}
		}
		if q.Default != nil && q.Name != "" {
			if _, ve := q.check(q.Default); ve != nil {
				msg := ve.Msg
				if q.IsSecret() {
					msg = "the default " + msg
				}
				v.add(f+".default", append(at, "default"), "change the default so it satisfies the parameter's own type and bounds", "%s", msg)
			}
		}
		if q.When != "" && envErr == nil {
			ce, err := compileBool(env, q.When)
			if err != nil {
				v.add(f+".when", append(at, "when"), "write a CEL expression over self, e.g. when: self.persistence", "%v", err)
			} else {
				p.whens[q.Name] = ce
			}
		}
	}
	if envErr != nil {
		v.add("config", nil, "", "cannot set up CEL: %v", envErr)
	}
}

func typeList() string {
	s := make([]string, len(ParamTypes))
	for i, t := range ParamTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func boundFix(t ParamType) string {
	switch t {
	case TypeInt:
		return "use an integer"
	case TypeSize:
		return "use a quantity such as 1Gi"
	case TypeDuration:
		return "use a duration such as 30s"
	case TypeString, TypePassword:
		return "use a length (an integer)"
	}
	return "remove it: min and max do not apply to " + string(t)
}

func (v *validator) rules() {
	env, err := celEnv()
	if err != nil {
		return
	}
	for i, r := range v.p.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		at := []any{"rules", i}
		if r.Message == "" {
			v.add(f+".message", at, "add a message that tells the user what to change", "is missing")
		}
		if r.Rule == "" {
			v.add(f+".rule", at, "write a CEL expression over self, e.g. rule: \"!self.ha || self.replicas >= 3\"", "is missing")
			continue
		}
		ce, err := compileBool(env, r.Rule)
		if err != nil {
			v.add(f+".rule", append(at, "rule"), "fix the CEL expression; parameters are self.NAME", "%v", err)
			continue
		}
		v.p.rules = append(v.p.rules, compiledRule{Rule: r, expr: ce})
	}
}

func (v *validator) dependencies() {
	seen := map[string]bool{}
	for i, d := range v.p.Dependencies {
		f := fmt.Sprintf("dependencies[%d]", i)
		at := []any{"dependencies", i}
		if d.Package == "" {
			v.add(f+".package", at, "name the package this one depends on", "is missing")
		} else if len(validation.IsDNS1123Label(d.Package)) > 0 {
			v.add(f+".package", append(at, "package"), "use a package name: lowercase letters, digits and '-'", "%q is not a package name", d.Package)
		}
		if d.Name != "" && !paramName.MatchString(d.Name) && len(validation.IsDNS1123Label(d.Name)) > 0 {
			v.add(f+".name", append(at, "name"), "use letters, digits, '-' and '_'", "%q is not a valid dependency name", d.Name)
		}
		if k := d.Key(); k != "" {
			if seen[k] {
				v.add(f+".name", at, "give the second one a distinct name", "dependency %q is declared twice", k)
			}
			seen[k] = true
		}
		if d.Version == "" {
			v.add(f+".version", at, "set a semver constraint such as \">=1.2.0 <2.0.0\" or \"^1.2\"", "is missing")
		} else if _, err := semver.NewConstraint(d.Version); err != nil {
			v.add(f+".version", append(at, "version"), "use a semver constraint such as \">=1.2.0 <2.0.0\" or \"^1.2\"", "%q is not a version constraint: %v", d.Version, err)
		}
		switch d.Kind {
		case Shared:
			if len(d.Config) > 0 {
				v.add(f+".config", append(at, "config"), "remove config: a shared dependency is configured where it is installed", "only components take config")
			}
		case Component:
			if d.Optional {
				v.add(f+".optional", append(at, "optional"), "remove optional: true, or make the dependency kind: shared", "a component is always part of its app; only a shared dependency can be optional")
			}
		default:
			v.add(f+".kind", append(at, "kind"), "use kind: shared (one instance for every app) or kind: component (a private instance per app)", "%q is not a dependency kind", d.Kind)
		}
		if _, clash := v.p.Param(d.Key()); clash && d.Kind == Component {
			v.add(f+".name", at, "rename the parameter, or give the dependency another name", "the component %q has the name of a configuration parameter; --set %s.KEY=VALUE would be ambiguous", d.Key(), d.Key())
		}
		if d.Package == v.p.Name {
			v.add(f+".package", append(at, "package"), "remove it", "a package cannot depend on itself")
		}
	}
}

func (v *validator) outputs() {
	seen := map[string]bool{}
	for i, o := range v.p.Outputs {
		f := fmt.Sprintf("outputs[%d]", i)
		at := []any{"outputs", i}
		switch {
		case !paramName.MatchString(o.Name):
			v.add(f+".name", append(at, "name"), "use letters, digits and '_', starting with a letter", "%q is not a valid output name", o.Name)
		case seen[o.Name]:
			v.add(f+".name", append(at, "name"), "give each output a distinct name", "%q is declared twice", o.Name)
		}
		seen[o.Name] = true
		if o.Value == "" {
			v.add(f+".value", at, "set value: to a template such as \"{{ .app.name }}.{{ .app.namespace }}.svc\"", "is missing")
		} else if _, err := template.New(o.Name).Option("missingkey=error").Funcs(TemplateFuncs()).Parse(o.Value); err != nil {
			v.add(f+".value", append(at, "value"), "fix the Go template", "%v", err)
		}
	}
	if v.p.Notes != "" {
		if _, err := template.New("notes").Option("missingkey=error").Funcs(TemplateFuncs()).Parse(v.p.Notes); err != nil {
			v.add("notes", []any{"notes"}, "fix the Go template", "%v", err)
		}
	}
}

// checkFiles checks that the files the package names exist in fsys below dir.
func (p *Package) checkFiles(fsys fs.FS, dir string) error {
	v := &validator{p: p}
	exists := func(field string, at []any, name string, wantDir bool) {
		fi, err := fs.Stat(fsys, path.Join(dir, name))
		switch {
		case err != nil:
			v.add(field, at, "add the file to the package or fix the path", "%q does not exist in the package", name)
		case wantDir && !fi.IsDir():
			v.add(field, at, "point it at a chart directory (one holding Chart.yaml)", "%q is not a directory", name)
		}
	}
	for i, c := range p.Charts {
		if c.Path != "" && localPath(c.Path) {
			exists(fmt.Sprintf("charts[%d].path", i), []any{"charts", i, "path"}, c.Path, true)
			if fi, err := fs.Stat(fsys, path.Join(dir, c.Path)); err == nil && fi.IsDir() {
				if _, err := fs.Stat(fsys, path.Join(dir, c.Path, "Chart.yaml")); err != nil {
					v.add(fmt.Sprintf("charts[%d].path", i), []any{"charts", i, "path"}, "add a Chart.yaml to the chart directory", "%q has no Chart.yaml", c.Path)
				}
			}
		}
		if c.Values != "" && localPath(c.Values) {
			exists(fmt.Sprintf("charts[%d].values", i), []any{"charts", i, "values"}, c.Values, false)
		}
	}
	for i, m := range p.Manifests {
		if localPath(m) {
			exists(fmt.Sprintf("manifests[%d]", i), []any{"manifests", i}, m, false)
		}
	}
	for i, r := range p.Runbooks {
		if r.File != "" && localPath(r.File) {
			exists(fmt.Sprintf("runbooks[%d].file", i), []any{"runbooks", i, "file"}, r.File, false)
		}
		for j, s := range r.Steps {
			if s.Job != nil && localPath(s.Job.Template) {
				exists(fmt.Sprintf("runbooks[%d].steps[%d].job.template", i, j), []any{"runbooks", i, "steps", j}, s.Job.Template, false)
			}
		}
	}
	if p.Verify != nil && localPath(p.Verify.Job) {
		exists("verify.job", []any{"verify", "job"}, p.Verify.Job, false)
	}
	for _, docs := range []struct {
		field string
		list  []Document
	}{{"dashboards", p.Dashboards}} {
		for i, d := range docs.list {
			if localPath(d.File) {
				exists(fmt.Sprintf("%s[%d].file", docs.field, i), []any{docs.field, i, "file"}, d.File, false)
			}
		}
	}
	if len(v.errs) > 0 {
		return &ValidationError{Errors: v.errs}
	}
	return nil
}

// renamed checks upgrade.renamed: every new name is a parameter of this
// version, no old name still is, and no two old names meet in one new name.
func (v *validator) renamed() {
	p := v.p
	into := map[string]string{}
	for _, old := range slices.Sorted(maps.Keys(p.Upgrade.Renamed)) {
		name := p.Upgrade.Renamed[old]
		f, at := "upgrade.renamed."+old, []any{"upgrade", "renamed", old}
		switch {
		case !paramName.MatchString(old):
			v.add(f, at, "use the parameter's name in the earlier version", "%q is not a valid parameter name", old)
		case !paramName.MatchString(name):
			v.add(f, at, "use the parameter's name in this version", "%q is not a valid parameter name", name)
		case old == name:
			v.add(f, at, "remove the entry: the parameter keeps its name", "renames %s to itself", old)
		default:
			if _, ok := p.Param(old); ok {
				v.add(f, at, "remove the entry, or rename the parameter in config", "%s is still a configuration parameter of this version, so it is not renamed", old)
			}
			if _, ok := p.Param(name); !ok {
				v.add(f, at, "name a parameter of this version's config", "%s is not a configuration parameter of this version", name)
			}
			if other, ok := into[name]; ok {
				v.add(f, at, "rename each earlier parameter to a parameter of its own", "%s and %s are both renamed to %s", other, old, name)
			}
			into[name] = old
		}
	}
}
