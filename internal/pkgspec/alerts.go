package pkgspec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Alert is a Prometheus alerting rule a package ships: rendered as a
// PrometheusRule when the workspace runs the Prometheus operator, and loaded
// by the local cluster's Prometheus (berth up --monitoring).
type Alert struct {
	// Name is the alert's name (its alertname label), such as PostgresDown.
	Name string `yaml:"name" json:"name"`
	// Expr is the PromQL expression; the alert is pending while it returns
	// series, and fires when it has for For.
	Expr string `yaml:"expr" json:"expr"`
	// For is how long Expr must hold before the alert fires, a Prometheus
	// duration such as 5m; empty fires at once.
	For string `yaml:"for,omitempty" json:"for,omitempty"`
	// Severity is critical, warning or info.
	Severity string `yaml:"severity" json:"severity"`
	// Summary says in one line what is wrong; it may use Prometheus's
	// template variables, such as {{ $labels.pod }}.
	Summary string `yaml:"summary" json:"summary"`
	// Runbook names the package's runbook to follow.
	Runbook string `yaml:"runbook,omitempty" json:"runbook,omitempty"`
}

// Panel is a chart the console draws from the workspace's Prometheus.
type Panel struct {
	Title string `yaml:"title" json:"title"`
	// Query is a PromQL expression; {{ .Namespace }} and {{ .App }} are
	// replaced by the app's namespace and name before it is evaluated.
	Query string `yaml:"query" json:"query"`
	// Unit of the values: bytes, seconds, percent, ops (per second) or
	// count (the default).
	Unit string `yaml:"unit,omitempty" json:"unit,omitempty"`
}

// Severities are the values Alert.Severity takes.
var Severities = []string{"critical", "warning", "info"}

// PanelUnits are the values Panel.Unit takes.
var PanelUnits = []string{"", "count", "bytes", "seconds", "percent", "ops"}

var (
	alertNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	// A Prometheus duration: one or more number-unit pairs, largest first.
	durationRE = regexp.MustCompile(`^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$`)
)

func (v *validator) alerts() {
	p := v.p
	seen := map[string]bool{}
	for i, a := range p.Alerts {
		at := []any{"alerts", i}
		f := func(name string) string { return fmt.Sprintf("alerts[%d].%s", i, name) }
		switch {
		case a.Name == "":
			v.add(f("name"), at, "name the alert, e.g. name: PostgresDown", "is missing")
		case !alertNameRE.MatchString(a.Name):
			v.add(f("name"), append(at, "name"), "use letters, digits and '_', starting with a letter, e.g. PostgresDown", "%q is not a valid alert name", a.Name)
		case seen[a.Name]:
			v.add(f("name"), append(at, "name"), "give each alert its own name", "%q is declared twice", a.Name)
		}
		seen[a.Name] = true
		if strings.TrimSpace(a.Expr) == "" {
			v.add(f("expr"), at, "write the PromQL condition, e.g. expr: pg_up == 0", "is missing")
		} else if err := checkPromQL(a.Expr); err != nil {
			v.add(f("expr"), append(at, "expr"), "write a valid PromQL expression", "is not valid PromQL: %v", err)
		}
		if a.For != "" && !durationRE.MatchString(a.For) {
			v.add(f("for"), append(at, "for"), "use a Prometheus duration such as 30s, 5m or 1h", "%q is not a duration", a.For)
		}
		if !slices.Contains(Severities, a.Severity) {
			v.add(f("severity"), append(at, "severity"), "use one of "+strings.Join(Severities, ", "), "%q is not a severity", a.Severity)
		}
		if strings.TrimSpace(a.Summary) == "" {
			v.add(f("summary"), at, "say in one line what is wrong", "is missing")
		}
		var names []string
		for _, r := range p.Runbooks {
			names = append(names, r.Name)
		}
		if a.Runbook != "" && !slices.Contains(names, a.Runbook) {
			fix := "the package declares no runbooks; add one under runbooks:"
			if len(names) > 0 {
				fix = "use one of " + strings.Join(names, ", ")
			}
			v.add(f("runbook"), append(at, "runbook"), fix, "names runbook %q, which the package does not declare", a.Runbook)
		}
	}
	for i, pn := range p.Panels {
		at := []any{"panels", i}
		f := func(name string) string { return fmt.Sprintf("panels[%d].%s", i, name) }
		if strings.TrimSpace(pn.Title) == "" {
			v.add(f("title"), at, "give the chart a title", "is missing")
		}
		if strings.TrimSpace(pn.Query) == "" {
			v.add(f("query"), at, "write the PromQL query", "is missing")
		} else if err := checkPromQL(pn.Query); err != nil {
			v.add(f("query"), append(at, "query"), "write a valid PromQL expression", "is not valid PromQL: %v", err)
		}
		if !slices.Contains(PanelUnits, pn.Unit) {
			v.add(f("unit"), append(at, "unit"), "use one of "+strings.Join(PanelUnits[1:], ", "), "%q is not a unit", pn.Unit)
		}
	}
}

// checkPromQL catches the mistakes that make Prometheus refuse a rule file:
// unbalanced brackets and quotes, a dangling operator. It is not the full
// PromQL grammar (that parser would pull Prometheus and its dependencies into
// berth); the local Prometheus reports what it misses when it loads the rule.
func checkPromQL(expr string) error {
	var stack []rune
	closing := map[rune]rune{')': '(', ']': '[', '}': '{'}
	rs := []rune(expr)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch r {
		case '"', '\'', '`':
			j := i + 1
			for ; j < len(rs) && rs[j] != r; j++ {
				if rs[j] == '\\' && r != '`' {
					j++
				}
			}
			if j >= len(rs) {
				return fmt.Errorf("unterminated string starting at column %d", i+1)
			}
			i = j
		case '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != closing[r] {
				return fmt.Errorf("unexpected %q at column %d", string(r), i+1)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", string(stack[len(stack)-1]))
	}
	trimmed := strings.TrimSpace(expr)
	for _, op := range []string{"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", " and", " or", " unless"} {
		if strings.HasSuffix(trimmed, op) {
			return fmt.Errorf("ends with the operator %q", strings.TrimSpace(op))
		}
	}
	return nil
}
