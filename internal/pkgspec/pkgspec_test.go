package pkgspec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

const base = `apiVersion: berth.dev/v1alpha1
kind: Package
name: demo
version: 1.2.3
description: A demo package.
manifests: [all.yaml]
`

func parse(t *testing.T, extra string) (*Package, error) {
	t.Helper()
	return Parse("demo/package.yaml", []byte(base+extra))
}

func mustParse(t *testing.T, extra string) *Package {
	t.Helper()
	p, err := parse(t, extra)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		doc  string // replaces base when set
		add  string // appended to base
		want []string
	}{
		"syntax":              {doc: "name: [unclosed\n", want: []string{"demo/package.yaml:1: did not find expected"}},
		"empty":               {doc: "", want: []string{"demo/package.yaml: the file is empty"}},
		"unknown field":       {add: "colour: blue\n", want: []string{"demo/package.yaml:7: field colour is not a field of Package; check its spelling"}},
		"wrong type":          {add: "keywords: {a: b}\n", want: []string{"demo/package.yaml:7: cannot unmarshal"}},
		"api version":         {doc: strings.Replace(base, "berth.dev/v1alpha1", "v2", 1), want: []string{`demo/package.yaml:1: apiVersion: is "v2", expected "berth.dev/v1alpha1"; set apiVersion: berth.dev/v1alpha1`}},
		"kind":                {doc: strings.Replace(base, "kind: Package", "kind: Chart", 1), want: []string{`:2: kind: is "Chart"`}},
		"bad name":            {doc: strings.Replace(base, "name: demo", "name: Demo_1", 1), want: []string{`:3: name: "Demo_1" is not a valid package name`}},
		"missing name":        {doc: strings.Replace(base, "name: demo\n", "", 1), want: []string{`name: is missing; add name:`}},
		"bad version":         {doc: strings.Replace(base, "1.2.3", "1.2", 1), want: []string{`:4: version: "1.2" is not a semantic version`}},
		"no description":      {doc: strings.Replace(base, "description: A demo package.\n", "", 1), want: []string{"description: is missing"}},
		"bad homepage":        {add: "homepage: example.com\n", want: []string{`:7: homepage: "example.com" is not a URL`}},
		"maintainer name":     {add: "maintainers:\n  - email: a@b.c\n", want: []string{":8: maintainers[0].name: is missing"}},
		"no content":          {doc: strings.Replace(base, "manifests: [all.yaml]\n", "", 1), want: []string{"charts: the package has no content"}},
		"manifest escapes":    {add: "charts: [{path: ../x}]\n", want: []string{`:7: charts[0].path: "../x" leaves the package`}},
		"chart path and repo": {add: "charts:\n  - path: chart\n    repo: https://charts.example.com\n", want: []string{"charts[0]: has both path and repo"}},
		"repo chart incomplete": {add: "charts:\n  - repo: ftp://x\n    version: latest\n    digest: md5:1\n", want: []string{
			`:8: charts[0].repo: "ftp://x" is not a chart repository URL`, "charts[0].chart: is missing",
			`:9: charts[0].version: "latest" is not an exact version`, `:10: charts[0].digest: "md5:1" is not a sha256 digest`}},
		"breaking without note": {add: "upgrade: {breaking: true}\n", want: []string{":7: upgrade.note: is missing; a breaking version needs a note"}},
		"upgrade unknown field": {add: "upgrade: {brekaing: true}\n", want: []string{"brekaing"}},
		"renamed to nothing":    {add: "config: [{name: a, type: int}]\nupgrade:\n  renamed:\n    old: b\n", want: []string{":10: upgrade.renamed.old: b is not a configuration parameter of this version; name a parameter of this version's config"}},
		"renamed still there":   {add: "config: [{name: a, type: int}, {name: old, type: int}]\nupgrade: {renamed: {old: a}}\n", want: []string{"upgrade.renamed.old: old is still a configuration parameter of this version"}},
		"renamed twice into":    {add: "config: [{name: a, type: int}]\nupgrade: {renamed: {x: a, y: a}}\n", want: []string{"upgrade.renamed.y: x and y are both renamed to a"}},
		"renamed to itself":     {add: "config: [{name: a, type: int}]\nupgrade: {renamed: {a: a}}\n", want: []string{"upgrade.renamed.a: renames a to itself"}},
		"renamed bad name":      {add: "config: [{name: a, type: int}]\nupgrade: {renamed: {9x: a}}\n", want: []string{`upgrade.renamed.9x: "9x" is not a valid parameter name`}},
		"chart neither":         {add: "charts: [{values: v.yaml}]\n", want: []string{"charts[0]: has neither path nor repo"}},
		"duplicate chart":       {add: "charts: [{path: a/c}, {path: b/c}]\n", want: []string{`charts[1].name: a chart named "c" is already declared`}},
		"param name":            {add: "config:\n  - name: 9lives\n    type: int\n", want: []string{`:8: config[0] (9lives).name: "9lives" is not a valid parameter name`}},
		"param twice":           {add: "config:\n  - {name: a, type: int}\n  - {name: a, type: int}\n", want: []string{`config[1] (a).name: "a" is declared twice`}},
		"param type":            {add: "config:\n  - name: a\n    type: strin\n", want: []string{`:9: config[0] (a).type: "strin" is not a parameter type; use one of string, int, bool, enum, password, domain, size, duration`}},
		"enum without values":   {add: "config: [{name: a, type: enum}]\n", want: []string{"config[0] (a).values: an enum needs values"}},
		"values without enum":   {add: "config: [{name: a, type: string, values: [x]}]\n", want: []string{"values are only for enums"}},
		"pattern on int":        {add: "config: [{name: a, type: int, pattern: x}]\n", want: []string{"pattern applies to string, password and domain"}},
		"bad pattern":           {add: "config: [{name: a, type: string, pattern: '('}]\n", want: []string{"config[0] (a).pattern: error parsing regexp"}},
		"bad min":               {add: "config: [{name: a, type: size, min: lots}]\n", want: []string{`config[0] (a).min: "lots" is not a size; use a quantity such as 1Gi`}},
		"min on bool":           {add: "config: [{name: a, type: bool, max: 1}]\n", want: []string{"min and max do not apply to bool"}},
		"generate int":          {add: "config: [{name: a, type: int, generate: {length: 10}}]\n", want: []string{"only string and password values can be generated"}},
		"generate and default":  {add: "config: [{name: a, type: password, default: x, generate: {length: 10}}]\n", want: []string{"cannot have both a default and a generated value"}},
		"generate length":       {add: "config: [{name: a, type: password, generate: {length: 4}}]\n", want: []string{"generate.length: 4 is out of range"}},
		"generate charset":      {add: "config: [{name: a, type: password, generate: {length: 10, charset: emoji}}]\n", want: []string{`"emoji" is not a charset`}},
		"bad default":           {add: "config: [{name: a, type: int, default: 5, max: 3}]\n", want: []string{"config[0] (a).default: must be at most 3 (got 5)"}},
		"secret default hidden": {add: "config: [{name: a, type: password, default: hunter2, min: 10}]\n", want: []string{"the default must be at least 10 characters"}},
		"bad when":              {add: "config: [{name: a, type: int, when: 'self.b ==='}]\n", want: []string{"config[0] (a).when: invalid CEL expression"}},
		"when not bool":         {add: "config: [{name: a, type: int, when: '1 + 2'}]\n", want: []string{"the expression is of type int"}},
		"rule syntax":           {add: "rules:\n  - rule: 'self.a >'\n    message: m\n", want: []string{":8: rules[0].rule: invalid CEL expression"}},
		"rule no message":       {add: "rules: [{rule: 'true'}]\n", want: []string{"rules[0].message: is missing"}},
		"rule missing":          {add: "rules: [{message: m}]\n", want: []string{"rules[0].rule: is missing"}},
		"dependency": {add: "dependencies:\n  - package: Pg\n    version: '>>1'\n    kind: private\n", want: []string{
			`:8: dependencies[0].package: "Pg" is not a package name`, `:9: dependencies[0].version: ">>1" is not a version constraint`,
			`:10: dependencies[0].kind: "private" is not a dependency kind; use kind: shared`}},
		"dependency twice":   {add: "dependencies:\n  - {package: pg, version: '1', kind: shared}\n  - {package: pg, version: '1', kind: shared}\n", want: []string{`dependency "pg" is declared twice`}},
		"shared config":      {add: "dependencies:\n  - {package: pg, version: '1', kind: shared, config: {a: 1}}\n", want: []string{"only components take config"}},
		"notes template":     {add: "notes: 'Open {{ .app.name'\n", want: []string{"notes: template: notes:1: unclosed action; fix the Go template"}},
		"optional component": {add: "dependencies:\n  - {package: pg, version: '1', kind: component, optional: true}\n", want: []string{"dependencies[0].optional: a component is always part of its app; only a shared dependency can be optional"}},
		"self dependency":    {add: "dependencies:\n  - {package: demo, version: '1', kind: shared}\n", want: []string{"a package cannot depend on itself"}},
		"missing version":    {add: "dependencies:\n  - {package: pg, kind: shared}\n", want: []string{"dependencies[0].version: is missing"}},
		"outputs": {add: "outputs:\n  - {name: host, value: '{{ .app.name'}\n  - {name: host, value: x}\n  - {name: '', value: x}\n", want: []string{
			"outputs[0].value: template", `outputs[1].name: "host" is declared twice`, `outputs[2].name: "" is not a valid output name`}},
		"output value missing": {add: "outputs: [{name: host}]\n", want: []string{"outputs[0].value: is missing"}},
		"health":               {add: "health: [{kind: Certificate, status: Yes}]\n", want: []string{"health[0]: is incomplete", `health[0].status: "Yes" is not a condition status`}},
		"runbook":              {add: "runbooks: [{name: r, file: /etc/passwd}, {name: s}]\n", want: []string{`runbooks[0].file: "/etc/passwd" leaves the package`, "runbooks[1]: is incomplete"}},
		"verify":               {add: "verify: {job: ../job.yaml, timeout: soon}\n", want: []string{`verify.job: "../job.yaml" leaves the package`, `verify.timeout: "soon" is not a positive duration`}},
		"verify without job":   {add: "verify: {timeout: 2m}\n", want: []string{"verify.job: is missing"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := base + tc.add
			if tc.doc != "" || tc.add == "" {
				doc = tc.doc
			}
			_, err := Parse("demo/package.yaml", []byte(doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want a *ValidationError", err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i < len(ve.Errors) && !strings.Contains(ve.Errors[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, ve.Errors[i].Error(), w)
				}
			}
		})
	}
}

