package pkgspec

import (
	"go.yaml.in/yaml/v3"
)

// APIVersion is the apiVersion every package.yaml declares.
const APIVersion = "berth.dev/v1alpha1"

// FileName is the name of a package's description file.
const FileName = "package.yaml"

// Package is a parsed package.yaml.
type Package struct {
	APIVersion  string       `yaml:"apiVersion" json:"apiVersion"`
	Kind        string       `yaml:"kind" json:"kind"`
	Name        string       `yaml:"name" json:"name"`
	Version     string       `yaml:"version" json:"version"`
	Description string       `yaml:"description" json:"description"`
	Homepage    string       `yaml:"homepage,omitempty" json:"homepage,omitempty"`
	Icon        string       `yaml:"icon,omitempty" json:"icon,omitempty"`
	License     string       `yaml:"license,omitempty" json:"license,omitempty"`
	Keywords    []string     `yaml:"keywords,omitempty" json:"keywords,omitempty"`
	Maintainers []Maintainer `yaml:"maintainers,omitempty" json:"maintainers,omitempty"`

	// Charts and Manifests are the package's content; at least one is required.
	Charts    []Chart  `yaml:"charts,omitempty" json:"charts,omitempty"`
	Manifests []string `yaml:"manifests,omitempty" json:"manifests,omitempty"`

	// Config is the configuration schema: the questions a user answers.
	Config []Param `yaml:"config,omitempty" json:"config,omitempty"`
	// Rules are cross-field checks over the configuration, written in CEL.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`

	Dependencies []Dependency `yaml:"dependencies,omitempty" json:"dependencies,omitempty"`
	// Outputs are values the package exports to packages that depend on it.
	Outputs []Output `yaml:"outputs,omitempty" json:"outputs,omitempty"`

	Health []HealthRule `yaml:"health,omitempty" json:"health,omitempty"`
	// Upgrade says what moving to this version means for an installed app.
	Upgrade Upgrade `yaml:"upgrade,omitempty" json:"upgrade,omitempty"`

	// Notes is what the user reads after an install (where the app is
	// served, how to log in, where its generated password is): a Go template
	// over the same data as outputs, in which secret parameters read as
	// SecretPlaceholder, so no secret is ever printed.
	Notes string `yaml:"notes,omitempty" json:"notes,omitempty"`

	// Runbooks are documentation runbooks (a file to read) and executable
	// ones (parameters and steps berth runs).
	Runbooks   []Runbook  `yaml:"runbooks,omitempty" json:"runbooks,omitempty"`
	Dashboards []Document `yaml:"dashboards,omitempty" json:"dashboards,omitempty"`
	// Alerts are Prometheus alerting rules (see alerts.go); Panels are charts
	// the console draws from the workspace's Prometheus.
	Alerts []Alert `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	Panels []Panel `yaml:"panels,omitempty" json:"panels,omitempty"`
	// Verify is the package's smoke test, which promotion runs before an
	// app moves on from a stage (see verify.go).
	Verify *Verify `yaml:"verify,omitempty" json:"verify,omitempty"`

	// File is where the package was loaded from, for error messages.
	File string `yaml:"-" json:"-"`

	node  *yaml.Node
	rules []compiledRule
	whens map[string]*compiledExpr
}

// SecretPlaceholder is what a secret parameter reads as in notes.
const SecretPlaceholder = "(secret)"

// Upgrade is a package version's upgrade metadata.
type Upgrade struct {
	// Breaking marks a version an installed app cannot move to (or back from)
	// without action on its data, within the same major version. A change of
	// major version is always breaking.
	Breaking bool `yaml:"breaking,omitempty" json:"breaking,omitempty"`
	// Note says what must happen to the data to cross into this version (or
	// back), shown when berth refuses such a move.
	Note string `yaml:"note,omitempty" json:"note,omitempty"`
	// Renamed maps the name a configuration parameter had before this
	// version to its name in this version. berth upgrade carries an app's
	// value over from the old name to the new one (and back on a downgrade).
	Renamed map[string]string `yaml:"renamed,omitempty" json:"renamed,omitempty"`
}

// CompatibleTypes reports whether a value of a parameter of type from can be
// carried over to a parameter of type to when the parameter is renamed: the
// same type, or any string-like type to a string or password (whose value
// stays the same text).
func CompatibleTypes(from, to ParamType) bool {
	if from == to {
		return true
	}
	stringLike := func(t ParamType) bool { return t != TypeInt && t != TypeBool }
	return stringLike(from) && (to == TypeString || to == TypePassword)
}

// Maintainer is a person or team responsible for a package.
type Maintainer struct {
	Name  string `yaml:"name" json:"name"`
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
	URL   string `yaml:"url,omitempty" json:"url,omitempty"`
}

// Chart is one Helm chart of a package: either a directory inside the package
// (Path) or a chart in a chart repository (Repo, Chart, Version, Digest).
type Chart struct {
	// Name identifies the chart within the package; it defaults to the chart's
	// directory or chart name.
	Name    string `yaml:"name,omitempty" json:"name,omitempty"`
	Path    string `yaml:"path,omitempty" json:"path,omitempty"`
	Repo    string `yaml:"repo,omitempty" json:"repo,omitempty"`
	Chart   string `yaml:"chart,omitempty" json:"chart,omitempty"`
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// Digest, optional with Repo, pins "sha256:<hex>" of the chart archive:
	// only that archive is accepted. Without it berth.lock records the
	// digest the first time the chart is resolved.
	Digest string `yaml:"digest,omitempty" json:"digest,omitempty"`
	// Values is a file inside the package holding a Go template that maps the
	// package's configuration to the chart's values.
	Values string `yaml:"values,omitempty" json:"values,omitempty"`
}

// DependencyKind says whether a dependency is shared between apps or private to one.
type DependencyKind string

// Dependency kinds.
const (
	// Shared: one instance serves every app that needs it (an operator, cert-manager).
	Shared DependencyKind = "shared"
	// Component: each app gets a private instance (airflow's own PostgreSQL).
	Component DependencyKind = "component"
)

func (k DependencyKind) String() string { return string(k) }

// Dependency is another package this one needs.
type Dependency struct {
	// Name is how templates refer to the dependency (.deps.NAME); defaults to Package.
	Name    string         `yaml:"name,omitempty" json:"name,omitempty"`
	Package string         `yaml:"package" json:"package"`
	Version string         `yaml:"version" json:"version"`
	Kind    DependencyKind `yaml:"kind" json:"kind"`
	// Optional marks a shared dependency the package uses when the workspace
	// has it (another app needs it) and does without otherwise: it is never
	// installed for this package, and templates see .deps.NAME only when it
	// is there.
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
	// Config sets a component's configuration; only for components.
	Config map[string]any `yaml:"config,omitempty" json:"config,omitempty"`
}

// Key returns the name templates use for d.
func (d Dependency) Key() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Package
}

// Output is a value the package exports: a Go template over the same data as
// values templates.
type Output struct {
	Name        string `yaml:"name" json:"name"`
	Value       string `yaml:"value" json:"value"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
}

// Rule is a cross-field configuration rule in CEL; self is the configuration.
type Rule struct {
	Rule    string `yaml:"rule" json:"rule"`
	Message string `yaml:"message" json:"message"`
}

// HealthRule says when objects of a kind are healthy, beyond the defaults.
type HealthRule struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	// Condition is a status condition type that must have Status ("True" by default).
	Condition string `yaml:"condition" json:"condition"`
	Status    string `yaml:"status,omitempty" json:"status,omitempty"`
}

// Document is a dashboard shipped in the package.
type Document struct {
	Name  string `yaml:"name" json:"name"`
	Title string `yaml:"title,omitempty" json:"title,omitempty"`
	File  string `yaml:"file" json:"file"`
}
