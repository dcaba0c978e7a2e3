package packagetest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lintPackage is a package with a chart inside, whose values template maps
// the configuration to the chart's values.
const lintPackage = `apiVersion: berth.dev/v1alpha1
kind: Package
name: greeter
version: VERSION
description: Says hello from a ConfigMap.
charts:
  - path: chart
    values: values.yaml.tmpl
config:
  - name: greeting
    type: string
    description: What to say.
    default: hi
  - name: mode
    type: enum
    values: [plain, fancy]
    default: plain
  - name: domain
    type: domain
    required: true
EXTRA`

const lintValues = `greeting: {{ .config.greeting | quote }}
mode: {{ .config.mode }}
host: {{ index .config "domain" }}
`

func greeterPackage(t *testing.T, dir, version, extra, values string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "package.yaml"), strings.NewReplacer("VERSION", version, "EXTRA", extra).Replace(lintPackage))
	writeFile(t, filepath.Join(dir, "values.yaml.tmpl"), values)
	writeFile(t, filepath.Join(dir, "chart", "Chart.yaml"), "apiVersion: v2\nname: greeter\nversion: 0.1.0\n")
	writeFile(t, filepath.Join(dir, "chart", "templates", "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  host: {{ .Values.host | quote }}\n")
}

func TestLint(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		extra, values string
		// catalog puts the package at CATALOG/greeter/2.0.0 beside a 1.0.0.
		catalog bool
		// edit are old, new pairs replaced in 2.0.0's package.yaml and
		// values template (a parameter renamed since 1.0.0).
		edit []string
		want []Finding // matched on check, severity, field and a part of the message
	}{
		"clean":              {values: lintValues},
		"clean in a catalog": {values: lintValues, catalog: true, extra: "upgrade:\n  note: export the greetings first\n"},
		"schema": {
			extra:  "kind2: x\n",
			values: lintValues,
			want:   []Finding{{Check: CheckSchema, Severity: SeverityError, Message: "kind2"}},
		},
		"an enum value does not render": {
			values: lintValues + "{{ if eq .config.mode \"fancy\" }}{{ .config.sparkles }}{{ end }}\n",
			want:   []Finding{{Check: CheckRender, Severity: SeverityError, Field: "config[1] (mode)", Line: 14, Message: "with mode=fancy"}},
		},
		"a bool value does not render": {
			extra:  "  - {name: shiny, type: bool, default: false}\n",
			values: lintValues + "{{ if .config.shiny }}{{ .config.sparkles }}{{ end }}\n",
			want:   []Finding{{Check: CheckRender, Severity: SeverityError, Field: "config[3] (shiny)", Line: 21, Message: "with shiny=true"}},
		},
		"an unused parameter": {
			values: "greeting: {{ .config.greeting | quote }}\nhost: {{ .config.domain }}\n",
			want:   []Finding{{Check: CheckUnused, Severity: SeverityError, Field: "config[1] (mode)", Line: 14, Message: "no values template or output uses"}},
		},
		"a health rule for a kind never rendered": {
			extra:  "health:\n  - {apiVersion: cert-manager.io/v1, kind: Certificate, condition: Ready}\n  - {apiVersion: v1, kind: ConfigMap, condition: Ready}\n",
			values: lintValues,
			want:   []Finding{{Check: CheckHealth, Severity: SeverityError, Field: "health[0]", Line: 22, Message: "neither renders nor defines Certificate cert-manager.io/v1"}},
		},
		"a dependency no version matches": {
			extra:  "dependencies:\n  - {package: redis, version: \">=99.0.0\", kind: component}\n",
			values: lintValues,
			want:   []Finding{{Check: CheckUpgrade, Severity: SeverityError, Field: "dependencies[0].version", Line: 22, Message: "no version of redis matches"}},
		},
		"an optional dependency in no catalog": {
			// It is only never used: a warning, and the package is still
			// rendered (and its render error found).
			extra:  "dependencies:\n  - {package: no-such-logs, version: \"^6\", kind: shared, optional: true}\n",
			values: lintValues + "{{ if eq .config.mode \"fancy\" }}{{ .config.sparkles }}{{ end }}\n",
			want: []Finding{
				{Check: CheckUpgrade, Severity: SeverityWarning, Field: "dependencies[0].package", Line: 22, Message: "the optional dependency no-such-logs is in no catalog"},
				{Check: CheckRender, Severity: SeverityError, Field: "config[1] (mode)", Line: 14, Message: "with mode=fancy"},
			},
		},
		"alerts and panels Prometheus accepts": {
			extra:  "alerts:\n  - {name: Down, expr: 'up{namespace=\"{{ .Namespace }}\"} == 0', severity: critical, summary: down}\npanels:\n  - {title: Rate, query: 'sum by (pod) (rate(http_requests_total{namespace=\"{{ .Namespace }}\"}[5m]))'}\n",
			values: lintValues,
		},
		"PromQL that only Prometheus's parser refuses": {
			// Brackets and quotes balance, so package.yaml loads.
			extra:  "alerts:\n  - name: Down\n    expr: rate(up[5x]) > 0\n    severity: warning\n    summary: down\npanels:\n  - {title: Broken, query: 'sum(up) up'}\n",
			values: lintValues,
			want: []Finding{
				{Check: CheckPromQL, Severity: SeverityError, Field: "alerts[0].expr", Line: 23, Message: "alert Down:"},
				{Check: CheckPromQL, Severity: SeverityError, Field: "panels[0].query", Line: 27, Message: `panel "Broken":`},
			},
		},
		"a new major version without a note": {
			values:  lintValues,
			catalog: true,
			want:    []Finding{{Check: CheckUpgrade, Severity: SeverityWarning, Field: "upgrade.note", Message: "1.0.0 -> 2.0.0 is a new major version"}},
		},
		"a parameter renamed": {
			values: lintValues, catalog: true, edit: []string{"greeting", "salutation"},
			extra: "upgrade:\n  note: export the greetings first\n  renamed: {greeting: salutation}\n",
		},
		"a rename of what the earlier version does not have": {
			values: lintValues, catalog: true, edit: []string{"greeting", "salutation"},
			extra: "upgrade:\n  note: export the greetings first\n  renamed: {greting: salutation}\n",
			want: []Finding{
				{Check: CheckUpgrade, Severity: SeverityError, Field: "upgrade.renamed.greting", Line: 23, Message: "1.0.0 has no parameter greting to rename"},
				{Check: CheckUpgrade, Severity: SeverityWarning, Field: "config", Line: 10, Message: "1.0.0's parameter greeting is neither in this version nor renamed"},
			},
		},
		"a rename to another type": {
			values: lintValues, catalog: true, edit: []string{"name: domain\n    type: domain", "name: port\n    type: int", `index .config "domain"`, ".config.port"},
			extra: "upgrade:\n  note: export the greetings first\n  renamed: {domain: port}\n",
			want:  []Finding{{Check: CheckUpgrade, Severity: SeverityError, Field: "upgrade.renamed.domain", Line: 23, Message: "domain is of type domain in 1.0.0 and port is of type int here"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "greeter")
			if tc.catalog {
				cat := t.TempDir()
				greeterPackage(t, filepath.Join(cat, "greeter", "1.0.0"), "1.0.0", "", lintValues)
				dir = filepath.Join(cat, "greeter", "2.0.0")
			}
			greeterPackage(t, dir, "2.0.0", tc.extra, tc.values)
			for _, f := range []string{"package.yaml", "values.yaml.tmpl"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				// Not in upgrade.renamed, which names the old parameter.
				text, tail, found := strings.Cut(string(b), "upgrade:")
				for i := 0; i+1 < len(tc.edit); i += 2 {
					text = strings.ReplaceAll(text, tc.edit[i], tc.edit[i+1])
				}
				if found {
					text += "upgrade:" + tail
				}
				writeFile(t, filepath.Join(dir, f), text)
			}
			res, err := Lint(ctx, LintOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Findings) != len(tc.want) {
				b, _ := json.MarshalIndent(res.Findings, "", "  ")
				t.Fatalf("Lint found %d problems, want %d:\n%s", len(res.Findings), len(tc.want), b)
			}
			for i, w := range tc.want {
				f := res.Findings[i]
				if f.Check != w.Check || f.Severity != w.Severity || f.Field != w.Field || !strings.Contains(f.Message, w.Message) {
					t.Errorf("finding %d = %+v, want %+v", i, f, w)
				}
				if f.Check != CheckSchema && f.Line != w.Line {
					t.Errorf("finding %d is on line %d, want %d", i, f.Line, w.Line)
				}
				if !strings.HasSuffix(f.File, "package.yaml") {
					t.Errorf("finding %d names file %q, want the package.yaml", i, f.File)
				}
			}
		})
	}
}