// A chart version with a leading v, as cert-manager publishes them, is exact;
// the v does not make any other string a version.
func TestChartVersionWithV(t *testing.T) {
	const chart = "charts:\n  - repo: https://charts.example.com\n    chart: c\n    version: %s\n    digest: sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
	for v, ok := range map[string]bool{"v1.19.2": true, "1.19.2": true, "v1.19": false, "vv1.2.3": false, "V1.2.3": false} {
		doc := strings.Replace(base, "manifests: [all.yaml]\n", fmt.Sprintf(chart, v), 1)
		_, err := Parse("demo/package.yaml", []byte(doc))
		if (err == nil) != ok {
			t.Errorf("chart version %q: Parse error = %v, want ok = %v", v, err, ok)
		}
	}
}

func TestLoadChecksFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"demo/package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: demo
version: 1.0.0
description: d
charts:
  - path: chart
    values: values.tmpl
  - path: nochart
  - path: file.txt
manifests: [missing.yaml]
dashboards: [{name: d, file: dash.json}]
`)},
		"demo/chart/Chart.yaml": {Data: []byte("apiVersion: v2\nname: chart\nversion: 1.0.0\n")},
		"demo/nochart/README":   {Data: []byte("x")},
		"demo/file.txt":         {Data: []byte("x")},
	}
	_, err := Load(fsys, "demo", "")
	want := `invalid package: 5 problems:
  demo/package.yaml:8: charts[0].values: "values.tmpl" does not exist in the package; add the file to the package or fix the path
  demo/package.yaml:9: charts[1].path: "nochart" has no Chart.yaml; add a Chart.yaml to the chart directory
  demo/package.yaml:10: charts[2].path: "file.txt" is not a directory; point it at a chart directory (one holding Chart.yaml)
  demo/package.yaml:11: manifests[0]: "missing.yaml" does not exist in the package; add the file to the package or fix the path
  demo/package.yaml:12: dashboards[0].file: "dash.json" does not exist in the package; add the file to the package or fix the path`
	if err == nil {
		t.Fatal("Load succeeded, want errors for the missing files")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Load error (-want +got):\n%s", diff)
	}
	if _, err := Load(fsys, "nothere", ""); err == nil || !strings.Contains(err.Error(), "nothere/package.yaml: cannot read") {
		t.Errorf("Load of a missing package: %v", err)
	}
}

func TestParseExample(t *testing.T) {
	// The complete example of docs/packages.md must stay valid.
	p := mustParse(t, `homepage: https://example.com
maintainers: [{name: Ada, email: ada@example.com}]
config:
  - {name: replicas, type: int, default: 1, min: 1, max: 9}
  - {name: ha, type: bool, default: false}
rules:
  - rule: "!self.ha || self.replicas >= 3"
    message: HA needs at least 3 replicas
dependencies:
  - {name: db, package: postgresql, version: ">=16.0.0 <18.0.0", kind: component, config: {database: demo}}
outputs:
  - {name: host, value: "{{ .app.name }}.{{ .app.namespace }}.svc"}
`)
	if got := p.Dependencies[0].Key(); got != "db" {
		t.Errorf("dependency key = %q, want db", got)
	}
	if len(p.rules) != 1 {
		t.Errorf("compiled %d rules, want 1", len(p.rules))
	}
}

func TestRepoChartsNeedNoDigest(t *testing.T) {
	p := mustParse(t, "charts:\n  - repo: https://charts.jetstack.io\n    chart: cert-manager\n    version: v1.19.2\n")
	if c := p.Charts[0]; c.Digest != "" || c.Version != "v1.19.2" {
		t.Errorf("chart = %+v; want the v-prefixed version kept and no digest", c)
	}
}
