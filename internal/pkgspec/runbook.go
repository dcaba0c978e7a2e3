package pkgspec

import (
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"
)

// Runbook is a day-2 procedure of a package. A documentation runbook only
// names a file a person reads (File); an executable runbook has typed
// Parameters, Checks that must hold before anything changes, and Steps that
// berth runs in order ('berth runbook run').
type Runbook struct {
	Name        string `yaml:"name" json:"name"`
	Title       string `yaml:"title,omitempty" json:"title,omitempty"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// File is a document inside the package: the whole runbook of a
	// documentation runbook, further reading for an executable one.
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	// Parameters have the configuration's types and constraints.
	Parameters []Param        `yaml:"parameters,omitempty" json:"parameters,omitempty"`
	Checks     []RunbookCheck `yaml:"checks,omitempty" json:"checks,omitempty"`
	Steps      []RunbookStep  `yaml:"steps,omitempty" json:"steps,omitempty"`
}

// Executable reports whether the runbook has steps berth runs.
func (r Runbook) Executable() bool { return len(r.Steps) > 0 }

// RunbookCheck is a precondition: an object that must exist (and, with
// Condition, have that status condition True) before any step runs. Name and
// Message are templates over the run's data (see RunbookStep).
type RunbookCheck struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	Name       string `yaml:"name" json:"name"`
	Condition  string `yaml:"condition,omitempty" json:"condition,omitempty"`
	// Message says what is wrong when the check fails.
	Message string `yaml:"message" json:"message"`
}

// RunbookStep is one step; exactly one of its actions is set. Strings in
// actions are Go templates over .params (the run's parameters), .config (the
// app's configuration before the run) and .app (name, namespace).
type RunbookStep struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Config sets configuration values: one commit, as 'berth config' makes,
	// not deployed by itself.
	Config map[string]string `yaml:"config,omitempty" json:"config,omitempty"`
	// Deploy deploys the app as the workspace holds it and waits until it is
	// healthy.
	Deploy *DeployAction `yaml:"deploy,omitempty" json:"deploy,omitempty"`
	// Job runs a Job from a template file of the package and waits for it to
	// complete.
	Job *JobAction `yaml:"job,omitempty" json:"job,omitempty"`
	// Scale sets a workload's replicas through its scale subresource and waits
	// until they are ready. The workspace is not changed: the next deploy
	// restores its replicas, so a runbook scales back before it ends (or sets
	// replicas through Config for a lasting change).
	Scale *ScaleAction `yaml:"scale,omitempty" json:"scale,omitempty"`
	// ExpandVolumes grows a StatefulSet's claims and re-creates it with the
	// larger claim template, keeping its pods and claims.
	ExpandVolumes *ExpandVolumesAction `yaml:"expandVolumes,omitempty" json:"expandVolumes,omitempty"`
	// Secret creates a Secret for the run's later steps (a Job that needs a
	// new password, say), so a value never appears in a Job's manifest; berth
	// deletes it when the run ends, however it ends.
	Secret *SecretAction `yaml:"secret,omitempty" json:"secret,omitempty"`
}

// SecretAction creates a Secret that lives as long as the run.
type SecretAction struct {
	Name string            `yaml:"name" json:"name"`
	Data map[string]string `yaml:"data" json:"data"`
}

// DeployAction deploys the app.
type DeployAction struct {
	Timeout string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// JobAction runs a Job.
type JobAction struct {
	// Template is a file of the package holding a Job manifest (a template);
	// berth sets its namespace and labels.
	Template string `yaml:"template" json:"template"`
	Timeout  string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// ScaleAction scales a workload.
type ScaleAction struct {
	// Workload is kind/name: deployment/NAME or statefulset/NAME.
	Workload string `yaml:"workload" json:"workload"`
	Replicas string `yaml:"replicas" json:"replicas"`
	Timeout  string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// ExpandVolumesAction grows the claims of a StatefulSet.
type ExpandVolumesAction struct {
	StatefulSet string `yaml:"statefulSet" json:"statefulSet"`
	// Claim is the volumeClaimTemplate to grow; the only one when empty.
	Claim   string `yaml:"claim,omitempty" json:"claim,omitempty"`
	Size    string `yaml:"size" json:"size"`
	Timeout string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Action returns the name of the step's action (config, deploy, job, scale,
// expandVolumes, secret) and how many actions it sets.
func (s RunbookStep) Action() (string, int) {
	var set []string
	if s.Config != nil {
		set = append(set, "config")
	}
	if s.Deploy != nil {
		set = append(set, "deploy")
	}
	if s.Job != nil {
		set = append(set, "job")
	}
	if s.Scale != nil {
		set = append(set, "scale")
	}
	if s.ExpandVolumes != nil {
		set = append(set, "expandVolumes")
	}
	if s.Secret != nil {
		set = append(set, "secret")
	}
	if len(set) == 0 {
		return "", 0
	}
	return set[0], len(set)
}

// Runbook returns the runbook called name.
func (p *Package) Runbook(name string) (Runbook, bool) {
	for _, r := range p.Runbooks {
		if r.Name == name {
			return r, true
		}
	}
	return Runbook{}, false
}

// RunbookNames lists the package's runbooks, sorted.
func (p *Package) RunbookNames() []string {
	var out []string
	for _, r := range p.Runbooks {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out
}

// CheckParams checks a run's parameter values against the runbook's
// parameters as Configure checks configuration: unknown names, types,
// bounds, patterns, required values; defaults and generated values fill the
// rest. Errors name the runbook; secret values never appear in them.
func (r Runbook) CheckParams(values map[string]any, gen Generator) (Config, error) {
	if gen == nil {
		gen = RandomGenerator()
	}
	cerr := &ParamsError{Runbook: r.Name}
	var names []string
	for _, q := range r.Parameters {
		names = append(names, q.Name)
	}
	var unknown []string
	for k := range values {
		if !contains(names, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		fix := "runbook " + r.Name + " has no parameters"
		if len(names) > 0 {
			fix = "its parameters: " + strings.Join(names, ", ")
		}
		cerr.Errors = append(cerr.Errors, &ValueError{Param: k, Msg: "is not a parameter of runbook " + r.Name, Fix: fix})
	}
	out := Config{}
	for _, q := range r.Parameters {
		raw, ok := values[q.Name]
		switch {
		case ok && raw != nil:
			v, ve := q.check(raw)
			if ve != nil {
				cerr.Errors = append(cerr.Errors, ve)
				continue
			}
			out[q.Name] = v
		case q.Default != nil:
			v, ve := q.check(q.Default)
			if ve != nil {
				cerr.Errors = append(cerr.Errors, ve)
				continue
			}
			out[q.Name] = v
		case q.Generate != nil:
			s, err := gen.Generate(q.Name, *q.Generate)
			if err != nil {
				cerr.Errors = append(cerr.Errors, &ValueError{Param: q.Name, Msg: "cannot generate a value: " + err.Error()})
				continue
			}
			out[q.Name] = s
		case q.Required:
			fix := fmt.Sprintf("set it, e.g. --set %s=...", q.Name)
			if q.Description != "" {
				fix = q.Description + "; " + fix
			}
			cerr.Errors = append(cerr.Errors, &ValueError{Param: q.Name, Msg: "is required", Fix: fix})
		default:
			out[q.Name] = q.zero()
		}
	}
	if len(cerr.Errors) > 0 {
		return nil, cerr
	}
	return out, nil
}

// ParamsError holds every problem found in a run's parameters.
type ParamsError struct {
	Runbook string
	Errors  []*ValueError
}

func (e *ParamsError) Error() string {
	line := func(ve *ValueError) string {
		s := fmt.Sprintf("parameter %q: %s", ve.Param, ve.Msg)
		if ve.Fix != "" {
			s += "; " + ve.Fix
		}
		return s
	}
	if len(e.Errors) == 1 {
		return fmt.Sprintf("invalid parameters for runbook %s: %s", e.Runbook, line(e.Errors[0]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid parameters for runbook %s: %d problems:", e.Runbook, len(e.Errors))
	for _, ve := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(line(ve))
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runbooks validates the runbooks' fields; checkFiles checks their files.
func (v *validator) runbooks() {
	seen := map[string]bool{}
	for i, r := range v.p.Runbooks {
		f, at := fmt.Sprintf("runbooks[%d]", i), []any{"runbooks", i}
		switch {
		case r.Name == "":
			v.add(f+".name", at, "name the runbook, e.g. name: resize-storage", "is missing")
		case !runbookName(r.Name):
			v.add(f+".name", append(at, "name"), "use lowercase letters, digits and '-'", "%q is not a valid runbook name", r.Name)
		case seen[r.Name]:
			v.add(f+".name", append(at, "name"), "give each runbook a distinct name", "%q is declared twice", r.Name)
		}
		seen[r.Name] = true
		if r.File == "" && len(r.Steps) == 0 {
			v.add(f, at, "set file (a document to read) or steps (what berth runs)", "is incomplete")
		}
		if r.File != "" && !localPath(r.File) {
			v.add(f+".file", append(at, "file"), "use a relative path inside the package", "%q leaves the package", r.File)
		}
		if len(r.Steps) == 0 && (len(r.Parameters) > 0 || len(r.Checks) > 0) {
			v.add(f+".steps", at, "add steps, or remove parameters and checks", "parameters and checks need steps")
		}
		v.runbookParams(f, at, r)
		for j, c := range r.Checks {
			cf, cat := fmt.Sprintf("%s.checks[%d]", f, j), append(append([]any{}, at...), "checks", j)
			if c.APIVersion == "" || c.Kind == "" || c.Name == "" || c.Message == "" {
				v.add(cf, cat, "set apiVersion, kind, name and message", "is incomplete")
			}
			v.template(cf+".name", cat, c.Name)
			v.template(cf+".message", cat, c.Message)
		}
		for j, s := range r.Steps {
			v.runbookStep(fmt.Sprintf("%s.steps[%d]", f, j), append(append([]any{}, at...), "steps", j), s)
		}
	}
}

func runbookName(s string) bool {
	for i, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return s != "" && len(s) <= 63
}

func (v *validator) runbookParams(f string, at []any, r Runbook) {
	seen := map[string]bool{}
	for j, q := range r.Parameters {
		pf, pat := fmt.Sprintf("%s.parameters[%d]", f, j), append(append([]any{}, at...), "parameters", j)
		switch {
		case !paramName.MatchString(q.Name):
			v.add(pf+".name", pat, "use letters, digits and '_', starting with a letter", "%q is not a valid parameter name", q.Name)
		case seen[q.Name]:
			v.add(pf+".name", pat, "give each parameter a distinct name", "%q is declared twice", q.Name)
		}
		seen[q.Name] = true
		if !q.Type.known() {
			v.add(pf+".type", pat, "use one of "+typeList(), "%q is not a parameter type", q.Type)
			continue
		}
		if q.Type == TypeEnum && len(q.Values) == 0 {
			v.add(pf+".values", pat, "list the choices: values: [a, b]", "an enum needs values")
		}
		for _, b := range []struct {
			name string
			val  any
		}{{"min", q.Min}, {"max", q.Max}} {
			if b.val == nil {
				continue
			}
			if _, err := bound(q.Type, b.val); err != nil {
				v.add(pf+"."+b.name, pat, boundFix(q.Type), "%v", err)
			}
		}
		if q.Default != nil {
			if _, ve := q.check(q.Default); ve != nil {
				v.add(pf+".default", pat, "change the default so it satisfies the parameter's own type and bounds", "%s", ve.Msg)
			}
		}
		if q.When != "" {
			v.add(pf+".when", pat, "remove it", "runbook parameters have no conditions")
		}
	}
}

func (v *validator) runbookStep(f string, at []any, s RunbookStep) {
	action, n := s.Action()
	if n != 1 {
		v.add(f, at, "set exactly one of config, deploy, job, scale, expandVolumes, secret", "has %d actions", n)
		return
	}
	timeout := func(t string) {
		if t == "" {
			return
		}
		if d, err := time.ParseDuration(t); err != nil || d <= 0 {
			v.add(f+"."+action+".timeout", at, "use a duration such as 5m", "%q is not a positive duration", t)
		}
	}
	switch action {
	case "config":
		if len(s.Config) == 0 {
			v.add(f+".config", at, "name the parameters to set, e.g. config: {storage: \"{{ .params.size }}\"}", "sets nothing")
		}
		for k, val := range s.Config {
			if _, ok := v.p.Param(k); !ok {
				v.add(f+".config."+k, at, "known parameters: "+v.p.paramNames(), "%q is not a configuration parameter of %s", k, v.p.Name)
			}
			v.template(f+".config."+k, at, val)
		}
	case "deploy":
		timeout(s.Deploy.Timeout)
	case "job":
		if s.Job.Template == "" || !localPath(s.Job.Template) {
			v.add(f+".job.template", at, "name a Job manifest file inside the package", "%q is not a file inside the package", s.Job.Template)
		}
		timeout(s.Job.Timeout)
	case "scale":
		kind, name, _ := strings.Cut(s.Scale.Workload, "/")
		if (kind != "deployment" && kind != "statefulset") || name == "" {
			v.add(f+".scale.workload", at, "use deployment/NAME or statefulset/NAME", "%q is not a workload", s.Scale.Workload)
		}
		v.template(f+".scale.workload", at, s.Scale.Workload)
		v.template(f+".scale.replicas", at, s.Scale.Replicas)
		timeout(s.Scale.Timeout)
	case "expandVolumes":
		if s.ExpandVolumes.StatefulSet == "" || s.ExpandVolumes.Size == "" {
			v.add(f+".expandVolumes", at, "set statefulSet and size", "is incomplete")
		}
		v.template(f+".expandVolumes.statefulSet", at, s.ExpandVolumes.StatefulSet)
		v.template(f+".expandVolumes.size", at, s.ExpandVolumes.Size)
		timeout(s.ExpandVolumes.Timeout)
	case "secret":
		if s.Secret.Name == "" || len(s.Secret.Data) == 0 {
			v.add(f+".secret", at, "set name and data", "is incomplete")
		}
		v.template(f+".secret.name", at, s.Secret.Name)
		for k, val := range s.Secret.Data {
			v.template(f+".secret.data."+k, at, val)
		}
	}
}

func (v *validator) template(f string, at []any, text string) {
	if _, err := template.New(f).Option("missingkey=error").Parse(text); err != nil {
		v.add(f, at, "fix the Go template", "%v", err)
	}
}
